/**
 * Joining on the test bed: three network namespaces, real herd processes, no
 * pre-provisioned certificates. n1 starts alone and makes the cluster CA itself;
 * `herd token create` there; n2 `herd join`s and streams to the coordinator; replayed,
 * expired and tampered tokens are refused; n3 joins through n2 (forwarded to and signed by
 * n1); CreateJoinToken asked of n2 names n1; a read-only operator is refused. Checks go
 * through the independent grpcurl-style client with -cacert/-cert/-key.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBed, type Bed, type BedProcess, type ExecResult } from '../bed/bed';
import { PORT } from '../helpers/cluster';
import { grpcurl, HERD, runCmd } from '../helpers/herd';
import { waitFor } from '../helpers/tmp';
import { fingerprint, identityOf } from '../../common/pki';

const TOKEN = /herd1\.[0-9a-f]{64}\.[A-Za-z0-9_-]{43}/;

let bed: Bed;
const agents = new Map<string, BedProcess>();
const addr = (id: string) => `${bed.node(id).ip}:${PORT}`;
const dataDir = (id: string) => join(bed.node(id).dir, 'herd');
const tls = (id: string, f: string) => join(dataDir(id), 'tls', f);
/** grpcurl flags with n1's operator certificates (`herd init` made `local`). */
const asOperator = (name = 'local') => ['-cacert', tls('n1', 'ca.crt'), '-cert', tls('n1', `admins/${name}.crt`), '-key', tls('n1', `admins/${name}.key`), '-max-time', '10'];

function startAgent(id: string, peers: string[] = []): BedProcess {
  const n = bed.node(id);
  const args = [
    HERD, 'agent', '--node-id', id, '--data-dir', dataDir(id), '--listen', addr(id),
    ...peers.flatMap((p) => ['--peer', `${p}=${addr(p)}`]),
    '--pmproxy-url', '', '--docker-socket', join(n.dir, 'no-docker.sock'),
    '--host-interval', '500', '--container-interval', '500', '--track-interval', '500',
  ];
  const p = bed.spawn(id, process.execPath, args, { name: `herd-${id}-${Date.now()}` });
  agents.set(id, p);
  return p;
}

/** A herd command inside a node's namespace. */
const herdOn = (id: string, ...args: string[]): Promise<ExecResult> => bed.exec(id, process.execPath, [HERD, ...args], { timeoutMs: 30_000 });
const tokenCreate = (...args: string[]) => herdOn('n1', 'token', 'create', '-s', addr('n1'), '--data-dir', dataDir('n1'), ...args);
const joinFrom = (id: string, token: string, via = 'n1') =>
  herdOn(id, 'join', '--token', token, '--address', addr(via), '--node-id', id, '--advertise', addr(id), '--data-dir', dataDir(id), '--timeout', '10000');

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: false, name: 'jn', subnet: 61 });
  startAgent('n1'); // no peers, no certificates: it makes the cluster CA
  await waitFor('n1 serving with its new CA', async () => existsSync(tls('n1', 'admins/local.key')) && (await grpcurl(addr('n1'), ['grpc.health.v1.Health/Check'], asOperator())).code === 0, 20_000, 200);
});

afterAll(async () => {
  for (const p of agents.values()) await p.stop().catch(() => {});
  await bed?.stop();
});

let firstToken = '';

