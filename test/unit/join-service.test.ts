// Joining over real gRPC and mutual TLS, in process: the CA holder n1 and another node n2
// serve Join / Peer.SignJoin / Admin.CreateJoinToken (agent/security/join.ts) behind the
// authorizer; the `herd join` and `herd token create` code (cli/join.ts) is the client.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizer } from '../../agent/security/authorize';
import { joinHandlers, type JoinHandlers } from '../../agent/security/join';
import { createToken, JoinCliError, joinCluster, parseTtl, type JoinOptions } from '../../cli/join';
import { adminChannel } from '../../cli/connect';
import { openEnv, type Env } from '../../common/db';
import { createAdminCert, createCsr, createNodeCertFiles, fingerprint, identityOf, initCluster } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { ClusterTls, readNodeMaterial } from '../../common/transport';
import { tempDir } from '../helpers/tmp';

interface TestNode {
  id: string;
  dir: string;
  env: Env;
  server: grpc.Server;
  address: string;
  handlers: JoinHandlers;
}

const cleanups: Array<() => unknown> = [];
const nodes: Record<string, TestNode> = {};
let holderAddress = ''; // where n2 believes the CA holder is
let caPem = '';

async function serve(id: string, dir: string, cluster: () => { members: Array<{ node_id: string; address: string; role: string; self: boolean }> }): Promise<TestNode> {
  const env = openEnv(dir, { mapSizeBytes: 64 << 20 });
  const transport = new ClusterTls(readNodeMaterial(dir));
  const handlers = joinHandlers({ nodeId: id, dataDir: dir, nodeCertTtlSeconds: 3600, env, transport, cluster, peers: [] });
  const server = new grpc.Server({ interceptors: [authorizer(transport, { nodeId: id, audit: () => {} })] });
  const { herd } = loadProtos();
  server.addService(herd.Join.service, handlers.join);
  server.addService(herd.Peer.service, handlers.peer);
  server.addService(herd.Admin.service, handlers.admin);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', transport.serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
  cleanups.push(() => server.forceShutdown(), () => env.close());
  return { id, dir, env, server, address: `127.0.0.1:${port}`, handlers };
}

function tmp(): string {
  const t = tempDir('herd-joinsvc-');
  cleanups.push(t.cleanup);
  return t.dir;
}

beforeAll(async () => {
  const d1 = tmp();
  await initCluster(d1, 'n1', '127.0.0.1:7400');
  await createAdminCert(d1, 'bob', 'read-only');
  caPem = readFileSync(join(d1, 'tls', 'ca.crt'), 'utf8');
  nodes.n1 = await serve('n1', d1, () => ({ members: [{ node_id: 'n1', address: nodes.n1?.address ?? '', role: 'leader', self: true }] }));
  holderAddress = nodes.n1.address;
  const d2 = tmp();
  await createNodeCertFiles(d1, 'n2', '127.0.0.1:7401', join(d2, 'tls'));
  nodes.n2 = await serve('n2', d2, () => ({
    members: [
      { node_id: 'n1', address: holderAddress, role: 'leader', self: false },
      { node_id: 'n2', address: nodes.n2?.address ?? '', role: 'follower', self: true },
    ],
  }));
});

afterAll(() => {
  while (cleanups.length) cleanups.pop()!();
});

const signer = () => nodes.n1.handlers.signer!;
const newToken = async (opts: { ttlSeconds?: number; nodeId?: string } = {}) => (await signer().createToken({ by: 'admin:test', ...opts })).token;
const joinOpts = (over: Partial<JoinOptions>): JoinOptions => ({ token: '', address: nodes.n1.address, nodeId: 'x', advertise: '127.0.0.1:7500', dataDir: tmp(), timeoutMs: 5000, names: [], ...over });

/** The token with the last digit of its CA fingerprint changed. */
function tamper(token: string): string {
  const [v, fp, secret] = token.split('.');
  return `${v}.${fp.slice(0, -1)}${fp.endsWith('0') ? '1' : '0'}.${secret}`;
}

async function failure(p: Promise<unknown>): Promise<JoinCliError> {
  const e = await p.then(() => undefined, (err) => err);
  expect(e, 'expected herd join to fail').toBeInstanceOf(JoinCliError);
  return e as JoinCliError;
}

function adminAs(address: string, name: string) {
  const tls = join(nodes.n1.dir, 'tls');
  const ch = adminChannel({ cacert: join(tls, 'ca.crt'), cert: join(tls, 'admins', `${name}.crt`), key: join(tls, 'admins', `${name}.key`) });
  return { server: address, timeoutMs: 5000, channel: ch };
}

