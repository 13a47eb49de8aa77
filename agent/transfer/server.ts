/**
 * Transfer.Fetch: streams a registered artifact from disk, one CRC32C-checked chunk at
 * a time. Memory per stream is bounded by `maxInFlightBytes` whatever the artifact's
 * size: the file is read only as fast as HTTP/2 flow control lets chunks leave.
 */
import * as grpc from '@grpc/grpc-js';
import { open, stat } from 'node:fs/promises';
import { logger } from '../../common/log';
import { peerIdentity, type PeerIdentity } from '../../common/identity';
import { checkId } from '../../common/validate';
import { ArtifactRegistry, checkArtifactName, CRC_BLOCK_BYTES, type Artifact } from './artifacts';
import { loadCrc32c } from './crc32c';
import { FaultPlan, faultsFromEnv, type TransferFaults } from './faults';

const log = logger('transfer');

/**
 * 512 KiB chunks: faster than 256 KiB (more messages, each a protobuf encode, a CRC call
 * and a few JS turns), as fast as 1 MiB within the bench's noise, and half the memory
 * of 1 MiB in the receiver's read-ahead (grpc-js buffers up to 16 messages). Equal to
 * CRC_BLOCK_BYTES, so the server sends the CRCs stored at registration.
 */
export const DEFAULT_CHUNK_BYTES = CRC_BLOCK_BYTES;
export const MAX_CHUNK_BYTES = 3 << 20;
/** Data a stream may have queued in grpc-js / HTTP/2 but not yet sent before it stops reading the file. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 4 << 20;

export interface FetchRequestMsg {
  migration_id: string;
  artifact: string;
  offset: number;
  requester_node_id: string;
}

export interface ChunkMsg {
  offset: number;
  data: Buffer;
  crc32c: number;
  total_size: number;
  sha256: string;
}

export interface TransferServiceOptions {
  chunkBytes?: number;
  maxInFlightBytes?: number;
  /** Test-only fault injection; when absent, HERD_FAULTS is read (see faults.ts). */
  faults?: TransferFaults;
  /** Told every chunk's size as it is sent (for /metrics). */
  onBytes?: (n: number) => void;
}

// proto3 does not send zero values: later chunks cost no header bytes.
const NO_HEADER = { total_size: 0, sha256: '' };

type FetchCall = grpc.ServerWritableStream<FetchRequestMsg, ChunkMsg>;

