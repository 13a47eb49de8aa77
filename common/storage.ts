/**
 * Keeps a node's LMDB store whole on a full file system. Before the big writers (the
 * agent's sample log, the coordinator's sample store) write, they ask the guard; below a
 * reserve of free space on the data dir's file system it refuses (StorageFullError), so
 * LMDB itself is never driven into ENOSPC in the usual case: lmdb-js 3.5 reports a failed
 * commit through a second promise nobody awaits (an unhandled rejection ends the process)
 * and its env.close() after one aborts with heap corruption. What is stored stays stored;
 * the writers keep the rest where it is (the agent skips the round, the coordinator does not
 * acknowledge, so the agent keeps and replays). The guard says so once when it starts
 * refusing and once when space returns (log, health service `herd.storage`, herd doctor).
 *
 * A write that fails anyway (something else filled the disk between the check and the
 * commit) is recorded the same way; `sawWriteFailure` tells the node to skip env.close().
 */
import { statfsSync } from 'node:fs';
import { logger } from './log';

const log = logger('storage');

export class StorageFullError extends Error {
  readonly code = 'ENOSPC';
}

export interface StorageStatus {
  ok: boolean;
  /** Why writes are refused or failed, while they are. */
  reason?: string;
  /** Free bytes on the data dir's file system at the last look. */
  freeBytes?: number;
  /** Writes refused or failed since the last success. */
  refused: number;
}

export interface StorageGuardOptions {
  /** Refuse writes below this much free space. */
  minFreeBytes: number;
  /** Free bytes on the file system holding dir (default: statfs). */
  freeBytes?: (dir: string) => number;
  now?: () => number;
  /** Free space is looked at no more often than this (statfs is cheap, but not free). */
  recheckMs?: number;
}

export const DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024;

export function statfsFreeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export class StorageGuard {
  private free: number | undefined;
  private lookedAt = -Infinity;
  private failing: string | undefined;
  private refused = 0;
  private writeFailed = false;
  private readonly listeners = new Set<(s: StorageStatus) => void>();
  private readonly freeBytes: (dir: string) => number;
  private readonly now: () => number;

  constructor(private readonly dir: string, private readonly opts: StorageGuardOptions) {
    this.freeBytes = opts.freeBytes ?? statfsFreeBytes;
    this.now = opts.now ?? Date.now;
  }

  /** Throws StorageFullError when the data dir's file system is below the reserve. */
  check(): void {
    const t = this.now();
    if (t - this.lookedAt >= (this.opts.recheckMs ?? 1000) || this.failing) {
      this.lookedAt = t;
      try {
        this.free = this.freeBytes(this.dir);
      } catch (err) {
        log.debug('statfs of the data dir failed', { dir: this.dir, reason: (err as Error).message });
        this.free = undefined; // unknown: let LMDB try
      }
    }
    if (this.free !== undefined && this.free < this.opts.minFreeBytes) {
      const reason = `the data dir's file system has ${mib(this.free)} free, below the ${mib(this.opts.minFreeBytes)} reserve (${this.dir})`;
      this.fail(reason);
      throw new StorageFullError(`not writing: ${reason}`);
    }
  }

  /** Runs one write under the guard: refused below the reserve, its failure recorded. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      const r = await fn();
      this.succeeded();
      return r;
    } catch (err) {
      this.writeFailedWith(err);
      throw err;
    }
  }

  /** A write failed (LMDB's error; its commitError is handled here so it cannot end the process). */
  writeFailedWith(err: unknown): void {
    const e = err as { commitError?: Promise<unknown>; message?: string };
    e?.commitError?.catch?.(() => {});
    this.writeFailed = true;
    this.lookedAt = -Infinity; // look at the free space again on the next write
    this.fail(`a write failed: ${e?.message ?? String(err)}`);
  }

  succeeded(): void {
    if (!this.failing) return;
    log.info('storage writes work again', { dir: this.dir, free: this.free === undefined ? 'unknown' : mib(this.free), refused_while_failing: this.refused });
    this.failing = undefined;
    this.refused = 0;
    this.emit();
  }

  status(): StorageStatus {
    return { ok: !this.failing, reason: this.failing, freeBytes: this.free, refused: this.refused };
  }

  /** Whether LMDB itself saw a failed write in this process (then env.close() is not safe). */
  get sawWriteFailure(): boolean {
    return this.writeFailed;
  }

  onChange(fn: (s: StorageStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private fail(reason: string): void {
    this.refused++;
    if (this.failing) return;
    this.failing = reason;
    log.error('storage full: keeping what is stored, not writing more until space returns', { reason });
    this.emit();
  }

  private emit(): void {
    const s = this.status();
    for (const fn of this.listeners) fn(s);
  }
}

/** An LMDB commit failure, as lmdb-js rejects its commitError promise or a write. */
export function isLmdbWriteFailure(err: unknown): boolean {
  const e = err as { message?: string; code?: unknown };
  return typeof e?.message === 'string' && (/^Commit failed/.test(e.message) || /Attempting to write page|MDB_MAP_FULL|No space left on device/.test(e.message));
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
