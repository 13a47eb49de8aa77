// Which writer a fetch uses: a small artifact of known size is written through the thread
// pool (starting the writer thread would cost more than the write, inside a migration's
// downtime); a large one goes to the writer thread. Real Transfer server, real files.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../common/proto';
import { ArtifactRegistry } from '../../agent/transfer/artifacts';
import { createTransferClient, fetchArtifact } from '../../agent/transfer/client';
import { transferService } from '../../agent/transfer/server';
import { SMALL_ARTIFACT_BYTES, writerThreadRunning } from '../../agent/transfer/writer';
import { tempDir } from '../helpers/tmp';

describe('transfer writer choice', () => {
  const t = tempDir('herd-writer-');
  const registry = new ArtifactRegistry();
  const server = new grpc.Server();
  server.addService(loadProtos().herd.Transfer.service, transferService(registry, { faults: {} }));
  let address = '';
  afterAll(() => {
    server.forceShutdown();
    t.cleanup();
  });

  async function fetchOne(name: string, size: number): Promise<void> {
    if (!address) {
      const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
      address = `127.0.0.1:${port}`;
    }
    const data = randomBytes(size);
    writeFileSync(join(t.dir, name), data);
    const a = await registry.register({ migrationId: 'm1', name, path: join(t.dir, name) });
    const client = createTransferClient(address);
    try {
      const dest = join(t.dir, `got-${name}`);
      await fetchArtifact(client, { migration_id: 'm1', artifact: name, requester_node_id: 'n2' }, dest, { fsync: false, expectedSize: a.size, expectedSha256: a.sha256 });
      expect(readFileSync(dest).equals(data)).toBe(true);
    } finally {
      client.close();
    }
  }

  it('writes a small artifact without starting the writer thread, a large one on it', async () => {
    expect(writerThreadRunning()).toBe(false);
    await fetchOne('small', 200 * 1024);
    await fetchOne('at-limit', SMALL_ARTIFACT_BYTES);
    expect(writerThreadRunning()).toBe(false);
    await fetchOne('large', SMALL_ARTIFACT_BYTES + 1);
    expect(writerThreadRunning()).toBe(true); // kept for IDLE_STOP_MS after the fetch
  });
});
