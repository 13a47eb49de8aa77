/**
 * Mutual TLS on real herd processes, each in its own network namespace (bed "sec"):
 *   - every caller the cluster cannot trust is refused with a clear status, checked through
 *     grpc-js and through an independent client (test/tools/pygrpcurl.py, grpcurl's flags);
 *   - a removed node and a revoked operator are refused by every node, and still after a
 *     coordinator failover; the audit trail names who did what, also after a failover;
 *   - node certificates rotate before they expire, with no restart, no lost sample, and
 *     the cluster keeps working (new connections, a new election) once the originals expired.
 * Five nodes for the first part: with one removed, a kill -9 of the leader must still leave a
 * majority of the configured five. The rotation test runs a fresh 3-node cluster whose CA key
 * is on n1 (it renews the others' certificates).
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_SEQ_METRIC } from '../../agent/samplelog';
import { createCa, createNodeCertFiles, issueAdminCert, issueNodeCert, loadCa, type CertAndKey } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, PORT, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { grpcurl, HERD, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { tempDir, waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
const tmp = tempDir('herd-sec-');
const { herd } = loadProtos();

beforeAll(async () => {
  bed = await startBed({ nodes: 5, name: 'sec', subnet: 47 });
  for (const b of bed.nodes) nodes.set(b.id, startHerdOn(bed, b.id));
  const leader = await agreedLeader(addresses(), 30_000);
  await waitFor('all 5 agents streaming', async () => (await connectedNodes(leader.address)).length === 5, 30_000, 100);
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
  tmp.cleanup();
});

const addresses = (except: string[] = []) => [...nodes.values()].filter((n) => !except.includes(n.id)).map((n) => n.address);
const addressOf = (id: string) => nodes.get(id)!.address;

// ------------------------------------------------------------------ clients

interface Files {
  cert: string;
  key: string;
}

/** Writes a certificate and key where pygrpcurl can read them. */
function filesOf(name: string, pair: CertAndKey): Files {
  const cert = join(tmp.dir, `${name}.crt`);
  const key = join(tmp.dir, `${name}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return { cert, key };
}

const pairOf = (f: Files): CertAndKey => ({ cert: readFileSync(f.cert, 'utf8'), key: readFileSync(f.key, 'utf8') });

type Who = Files | 'none' | 'plain';

/** A grpc-js client of `service` showing `who`'s certificate (trusting the CA in caFile). */
function client(service: 'Admin' | 'Peer' | 'Mesh' | 'Transfer', address: string, who: Who, caFile = testPki().caCert): any {
  const ca = readFileSync(caFile);
  const creds =
    who === 'plain'
      ? grpc.credentials.createInsecure()
      : who === 'none'
        ? grpc.credentials.createSsl(ca, null, null, { checkServerIdentity: () => undefined })
        : grpc.credentials.createSsl(ca, readFileSync(who.key), readFileSync(who.cert), { checkServerIdentity: () => undefined });
  return new herd[service](address, creds, who === 'plain' ? {} : { 'grpc.ssl_target_name_override': 'herd' });
}

/** "OK" or "CODE: details" of one unary call through grpc-js. */
async function viaGrpcJs(service: 'Admin' | 'Peer', address: string, who: Who, method: string, req: unknown = {}, caFile?: string): Promise<string> {
  const c = client(service, address, who, caFile);
  try {
    return await new Promise<string>((resolve) => c[method](req, { deadline: Date.now() + 5000 }, (e: grpc.ServiceError | null) => resolve(e ? `${grpc.status[e.code]}: ${e.details}` : 'OK')));
  } finally {
    c.close();
  }
}

/** The first status of a stream (Mesh.Connect after a hello, Transfer.Fetch). */
async function streamStatus(c: any, open: (c: any) => any): Promise<string> {
  try {
    return await new Promise<string>((resolve) => {
      const s = open(c);
      s.on('data', () => {});
      s.on('error', (e: grpc.ServiceError) => resolve(`${grpc.status[e.code]}: ${e.details}`));
      s.on('end', () => resolve('OK'));
      setTimeout(() => resolve('TIMEOUT'), 5000);
    });
  } finally {
    c.close();
  }
}

const PY_CODES: Record<string, string> = { Unauthenticated: 'UNAUTHENTICATED', PermissionDenied: 'PERMISSION_DENIED', Unavailable: 'UNAVAILABLE', FailedPrecondition: 'FAILED_PRECONDITION', NotFound: 'NOT_FOUND', InvalidArgument: 'INVALID_ARGUMENT' };

/** The same through the independent Python client, with grpcurl's flags: "OK" or "CODE: message". */
async function viaPython(address: string, who: Who, method: string, req: unknown = {}, caFile = testPki().caCert): Promise<string> {
  const flags = who === 'plain' ? ['-plaintext'] : ['-cacert', caFile, ...(who === 'none' ? [] : ['-cert', who.cert, '-key', who.key])];
  const r = await grpcurl(address, [method], [...flags, '-connect-timeout', '3', '-max-time', '5', '-d', JSON.stringify(req)]);
  if (r.code === 0) return 'OK';
  const m = /Code: (\w+)\n\s*Message: ([\s\S]*)/.exec(r.stderr);
  return m ? `${PY_CODES[m[1]] ?? m[1]}: ${m[2].trim()}` : `FAILED: ${r.stderr.trim()}`;
}

/** Both clients, same expectation. */
async function expectBoth(address: string, who: Who, method: string, expected: RegExp | 'OK', req: unknown = {}): Promise<void> {
  const [service, name] = method.split('/') as ['herd.v1.Admin' | 'herd.v1.Peer', string];
  const js = await viaGrpcJs(service.replace('herd.v1.', '') as 'Admin' | 'Peer', address, who, name, req);
  const py = await viaPython(address, who, method, req);
  for (const [via, got] of [['grpc-js', js], ['pygrpcurl', py]]) {
    if (expected === 'OK') expect(got, `${via} ${method} at ${address}`).toBe('OK');
    else expect(got, `${via} ${method} at ${address}`).toMatch(expected);
  }
}

/** One Admin call with the test cluster's operator certificate. */
async function adminCall(address: string, method: string, req: unknown): Promise<any> {
  const c = adminClient(address);
  try {
    return await call(c, method, req);
  } finally {
    c.close();
  }
}

const herdCli = (args: string[]) => runCmd(process.execPath, [HERD, ...args, '--cacert', testPki().caCert, '--cert', testPki().adminCert, '--key', testPki().adminKey]);

// ------------------------------------------------------------------ refusals

describe('who may call what', () => {
  it('refuses every caller it cannot trust with a clear status, through grpc-js and an independent client; the happy paths pass', async () => {
    const leader = await agreedLeader(addresses());
    const follower = [...nodes.values()].find((n) => n.id !== leader.id)!;
    const ca = loadCa(testPki().caDataDir);
    const other = await createCa('other');
    const now = Date.now();
    const stranger = filesOf('stranger', await issueAdminCert(other, 'eve', 'admin'));
    const strangerNode = filesOf('stranger-n2', await issueNodeCert(other, 'n2', bed.node('n2').ip));
    const expired = filesOf('expired', await issueAdminCert(ca, 'old', 'admin', { notBefore: new Date(now - 2 * 86_400_000), notAfter: new Date(now - 86_400_000) }));
    const viewer = filesOf('viewer', await issueAdminCert(ca, 'viewer', 'read-only'));
    const admin: Files = { cert: testPki().adminCert, key: testPki().adminKey };
    const n2: Files = { cert: join(nodes.get('n2')!.dataDir, 'tls', 'node.crt'), key: join(nodes.get('n2')!.dataDir, 'tls', 'node.key') };

    // the happy paths: an operator of this cluster, grpcurl-style flags
    for (const n of nodes.values()) await expectBoth(n.address, admin, 'herd.v1.Admin/GetLeader', 'OK');
    await expectBoth(leader.address, admin, 'herd.v1.Admin/ListNodes', 'OK');
    const listed = await grpcurl(leader.address, ['list']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('herd.v1.Admin');

    // no client certificate
    for (const a of [leader.address, follower.address]) await expectBoth(a, 'none', 'herd.v1.Admin/ListNodes', /^UNAUTHENTICATED: .*showed no client certificate/);
    // a certificate of another cluster (an operator's, a node's of the same name)
    await expectBoth(leader.address, stranger, 'herd.v1.Admin/ListNodes', /^UNAUTHENTICATED: the certificate of operator "eve" was not issued by this cluster's CA/);
    await expectBoth(follower.address, strangerNode, 'herd.v1.Admin/GetLeader', /^UNAUTHENTICATED: the certificate of node "n2" was not issued by this cluster's CA/);
    // an expired certificate of this cluster
    await expectBoth(leader.address, expired, 'herd.v1.Admin/ListNodes', /^UNAUTHENTICATED: the certificate of operator "old" expired at /);
    // a read-only operator reads, but may not change anything
    await expectBoth(leader.address, viewer, 'herd.v1.Admin/ListNodes', 'OK');
    await expectBoth(leader.address, viewer, 'herd.v1.Admin/RemoveNode', /^PERMISSION_DENIED: operator "viewer" has the read-only role; RemoveNode needs the admin role/, { node_id: follower.id });
    await expectBoth(leader.address, viewer, 'herd.v1.Admin/RevokeOperator', /^PERMISSION_DENIED: operator "viewer" has the read-only role; RevokeOperator needs the admin role/, { name: 'someone' });
    await expectBoth(leader.address, viewer, 'herd.v1.Admin/DrainNode', /^PERMISSION_DENIED: operator "viewer" has the read-only role; DrainNode needs the admin role/, { node_id: follower.id, draining: true });
    // a node certificate is no operator
    await expectBoth(leader.address, n2, 'herd.v1.Admin/RemoveNode', /^PERMISSION_DENIED: node "n2" may not call RemoveNode: it needs an operator certificate with the admin role/, { node_id: 'n3' });
    // an operator may not speak node-to-node protocols
    const nodeOnly = /^PERMISSION_DENIED: operator "local" may not call \/herd\.v1\.\w+\/\w+: it is node-to-node traffic/;
    await expectBoth(follower.address, admin, 'herd.v1.Peer/Exchange', nodeOnly, { type: 'HEARTBEAT', from: leader.id, to: follower.id, term: '1' });
    await expectBoth(follower.address, admin, 'herd.v1.Peer/RenewCertificate', nodeOnly, { csr_pem: 'x', address: '10.0.0.1:7400' });
    expect(await viaPython(follower.address, admin, 'herd.v1.Transfer/Fetch', { migration_id: 'm', artifact: 'checkpoint' })).toMatch(nodeOnly);
    expect(await streamStatus(client('Transfer', follower.address, admin), (c) => c.Fetch({ migration_id: 'm', artifact: 'checkpoint' }))).toMatch(nodeOnly);
    expect(await streamStatus(client('Mesh', leader.address, admin), (c) => {
      const s = c.Connect();
      s.write({ hello: { node_id: 'n2', log_id: 'x' } });
      return s;
    })).toMatch(nodeOnly);
    // a node speaks only for itself: n2's certificate claiming n3
    const n2AsN3 = await streamStatus(client('Mesh', leader.address, n2), (c) => {
      const s = c.Connect();
      s.write({ hello: { node_id: 'n3', log_id: 'spoof' } });
      return s;
    });
    expect(n2AsN3).toMatch(/^PERMISSION_DENIED: the hello claims node "n3" but the certificate names node "n2"/);
    const target = [...nodes.values()].find((n) => n.id !== 'n2' && n.id !== 'n3')!;
    await expectBoth(target.address, n2, 'herd.v1.Peer/Exchange', /^PERMISSION_DENIED: the election message claims to come from node "n3" but the certificate names node "n2"/, { type: 'HEARTBEAT', from: 'n3', to: target.id, term: '1' });
    // plain text against a TLS node
    expect(await viaGrpcJs('Admin', leader.address, 'plain', 'GetLeader')).toMatch(/^(UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL)/);
    expect(await viaPython(leader.address, 'plain', 'herd.v1.Admin/GetLeader')).not.toBe('OK');
    // nothing of this moved the cluster
    expect((await agreedLeader(addresses())).id).toBe(leader.id);
    expect((await connectedNodes(leader.address)).length).toBe(5);
    for (const n of nodes.values()) expect(n.proc.child.exitCode).toBeNull();
  }, 120_000);
});

// ------------------------------------------------------------------ revocation and audit

describe('revocation and the audit trail', () => {
  it('a removed node and a revoked operator are refused by every node, also after a coordinator failover; the audit trail says who did it', async () => {
    const leader = await agreedLeader(addresses());
    // the node to remove: not the coordinator (which refuses to remove itself)
    const gone = [...nodes.keys()].reverse().find((id) => id !== leader.id)!;
    const via = [...nodes.values()].find((n) => n.id !== leader.id && n.id !== gone)!; // the CLI asks a follower
    const ca = loadCa(testPki().caDataDir);
    const goneCert: Files = { cert: join(nodes.get(gone)!.dataDir, 'tls', 'node.crt'), key: join(nodes.get(gone)!.dataDir, 'tls', 'node.key') };
    const temp = filesOf('temp-op', await issueAdminCert(ca, 'temp-op', 'admin'));
    const viewer = filesOf('viewer2', await issueAdminCert(ca, 'viewer', 'read-only'));
    const admin: Files = { cert: testPki().adminCert, key: testPki().adminKey };
    await expectBoth(leader.address, temp, 'herd.v1.Admin/ListNodes', 'OK');
    for (const a of addresses([gone])) expect(await viaGrpcJs('Admin', a, goneCert, 'GetLeader')).toBe('OK');

    // refused and failed state-changing calls (audited too)
    expect(await viaGrpcJs('Admin', leader.address, viewer, 'RemoveNode', { node_id: gone })).toMatch(/^PERMISSION_DENIED/);
    const ghost = await herdCli(['node', 'remove', 'ghost', '-s', via.address]);
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toMatch(/NOT_FOUND: no node "ghost" in this cluster/);
    const self = await herdCli(['node', 'remove', leader.id, '-s', via.address]);
    expect(self.stderr).toMatch(/FAILED_PRECONDITION: node .* is the coordinator/);

    // remove the node (through a follower: the CLI follows it to the coordinator)
    const removed = await herdCli(['node', 'remove', gone, '--reason', 'decommissioned', '-s', via.address]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(new RegExp(`node "${gone}" removed`));
    expect(removed.stdout).toMatch(/revoked by admin:local: decommissioned/);
    // its stream is closed, and it cannot come back
    await waitFor(`${gone} disconnected`, async () => !(await connectedNodes(leader.address)).includes(gone), 5000, 50);
    await waitFor(`${gone} told why`, () => /lost the coordinator stream.*was removed from the cluster/.test(nodes.get(gone)!.proc.log()), 5000, 100);
    // every other node refuses its certificate: the list reached each of them
    const revoked = new RegExp(`^UNAUTHENTICATED: the certificates of node "${gone}" were revoked at .* by admin:local \\(decommissioned\\)`);
    for (const n of [...nodes.values()].filter((x) => x.id !== gone)) {
      await waitFor(`${n.id} to refuse ${gone}`, async () => revoked.test(await viaGrpcJs('Admin', n.address, goneCert, 'GetLeader')), 5000, 100);
      expect(await viaPython(n.address, goneCert, 'herd.v1.Admin/GetLeader')).toMatch(revoked);
    }
    await new Promise((r) => setTimeout(r, 1500));
    expect(await connectedNodes(leader.address)).not.toContain(gone);

    // revoke an operator: its next call is refused, everywhere
    const revokedOp = await herdCli(['admin-cert', 'revoke', 'temp-op', '--reason', 'laptop lost', '-s', via.address]);
    expect(revokedOp.code, revokedOp.stderr).toBe(0);
    expect(revokedOp.stdout).toMatch(/operator "temp-op": certificates issued up to .* are refused by every node \(revoked by admin:local: laptop lost\)/);
    const opRevoked = /^UNAUTHENTICATED: the certificates of operator "temp-op" were revoked at .* by admin:local \(laptop lost\)/;
    await expectBoth(leader.address, temp, 'herd.v1.Admin/ListNodes', opRevoked);
    for (const a of addresses([gone, leader.id])) await waitFor(`${a} to refuse temp-op`, async () => opRevoked.test(await viaGrpcJs('Admin', a, temp, 'GetLeader')), 5000, 100);
    expect(await viaPython(via.address, temp, 'herd.v1.Admin/GetLeader')).toMatch(opRevoked);

    // the list, with who
    const list = await adminCall(leader.address, 'ListRevocations', {});
    expect(list.entries.map((r: any) => [r.kind, r.name, r.revoked_by, r.reason])).toEqual([
      ['IDENTITY_KIND_NODE', gone, 'admin:local', 'decommissioned'],
      ['IDENTITY_KIND_OPERATOR', 'temp-op', 'admin:local', 'laptop lost'],
    ]);
    const shown = await herdCli(['revocations', '-s', via.address]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`node\\s+${gone}\\s+\\S+\\s+admin:local\\s+decommissioned`));
    expect(shown.stdout).toMatch(/operator\s+temp-op\s+\S+\s+admin:local\s+laptop lost/);

    // the audit trail at the coordinator
    /** Waits until the coordinator at `address` lists every expected event, then checks no read is listed. */
    const expectAudit = async (address: string, timeoutMs: number) => {
      const wanted: Array<[string, string, string, RegExp?]> = [
        ['admin:local', 'RemoveNode', 'OK', new RegExp(`"node_id":"${gone}".*decommissioned`)],
        ['admin:local', 'RevokeOperator', 'OK', /temp-op/],
        ['admin:local', 'RemoveNode', 'NOT_FOUND', /ghost/],
        ['admin:local', 'RemoveNode', 'FAILED_PRECONDITION'],
        ['admin:viewer', 'RemoveNode', 'PERMISSION_DENIED'],
      ];
      let rows: string[][] = [];
      const missing = () => wanted.filter(([who, method, code, req]) => !rows.some((r) => r[0] === who && r[1] === method && r[2] === code && (!req || req.test(r[3]))));
      await waitFor(`audit events at ${address}`, async () => {
        const r = await adminCall(address, 'ListAuditEvents', { limit: 1000 });
        rows = r.events.map((e: any) => [e.who, e.method.replace('/herd.v1.Admin/', ''), grpc.status[e.code], e.request_json]);
        return missing().length === 0;
      }, timeoutMs, 200).catch(() => undefined);
      expect(missing(), JSON.stringify(rows)).toEqual([]);
      expect(rows.filter((r) => /^(Get|List|Query)/.test(r[1])), 'reads are not audited').toEqual([]);
    };
    await expectAudit(leader.address, 10_000);
    const audit = await herdCli(['audit', '-s', via.address]);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout.split('\n')[0]).toMatch(/^TIME\s+WHO\s+METHOD\s+CODE\s+NODE/);
    expect(audit.stdout).toMatch(/admin:viewer\s+RemoveNode\s+PERMISSION_DENIED\s+/);
    expect(audit.stdout).toMatch(/admin:local\s+RevokeOperator\s+OK\s+/);

    // failover: kill -9 the coordinator; 3 of the 5 members remain, a majority
    await kill9(nodes.get(leader.id)!);
    const next = await agreedLeader(addresses([leader.id, gone]), 15_000);
    expect(next.id).not.toBe(leader.id);
    expect(next.term).toBeGreaterThan(leader.term);
    const after = await adminCall(next.address, 'ListRevocations', {});
    expect(after.entries.map((r: any) => [r.kind, r.name, r.revoked_by])).toEqual([
      ['IDENTITY_KIND_NODE', gone, 'admin:local'],
      ['IDENTITY_KIND_OPERATOR', 'temp-op', 'admin:local'],
    ]);
    await expectBoth(next.address, goneCert, 'herd.v1.Admin/GetLeader', revoked);
    await expectBoth(next.address, temp, 'herd.v1.Admin/ListNodes', opRevoked);
    await waitFor('the survivors streaming to the new coordinator', async () => (await connectedNodes(next.address)).length === 3, 10_000, 100);
    expect(await connectedNodes(next.address)).not.toContain(gone);
    // the old coordinator comes back and replays its log: the events it audited reach the new one
    nodes.set(leader.id, startHerdOn(bed, leader.id));
    await waitFor('the old coordinator streaming again', async () => (await connectedNodes(next.address)).includes(leader.id), 20_000, 200);
    await expectAudit(next.address, 20_000);
    // and it, too, refuses the revoked certificates
    await expectBoth(leader.address, goneCert, 'herd.v1.Admin/GetLeader', revoked);
  }, 150_000);
});

// ------------------------------------------------------------------ rotation

describe('certificate rotation', () => {
  it('renews every node certificate before it expires, without a restart or a lost sample; after the originals expired the cluster still works', async () => {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    nodes.clear();
    const ids = ['n1', 'n2', 'n3'];
    const dirOf = (id: string) => join(bed.node(id).dir, 'herd-rot');
    const addr = (id: string) => `${bed.node(id).ip}:${PORT}`;
    for (const id of ids) rmSync(dirOf(id), { recursive: true, force: true });
    // a cluster whose CA key is on n1, with 40-second node certificates
    const init = await runCmd(process.execPath, [HERD, 'init', '--data-dir', dirOf('n1'), '--node-id', 'n1', '--address', addr('n1')]);
    expect(init.code, init.stderr).toBe(0);
    rmSync(join(dirOf('n1'), 'tls', 'node.crt'));
    rmSync(join(dirOf('n1'), 'tls', 'node.key'));
    // what `herd node-cert create --ttl-seconds` does, below its 60-second floor
    for (const id of ids) await createNodeCertFiles(dirOf('n1'), id, addr(id), join(dirOf(id), 'tls'), { notAfter: new Date(Date.now() + 40_000) });
    const certOf = (id: string) => new X509Certificate(readFileSync(join(dirOf(id), 'tls', 'node.crt')));
    const original = new Map(ids.map((id) => [id, certOf(id)]));
    const expiry = Math.min(...[...original.values()].map((c) => Date.parse(c.validTo)));
    expect(expiry - Date.now()).toBeGreaterThan(30_000);
    const tls = join(dirOf('n1'), 'tls');
    const caFile = join(tls, 'ca.crt');
    const op: Files = { cert: join(tls, 'admins', 'local.crt'), key: join(tls, 'admins', 'local.key') };
    const creds = () => grpc.credentials.createSsl(readFileSync(caFile), readFileSync(op.key), readFileSync(op.cert), { checkServerIdentity: () => undefined });
    const admin = (a: string) => new herd.Admin(a, creds(), { 'grpc.ssl_target_name_override': 'herd' });
    const ask = async (a: string, method: string, req: unknown = {}) => {
      const c = admin(a);
      try {
        return await call(c, method, req);
      } finally {
        c.close();
      }
    };

    const procs = new Map<string, HerdNode>();
    const start = (id: string) => {
      const cfg = join(bed.node(id).dir, 'rotation.json');
      mkdirSync(dirOf(id), { recursive: true });
      writeFileSync(cfg, JSON.stringify({ tls: { checkMs: 1000, renewBeforeFraction: 0.6, nodeCertTtlSeconds: 60 } }));
      const peers = ids.filter((o) => o !== id).flatMap((o) => ['--peer', `${o}=${addr(o)}`]);
      const args = [HERD, 'agent', '-c', cfg, '--node-id', id, '--data-dir', dirOf(id), '--listen', addr(id), ...peers, '--pmproxy-url', '', '--host-interval', '500', '--container-interval', '500', '--track-interval', '500'];
      const proc = bed.spawn(id, process.execPath, args, { name: `herd-rot-${id}-${Date.now()}` });
      const n = { id, address: addr(id), dataDir: dirOf(id), proc };
      procs.set(id, n);
      nodes.set(id, n); // stopped by afterAll too
      return n;
    };
    for (const id of ids) start(id);
    const leaderOf = async (among: string[], timeoutMs = 20_000) =>
      waitFor('an agreed leader', async () => {
        const views = await Promise.all(among.map((id) => ask(addr(id), 'GetLeader').catch(() => undefined)));
        const leaders = new Set(views.map((v) => v?.leader_id ?? ''));
        return leaders.size === 1 && views[0]?.leader_id && views.some((v) => v.answered_by === v.leader_id) ? { id: views[0].leader_id as string, address: views[0].address as string, term: Number(views[0].term) } : undefined;
      }, timeoutMs, 100);
    const streaming = async (leaderAddress: string) => ((await ask(leaderAddress, 'ListNodes')).nodes as any[]).filter((n) => n.connected).map((n) => n.node_id).sort();
    const seqs = async (leaderAddress: string, id: string): Promise<number[]> => ((await ask(leaderAddress, 'QuerySamples', { entity: id, metric: BATCH_SEQ_METRIC })).points as any[]).map((p) => p.value);
    const gapFree = (s: number[], id: string) => {
      expect(s[0], `${id} starts at 1`).toBe(1);
      expect(s.filter((v, i) => i > 0 && v !== s[i - 1] + 1), `${id}: gaps`).toEqual([]);
    };

    const leader = await leaderOf(ids);
    await waitFor('3 agents streaming', async () => (await streaming(leader.address)).length === 3, 20_000, 100);
    const pids = new Map(ids.map((id) => [id, procs.get(id)!.proc.pid]));

    // each node renews before its certificate expires
    const renewedAt = new Map<string, number>();
    await waitFor('every node renewed', () => {
      for (const id of ids) if (!renewedAt.has(id) && certOf(id).serialNumber !== original.get(id)!.serialNumber) renewedAt.set(id, Date.now());
      return renewedAt.size === ids.length;
    }, Math.max(1000, expiry - Date.now() - 1000), 200);
    for (const id of ids) {
      expect(renewedAt.get(id)!, `${id} renewed before expiry`).toBeLessThan(Date.parse(original.get(id)!.validTo));
      const now = certOf(id);
      expect(now.checkIssued(new X509Certificate(readFileSync(caFile)))).toBe(true);
      expect(now.subjectAltName).toContain(`URI:herd://node/${id}`);
      expect(now.subjectAltName).toContain(`IP Address:${bed.node(id).ip}`);
      expect(Date.parse(now.validTo)).toBeGreaterThan(Date.parse(original.get(id)!.validTo));
    }

    // past the original certificates' expiry
    await new Promise((r) => setTimeout(r, Math.max(0, expiry - Date.now() + 2000)));
    const atExpiry = Object.fromEntries(await Promise.all(ids.map(async (id) => [id, (await seqs(leader.address, id)).at(-1)!] as const)));
    // new connections: the independent client verifies each server's (new) certificate
    for (const id of ids) {
      const py = await viaPython(addr(id), op, 'herd.v1.Admin/GetLeader', {}, caFile);
      expect(py, `pygrpcurl to ${id} after expiry`).toBe('OK');
      expect(await viaGrpcJs('Admin', addr(id), op, 'GetLeader', {}, caFile)).toBe('OK');
    }
    // nobody restarted; each renewed (and said so); samples kept flowing with no gap
    for (const id of ids) {
      const n = procs.get(id)!;
      expect(n.proc.child.exitCode, `${id} still running`).toBeNull();
      expect(n.proc.pid).toBe(pids.get(id));
      const log = n.proc.log();
      expect(log.match(/herd node started/g)?.length, `${id} started once`).toBe(1);
      expect(log).toMatch(/renewed this node's certificate/);
    }
    expect((await leaderOf(ids)).id).toBe(leader.id);
    expect(await streaming(leader.address)).toEqual(ids);
    for (const id of ids) {
      const s = await waitFor(`${id}'s samples after the expiry`, async () => {
        const v = await seqs(leader.address, id);
        return v.at(-1)! > atExpiry[id] + 3 ? v : undefined;
      }, 10_000, 200);
      gapFree(s, id);
    }

    // a new election after the originals expired: every connection is made with renewed certificates
    await kill9(procs.get(leader.id)!);
    const survivors = ids.filter((id) => id !== leader.id);
    const next = await leaderOf(survivors, 15_000);
    expect(next.id).not.toBe(leader.id);
    expect(next.term).toBeGreaterThan(leader.term);
    await waitFor('the survivors streaming to the new leader', async () => (await streaming(next.address)).length === 2, 15_000, 100);
    for (const id of survivors) {
      const before = (await seqs(next.address, id)).at(-1) ?? 0;
      const s = await waitFor(`${id} streaming to ${next.id}`, async () => {
        const v = await seqs(next.address, id);
        return v.at(-1)! > before + 3 ? v : undefined;
      }, 10_000, 200);
      gapFree(s, id);
    }
  }, 150_000);
});
