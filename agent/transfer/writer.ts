/**
 * Writes a fetch's verified chunks to `<dest>.part`: in order, one at a time, with up to
 * WRITE_BEHIND_BYTES handed over but not yet written, so that the disk write of one chunk
 * overlaps the checks of the next. A failed write fails the fetch (a full disk is not the
 * peer's fault; no retry).
 *
 * The writes run on a worker thread, each chunk in WRITE_PIECE_BYTES pieces:
 *
 * - Piece size. Linux (6.x, ext4 with large folios) sizes the page-cache folios of a
 *   buffered write by the write's length: a 512 KiB write takes order-7 folios, carved
 *   from large free blocks. On a VM that hands free memory back to its host (free page
 *   reporting, as on the dev VM: page_reporting_order=11), those blocks are unbacked and
 *   every first touch faults on the host. Writing a fresh 1 GB file there took 1.2-1.4 s
 *   of kernel time in 512 KiB writes, 0.5 s in 128 KiB writes, 0.2 s in 64 KiB writes
 *   (the raw TCP copy's size), measured 6 s after the previous file was deleted. It is
 *   most of why a 1 GB fetch measured 45-50% of the raw copy against ~75% at 200 MB:
 *   the receiver's kernel time was 2.0 s/GB at 1 GB, 0.5 s/GB at 200 MB (a short run
 *   reuses the pages the previous run freed before the VM reports them; a 1 GB run
 *   outlasts the 2 s reporting delay). On bare metal the write size hardly matters.
 * - Worker thread. The same pieces issued from the main thread through libuv's pool
 *   (fs.write, one completion per piece) cut the kernel time as expected but woke the
 *   event loop 4x as often, and the receiver's user time rose by as much (0.4-0.5 s/GB).
 *   A worker loops over the pieces with synchronous writes and reports once per chunk.
 * - No copy. grpc-js assembles each received message into a Buffer of its own (its
 *   StreamDecoder concatenates the HTTP/2 DATA frames) and the chunk's `data` is a view
 *   of it. When that ArrayBuffer holds nothing but this chunk and a few header bytes, it
 *   is transferred to the worker (not copied); otherwise the data is copied first. The
 *   worker transfers it back with its reply, so that it is collected on the main thread
 *   like any received message: left in the worker, whose own heap barely grows, dead
 *   buffers piled up until its rare collections (the bench's receiver idled at 190 MB
 *   RSS instead of 127 MB).
 * - Result (paired with raw copies, 1 GB): 213-246 MB/s and 4.4-5.2 s/GB of receiver CPU
 *   writing whole chunks through libuv's pool; 313-346 MB/s and 3.2-3.8 s/GB with this.
 *
 * The worker starts on the first fetch (~25 ms, +10 MB RSS), is shared by concurrent
 * fetches and stops after IDLE_STOP_MS without one. Its code is a string run with
 * `eval: true` using Node's built-in modules only, so it works from the esbuild bundle
 * and the single executable (no worker file to point at, no node_modules). If it cannot
 * start, or HERD_TRANSFER_WORKER=0, the writes go through libuv's pool in whole chunks
 * (PoolWriter), as before.
 */
