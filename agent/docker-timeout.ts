/**
 * How long the agent waits for one Docker list/inspect call. A hung dockerd must not hang the
 * agent, but a slow one (an emulated guest, a Pi under load) must not look dead either: after a
 * call times out, the wait doubles (up to a cap), so the next round can finish; once answers come
 * quickly again for a while, it halves back towards the configured value. Pure: the caller
 * measures the calls and logs the changes this returns.
 */

/** A change of the wait, for the caller's log line. */
export interface TimeoutChange {
  fromMs: number;
  toMs: number;
}

export interface AdaptiveTimeoutOptions {
  /** the configured wait (settings.dockerTimeoutMs); never goes below it */
  baseMs: number;
  /** the longest wait a backoff reaches (default 8 x baseMs) */
  maxMs?: number;
  /** this many answers in a row, each within a quarter of the wait, halve it (default 20) */
  fastAnswersToRelax?: number;
}

export class AdaptiveTimeout {
  readonly baseMs: number;
  readonly maxMs: number;
  private readonly relaxAfter: number;
  private currentMs: number;
  private fastInARow = 0;

  constructor(o: AdaptiveTimeoutOptions) {
    if (!(o.baseMs > 0)) throw new RangeError(`baseMs must be positive, got ${o.baseMs}`);
    this.baseMs = o.baseMs;
    this.maxMs = Math.max(o.baseMs, o.maxMs ?? o.baseMs * 8);
    this.relaxAfter = o.fastAnswersToRelax ?? 20;
    this.currentMs = o.baseMs;
  }

  /** The wait for the next call. */
  get ms(): number {
    return this.currentMs;
  }

  /** A call gave up after the wait: double it (up to maxMs). Returns the change, if any. */
  timedOut(): TimeoutChange | undefined {
    this.fastInARow = 0;
    const next = Math.min(this.maxMs, this.currentMs * 2);
    return this.change(next);
  }

  /** A call answered after tookMs: enough quick answers in a row halve the wait (not below baseMs). */
  answered(tookMs: number): TimeoutChange | undefined {
    if (this.currentMs === this.baseMs || tookMs > this.currentMs / 4) {
      this.fastInARow = 0;
      return undefined;
    }
    if (++this.fastInARow < this.relaxAfter) return undefined;
    this.fastInARow = 0;
    return this.change(Math.max(this.baseMs, Math.floor(this.currentMs / 2)));
  }

  private change(next: number): TimeoutChange | undefined {
    if (next === this.currentMs) return undefined;
    const c = { fromMs: this.currentMs, toMs: next };
    this.currentMs = next;
    return c;
  }
}