/** The Transfer service's handlers, for `server.addService(loadProtos().herd.Transfer.service, ...)`. */
export function transferService(registry: ArtifactRegistry, opts: TransferServiceOptions = {}): grpc.UntypedServiceImplementation {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1024 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new Error(`chunkBytes must be an integer from 1024 to ${MAX_CHUNK_BYTES}, got ${chunkBytes}`);
  }
  const maxInFlight = Math.max(opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES, chunkBytes);
  const faults = opts.faults ?? faultsFromEnv(process.env.HERD_FAULTS);
  const plan = faults && Object.keys(faults).length > 0 ? new FaultPlan(faults) : undefined;
  if (plan) log.warn('fault injection is on: transfers will be broken on purpose', { faults });
  const fetch = (call: FetchCall) => {
    serveFetch(call, registry, chunkBytes, maxInFlight, plan, opts.onBytes).catch((err) => {
      log.error('Fetch failed unexpectedly', { err });
      end(call, grpc.status.INTERNAL, `Fetch failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  };
  return { Fetch: fetch as grpc.handleServerStreamingCall<any, any> };
}

/** Ends the call with a status; at most once, and not after the client has gone. */
function end(call: FetchCall, code: grpc.status, details: string): void {
  const c = call as FetchCall & { herdEnded?: boolean };
  if (c.herdEnded || call.cancelled) return;
  c.herdEnded = true;
  if (code === grpc.status.OK) call.end();
  // grpc-js turns an 'error' on a server stream into the trailing status, after the queued messages.
  else call.emit('error', { code, details });
}

/** Checks the request against the registry; the artifact, or the status to answer. */
async function admit(req: FetchRequestMsg, registry: ArtifactRegistry, caller: PeerIdentity | undefined): Promise<Artifact | { code: grpc.status; details: string }> {
  const invalid = (details: string) => ({ code: grpc.status.INVALID_ARGUMENT, details });
  const bad = checkId('migration_id', req.migration_id) ?? checkArtifactName(req.artifact) ?? (caller ? undefined : checkId('requester_node_id', req.requester_node_id));
  if (bad) return invalid(bad);
  // Over mTLS the requester is whoever the verified certificate names; the request's
  // own field is a claim, trusted only on an explicitly insecure cluster.
  if (caller && caller.kind !== 'node') return { code: grpc.status.PERMISSION_DENIED, details: `operator "${caller.name}" may not fetch migration artifacts: only the target node may` };
  const requester = caller?.kind === 'node' ? caller.nodeId : req.requester_node_id;
  if (!Number.isSafeInteger(req.offset) || req.offset < 0) return invalid(`offset ${req.offset} is not a valid byte offset`);
  const a = registry.get(req.migration_id, req.artifact);
  if (!a) return { code: grpc.status.NOT_FOUND, details: `no artifact "${req.artifact}" for migration ${req.migration_id} on this node` };
  if (a.allowedNodeId !== undefined && a.allowedNodeId !== requester) {
    return { code: grpc.status.PERMISSION_DENIED, details: `artifact "${a.name}" of migration ${a.migrationId} is reserved for node ${a.allowedNodeId}, not ${requester}` };
  }
  if (req.offset > a.size) {
    return { code: grpc.status.OUT_OF_RANGE, details: `offset ${req.offset} is past the end of artifact "${a.name}" (${a.size} bytes)` };
  }
  const st = await stat(a.path).catch(() => undefined);
  if (!st || st.size !== a.size || st.mtimeMs !== a.mtimeMs) {
    return { code: grpc.status.FAILED_PRECONDITION, details: `the file of artifact "${a.name}" of migration ${a.migrationId} was ${st ? 'modified' : 'removed'} after it was registered` };
  }
  return a;
}

async function serveFetch(call: FetchCall, registry: ArtifactRegistry, chunkBytes: number, maxInFlight: number, plan: FaultPlan | undefined, onBytes?: (n: number) => void): Promise<void> {
  const req = call.request;
  const admitted = await admit(req, registry, peerIdentity(call));
  if (!('path' in admitted)) {
    if (admitted.code === grpc.status.PERMISSION_DENIED) log.warn('Fetch refused', { reason: admitted.details });
    return end(call, admitted.code, admitted.details);
  }
  const a = admitted;
  if (plan?.refuse(a.name)) return end(call, grpc.status.UNAVAILABLE, 'fault injection: Fetch refused');
  const crc32c = await loadCrc32c();
  if (call.cancelled) return;
  const started = Date.now();
  const header = { total_size: a.size, sha256: a.sha256 };
  if (req.offset === a.size) {
    call.write({ offset: a.size, data: Buffer.alloc(0), crc32c: crc32c(Buffer.alloc(0)), ...header });
    return end(call, grpc.status.OK, '');
  }

  const fh = await open(a.path, 'r').catch((err: Error) => err);
  if (fh instanceof Error) return end(call, grpc.status.UNAVAILABLE, `reading artifact "${a.name}" failed: ${fh.message}`);
  // Read buffers are reused: a chunk's buffer goes back to the pool when call.write's
  // callback says grpc-js is done with it (it serialises the message into its own
  // buffer before that). With a fresh 512 KiB Buffer per chunk (an fs read stream) the
  // sender spent 0.35-0.5 s/GB more CPU: page faults on new memory, and garbage
  // collection (every 64 MB of new external memory makes V8 run a full mark-compact).
  // The pool holds at most maxInFlight / chunkBytes + 1 buffers. (Reading 4 chunks per
  // read, for fewer thread-pool round trips, saved under 0.1 s/GB: not worth it.)
  const pool: Buffer[] = [];
  let pos = req.offset;
  let sent = 0;
  let inFlight = 0;
  let first = true;
  let stopped = false;
  let wake: (() => void) | undefined;
  const resume = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on('drain', resume);
  call.on('cancelled', () => {
    stopped = true;
    resume();
  });
  try {
    while (pos < a.size && !stopped && !call.cancelled) {
      if (inFlight >= maxInFlight || call.writableNeedDrain) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const buf = pool.pop() ?? Buffer.allocUnsafeSlow(chunkBytes);
      const want = Math.min(chunkBytes, a.size - pos);
      let n = 0;
      try {
        while (n < want) {
          const { bytesRead } = await fh.read(buf, n, want - n, pos + n);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
      } catch (err) {
        return end(call, grpc.status.UNAVAILABLE, `reading artifact "${a.name}" failed: ${(err as Error).message}`);
      }
      if (stopped || call.cancelled) return;
      if (n < want) {
        return end(call, grpc.status.FAILED_PRECONDITION, `the file of artifact "${a.name}" ended at ${pos + n} of ${a.size} bytes: it changed after it was registered`);
      }
      let data = buf.subarray(0, n);
      const offset = pos;
      pos += n;
      if (!first && plan?.drop(a.name, offset, n)) {
        pool.push(buf);
        continue;
      }
      const crc = storedCrc(a, offset, n, chunkBytes) ?? crc32c(data);
      if (plan?.corrupt(a.name, offset, n)) {
        data = Buffer.from(data);
        data[0] ^= 0x01;
      }
      inFlight += n;
      call.write({ offset, data, crc32c: crc, ...(first ? header : NO_HEADER) }, () => {
        inFlight -= n;
        pool.push(buf);
        resume();
      });
      first = false;
      sent += n;
      onBytes?.(n);
      if (plan?.cut(a.name, sent)) return end(call, grpc.status.UNAVAILABLE, `fault injection: stream cut after ${sent} bytes`);
    }
    if (stopped || call.cancelled) return;
    log.debug('artifact served', { migration: a.migrationId, artifact: a.name, to: req.requester_node_id, from: req.offset, bytes: sent, ms: Date.now() - started });
    end(call, grpc.status.OK, '');
  } finally {
    await fh.close().catch(() => {});
  }
}

/** The CRC registered for this chunk, if it is exactly one registered block. */
function storedCrc(a: Artifact, offset: number, length: number, chunkBytes: number): number | undefined {
  if (!a.blockCrcs || chunkBytes !== CRC_BLOCK_BYTES || offset % CRC_BLOCK_BYTES !== 0) return undefined;
  const i = offset / CRC_BLOCK_BYTES;
  const blockLength = Math.min(CRC_BLOCK_BYTES, a.size - offset);
  return length === blockLength ? a.blockCrcs[i] : undefined;
}
