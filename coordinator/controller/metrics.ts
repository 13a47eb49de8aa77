/**
 * The controller's figures on the coordinator's /metrics: how often it evaluates (and why,
 * in which mode), what its policies propose, what its filters refuse, how the moves it
 * carried out ended, and how long an evaluation takes. Counted by the process that ran the
 * evaluation, so only the coordinator's series move (a new coordinator starts from zero, as
 * Prometheus counters may).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ActionRecord, DecisionRecord } from '../../common/decision';

/** How a move the controller carried out ended (an ActionRecord status that is final). */
export const MOVE_OUTCOMES = new Set(['SUCCEEDED', 'ROLLED_BACK', 'FAILED', 'skipped']);

export interface ControllerObserver {
  /** One evaluation, as recorded (before its moves end). */
  evaluated(d: DecisionRecord): void;
  /** A move the controller carried out (or tried to) reached its end. */
  moveEnded(a: ActionRecord): void;
}

export class ControllerMetrics implements ControllerObserver {
  readonly evaluations: Counter<'trigger' | 'mode'>;
  readonly proposals: Counter<'policy'>;
  readonly refusals: Counter<'filter'>;
  readonly moves: Counter<'outcome'>;
  readonly duration: Histogram;

  constructor(prom: Registry) {
    const registers = [prom];
    this.evaluations = new Counter({ name: 'herd_controller_evaluations_total', help: 'Controller evaluations on this node as coordinator, by trigger (schedule, evaluate-now) and mode (recommend, auto).', labelNames: ['trigger', 'mode'], registers });
    this.proposals = new Counter({ name: 'herd_controller_proposals_total', help: 'Moves the policies proposed, by policy.', labelNames: ['policy'], registers });
    this.refusals = new Counter({ name: 'herd_controller_refusals_total', help: 'Containers or moves the filters refused, by filter (pinned, cooldown, stale, room...).', labelNames: ['filter'], registers });
    this.moves = new Counter({ name: 'herd_controller_moves_total', help: 'Moves the controller carried out, by how they ended (SUCCEEDED, ROLLED_BACK, FAILED, skipped).', labelNames: ['outcome'], registers });
    this.duration = new Histogram({ name: 'herd_controller_evaluation_seconds', help: 'Time one evaluation took on the coordinator (snapshot and decision).', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2], registers });
  }

  evaluated(d: DecisionRecord): void {
    this.evaluations.inc({ trigger: d.trigger || 'unknown', mode: d.mode });
    for (const p of d.proposals) this.proposals.inc({ policy: p.policy || 'unknown' });
    for (const r of d.refusals) this.refusals.inc({ filter: r.filter || 'unknown' });
    if (Number.isFinite(d.evalMs) && d.evalMs >= 0) this.duration.observe(d.evalMs / 1000);
  }

  moveEnded(a: ActionRecord): void {
    if (MOVE_OUTCOMES.has(a.status)) this.moves.inc({ outcome: a.status });
  }
}
