/**
 * The migration target's channel to a source: PrepareMigration starts the TLS handshake
 * (so it overlaps the source's checkpoint instead of lengthening the downtime), later
 * migrations from that source reuse the connection, and renewed certificates make a new
 * one. The "source" is a real TLS server that counts handshakes; the container runtime is
 * a stand-in (the real one migrates in test/integration/migration.test.ts).
 */
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { createCa, issueNodeCert, type CertAndKey } from '../../common/pki';
import { ClusterTls } from '../../common/transport';
import { TermFence } from '../../common/fencing';
import { MigrationTarget } from '../../agent/migration/target';
import type { ContainerRuntime } from '../../agent/runtime/runtime';
import { tempDir } from '../helpers/tmp';

/** Only what PrepareMigration uses; its inspect fails, which prepare only notes (complete looks again). */
const runtime = {
  async inspect() {
    throw new Error('inspect is not faked here');
  },
  async imageLayers() {
    return ['layer'];
  },
  async create() {
    return 'c0ffee'.padEnd(64, '0');
  },
} as unknown as ContainerRuntime;

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) if (cond()) return true;
  return cond();
}

describe('MigrationTarget connects to the source at prepare time', () => {
  const t = tempDir('herd-target-channel-');
  let env: Env;
  let ca: CertAndKey;
  let src: CertAndKey;
  let tgt: CertAndKey;
  let server: tls.Server;
  let address = '';
  const handshakes: string[] = []; // who connected, by client certificate CN
  let seq = 0;

  beforeAll(async () => {
    env = openEnv(path.join(t.dir, 'data'), { mapSizeBytes: 16 << 20 });
    ca = await createCa('channel');
    src = await issueNodeCert(ca, 'src', '127.0.0.1:1');
    tgt = await issueNodeCert(ca, 'tgt', '127.0.0.1:2');
    server = tls.createServer({ key: src.key, cert: src.cert, ca: ca.cert, requestCert: true, ALPNProtocols: ['h2'] }, (s) => {
      handshakes.push(String(s.getPeerCertificate().subject?.CN ?? '?'));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.close();
    await env.close();
    t.cleanup();
  });

  const prepare = (target: MigrationTarget) =>
    target.prepare({
      migration_id: `m${++seq}`,
      herd_id: 'h1',
      source_node_id: 'src',
      source_address: address,
      fs_mode: 'FS_MODE_DIFF',
      name: '',
      create_json: JSON.stringify({ Image: 'busybox' }),
      term: 1,
    });

  it('opens one TLS connection at the first prepare, reuses it, and makes a new one after a certificate reload', async () => {
    const transport = new ClusterTls({ ca: ca.cert, cert: tgt.cert, key: tgt.key });
    const target = new MigrationTarget({ nodeId: 'tgt', env, runtime, dataDir: path.join(t.dir, 'data'), fence: new TermFence(), transport });
    try {
      await prepare(target);
      // no CompleteMigration yet: the handshake is already done
      expect(await until(() => handshakes.length === 1)).toBe(true);
      expect(handshakes[0]).toContain('tgt');

      // the server never answers HTTP/2, so grpc-js keeps waiting on this connection
      // (for far longer than the test): a second one would be a new channel
      await prepare(target);
      await new Promise((r) => setTimeout(r, 200));
      expect(handshakes).toHaveLength(1);

      const renewed = await issueNodeCert(ca, 'tgt', '127.0.0.1:2');
      transport.reload({ ca: ca.cert, cert: renewed.cert, key: renewed.key });
      await prepare(target);
      expect(await until(() => handshakes.length === 2)).toBe(true);
    } finally {
      target.close();
    }
  });
});
