/**
 * Fencing on the agent side: a coordinator command carries the term its sender led in, and
 * an agent refuses any term lower than the highest it has seen. A deposed coordinator that
 * has not noticed yet (paused, partitioned) can therefore not move containers: the agents
 * already saw the new term, from the new coordinator or from their own node's election.
 */
import { MAX_TERM, describe, isTerm } from './term';

export type FenceResult = { ok: true } | { ok: false; reason: string };

export interface TermFenceOptions {
  /** Highest term seen before this process started (persist it next to the agent's state). */
  highest?: number;
  /**
   * Terms more than this far above the highest seen are refused, as the election refuses
   * them: one corrupt term accepted here would lock out every honest coordinator for good.
   */
  maxLead?: number;
}

export class TermFence {
  private top: number;
  private readonly maxLead: number;

  constructor(opts: TermFenceOptions = {}) {
    const highest = opts.highest ?? 0;
    if (!isTerm(highest)) throw new RangeError(`TermFence: highest ${describe(highest)} is not a valid term`);
    const maxLead = opts.maxLead ?? 1_000_000;
    if (typeof maxLead !== 'number' || !(maxLead > 0)) throw new RangeError(`TermFence: maxLead ${describe(maxLead)} must be positive`);
    this.top = highest;
    this.maxLead = maxLead;
  }

  /** The highest term seen; persist it when it changes so a restart keeps fencing. */
  get highest(): number {
    return this.top;
  }

  /** Record a term seen elsewhere (hello, heartbeat, the local election). Never lowers it. */
  observe(term: unknown): FenceResult {
    const bad = this.invalid(term);
    if (bad) return bad;
    if ((term as number) > this.top) this.top = term as number;
    return { ok: true };
  }

  /** May a command from `term` run? Accepting it also raises the highest term seen. */
  check(term: unknown): FenceResult {
    const bad = this.invalid(term);
    if (bad) return bad;
    const t = term as number;
    if (t < this.top) return { ok: false, reason: `command from term ${t} refused: term ${this.top} has been seen, its sender is no longer coordinator` };
    this.top = t;
    return { ok: true };
  }

  private invalid(term: unknown): FenceResult | null {
    if (!isTerm(term)) return { ok: false, reason: `term ${describe(term)} is not an integer in [0, ${MAX_TERM}]` };
    if (term > this.top + this.maxLead) return { ok: false, reason: `term ${term} is more than ${this.maxLead} above the highest seen (${this.top})` };
    return null;
  }
}

/** One-shot form for callers holding the highest term themselves. */
export function fence(commandTerm: unknown, highestSeen: number): FenceResult {
  if (!isTerm(highestSeen)) return { ok: false, reason: `highest seen term ${describe(highestSeen)} is not a valid term` };
  if (!isTerm(commandTerm)) return { ok: false, reason: `term ${describe(commandTerm)} is not an integer in [0, ${MAX_TERM}]` };
  if (commandTerm < highestSeen) return { ok: false, reason: `command from term ${commandTerm} refused: term ${highestSeen} has been seen` };
  return { ok: true };
}