describe('herd join against the CA holder', () => {
  it('writes ca.crt, node.crt and node.key (0600 in a 0700 dir) with a certificate of the cluster CA for this node\'s key', async () => {
    const token = (await createToken({ ...adminAs(nodes.n1.address, 'local'), ttlSeconds: 600 })).token;
    const o = joinOpts({ token, nodeId: 'n3', advertise: '10.1.2.3:7400', names: ['localhost', '127.0.0.1', '::1', 'n3.lan'] });
    const r = await joinCluster(o);
    const tls = join(o.dataDir, 'tls');
    expect(r.files).toEqual(['ca.crt', 'node.crt', 'node.key'].map((f) => join(tls, f)));
    expect([r.signedBy, r.answeredBy, r.caFingerprint]).toEqual(['n1', 'n1', fingerprint(caPem)]);
    expect(statSync(join(tls, 'node.key')).mode & 0o777).toBe(0o600);
    expect(statSync(tls).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(tls, 'ca.crt'), 'utf8')).toBe(caPem);
    const cert = new X509Certificate(readFileSync(join(tls, 'node.crt')));
    expect(cert.verify(new X509Certificate(caPem).publicKey)).toBe(true);
    expect(identityOf(cert)).toEqual({ kind: 'node', nodeId: 'n3' });
    expect(cert.subjectAltName).toContain('IP Address:10.1.2.3');
    // the names it asked for (herd join passes localSans()): a strict client's host-name check passes
    for (const n of ['localhost', 'n3.lan']) expect(cert.checkHost(n)).toBe(n);
    for (const ip of ['127.0.0.1', '::1']) expect(cert.checkIP(ip)).toBe(ip);
    // The node can use them: its transport accepts them as a pair of the cluster.
    expect(() => new ClusterTls(readNodeMaterial(o.dataDir))).not.toThrow();
  });

  it('refuses a replayed token with the holder\'s UNAUTHENTICATED message and writes nothing', async () => {
    const token = await newToken();
    await joinCluster(joinOpts({ token, nodeId: 'n4' }));
    const o = joinOpts({ token, nodeId: 'n5' });
    const e = await failure(joinCluster(o));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(new RegExp(`^${nodes.n1.address} refused the join \\(UNAUTHENTICATED\\): the join token was already used at \\S+ by node "n4"`));
    expect(existsSync(join(o.dataDir, 'tls'))).toBe(false);
  });

  it('refuses an expired token', async () => {
    const token = await newToken({ ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const e = await failure(joinCluster(joinOpts({ token, nodeId: 'n6' })));
    expect([e.exitCode, e.message]).toEqual([2, expect.stringMatching(/\(UNAUTHENTICATED\): the join token expired at/)]);
  });

  it('refuses, before sending the token, a node whose CA does not have the token\'s fingerprint', async () => {
    const token = await newToken();
    const fp = token.split('.')[1];
    const tampered = tamper(token);
    const o = joinOpts({ token: tampered, nodeId: 'n7' });
    const e = await failure(joinCluster(o));
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(
      `the CA served by ${nodes.n1.address} has fingerprint ${fingerprint(caPem)} but the token is for ${fingerprint(caPem).slice(0, -1)}${fp.endsWith('0') ? '1' : '0'}: refusing (wrong address, or someone in between)`,
    );
    expect(signer().lookup(token)?.used_ms).toBeUndefined();
    expect(existsSync(join(o.dataDir, 'tls'))).toBe(false);
  });

  it('refuses, before dialling, a node that already has a certificate or a CA of its own, and bad flags', async () => {
    const token = await newToken();
    const dir = tmp();
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'tls', 'node.crt'), 'x');
    const nowhere = { address: '127.0.0.1:1' };
    expect((await failure(joinCluster(joinOpts({ ...nowhere, token, dataDir: dir })))).message).toMatch(/node\.crt exists: this node already has a certificate/);
    const d2 = tmp();
    await initCluster(d2, 'lone', '127.0.0.1:1');
    const e = await failure(joinCluster(joinOpts({ ...nowhere, token, dataDir: d2 })));
    expect([e.exitCode, e.message]).toEqual([2, expect.stringMatching(/node\.crt exists|ca\.key exists/)]);
    const d3 = tmp();
    await initCluster(join(d3, 'other'), 'x', '127.0.0.1:1');
    mkdirSync(join(d3, 'tls'));
    writeFileSync(join(d3, 'tls', 'ca.crt'), readFileSync(join(d3, 'other', 'tls', 'ca.crt')));
    expect((await failure(joinCluster(joinOpts({ ...nowhere, token, dataDir: d3 })))).message).toMatch(/ca\.crt is the CA of another cluster \(fingerprint [0-9A-F:]{95}\) than the token's/);
    writeFileSync(join(d3, 'tls', 'ca.crt'), caPem); // this cluster's CA already there (e.g. copied by hand): fine
    expect((await joinCluster(joinOpts({ token, dataDir: d3, nodeId: 'n13' }))).signedBy).toBe('n1');
    expect((await failure(joinCluster(joinOpts({ ...nowhere, token: 'herd1.abc' })))).message).toMatch(/^bad --token: the token has 2 dot-separated parts/);
    expect((await failure(joinCluster(joinOpts({ token, address: 'n1' })))).message).toMatch(/^--address "n1" is not valid/);
    expect(() => parseTtl('1w')).toThrow(/not a duration/);
    expect(() => parseTtl('8d')).toThrow(/out of range/);
    expect([parseTtl('1h'), parseTtl('30m'), parseTtl('3600s'), parseTtl('90'), parseTtl('7d')]).toEqual([3600, 1800, 3600, 90, 604800]);
  });

  it('exits 1 when the address does not answer', async () => {
    const e = await failure(joinCluster(joinOpts({ token: await newToken(), address: '127.0.0.1:1', timeoutMs: 2000 })));
    expect([e.exitCode, e.message]).toEqual([1, expect.stringMatching(/^(cannot reach 127\.0\.0\.1:1: connection refused, nothing listens there|no answer from 127\.0\.0\.1:1 in time)/)]);
    expect(e.message).toMatch(/is herd agent running there\? Start it with `herd agent`.* --address HOST:PORT/i);
    expect(e.message).not.toMatch(/Resolution note|Last error|Error: /);
  });
});

