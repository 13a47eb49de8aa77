/**
 * The pure rules of the security layer: which access a method needs (authorize.ts),
 * how revocation lists merge and what they refuse (revocations.ts), and who is audited.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessOf, authorizer } from '../../agent/security/authorize';
import type { AuditEvent } from '../../common/audit-event';
import { RevocationStore, type Revocation } from '../../common/revocations';
import { AuditTrail } from '../../coordinator/audit';
import { openEnv, type Env } from '../../common/db';
import { createCa, issueAdminCert, issueNodeCert, type CertAndKey } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { ClusterTls, revokedMessage } from '../../common/transport';
import { call } from '../helpers/coord';
import { tempDir } from '../helpers/tmp';

describe('accessOf', () => {
  it.each([
    ['/herd.v1.Join/GetCa', 'open'],
    ['/herd.v1.Join/Join', 'open'],
    ['/grpc.health.v1.Health/Check', 'open'],
    ['/grpc.health.v1.Health/Watch', 'open'],
    ['/herd.v1.Mesh/Connect', 'node'],
    ['/herd.v1.Peer/Exchange', 'node'],
    ['/herd.v1.Peer/RenewCertificate', 'node'],
    ['/herd.v1.Peer/SignJoin', 'node'],
    ['/herd.v1.Transfer/Fetch', 'node'],
    ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', 'read'],
    ['/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', 'read'],
    ['/herd.v1.Admin/GetLeader', 'read'],
    ['/herd.v1.Admin/GetCluster', 'read'],
    ['/herd.v1.Admin/ListNodes', 'read'],
    ['/herd.v1.Admin/ListRevocations', 'read'],
    ['/herd.v1.Admin/ListAuditEvents', 'read'],
    ['/herd.v1.Admin/QuerySamples', 'read'],
    ['/herd.v1.Admin/Migrate', 'admin'],
    ['/herd.v1.Admin/DrainNode', 'admin'],
    ['/herd.v1.Admin/RemoveNode', 'admin'],
    ['/herd.v1.Admin/RevokeOperator', 'admin'],
    ['/herd.v1.Admin/CreateJoinToken', 'admin'],
    // control (docs/control.md): reads, and audited admin calls
    ['/herd.v1.Admin/GetPolicy', 'read'],
    ['/herd.v1.Admin/ListDecisions', 'read'],
    ['/herd.v1.Admin/EvaluateNow', 'admin'],
    ['/herd.v1.Admin/ApproveDecision', 'admin'],
    ['/herd.v1.Admin/RunContainer', 'admin'],
    ['/herd.v1.Peer/RunContainer', 'node'],
    ['/herd.v1.Admin/RenewNodeCertificate', 'admin'],
    ['/herd.v1.Admin/RenewNodeCertificate', 'admin'],
    // the forecast's dataset: the samples as a table, a read
    ['/herd.v1.Admin/ExportDataset', 'read'],
    ['/herd.v1.Admin/ExportDatasetAndMore', 'admin'],
    // unlisted: protected by default
    ['/herd.v1.Admin/DrainNode', 'admin'],
    ['/herd.v1.Admin/SetPolicy', 'admin'],
    ['/herd.v1.Unknown/Anything', 'admin'],
    ['/some.other.Service/Get', 'admin'],
    // malformed paths
    ['', 'admin'],
    ['herd.v1.Admin/ListNodes', 'admin'],
    ['/herd.v1.Admin/ListNodes/extra', 'admin'],
    ['/herd.v1.Admin/', 'admin'],
    // a method that only starts like a read in lower case is not one
    ['/herd.v1.Admin/getLeader', 'admin'],
  ])('%s needs %s', (path, access) => {
    expect(accessOf(path)).toBe(access);
  });
});

describe('RevocationStore', () => {
  const t = tempDir('herd-revocations-');
  let env: Env;
  let ca: CertAndKey;
  beforeAll(async () => {
    env = openEnv(t.dir, { mapSizeBytes: 64 * 1024 ** 2 });
    ca = await createCa('t', { holder: 'n1' });
  });
  afterAll(async () => {
    await env.close();
    t.cleanup();
  });

  const node = (name: string, at: number, extra: Partial<Revocation> = {}): Revocation => ({ kind: 'IDENTITY_KIND_NODE', name, revoked_at_ms: at, revoked_by: 'admin:local', reason: '', ...extra });
  const op = (name: string, at: number): Revocation => ({ kind: 'IDENTITY_KIND_OPERATOR', name, revoked_at_ms: at, revoked_by: 'admin:local', reason: '' });

  it('merges by union; per identity the latest time wins; reports only what changed', async () => {
    const s = new RevocationStore(env);
    const added: Revocation[][] = [];
    const off = s.onAdded((a) => added.push(a));
    expect(await s.merge([node('a', 1000), op('alice', 2000)])).toHaveLength(2);
    expect(await s.merge([node('a', 1000)])).toEqual([]); // same again: nothing new
    expect(await s.merge([node('a', 500, { reason: 'older' })])).toEqual([]); // older: ignored
    const later = await s.merge([node('a', 3000, { reason: 'again', revoked_by: 'admin:bob' })]);
    expect(later).toEqual([node('a', 3000, { reason: 'again', revoked_by: 'admin:bob' })]);
    // a node and an operator of the same name are two identities
    expect(await s.merge([op('a', 100)])).toHaveLength(1);
    expect(s.list().map((r) => [r.kind, r.name, r.revoked_at_ms])).toEqual([
      ['IDENTITY_KIND_OPERATOR', 'a', 100],
      ['IDENTITY_KIND_OPERATOR', 'alice', 2000],
      ['IDENTITY_KIND_NODE', 'a', 3000],
    ]);
    expect(added.map((a) => a.length)).toEqual([2, 1, 1]);
    off();
    await s.merge([op('z', 1)]);
    expect(added).toHaveLength(3); // unsubscribed
  });

  it('skips malformed entries without losing the good ones', async () => {
    const s = new RevocationStore(env);
    const bad: any[] = [
      { kind: 'IDENTITY_KIND_UNSPECIFIED', name: 'x', revoked_at_ms: 5 },
      { kind: 'IDENTITY_KIND_NODE', name: '', revoked_at_ms: 5 },
      { kind: 'IDENTITY_KIND_NODE', name: 7, revoked_at_ms: 5 },
      { kind: 'IDENTITY_KIND_NODE', name: 'x', revoked_at_ms: 0 },
      { kind: 'IDENTITY_KIND_NODE', name: 'x', revoked_at_ms: -1 },
      { kind: 'IDENTITY_KIND_NODE', name: 'x', revoked_at_ms: 'soon' },
      { kind: 'IDENTITY_KIND_NODE', name: 'x', revoked_at_ms: Infinity },
    ];
    const changed = await s.merge([...bad, node('good', 42, { revoked_by: undefined as any, reason: undefined as any })]);
    expect(changed).toEqual([node('good', 42, { revoked_by: '', reason: '' })]);
    expect(s.list().some((r) => r.name === 'x')).toBe(false);
  });

  it('accepts a time sent as a string (a long that was not converted)', async () => {
    const s = new RevocationStore(env);
    expect(await s.merge([{ ...node('str', 0), revoked_at_ms: '77' as any }])).toEqual([node('str', 77)]);
  });

  it('survives a restart (the list is in LMDB)', async () => {
    const s = new RevocationStore(env);
    await s.merge([node('durable', 123)]);
    const again = new RevocationStore(env);
    expect(again.list().find((r) => r.name === 'durable')).toEqual(node('durable', 123));
  });

  it('refuses certificates issued up to the revocation time and accepts later ones', async () => {
    const s = new RevocationStore(env);
    const t0 = Date.now();
    const early = new X509Certificate((await issueNodeCert(ca, 'gone', '10.0.0.1:7400', { notBefore: new Date(t0 - 10 * 60_000) })).cert);
    // issuedAt = notBefore + 5 min skew allowance = t0 - 5 min
    await s.merge([node('gone', t0 - 6 * 60_000)]);
    expect(s.revoking({ kind: 'node', nodeId: 'gone' }, early)).toBeUndefined(); // issued after that revocation
    await s.merge([node('gone', t0)]);
    const r = s.revoking({ kind: 'node', nodeId: 'gone' }, early);
    expect(r?.revoked_at_ms).toBe(t0);
    expect(revokedMessage({ kind: 'node', nodeId: 'gone' }, r!)).toMatch(/certificates of node "gone" were revoked at .* by admin:local/);
    // a certificate issued after the revocation (a re-added node) is accepted
    const later = new X509Certificate((await issueNodeCert(ca, 'gone', '10.0.0.1:7400', { notBefore: new Date(t0 + 60_000 - 5 * 60_000) })).cert);
    expect(s.revoking({ kind: 'node', nodeId: 'gone' }, later)).toBeUndefined();
    // the same name as an operator is not revoked by the node entry
    const opCert = new X509Certificate((await issueAdminCert(ca, 'gone', 'admin', { notBefore: new Date(t0 - 10 * 60_000) })).cert);
    expect(s.revoking({ kind: 'admin', name: 'gone', role: 'admin' }, opCert)).toBeUndefined();
  });
});

describe('AuditTrail', () => {
  const t = tempDir('herd-audit-');
  let env: Env;
  beforeAll(() => {
    env = openEnv(t.dir, { mapSizeBytes: 64 * 1024 ** 2 });
  });
  afterAll(async () => {
    await env.close();
    t.cleanup();
  });
  const ev = (at: number, req: string, code = 0): AuditEvent => ({ at_ms: at, who: 'admin:local', method: '/herd.v1.Admin/RemoveNode', request_json: req, code, details: '', node_id: 'n1' });

  it('keeps two calls of the same millisecond apart, stores a replay once, skips junk, lists newest first', async () => {
    const a = new AuditTrail(env);
    a.record([ev(1000, '{"node_id":"a"}'), ev(1000, '{"node_id":"b"}'), ev(1000, '{"node_id":"b"}', 5), ev(2000, '{}')]);
    a.record([ev(1000, '{"node_id":"a"}')]); // replayed after a failover
    a.record([{ at_ms: 0, who: 'x', method: 'm' }, { at_ms: 'soon', who: 'x', method: 'm' }, { at_ms: 5, who: 7, method: 'm' }, null, 'junk']);
    a.record('not a list');
    await env.committed;
    const rows = a.list(100);
    expect(rows).toHaveLength(4);
    expect(rows[0].at_ms).toBe(2000);
    expect(rows.slice(1).map((e) => `${e.request_json}/${e.code}`).sort()).toEqual(['{"node_id":"a"}/0', '{"node_id":"b"}/0', '{"node_id":"b"}/5']);
    expect(a.list(2)).toHaveLength(2);
  });
});

describe('authorizer: roles and the audit trail', () => {
  let ca: CertAndKey;
  let server: grpc.Server;
  let address = '';
  const events: AuditEvent[] = [];
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    ca = await createCa('t', { holder: 'n1' });
    const n1 = await issueNodeCert(ca, 'n1', '127.0.0.1:0');
    const tls = new ClusterTls({ ca: ca.cert, cert: n1.cert, key: n1.key });
    // another interceptor in front, as on a node: the authorizer must still find the TLS socket
    const passThrough: grpc.ServerInterceptor = (_d, c) => new grpc.ServerInterceptingCall(c);
    server = new grpc.Server({ interceptors: [passThrough, authorizer(tls, { nodeId: 'n1', audit: (e) => events.push(e) })] });
    const ok = (_call: unknown, cb: grpc.sendUnaryData<any>) => cb(null, {});
    server.addService(loadProtos().herd.Admin.service, {
      ListNodes: (_c: unknown, cb: grpc.sendUnaryData<any>) => cb(null, { nodes: [] }),
      RemoveNode: (c: any, cb: grpc.sendUnaryData<any>) => (c.request.node_id === 'nope' ? cb({ code: grpc.status.NOT_FOUND, details: 'no node "nope"' }) : ok(c, cb)),
      LoadModel: (_c: unknown, cb: grpc.sendUnaryData<any>) => cb(null, { version: 1 }),
      Forecast: (_c: unknown, cb: grpc.sendUnaryData<any>) => cb(null, { model_version: 1 }),
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', tls.serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => {
    for (const c of clients) c.close();
    server?.forceShutdown();
  });

  const adminAs = (who: CertAndKey) => {
    const c = new (loadProtos().herd.Admin)(address, grpc.credentials.createSsl(Buffer.from(ca.cert), Buffer.from(who.key), Buffer.from(who.cert), { checkServerIdentity: () => undefined }), { 'grpc.ssl_target_name_override': 'herd' });
    clients.push(c);
    return c;
  };
  const outcome = (p: Promise<unknown>) => p.then(() => 'OK', (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);

  it('audits every state-changing call by an identified caller, allowed, failed or refused, and no read', async () => {
    const admin = adminAs(await issueAdminCert(ca, 'alice', 'admin'));
    const viewer = adminAs(await issueAdminCert(ca, 'viewer', 'read-only'));
    const node = adminAs(await issueNodeCert(ca, 'n2', '127.0.0.1:1'));
    const stranger = adminAs(await issueAdminCert(await createCa('other'), 'eve', 'admin'));
    events.length = 0;
    expect(await outcome(call(admin, 'RemoveNode', { node_id: 'n3', reason: 'decommissioned' }))).toBe('OK');
    expect(await outcome(call(admin, 'RemoveNode', { node_id: 'nope' }))).toMatch(/^NOT_FOUND/);
    expect(await outcome(call(viewer, 'RemoveNode', { node_id: 'n3' }))).toMatch(/^PERMISSION_DENIED: operator "viewer" has the read-only role; RemoveNode needs the admin role/);
    expect(await outcome(call(node, 'RemoveNode', { node_id: 'n3' }))).toMatch(/^PERMISSION_DENIED: node "n2" may not call RemoveNode/);
    expect(await outcome(call(viewer, 'ListNodes', {}))).toBe('OK');
    expect(await outcome(call(stranger, 'RemoveNode', { node_id: 'n3' }))).toMatch(/^UNAUTHENTICATED: the certificate of operator "eve" was not issued by this cluster's CA/);
    const expired = adminAs(await issueAdminCert(ca, 'old', 'admin', { notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }));
    expect(await outcome(call(expired, 'RemoveNode', { node_id: 'n3' }))).toMatch(/^UNAUTHENTICATED: the certificate of operator "old" expired at /);
    const early = adminAs(await issueAdminCert(ca, 'early', 'admin', { notBefore: new Date(Date.now() + 86_400_000) }));
    expect(await outcome(call(early, 'ListNodes', {}))).toMatch(/^UNAUTHENTICATED: the certificate of operator "early" is not valid before /);
    const none = new (loadProtos().herd.Admin)(address, grpc.credentials.createSsl(Buffer.from(ca.cert), null, null, { checkServerIdentity: () => undefined }), { 'grpc.ssl_target_name_override': 'herd' });
    clients.push(none);
    expect(await outcome(call(none, 'ListNodes', {}))).toMatch(/^UNAUTHENTICATED: .*showed no client certificate/);
    expect(events.map((e) => [e.who, e.method, grpc.status[e.code]])).toEqual([
      ['admin:alice', '/herd.v1.Admin/RemoveNode', 'OK'],
      ['admin:alice', '/herd.v1.Admin/RemoveNode', 'NOT_FOUND'],
      ['admin:viewer', '/herd.v1.Admin/RemoveNode', 'PERMISSION_DENIED'],
      ['node:n2', '/herd.v1.Admin/RemoveNode', 'PERMISSION_DENIED'],
    ]);
    expect(JSON.parse(events[0].request_json)).toEqual({ node_id: 'n3', reason: 'decommissioned' });
    expect(events[2].details).toMatch(/read-only role/);
    expect(events.every((e) => e.node_id === 'n1' && e.at_ms > 0)).toBe(true);
  });

  it('audits a request carrying bytes (LoadModel) with their size, not their contents; Forecast is a read', async () => {
    const admin = adminAs(await issueAdminCert(ca, 'alice', 'admin'));
    const viewer = adminAs(await issueAdminCert(ca, 'viewer', 'read-only'));
    events.length = 0;
    expect(await outcome(call(admin, 'LoadModel', { onnx: Buffer.alloc(3_000_000, 7), note: 'xgb' }))).toBe('OK');
    expect(await outcome(call(viewer, 'Forecast', { herd_id: 'a' }))).toBe('OK');
    expect(await outcome(call(viewer, 'LoadModel', { onnx: Buffer.alloc(1) }))).toMatch(/^PERMISSION_DENIED: operator "viewer" has the read-only role; LoadModel needs the admin role/);
    expect(events.map((e) => [e.who, e.method])).toEqual([['admin:alice', '/herd.v1.Admin/LoadModel'], ['admin:viewer', '/herd.v1.Admin/LoadModel']]);
    expect(JSON.parse(events[0].request_json)).toEqual({ onnx: '<3000000 bytes>', note: 'xgb' });
  });
});
