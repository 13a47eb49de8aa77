import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../common/proto';
import { ArtifactRegistry, CRC_BLOCK_BYTES } from '../../agent/transfer/artifacts';
import { createTransferClient, fetchArtifact, TransferError, type TransferClient } from '../../agent/transfer/client';
import { faultsFromEnv, type TransferFaults } from '../../agent/transfer/faults';
import { transferService, type ChunkMsg } from '../../agent/transfer/server';
import { tempDir } from '../helpers/tmp';

const CHUNK = 64 * 1024; // small chunks: many chunks without big files
const FAST = { backoffMs: 10, backoffMaxMs: 50, fsync: false };

interface Running {
  server: grpc.Server;
  address: string;
  port: number;
}

async function startServer(
  registry: ArtifactRegistry,
  opts: { faults?: TransferFaults; chunkBytes?: number; fetch?: grpc.handleServerStreamingCall<any, any> } = {},
  port = 0,
): Promise<Running> {
  const server = new grpc.Server();
  const handlers = transferService(registry, { chunkBytes: opts.chunkBytes ?? CHUNK, faults: opts.faults ?? {} });
  server.addService(loadProtos().herd.Transfer.service, opts.fetch ? { Fetch: opts.fetch } : handlers);
  const bound = await new Promise<number>((res, rej) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { server, port: bound, address: `127.0.0.1:${bound}` };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function failure(p: Promise<unknown>): Promise<TransferError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransferError);
  return err as TransferError;
}

