/**
 * One controller evaluation as it is kept: the coordinator's node appends it to its own
 * sample log like an audit event, so a new coordinator rebuilds the decision history from the
 * agents' logs (design: "Decisions are records ... that travel in the coordinator's node's
 * log"). Both roles carry it, hence common/.
 */

export type ControlMode = 'off' | 'recommend' | 'auto';

export interface ProposalRecord {
  herdId: string;
  from: string;
  to: string;
  policy: string;
  score: number;
  reason: string;
  figures: Record<string, number>;
}

export interface RefusalRecord {
  herdId: string;
  to: string;
  filter: string;
  reason: string;
}

/** A move the controller chose: carried out (auto), waiting for approval (recommend), or done. */
export interface ActionRecord {
  herdId: string;
  from: string;
  to: string;
  policy: string;
  reason: string;
  /** 'recommended' (waits for ApproveDecision) | 'started' | 'SUCCEEDED' | 'ROLLED_BACK' | 'FAILED' | 'skipped'. */
  status: string;
  migrationId: string;
  /** Why it ended as it did (the migration's reason), or why it was skipped. */
  detail: string;
}

export interface DecisionRecord {
  /** Unique, sortable by time (e.g. 'd-<ms>-<n>'). */
  id: string;
  atMs: number;
  term: number;
  mode: ControlMode;
  /** The ordered policy list in force. */
  policies: string[];
  /** Why this evaluation ran: 'schedule' | 'evaluate-now' | 'approve'. */
  trigger: string;
  summary: { nodes: number; containers: number; judgedNodes: number; judgedContainers: number; meanCpu: number; meanDiskActive: number };
  proposals: ProposalRecord[];
  refusals: RefusalRecord[];
  actions: ActionRecord[];
  efficacy: {
    /** Weighted spread (SD) of host load before the moves and as expected after them. */
    imbalanceBefore: number;
    imbalanceAfter: number;
    /** Fraction of the cluster's containers moved by this evaluation. */
    movedFraction: number;
  };
  /** A sentence: what was decided and why (e.g. "no node over its threshold for 5 rounds"). */
  note: string;
  /** Time the evaluation took (ms of CPU on the coordinator). */
  evalMs: number;
}
