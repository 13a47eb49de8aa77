/**
 * Transfer artifacts over real mutual TLS: served only to the node the migration names
 * (as its certificate says, whatever the request claims), never to an operator or a
 * stranger, and no longer once the migration has dropped them.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizer } from '../../agent/security/authorize';
import { ArtifactRegistry } from '../../agent/transfer/artifacts';
import { fetchArtifact, TransferError, type TransferClient } from '../../agent/transfer/client';
import { transferService } from '../../agent/transfer/server';
import { createCa, issueAdminCert, issueNodeCert, type CertAndKey } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { ClusterTls } from '../../common/transport';
import { tempDir } from '../helpers/tmp';

describe('Transfer over mutual TLS', () => {
  const t = tempDir('herd-transfer-auth-');
  const registry = new ArtifactRegistry();
  let ca: CertAndKey;
  let server: grpc.Server;
  let address = '';
  const clients: grpc.Client[] = [];

  const transportOf = (who: CertAndKey) => new ClusterTls({ ca: ca.cert, cert: who.cert, key: who.key });
  /** A Transfer client that shows this certificate and expects the source node n1. */
  function clientAs(who: CertAndKey): TransferClient {
    const tr = transportOf(who);
    const c = new (loadProtos().herd.Transfer)(address, tr.credentials('n1'), tr.channelOptions) as TransferClient;
    clients.push(c);
    return c;
  }
  async function refusal(client: TransferClient, req: { migration_id: string; artifact: string; requester_node_id: string }): Promise<TransferError> {
    const err = await fetchArtifact(client, req, join(t.dir, `out-${Math.random()}`), { retries: 0, fsync: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransferError);
    return err as TransferError;
  }

  beforeAll(async () => {
    ca = await createCa('t', { holder: 'n1' });
    const n1 = await issueNodeCert(ca, 'n1', '127.0.0.1:0');
    const source = transportOf(n1);
    server = new grpc.Server({ interceptors: [authorizer(source, { nodeId: 'n1', audit: () => {} })] });
    server.addService(loadProtos().herd.Transfer.service, transferService(registry, { faults: {} }));
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', source.serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
    address = `127.0.0.1:${port}`;
    const data = randomBytes(300_000);
    writeFileSync(join(t.dir, 'ckpt.tar'), data);
    await registry.register({ migrationId: 'm1', name: 'checkpoint.tar', path: join(t.dir, 'ckpt.tar'), allowedNodeId: 'n2' });
  });

  afterAll(() => {
    for (const c of clients) c.close();
    server?.forceShutdown();
    t.cleanup();
  });

  it('serves the target named in the migration, identified by its certificate', async () => {
    const n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:0');
    const dest = join(t.dir, 'got.tar');
    // The request's own claim is not what counts: the certificate is.
    const r = await fetchArtifact(clientAs(n2), { migration_id: 'm1', artifact: 'checkpoint.tar', requester_node_id: 'whatever' }, dest, { retries: 0, fsync: false });
    expect(r.size).toBe(300_000);
    expect(readFileSync(dest).equals(readFileSync(join(t.dir, 'ckpt.tar')))).toBe(true);
  });

  it('refuses another node of the cluster even when it claims to be the target', async () => {
    const n3 = await issueNodeCert(ca, 'n3', '127.0.0.1:0');
    const e = await refusal(clientAs(n3), { migration_id: 'm1', artifact: 'checkpoint.tar', requester_node_id: 'n2' });
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.message).toMatch(/reserved for node n2, not n3/);
  });

  it('refuses an operator, even an admin', async () => {
    const alice = await issueAdminCert(ca, 'alice', 'admin');
    const e = await refusal(clientAs(alice), { migration_id: 'm1', artifact: 'checkpoint.tar', requester_node_id: 'n2' });
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.message).toMatch(/operator "alice" may not call \/herd\.v1\.Transfer\/Fetch/);
  });

  it('refuses a node certificate of another cluster', async () => {
    const other = await createCa('other');
    const n2 = await issueNodeCert(other, 'n2', '127.0.0.1:0');
    // The client trusts our CA to verify the server, but shows the other cluster's certificate.
    const tr = new ClusterTls({ ca: `${ca.cert}${other.cert}`, cert: n2.cert, key: n2.key });
    const c = new (loadProtos().herd.Transfer)(address, tr.credentials('n1'), tr.channelOptions) as TransferClient;
    clients.push(c);
    const e = await refusal(c, { migration_id: 'm1', artifact: 'checkpoint.tar', requester_node_id: 'n2' });
    expect(e.code).toBe(grpc.status.UNAUTHENTICATED);
    // grpc-js keeps a certificate TLS did not verify out of the auth context; the
    // authorizer reads it from the socket to say why it is refused.
    expect(e.message).toMatch(/no client certificate of this cluster|not issued by this cluster's CA/);
  });

  it('stops serving once the migration has dropped its artifacts', async () => {
    const n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:0');
    expect(registry.remove('m1')).toBe(1);
    const e = await refusal(clientAs(n2), { migration_id: 'm1', artifact: 'checkpoint.tar', requester_node_id: 'n2' });
    expect(e.code).toBe(grpc.status.NOT_FOUND);
  });
});