describe('herd join through a node that does not hold the CA key', () => {
  it('is forwarded to the CA holder with Peer.SignJoin and signed there', async () => {
    const token = await newToken();
    const o = joinOpts({ token, nodeId: 'n8', address: nodes.n2.address });
    const r = await joinCluster(o);
    expect([r.signedBy, r.answeredBy]).toEqual(['n1', 'n2']);
    expect(signer().lookup(token)).toMatchObject({ used_by: 'n8', used_via: 'n2' });
    expect(identityOf(readFileSync(join(o.dataDir, 'tls', 'node.crt')))).toEqual({ kind: 'node', nodeId: 'n8' });
  });

  it('passes the holder\'s refusal on, and says when the holder cannot be reached', async () => {
    const token = await newToken({ nodeId: 'n9' });
    const e = await failure(joinCluster(joinOpts({ token, nodeId: 'n10', address: nodes.n2.address })));
    expect(e.message).toMatch(/refused the join \(UNAUTHENTICATED\): the CA holder "n1" \(asked by "n2"\) refused: the join token is only for node "n9", not "n10"/);
    holderAddress = '127.0.0.1:1';
    try {
      const u = await failure(joinCluster(joinOpts({ token, nodeId: 'n9', address: nodes.n2.address })));
      expect([u.exitCode, u.message]).toEqual([1, expect.stringContaining(`${nodes.n2.address} answered UNAVAILABLE: cannot reach the CA holder "n1" at 127.0.0.1:1 to sign the join: connect ECONNREFUSED 127.0.0.1:1; try again`)]);
      expect(u.message).not.toMatch(/Resolution note|Last error/);
    } finally {
      holderAddress = nodes.n1.address;
    }
    expect(signer().lookup(token)?.used_ms).toBeUndefined();
  });
});

