/**
 * The fetching side of Transfer: pulls an artifact into `<dest>.part`, checking each
 * chunk's offset and CRC32C as it arrives and the whole file's SHA-256 at the end, and
 * renames it to `dest` only then (invariant 4). A broken stream (peer gone, cut,
 * corrupted or missing chunk, silence) is fetched again from the last verified byte.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { logger } from '../../common/log';
import { loadProtos } from '../../common/proto';
import { SHA256_HEX } from './artifacts';
import { loadCrc32c } from './crc32c';
import { createWriter, WRITE_BEHIND_BYTES, WriteError } from './writer';
import type { ChunkMsg, FetchRequestMsg } from './server';

const log = logger('transfer');

/**
 * The fetching client's HTTP/2 receive window (per stream and per connection). At the
 * default 64 KiB the sender stalls on a WINDOW_UPDATE round trip every 64 KiB. On
 * loopback 4, 8 and 16 MiB measured alike (bench/transfer.ts sweep) while a larger
 * window holds more unread data in memory; 8 MiB still covers a 10 Gbit/s link with
 * a 6 ms round trip, far more than an edge cluster's LAN needs.
 */
export const FETCH_WINDOW_BYTES = 8 << 20;
export { WRITE_BEHIND_BYTES };

export interface TransferClient extends grpc.Client {
  Fetch(req: FetchRequestMsg, options?: grpc.CallOptions): grpc.ClientReadableStream<ChunkMsg>;
}

/** A Transfer client with the large receive window; `channelOptions` are added (e.g. `grpc.ssl_target_name_override`). */
export function createTransferClient(address: string, credentials = grpc.credentials.createInsecure(), windowBytes = FETCH_WINDOW_BYTES, channelOptions: grpc.ChannelOptions = {}): TransferClient {
  const { herd } = loadProtos();
  return new herd.Transfer(address, credentials, { ...channelOptions, 'grpc-node.flow_control_window': windowBytes }) as TransferClient;
}

export type ArtifactRequest = Omit<FetchRequestMsg, 'offset'>;

export interface FetchOptions {
  /** Failed attempts in a row without a new verified byte before giving up (default 5). */
  retries?: number;
  /** First wait before a retry; doubles per failure in a row, up to backoffMaxMs (defaults 250 ms, 5 s). */
  backoffMs?: number;
  backoffMaxMs?: number;
  /** An attempt that receives nothing for this long is abandoned and retried (default 30 s). */
  idleTimeoutMs?: number;
  /** Known from elsewhere (the migration's prepare message): refuse an artifact that differs. */
  expectedSha256?: string;
  expectedSize?: number;
  /** fsync the file before renaming it into place (default true). */
  fsync?: boolean;
  signal?: AbortSignal;
  onProgress?: (verifiedBytes: number, totalBytes: number) => void;
  /** With an address: the channel's credentials (default insecure) and receive window. */
  credentials?: grpc.ChannelCredentials;
  windowBytes?: number;
}

export interface FetchResult {
  path: string;
  size: number;
  sha256: string;
  /** Fetch calls made; more than 1 means the transfer was resumed. */
  attempts: number;
  ms: number;
}

/** A failed fetch; `code` is the gRPC status of the last failure (DATA_LOSS for bad data). */
export class TransferError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

// Answers that another try cannot change. Everything else (UNAVAILABLE, a reset
// stream, CRC or offset errors, silence) is worth a retry from the verified offset.
const FINAL = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.PERMISSION_DENIED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.UNAUTHENTICATED,
  grpc.status.UNIMPLEMENTED,
]);

const dataLoss = (msg: string) => new TransferError(grpc.status.DATA_LOSS, msg, true);
const refused = (msg: string) => new TransferError(grpc.status.FAILED_PRECONDITION, msg, false);

function classify(err: unknown): TransferError {
  if (err instanceof TransferError) return err;
  if (err instanceof WriteError) return new TransferError(grpc.status.INTERNAL, err.message, false);
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code === 'number') return new TransferError(e.code, e.details || e.message || String(err), !FINAL.has(e.code));
  // Not from the peer: a local failure (disk full, permissions) that a retry would repeat.
  return new TransferError(grpc.status.INTERNAL, err instanceof Error ? err.message : String(err), false);
}

/**
 * Fetches one artifact to `dest`. `target` is a Transfer client (left open) or an
 * address (a client is made with a large receive window, and closed). One fetch per
 * `dest` at a time: `<dest>.part` is its scratch file.
 */
