/**
 * The one interface every placement policy implements (as descheduler's plugins do), so the
 * coordinator's controller and the simulator run the very same code.
 *
 * A policy says which moves would help; it does not decide whether a container may move now:
 * that is the filters' job (filters.ts), kept apart so a refusal always names its rule. A
 * policy may ask the filters while it searches (the OLTP policy takes the next candidate when
 * one is refused), through `PolicyInput.allowed`, which records every refusal it sees.
 *
 * Pure: no I/O, no clock (time is `snapshot.nowMs`), no randomness but `PolicyInput.random`.
 */
import type { Snapshot } from './snapshot';

/** A move a policy proposes. */
export interface Move {
  herdId: string;
  from: string;
  to: string;
  /** Higher is better; comparable among one policy's moves (the controller takes the best first). */
  score: number;
  /** The policy that proposed it. */
  policy: string;
  /** A sentence a person understands: why this container, why this target, the numbers. */
  reason: string;
  /** The numbers behind the reason (utilizations, gains, costs), for records and plots. */
  figures: Readonly<Record<string, number>>;
}

/** A filter's no: which rule, and a sentence with its numbers. */
export interface Refusal {
  /** The container refused; '' when the target refuses every container (draining, stale, no CRIU...). */
  herdId: string;
  /** The target refused; '' when the container may not move at all. */
  to: string;
  /** The filter's name, e.g. 'pinned', 'cooldown', 'ping-pong', 'no-room', 'stale'. */
  filter: string;
  reason: string;
}

export interface PolicyInput<S = unknown> {
  snapshot: Snapshot;
  /** This policy's own settings (validated by its schema before it sees them). */
  settings: S;
  /** May this container move to this node now? null = yes; a refusal otherwise (also recorded). */
  allowed(herdId: string, to: string): Refusal | null;
  /** May this container move at all (pinned, cooldown, back-off, stale...)? null = yes; a refusal otherwise (also recorded). */
  movable(herdId: string): Refusal | null;
  /** Nodes judged over their threshold long enough (hysteresis), by the decision step. */
  relievable(nodeId: string): boolean;
  /** Deterministic randomness, seeded by the caller (only the random baseline uses it). */
  random(): number;
  /** Why the policy proposes nothing (a condition that failed, with its numbers): kept in the decision's note. */
  note?(sentence: string): void;
}

export interface Policy<S = unknown> {
  /** Stable name used in settings, records and the CLI, e.g. 'cpu-greedy'. */
  readonly name: string;
  /** One line for `herd policy show` and the docs. */
  readonly summary: string;
  /** Defaults (the thesis's published thresholds where it has them). */
  readonly defaults: S;
  /** Checks settings; returns a sentence naming the field and its allowed range, or null. */
  validate(settings: unknown): string | null;
  /**
   * Nodes over this policy's threshold in this snapshot. The decision step counts the rounds
   * in a row each node has been over (hysteresis) and answers `relievable` from that count.
   * A policy without it has no notion of an overloaded node: every node is relievable.
   */
  overThreshold?(snapshot: Snapshot, settings: S): ReadonlySet<string>;
  /** Moves that would help, best first; [] when none clears its thresholds. */
  propose(input: PolicyInput<S>): Move[];
}