import type { FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { logger } from '../../common/log';

const log = logger('transfer');

/** Verified data handed to the disk but not yet written; bounds memory with a slow disk. */
export const WRITE_BEHIND_BYTES = 4 << 20;
/** See above: the raw TCP copy's write size, small page-cache folios. */
export const WRITE_PIECE_BYTES = 64 * 1024;
/** A worker with no fetch for this long is stopped. */
export const IDLE_STOP_MS = 5_000;
/** Smallest chunk whose buffer is transferred rather than copied. */
const TRANSFER_MIN_BYTES = 64 * 1024;
/** What a message's own buffer may hold besides the chunk's data: the 5-byte gRPC prefix and the other Chunk fields (~110 bytes at most). */
const TRANSFER_SLACK_BYTES = 256;

export interface ChunkWriter {
  /** Queues `data` for writing at `position`; waits while WRITE_BEHIND_BYTES are queued. May take `data`'s memory: do not use it afterwards. */
  write(data: Buffer, position: number): Promise<void>;
  /** Waits until everything queued is written; throws the first write error. */
  flush(): Promise<void>;
  /** Releases the writer (after flush). */
  close(): void;
}

/** A write failed: the fetch fails with this (INTERNAL, not retried). */
export class WriteError extends Error {
  override name = 'WriteError';
  constructor(cause: unknown) {
    super(`writing the artifact failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}
const writeError = (cause: unknown) => new WriteError(cause);

/**
 * Artifacts up to this size are written through the thread pool: starting the writer thread
 * takes ~17 ms here, more than such a file takes to write, and a migration's small artifacts
 * (a small container's checkpoint, its diff layer, its log) are fetched inside its downtime.
 */
export const SMALL_ARTIFACT_BYTES = WRITE_BEHIND_BYTES;

/** `expectedBytes`: the artifact's size when known (a small one never starts the thread). */
export function createWriter(fh: FileHandle, expectedBytes?: number): ChunkWriter {
  const small = expectedBytes !== undefined && expectedBytes <= SMALL_ARTIFACT_BYTES;
  if (!small && process.env.HERD_TRANSFER_WORKER !== '0') {
    const w = sharedWorker();
    if (w) return new WorkerWriter(w, fh.fd);
  }
  return new PoolWriter(fh);
}

const WORKER_CODE = `'use strict';
const { parentPort } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const PIECE = ${WRITE_PIECE_BYTES};
const failed = new Map(); // job -> message of its first failed write; later chunks are dropped
parentPort.on('message', (m) => {
  if (m.op === 'close') { failed.delete(m.job); return; }
  let error = failed.get(m.job);
  if (error === undefined) {
    const buf = new Uint8Array(m.ab, m.off, m.len);
    try {
      for (let done = 0; done < m.len; ) done += writeSync(m.fd, buf, done, Math.min(PIECE, m.len - done), m.pos + done);
    } catch (err) {
      error = err && err.message ? err.message : String(err);
      failed.set(m.job, error);
    }
  }
  // the buffer goes back to the main thread, to be collected there like any received
  // message: dropped here, it would wait for this thread's own (rare) garbage collection
  parentPort.postMessage({ job: m.job, bytes: m.len, error, ab: m.ab }, [m.ab]);
});
`;

interface Reply {
  job: number;
  bytes: number;
  error?: string;
}

interface Job {
  onWritten(bytes: number, error: string | undefined): void;
  onDeath(err: Error): void;
}

/** The process's writer thread, started on demand and stopped when idle. */
class SharedWorker {
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: Reply) => this.jobs.get(m.job)?.onWritten(m.bytes, m.error));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => this.die(new Error(`the transfer writer thread exited (code ${code})`)));
    worker.unref();
  }

  open(job: Job): number {
    const id = this.nextJob++;
    clearTimeout(this.idleTimer);
    if (this.jobs.size === 0) this.worker.ref(); // a fetch waiting on it keeps the process alive
    this.jobs.set(id, job);
    return id;
  }

  close(id: number): void {
    if (!this.jobs.delete(id)) return;
    if (!this.dead) this.worker.postMessage({ op: 'close', job: id });
    if (this.jobs.size > 0) return;
    this.worker.unref();
    this.idleTimer = setTimeout(() => {
      if (this.jobs.size > 0) return;
      this.retire();
      void this.worker.terminate();
    }, IDLE_STOP_MS).unref();
  }

  private retire(): void {
    this.dead = true;
    if (current === this) current = undefined;
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.retire();
    log.warn('transfer writer thread died', { err });
    for (const j of this.jobs.values()) j.onDeath(err);
    this.jobs.clear();
  }
}

let current: SharedWorker | undefined;
let cannotStart = false;

/** Whether the writer thread runs now (for tests and diagnostics). */
export function writerThreadRunning(): boolean {
  return current !== undefined && !current.dead;
}

function sharedWorker(): SharedWorker | undefined {
  if (current && !current.dead) return current;
  if (cannotStart) return undefined;
  try {
    current = new SharedWorker(new Worker(WORKER_CODE, { eval: true, name: 'herd-transfer-writer' }));
    return current;
  } catch (err) {
    cannotStart = true;
    log.warn('cannot start the transfer writer thread; writing through the thread pool', { err });
    return undefined;
  }
}

class WorkerWriter implements ChunkWriter {
  private readonly job: number;
  private queued = 0;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly shared: SharedWorker,
    private readonly fd: number,
  ) {
    this.job = shared.open({
      onWritten: (bytes, error) => {
        this.queued -= bytes;
        if (error !== undefined) this.error ??= writeError(new Error(error));
        this.poke();
      },
      onDeath: (err) => {
        this.error ??= writeError(err);
        this.poke();
      },
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private sleep(): Promise<void> {
    return new Promise<void>((r) => (this.wake = r));
  }

  async write(data: Buffer, position: number): Promise<void> {
    if (this.error) throw this.error;
    const len = data.byteLength;
    if (len === 0) return;
    let ab = data.buffer as ArrayBuffer;
    let off = data.byteOffset;
    if (!(len >= TRANSFER_MIN_BYTES && ab instanceof ArrayBuffer && ab.byteLength - len <= TRANSFER_SLACK_BYTES)) {
      ab = new ArrayBuffer(len);
      new Uint8Array(ab).set(data);
      off = 0;
    }
    this.queued += len;
    this.shared.worker.postMessage({ job: this.job, fd: this.fd, ab, off, len, pos: position }, [ab]);
    while (this.queued >= WRITE_BEHIND_BYTES && !this.error) await this.sleep();
    if (this.error) throw this.error;
  }

  async flush(): Promise<void> {
    while (this.queued > 0 && !this.error) await this.sleep();
    if (this.error) throw this.error;
  }

  close(): void {
    this.shared.close(this.job);
  }
}

/** Writes through libuv's thread pool, whole chunks, one at a time. */
export class PoolWriter implements ChunkWriter {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private error: unknown;
  private wake: (() => void) | undefined;

  constructor(private readonly fh: FileHandle) {}

  async write(data: Buffer, position: number): Promise<void> {
    this.check();
    this.queued += data.length;
    this.tail = this.tail.then(async () => {
      try {
        if (this.error === undefined) await this.writeAll(data, position);
      } catch (err) {
        this.error ??= err;
      }
      this.queued -= data.length;
      this.wake?.();
    });
    while (this.queued >= WRITE_BEHIND_BYTES && this.error === undefined) await new Promise<void>((r) => (this.wake = r));
    this.check();
  }

  async flush(): Promise<void> {
    await this.tail;
    this.check();
  }

  close(): void {}

  private check(): void {
    if (this.error !== undefined) throw writeError(this.error);
  }

  private async writeAll(data: Buffer, position: number): Promise<void> {
    for (let done = 0; done < data.length; ) done += (await this.fh.write(data, done, data.length - done, position + done)).bytesWritten;
  }
}