export async function fetchArtifact(target: TransferClient | string, request: ArtifactRequest, dest: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const started = Date.now();
  const client = typeof target === 'string' ? createTransferClient(target, opts.credentials, opts.windowBytes) : target;
  const where = typeof target === 'string' ? target : client.getChannel().getTarget();
  const what = `artifact "${request.artifact}" of migration ${request.migration_id} from ${where}`;
  const retries = opts.retries ?? 5;
  const tmp = `${dest}.part`;
  const state: FetchState = { verified: 0, sha: createHash('sha256'), crc32c: await loadCrc32c() };
  if (opts.expectedSha256 !== undefined) state.sha256 = opts.expectedSha256;
  if (opts.expectedSize !== undefined) state.total = opts.expectedSize;
  let fh: FileHandle | undefined;
  let attempts = 0;
  try {
    fh = await open(tmp, 'w');
    for (let failures = 0; ; ) {
      attempts++;
      const before = state.verified;
      try {
        await attempt(client, request, fh, state, opts);
        if (state.total === undefined || state.verified !== state.total) {
          throw dataLoss(`the stream ended at byte ${state.verified} of ${state.total ?? 'an unknown size'}`);
        }
        break;
      } catch (err) {
        const e = classify(err);
        if (opts.signal?.aborted) throw new TransferError(grpc.status.CANCELLED, `fetching ${what} was aborted`, false);
        if (!e.retryable) throw new TransferError(e.code, `fetching ${what} failed: ${e.message}`, false);
        failures = state.verified > before ? 1 : failures + 1;
        if (failures > retries) {
          throw new TransferError(e.code, `fetching ${what} failed after ${attempts} attempts (${failures} in a row without progress; ${state.verified} of ${state.total ?? '?'} bytes verified): ${e.message}`, false);
        }
        const wait = backoff(failures, opts);
        log.warn('transfer interrupted; resuming', { artifact: request.artifact, migration: request.migration_id, from: where, at: state.verified, in_ms: Math.round(wait), reason: e.message });
        await sleep(wait, opts.signal);
      }
    }
    const sha256 = state.sha.digest('hex');
    if (sha256 !== state.sha256) {
      throw new TransferError(grpc.status.DATA_LOSS, `fetching ${what} failed: the assembled file's SHA-256 is ${sha256}, the artifact's is ${state.sha256}; the file was discarded`, false);
    }
    if (opts.fsync ?? true) await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, dest);
    return { path: dest, size: state.verified, sha256, attempts, ms: Date.now() - started };
  } catch (err) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    if (err instanceof TransferError) throw err;
    throw new TransferError(grpc.status.INTERNAL, `fetching ${what} failed: ${err instanceof Error ? err.message : String(err)}`, false);
  } finally {
    if (client !== target) client.close();
  }
}

interface FetchState {
  /** Bytes checked and written, all in order: the resume offset. */
  verified: number;
  /** Hash of exactly those bytes, carried across attempts. */
  sha: ReturnType<typeof createHash>;
  crc32c: (data: Uint8Array) => number;
  total?: number;
  sha256?: string;
}

/** One Fetch call from the verified offset; returns when the server ends the stream. */
async function attempt(client: TransferClient, request: ArtifactRequest, fh: FileHandle, s: FetchState, opts: FetchOptions): Promise<void> {
  if (opts.signal?.aborted) throw new TransferError(grpc.status.CANCELLED, 'aborted', false);
  const call = client.Fetch({ ...request, offset: s.verified });
  const writer = createWriter(fh, s.total ?? opts.expectedSize);
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  let idle = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      idle = true;
      call.cancel();
    }, idleMs);
  };
  const abort = () => call.cancel();
  opts.signal?.addEventListener('abort', abort);
  arm();
  let first = true;
  try {
    for await (const chunk of call as AsyncIterable<ChunkMsg>) {
      arm();
      if (first) {
        first = false;
        checkHeader(chunk, s);
      }
      const data = chunk.data;
      if (chunk.offset !== s.verified) throw dataLoss(`a chunk starts at byte ${chunk.offset}, expected ${s.verified}`);
      if (s.verified + data.length > s.total!) throw dataLoss(`a chunk at byte ${chunk.offset} runs past the artifact's end (${s.total} bytes)`);
      if (s.crc32c(data) !== chunk.crc32c) throw dataLoss(`the chunk at byte ${chunk.offset} (${data.length} bytes) fails its CRC32C check`);
      const n = data.length;
      s.sha.update(data);
      await writer.write(data, s.verified); // may take data's memory: not used after this
      s.verified += n;
      if (n > 0) opts.onProgress?.(s.verified, s.total!);
    }
  } catch (err) {
    if (idle) throw new TransferError(grpc.status.DEADLINE_EXCEEDED, `nothing received for ${idleMs} ms`, true);
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', abort);
    call.cancel(); // no-op after a normal end; stops the server after a local failure
    try {
      await writer.flush(); // throws a write error, which outranks the stream's
    } finally {
      writer.close();
    }
  }
}

/** The first chunk of each stream says what the artifact is; it must not change between attempts. */
function checkHeader(chunk: ChunkMsg, s: FetchState): void {
  if (!SHA256_HEX.test(chunk.sha256) || !Number.isSafeInteger(chunk.total_size) || chunk.total_size < 0) {
    throw dataLoss(`the first chunk lacks a valid size and SHA-256 (got ${chunk.total_size}, "${chunk.sha256}")`);
  }
  if (s.sha256 !== undefined && s.sha256 !== chunk.sha256) {
    throw refused(`the server offers SHA-256 ${chunk.sha256}, expected ${s.sha256}`);
  }
  if (s.total !== undefined && s.total !== chunk.total_size) {
    throw refused(`the server offers ${chunk.total_size} bytes, expected ${s.total}`);
  }
  s.sha256 = chunk.sha256;
  s.total = chunk.total_size;
}

function backoff(failures: number, opts: FetchOptions): number {
  const ms = Math.min((opts.backoffMs ?? 250) * 2 ** (failures - 1), opts.backoffMaxMs ?? 5000);
  return ms * (0.8 + 0.4 * Math.random()); // jitter: fetchers of one failed source do not retry in lockstep
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