describe('joining nodes on the test bed', () => {
  it('n1, alone and without certificates, made the CA; `herd token create` there prints a token with its fingerprint', async () => {
    expect(statSync(tls('n1', 'ca.key')).mode & 0o777).toBe(0o600);
    const r = await tokenCreate('--ttl', '10m');
    expect(r.code, r.stderr).toBe(0);
    firstToken = TOKEN.exec(r.stdout)?.[0] ?? '';
    expect(firstToken).not.toBe('');
    expect(r.stdout.split('\n')[0]).toBe(firstToken);
    const fp = fingerprint(readFileSync(tls('n1', 'ca.crt'), 'utf8'));
    expect(r.stdout).toContain(`CA fingerprint (SHA-256): ${fp}`);
    expect(firstToken.split('.')[1]).toBe(fp.replace(/:/g, '').toLowerCase());
    expect(r.stdout).toMatch(/expires: \S+Z \(in 10m\); one-time/);
  });

  it('n2 joins with it, runs with n1 as peer and streams samples to the coordinator', async () => {
    const r = await joinFrom('n2', firstToken);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^node "n2" \(10\.77\.61\.12:7400\) joined: certificate signed by n1, valid until /);
    expect(r.stdout).toContain(`herd agent --node-id n2 --data-dir ${dataDir('n2')} --advertise ${addr('n2')} --peer n1=${addr('n1')}`);
    expect(statSync(tls('n2', 'node.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(tls('n2', 'ca.crt'), 'utf8')).toBe(readFileSync(tls('n1', 'ca.crt'), 'utf8'));
    const cert = new X509Certificate(readFileSync(tls('n2', 'node.crt')));
    expect(identityOf(cert)).toEqual({ kind: 'node', nodeId: 'n2' });
    expect(cert.verify(new X509Certificate(readFileSync(tls('n1', 'ca.crt'))).publicKey)).toBe(true);

    // Membership is static: n2 names n1, and n1 restarts naming n2.
    startAgent('n2', ['n1']);
    await agents.get('n1')!.stop();
    startAgent('n1', ['n2']);
    const leader = await waitFor('a coordinator', async () => {
      const g = await grpcurl(addr('n1'), ['herd.v1.Admin/GetLeader'], asOperator());
      const id = g.code === 0 ? JSON.parse(g.stdout).leader_id : undefined;
      return id ? (id as string) : undefined;
    }, 20_000, 250);
    const nodes = await waitFor('n1 and n2 streaming', async () => {
      const l = await grpcurl(addr(leader), ['herd.v1.Admin/ListNodes'], asOperator());
      if (l.code !== 0) return undefined;
      const list = JSON.parse(l.stdout).nodes as Array<{ node_id: string; connected?: boolean; acked_seq?: string }>;
      return list.filter((n) => n.connected && Number(n.acked_seq ?? 0) > 0).length === 2 ? list : undefined;
    }, 30_000, 250);
    expect(nodes.map((n) => n.node_id)).toEqual(['n1', 'n2']);
  });

  it('refuses the same token again: UNAUTHENTICATED, already used by n2', async () => {
    const r = await joinFrom('n3', firstToken);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused the join \(UNAUTHENTICATED\): the join token was already used at \S+ by node "n2" \(10\.77\.61\.12:7400\)/);
    expect(existsSync(tls('n3', 'node.key'))).toBe(false);
  });

  it('refuses an expired token', async () => {
    const t = await tokenCreate('--ttl', '1s');
    expect(t.code, t.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 2000));
    const r = await joinFrom('n3', TOKEN.exec(t.stdout)![0]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\(UNAUTHENTICATED\): the join token expired at \S+ \(\d+ s ago\)/);
  });

  it('refuses a tampered fingerprint before sending the token; the untampered token then joins n3 through n2, signed by n1', async () => {
    // A token made by the independent client.
    const c = await grpcurl(addr('n1'), ['-d', '{"ttl_seconds": 600, "node_id": "n3"}', 'herd.v1.Admin/CreateJoinToken'], asOperator());
    expect(c.code, c.stderr).toBe(0);
    const created = JSON.parse(c.stdout);
    expect(created.token).toMatch(TOKEN);
    expect(created.ca_fingerprint).toBe(fingerprint(readFileSync(tls('n1', 'ca.crt'), 'utf8')));
    const [v, fp, secret] = created.token.split('.');
    const wrongFp = fp.slice(0, -1) + (fp.endsWith('0') ? '1' : '0');
    const r = await joinFrom('n3', `${v}.${wrongFp}.${secret}`, 'n2');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `herd join: the CA served by ${addr('n2')} has fingerprint ${created.ca_fingerprint} but the token is for ${wrongFp.toUpperCase().match(/../g)!.join(':')}: refusing (wrong address, or someone in between)`,
    );
    const ok = await joinFrom('n3', created.token, 'n2');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^node "n3" \(10\.77\.61\.13:7400\) joined: certificate signed by n1 \(through n2\)/);
    expect(identityOf(readFileSync(tls('n3', 'node.crt')))).toEqual({ kind: 'node', nodeId: 'n3' });
    expect(new X509Certificate(readFileSync(tls('n3', 'node.crt'))).verify(new X509Certificate(readFileSync(tls('n1', 'ca.crt'))).publicKey)).toBe(true);
    // The cluster takes n3's certificate: grpcurl with it (a node may read) is answered by n1.
    const asN3 = ['-cacert', tls('n3', 'ca.crt'), '-cert', tls('n3', 'node.crt'), '-key', tls('n3', 'node.key')];
    const g = await grpcurl(addr('n1'), ['herd.v1.Admin/GetCluster'], asN3);
    expect(g.code, g.stderr).toBe(0);
    expect(agents.get('n2')!.log()).toMatch(/forwarding a join to the CA holder node=n3/);
    expect(agents.get('n1')!.log()).toMatch(/node certificate signed for a join node=n3 address=10\.77\.61\.13:7400 via=n2/);
  });

  it('CreateJoinToken asked of n2 is FAILED_PRECONDITION naming n1 and its address', async () => {
    const r = await grpcurl(addr('n2'), ['-d', '{"ttl_seconds": 60}', 'herd.v1.Admin/CreateJoinToken'], asOperator());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Code: FailedPrecondition');
    expect(r.stderr).toContain(`node "n2" does not hold the cluster CA key, so it cannot make join tokens: node "n1" at ${addr('n1')} does (herd token create -s ${addr('n1')})`);
  });

  it('a read-only operator may not create join tokens: PERMISSION_DENIED', async () => {
    const a = await runCmd(process.execPath, [HERD, 'admin-cert', 'create', 'bob', '--role', 'read-only', '--data-dir', dataDir('n1')]);
    expect(a.code, a.stderr).toBe(0);
    const r = await grpcurl(addr('n1'), ['-d', '{"ttl_seconds": 60}', 'herd.v1.Admin/CreateJoinToken'], asOperator('bob'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Code: PermissionDenied');
    expect(r.stderr).toContain('operator "bob" has the read-only role; CreateJoinToken needs the admin role');
    const cli = await tokenCreate('--cert', tls('n1', 'admins/bob.crt'), '--key', tls('n1', 'admins/bob.key'));
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/refused CreateJoinToken \(PERMISSION_DENIED\)/);
    // bob may read, though
    expect((await grpcurl(addr('n1'), ['herd.v1.Admin/GetLeader'], asOperator('bob'))).code).toBe(0);
  });
});