describe('the RPCs', () => {
  const call = (client: any, method: string, req: unknown) =>
    new Promise<any>((res, rej) => client[method](req, { deadline: Date.now() + 5000 }, (e: grpc.ServiceError | null, r: any) => (e ? rej(e) : res(r))));
  const outcome = (p: Promise<unknown>) => p.then(() => 'OK', (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);
  const blind = () => grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const opts = { 'grpc.ssl_target_name_override': 'herd' };

  it('CreateJoinToken: the CA holder answers admins; another node names the holder; read-only operators are refused', async () => {
    const r = await createToken({ ...adminAs(nodes.n1.address, 'local'), ttlSeconds: 60, nodeId: 'n11' });
    expect(r.token).toMatch(/^herd1\./);
    expect(r.ca_fingerprint).toBe(fingerprint(caPem));
    expect(signer().lookup(r.token)).toMatchObject({ node_id: 'n11', created_by: 'admin:local' });
    const elsewhere = await failure(createToken({ ...adminAs(nodes.n2.address, 'local'), ttlSeconds: 60 }));
    expect([elsewhere.exitCode, elsewhere.message]).toEqual([
      2,
      `${nodes.n2.address} refused CreateJoinToken (FAILED_PRECONDITION): node "n2" does not hold the cluster CA key, so it cannot make join tokens: node "n1" at ${nodes.n1.address} does (herd token create -s ${nodes.n1.address})`,
    ]);
    const bob = await failure(createToken({ ...adminAs(nodes.n1.address, 'bob'), ttlSeconds: 60 }));
    expect(bob.message).toMatch(/refused CreateJoinToken \(PERMISSION_DENIED\): operator "bob" has the read-only role; CreateJoinToken needs the admin role/);
    const bad = await failure(createToken({ ...adminAs(nodes.n1.address, 'local'), ttlSeconds: 700_000 }));
    expect(bad.message).toMatch(/\(INVALID_ARGUMENT\): ttl_seconds must be a whole number of seconds from 1 to 604800/);
  });

  it('Join needs no client certificate and checks every field; SignJoin is for nodes, and only the holder signs', async () => {
    const { herd } = loadProtos();
    const joinClient = new herd.Join(nodes.n2.address, blind(), opts);
    cleanups.push(() => joinClient.close());
    expect(await call(joinClient, 'GetCa', {})).toEqual({ ca_cert_pem: caPem, node_id: 'n2' });
    const { csr } = await createCsr('n12');
    const token = await newToken();
    const base = { token, node_id: 'n12', address: '10.0.0.12:7400', csr_pem: csr };
    expect(await outcome(call(joinClient, 'Join', { ...base, token: '' }))).toBe('INVALID_ARGUMENT: token is required: the one `herd token create` printed');
    expect(await outcome(call(joinClient, 'Join', { ...base, node_id: '' }))).toBe('INVALID_ARGUMENT: node_id is required');
    expect(await outcome(call(joinClient, 'Join', { ...base, address: 'x' }))).toMatch(/^INVALID_ARGUMENT: address "x" is not valid/);
    expect(await outcome(call(joinClient, 'Join', { ...base, csr_pem: '' }))).toMatch(/^INVALID_ARGUMENT: csr_pem is required/);
    expect(await outcome(call(joinClient, 'Join', { ...base, token: 'herd1.x.y' }))).toMatch(/^UNAUTHENTICATED: bad join token: /);
    expect(await outcome(call(joinClient, 'Join', { ...base, token: tamper(token) }))).toMatch(/^UNAUTHENTICATED: the join token is for the cluster whose CA has fingerprint/);
    expect(await outcome(call(joinClient, 'Join', { ...base, node_id: 'n1' }))).toMatch(/^PERMISSION_DENIED: the CA holder "n1" \(asked by "n2"\) refused: node id "n1" is the CA holder's own/);
    expect(signer().lookup(token)?.used_ms).toBeUndefined();

    // Peer.SignJoin: an operator is refused by the interceptor; a node asking a non-holder gets FAILED_PRECONDITION.
    const tls = join(nodes.n1.dir, 'tls');
    const local = adminChannel({ cacert: join(tls, 'ca.crt'), cert: join(tls, 'admins', 'local.crt'), key: join(tls, 'admins', 'local.key') });
    const asOperator = new herd.Peer(nodes.n1.address, local.credentials, local.options);
    const n1 = new ClusterTls(readNodeMaterial(nodes.n1.dir));
    const asNode = new herd.Peer(nodes.n2.address, n1.credentials('n2'), n1.channelOptions);
    cleanups.push(() => asOperator.close(), () => asNode.close());
    expect(await outcome(call(asOperator, 'SignJoin', base))).toMatch(/^PERMISSION_DENIED: operator "local" may not call \/herd\.v1\.Peer\/SignJoin/);
    expect(await outcome(call(asNode, 'SignJoin', base))).toBe(`FAILED_PRECONDITION: node "n2" does not hold the cluster CA key (node "n1" at ${nodes.n1.address} does): it does not forward forwarded joins`);
    const anon = new herd.Peer(nodes.n1.address, blind(), opts);
    cleanups.push(() => anon.close());
    expect(await outcome(call(anon, 'SignJoin', base))).toMatch(/^UNAUTHENTICATED: .*showed no client certificate/);
    expect(signer().lookup(token)?.used_ms).toBeUndefined();
  });
});