describe('Transfer.Fetch', () => {
  const t = tempDir('herd-transfer-');
  const registry = new ArtifactRegistry();
  let plain: Running;
  let client: TransferClient;
  let n = 0;

  /** A random file registered under a fresh migration id. */
  async function artifact(size: number, extra: { allowedNodeId?: string; sha256?: string } = {}) {
    const data = randomBytes(size);
    const id = ++n;
    const migrationId = `m${id}`;
    const path = join(t.dir, `src-${id}.bin`);
    writeFileSync(path, data);
    await registry.register({ migrationId, name: 'checkpoint', path, ...extra });
    return { data, path, req: { migration_id: migrationId, artifact: 'checkpoint', requester_node_id: 'target' }, dest: join(t.dir, `dst-${id}.bin`) };
  }

  const noLeftovers = (dest: string) => {
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  };

  beforeAll(async () => {
    plain = await startServer(registry);
    client = createTransferClient(plain.address);
  });
  afterAll(() => {
    client.close();
    plain.server.forceShutdown();
    t.cleanup();
  });

  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK + 123])('round-trips a file of %i bytes', async (size) => {
    const a = await artifact(size);
    const r = await fetchArtifact(client, a.req, a.dest, FAST);
    expect(readFileSync(a.dest).equals(a.data)).toBe(true);
    expect(r).toMatchObject({ path: a.dest, size, sha256: sha(a.data), attempts: 1 });
    expect(existsSync(`${a.dest}.part`)).toBe(false);
  });

  it('fetches by address too, with the large receive window', async () => {
    const a = await artifact(3 * CHUNK);
    const r = await fetchArtifact(plain.address, a.req, a.dest, FAST);
    expect(r.sha256).toBe(sha(a.data));
  });

  it('resumes a cut stream from the last verified byte and ends with the right SHA-256', async () => {
    const s = await startServer(registry, { faults: { cutAfterBytes: 3 * CHUNK, times: 2 } });
    const a = await artifact(10 * CHUNK + 77);
    const offsets: number[] = [];
    const c = createTransferClient(s.address);
    const spy = new Proxy(c, {
      get: (target, p) => (p === 'Fetch' ? (req: { offset: number }) => (offsets.push(req.offset), target.Fetch(req as any)) : Reflect.get(target, p)),
    });
    const r = await fetchArtifact(spy, a.req, a.dest, FAST);
    expect(r.attempts).toBe(3);
    expect(offsets).toEqual([0, 3 * CHUNK, 6 * CHUNK]);
    expect(r.sha256).toBe(sha(a.data));
    expect(readFileSync(a.dest).equals(a.data)).toBe(true);
    c.close();
    s.server.forceShutdown();
  });

  it('detects a corrupted chunk by its CRC32C and fetches it again', async () => {
    const s = await startServer(registry, { faults: { corruptAtOffset: 4 * CHUNK + 10 } });
    const a = await artifact(6 * CHUNK);
    const r = await fetchArtifact(s.address, a.req, a.dest, FAST);
    expect(r.attempts).toBe(2);
    expect(readFileSync(a.dest).equals(a.data)).toBe(true);
    // without retries the corruption is the error, and nothing is left behind
    const b = await artifact(6 * CHUNK);
    const s2 = await startServer(registry, { faults: { corruptAtOffset: 10 } });
    const err = await failure(fetchArtifact(s2.address, b.req, b.dest, { ...FAST, retries: 0 }));
    expect(err.code).toBe(grpc.status.DATA_LOSS);
    expect(err.message).toMatch(/chunk at byte 0 .* fails its CRC32C check/);
    noLeftovers(b.dest);
    s.server.forceShutdown();
    s2.server.forceShutdown();
  });

  it('detects a missing chunk by its offset and fetches it again', async () => {
    const s = await startServer(registry, { faults: { dropAtOffset: 2 * CHUNK } });
    const a = await artifact(5 * CHUNK);
    const r = await fetchArtifact(s.address, a.req, a.dest, FAST);
    expect(r.attempts).toBe(2);
    expect(readFileSync(a.dest).equals(a.data)).toBe(true);
    s.server.forceShutdown();
  });

  it('rejects a file whose SHA-256 is not the artifact\'s, leaving nothing in place', async () => {
    const a = await artifact(3 * CHUNK, { sha256: 'ab'.repeat(32) });
    const err = await failure(fetchArtifact(client, a.req, a.dest, FAST));
    expect(err.code).toBe(grpc.status.DATA_LOSS);
    expect(err.message).toContain(`SHA-256 is ${sha(a.data)}, the artifact's is ${'ab'.repeat(32)}`);
    noLeftovers(a.dest);
    // a different artifact than the caller expects is refused up front
    const b = await artifact(3 * CHUNK);
    const err2 = await failure(fetchArtifact(client, b.req, b.dest, { ...FAST, expectedSha256: 'cd'.repeat(32) }));
    expect(err2.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err2.message).toContain('expected cdcd');
    noLeftovers(b.dest);
  });

  it('answers NOT_FOUND for an unknown artifact or migration', async () => {
    const a = await artifact(10);
    for (const req of [{ ...a.req, artifact: 'nope' }, { ...a.req, migration_id: 'm-unknown' }]) {
      const err = await failure(fetchArtifact(client, req, a.dest, FAST));
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect(err.message).toMatch(/no artifact "(nope|checkpoint)" for migration/);
      noLeftovers(a.dest);
    }
  });

  it('refuses names that look like paths, and never registers them', async () => {
    const a = await artifact(10);
    for (const name of ['../../etc/passwd', '/etc/passwd', 'a/b', '..', 'a..b', '.hidden', 'a\\b', '']) {
      const err = await failure(fetchArtifact(client, { ...a.req, artifact: name }, a.dest, FAST));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.message).toMatch(/artifact/);
      await expect(registry.register({ migrationId: 'mx', name, path: a.path })).rejects.toThrow(/artifact/);
    }
    await expect(registry.register({ migrationId: 'mx', name: 'ok', path: 'relative/file' })).rejects.toThrow(/absolute/);
    noLeftovers(a.dest);
  });

  it('serves an artifact reserved for a node to that node only', async () => {
    const a = await artifact(100, { allowedNodeId: 'node-b' });
    const err = await failure(fetchArtifact(client, { ...a.req, requester_node_id: 'node-c' }, a.dest, FAST));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toContain('reserved for node node-b, not node-c');
    const r = await fetchArtifact(client, { ...a.req, requester_node_id: 'node-b' }, a.dest, FAST);
    expect(r.sha256).toBe(sha(a.data));
  });

  it('answers OUT_OF_RANGE past the end and INVALID_ARGUMENT for a missing requester', async () => {
    const a = await artifact(100);
    const call = (req: object) =>
      new Promise<{ chunks: ChunkMsg[]; err?: grpc.ServiceError }>((resolve) => {
        const chunks: ChunkMsg[] = [];
        const c = client.Fetch({ ...a.req, offset: 0, ...req });
        c.on('data', (ch: ChunkMsg) => chunks.push(ch));
        c.on('error', (err: grpc.ServiceError) => resolve({ chunks, err }));
        c.on('end', () => resolve({ chunks }));
      });
    const past = await call({ offset: 101 });
    expect(past.err?.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(past.err?.details).toBe('offset 101 is past the end of artifact "checkpoint" (100 bytes)');
    expect((await call({ requester_node_id: '' })).err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // at the very end: one chunk, no data, still carrying size and SHA-256
    const atEnd = await call({ offset: 100 });
    expect(atEnd.err).toBeUndefined();
    expect(atEnd.chunks).toHaveLength(1);
    expect(atEnd.chunks[0]).toMatchObject({ offset: 100, total_size: 100, sha256: sha(a.data) });
    expect(atEnd.chunks[0].data.length).toBe(0);
  });

  it('refuses an artifact whose file changed after registration', async () => {
    const a = await artifact(100);
    writeFileSync(a.path, randomBytes(100));
    utimesSync(a.path, new Date(), new Date(Date.now() + 5000));
    const err = await failure(fetchArtifact(client, a.req, a.dest, FAST));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.message).toContain('was modified after it was registered');
  });

  it('sends the CRCs stored at registration with the default chunks, so on-disk corruption after registration is caught', async () => {
    const s = await startServer(registry, { chunkBytes: CRC_BLOCK_BYTES });
    const data = randomBytes(2 * CRC_BLOCK_BYTES + 1000);
    const path = join(t.dir, 'stored-crc.bin');
    writeFileSync(path, data);
    utimesSync(path, 1e9, 1e9); // whole seconds, so the same mtime can be put back
    const a = await registry.register({ migrationId: 'm-crc', name: 'checkpoint', path });
    expect(Array.from(a.blockCrcs!)).toHaveLength(3);
    const req = { migration_id: 'm-crc', artifact: 'checkpoint', requester_node_id: 'target' };
    const dest = join(t.dir, 'stored-crc.out');
    expect((await fetchArtifact(s.address, req, dest, FAST)).sha256).toBe(sha(data));
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([data[CRC_BLOCK_BYTES + 5] ^ 0x80]), 0, 1, CRC_BLOCK_BYTES + 5);
    closeSync(fd);
    utimesSync(path, 1e9, 1e9);
    const err = await failure(fetchArtifact(s.address, req, join(t.dir, 'stored-crc.out2'), { ...FAST, retries: 1 }));
    expect(err.code).toBe(grpc.status.DATA_LOSS);
    expect(err.message).toContain(`the chunk at byte ${CRC_BLOCK_BYTES} (${CRC_BLOCK_BYTES} bytes) fails its CRC32C check`);
    noLeftovers(join(t.dir, 'stored-crc.out2'));
    s.server.forceShutdown();
  });

  it('gives up after bounded retries with a clear error', async () => {
    const s = await startServer(registry, { faults: { refuseFetches: 100 } });
    const a = await artifact(100);
    const err = await failure(fetchArtifact(s.address, a.req, a.dest, { ...FAST, retries: 3 }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.message).toMatch(/failed after 4 attempts \(4 in a row without progress; 0 of \? bytes verified\): fault injection: Fetch refused/);
    noLeftovers(a.dest);
    s.server.forceShutdown();
  });

  it('abandons a silent stream and retries', async () => {
    const a = await artifact(2 * CHUNK);
    const real = transferService(registry, { chunkBytes: CHUNK, faults: {} }).Fetch as (call: unknown) => void;
    let calls = 0;
    const s = await startServer(registry, { fetch: (call) => (++calls === 1 ? undefined : real(call)) });
    const r = await fetchArtifact(s.address, a.req, a.dest, { ...FAST, idleTimeoutMs: 300 });
    expect(r.attempts).toBe(2);
    expect(r.sha256).toBe(sha(a.data));
    s.server.forceShutdown();
  });

  it('survives its server going away mid-transfer and coming back on the same address', async () => {
    const s = await startServer(registry);
    const a = await artifact(400 * CHUNK);
    let restarted: Promise<Running> | undefined;
    const r = await fetchArtifact(s.address, a.req, a.dest, {
      ...FAST,
      backoffMs: 100,
      backoffMaxMs: 2000,
      windowBytes: 256 * 1024, // small, so the transfer is still running when the server dies
      onProgress: (done) => {
        if (done >= 100 * CHUNK && !restarted) {
          s.server.forceShutdown();
          restarted = new Promise((res) => setTimeout(res, 200)).then(() => startServer(registry, {}, s.port));
        }
      },
    });
    expect(restarted).toBeDefined();
    expect(r.attempts).toBeGreaterThan(1);
    expect(readFileSync(a.dest).equals(a.data)).toBe(true);
    (await restarted!).server.forceShutdown();
  });

  it('stops when aborted, and fails cleanly when the destination cannot be written', async () => {
    const a = await artifact(50 * CHUNK);
    const ac = new AbortController();
    const err = await failure(fetchArtifact(plain.address, a.req, a.dest, { ...FAST, windowBytes: 128 * 1024, signal: ac.signal, onProgress: () => ac.abort() }));
    expect(err.code).toBe(grpc.status.CANCELLED);
    expect(err.message).toContain('was aborted');
    noLeftovers(a.dest);
    const err2 = await failure(fetchArtifact(client, a.req, join(t.dir, 'no-such-dir', 'x'), FAST));
    expect(err2.code).toBe(grpc.status.INTERNAL);
    expect(err2.message).toContain('ENOENT');
  });

  it('runs concurrent fetches of different artifacts', async () => {
    const as = await Promise.all([1, 2, 3, 4, 5].map((i) => artifact(i * 11 * CHUNK + i)));
    const rs = await Promise.all(as.map((a) => fetchArtifact(client, a.req, a.dest, FAST)));
    rs.forEach((r, i) => expect(readFileSync(as[i].dest).equals(as[i].data)).toBe(true));
    expect(readdirSync(t.dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });
});

describe('HERD_FAULTS', () => {
  it('parses transfer faults and leaves other namespaces alone', () => {
    expect(faultsFromEnv(undefined)).toBeUndefined();
    expect(faultsFromEnv('mesh.drop=1')).toBeUndefined();
    expect(faultsFromEnv('transfer.cut_after_bytes=1048576, transfer.times=2,mesh.x=1,transfer.artifact=fs-diff')).toEqual({
      cutAfterBytes: 1048576,
      times: 2,
      artifact: 'fs-diff',
    });
    expect(() => faultsFromEnv('transfer.cut_after=1')).toThrow(/unknown fault "transfer.cut_after"/);
    expect(() => faultsFromEnv('transfer.times=-1')).toThrow(/non-negative integer/);
  });
});
