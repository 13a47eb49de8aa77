/**
 * One CRIU operation (dump or restore) at a time on a node (invariant 5): parallel CRIU
 * work competes for the same CPU and disk and makes every migration's downtime longer
 * (the thesis measured it). Everything else in a migration runs in parallel.
 */
export class CriuLock {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Runs fn when every earlier holder has finished; resolves or rejects with fn's result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      this.waiting--;
    });
    return result;
  }

  /** Operations queued or running (for logs and tests). */
  get queued(): number {
    return this.waiting;
  }
}
