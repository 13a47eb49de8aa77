/**
 * Certificate renewal (agent/security/renewal.ts): when it is due, what is accepted back,
 * how the files are replaced (and recovered after a crash), and the handler and renewer
 * over real mutual TLS in-process: a node renews through the CA key holder, the running
 * transport switches to the new certificate, and every refusal says why.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizer } from '../../agent/security/authorize';
import { CertificateRenewer, checkRenewed, recoverRenewal, renewalDecision, renewalHandlers, writeNodeMaterial } from '../../agent/security/renewal';
import { SKEW_MS } from '../../common/identity';
import { createCa, createCsr, issueAdminCert, issueNodeCert, type CertAndKey } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { ClusterTls, Insecure, type Transport } from '../../common/transport';
import { tempDir } from '../helpers/tmp';

const S = 1000;

describe('renewalDecision', () => {
  const issued = 1_000_000_000_000;
  // as herd issues: notBefore back-dated by the skew allowance
  const herdCert = (lifetimeMs: number) => ({ notBeforeMs: issued - SKEW_MS, notAfterMs: issued + lifetimeMs });

  it('is due once less than the fraction of the lifetime is left, counted from the issue time', () => {
    const v = herdCert(100 * S);
    expect(renewalDecision(v, issued, 1 / 3)).toMatchObject({ due: false, lifetimeMs: 100 * S, remainingMs: 100 * S });
    expect(renewalDecision(v, issued + 66 * S, 1 / 3).due).toBe(false);
    expect(renewalDecision(v, issued + 67 * S, 1 / 3)).toMatchObject({ due: true, remainingMs: 33 * S });
    expect(renewalDecision(v, issued, 0.6).renewAtMs).toBe(issued + 40 * S);
    expect(renewalDecision(v, issued + 40 * S, 0.6).due).toBe(true);
    expect(renewalDecision(v, issued + 39_999, 0.6).due).toBe(false);
  });

  it('a year-long certificate renews about four months before it expires (default 1/3)', () => {
    const year = 365 * 86_400 * S;
    const d = renewalDecision(herdCert(year), issued, 1 / 3);
    expect(d.due).toBe(false);
    expect((issued + year - d.renewAtMs) / 86_400_000).toBeCloseTo(365 / 3, 5);
  });

  it('is due (with a negative remaining time) once expired', () => {
    const d = renewalDecision(herdCert(60 * S), issued + 90 * S, 0.1);
    expect(d).toMatchObject({ due: true, remainingMs: -30 * S });
  });

  it('counts from notBefore for a certificate shorter than the skew allowance or not back-dated', () => {
    // notBefore + skew is past notAfter: the whole window is the lifetime
    expect(renewalDecision({ notBeforeMs: issued, notAfterMs: issued + 60 * S }, issued + 29 * S, 0.5)).toMatchObject({ due: false, lifetimeMs: 60 * S });
    expect(renewalDecision({ notBeforeMs: issued, notAfterMs: issued + 60 * S }, issued + 30 * S, 0.5).due).toBe(true);
  });

  it('clamps a fraction outside 0..1', () => {
    const v = herdCert(100 * S);
    expect(renewalDecision(v, issued + 99 * S, 0).due).toBe(false);
    expect(renewalDecision(v, issued + 100 * S, 0).due).toBe(true);
    expect(renewalDecision(v, issued, 5).due).toBe(true);
    expect(renewalDecision(v, issued, Number.NaN).due).toBe(false);
  });
});

describe('checkRenewed and the files', () => {
  let ca: CertAndKey;
  let cas: X509Certificate[];
  const t = tempDir('herd-renewal-files-');
  beforeAll(async () => {
    ca = await createCa('t', { holder: 'n1' });
    cas = [new X509Certificate(ca.cert)];
  });
  afterAll(() => t.cleanup());

  it('accepts a certificate of this CA, for this node and the new key; refuses anything else, saying why', async () => {
    const { signNodeCsr } = await import('../../common/pki');
    const { csr, key } = await createCsr('n2');
    const good = await signNodeCsr(ca, csr, 'n2', '10.0.0.2:7400');
    expect(checkRenewed(good, key, cas, 'n2')).toBeUndefined();
    expect(checkRenewed(good, key, cas, 'n3')).toMatch(/names node "n2", not this node \("n3"\)/);
    const other = await createCsr('n2');
    expect(checkRenewed(good, other.key, cas, 'n2')).toMatch(/not for the key this node just made/);
    const foreign = await createCa('other');
    expect(checkRenewed(await signNodeCsr(foreign, csr, 'n2', '10.0.0.2:7400'), key, cas, 'n2')).toMatch(/not issued by this cluster's CA/);
    const operator = await issueAdminCert(ca, 'n2', 'admin');
    expect(checkRenewed(operator.cert, operator.key, cas, 'n2')).toMatch(/names operator "n2"/);
    const expired = await signNodeCsr(ca, csr, 'n2', '10.0.0.2:7400', { notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() - 60_000) });
    expect(checkRenewed(expired, key, cas, 'n2')).toMatch(/expired at/);
    expect(checkRenewed('not a certificate', key, cas, 'n2')).toMatch(/not a certificate/);
  });

  it('writes node.crt and node.key in place (key 0600) and leaves no temporary file', async () => {
    const dir = join(t.dir, 'a');
    mkdirSync(join(dir, 'tls'), { recursive: true });
    const n = await issueNodeCert(ca, 'n2', '10.0.0.2:7400');
    writeNodeMaterial(dir, n.cert, n.key);
    expect(readFileSync(join(dir, 'tls', 'node.crt'), 'utf8')).toBe(n.cert);
    expect(readFileSync(join(dir, 'tls', 'node.key'), 'utf8')).toBe(n.key);
    expect(statSync(join(dir, 'tls', 'node.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'tls', 'node.crt')).mode & 0o777).toBe(0o644);
    expect(existsSync(join(dir, 'tls', 'node.key.next')) || existsSync(join(dir, 'tls', 'node.crt.next'))).toBe(false);
    expect(recoverRenewal(dir)).toBe('none');
  });

  it('recovers a renewal interrupted by a crash: completes it when it can, otherwise keeps the old pair', async () => {
    const dir = join(t.dir, 'b');
    const tls = join(dir, 'tls');
    mkdirSync(tls, { recursive: true });
    const old = await issueNodeCert(ca, 'n2', '10.0.0.2:7400');
    const next = await issueNodeCert(ca, 'n2', '10.0.0.2:7400');
    const put = (pair: CertAndKey) => {
      writeFileSync(join(tls, 'node.crt'), pair.cert);
      writeFileSync(join(tls, 'node.key'), pair.key);
    };
    const files = () => [readFileSync(join(tls, 'node.crt'), 'utf8'), readFileSync(join(tls, 'node.key'), 'utf8')];
    // crashed between the two renames: the key is new, the certificate waits
    put(old);
    writeFileSync(join(tls, 'node.key'), next.key);
    writeFileSync(join(tls, 'node.crt.next'), next.cert);
    expect(recoverRenewal(dir)).toBe('completed');
    expect(files()).toEqual([next.cert, next.key]);
    // crashed before any rename, both written whole
    put(old);
    writeFileSync(join(tls, 'node.key.next'), next.key);
    writeFileSync(join(tls, 'node.crt.next'), next.cert);
    expect(recoverRenewal(dir)).toBe('completed');
    expect(files()).toEqual([next.cert, next.key]);
    // crashed while writing the certificate: discarded
    put(old);
    writeFileSync(join(tls, 'node.key.next'), next.key);
    writeFileSync(join(tls, 'node.crt.next'), next.cert.slice(0, 100));
    expect(recoverRenewal(dir)).toBe('discarded');
    expect(files()).toEqual([old.cert, old.key]);
    // crashed while writing the key
    writeFileSync(join(tls, 'node.key.next'), 'partial');
    expect(recoverRenewal(dir)).toBe('discarded');
    expect(files()).toEqual([old.cert, old.key]);
    for (const f of ['node.key.next', 'node.crt.next']) expect(existsSync(join(tls, f))).toBe(false);
    // a stray certificate that fits neither key is dropped
    renameSync(join(tls, 'node.crt'), join(tls, 'node.crt.keep'));
    writeFileSync(join(tls, 'node.crt'), old.cert);
    writeFileSync(join(tls, 'node.crt.next'), next.cert);
    expect(recoverRenewal(dir)).toBe('discarded');
    expect(files()).toEqual([old.cert, old.key]);
  });
});

describe('renewal over mutual TLS', () => {
  const t = tempDir('herd-renewal-');
  let ca: CertAndKey;
  const servers: grpc.Server[] = [];
  const clients: grpc.Client[] = [];
  let holderAddress = '';
  let plainAddress = '';
  let followerAddress = '';

  function dataDirWith(name: string, files: Record<string, string>): string {
    const dir = join(t.dir, name);
    mkdirSync(join(dir, 'tls'), { recursive: true });
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, 'tls', f), text, { mode: f.endsWith('.key') ? 0o600 : 0o644 });
    return dir;
  }

  async function serve(nodeId: string, dataDir: string, transport: Transport): Promise<string> {
    const server = new grpc.Server({ interceptors: [authorizer(transport, { nodeId, audit: () => {} })] });
    server.addService(loadProtos().herd.Peer.service, renewalHandlers({ nodeId, dataDir, transport, ttlSeconds: 120 }));
    servers.push(server);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', transport.serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
    return `127.0.0.1:${port}`;
  }

  beforeAll(async () => {
    ca = await createCa('t', { holder: 'n1' });
    const n1 = await issueNodeCert(ca, 'n1', '127.0.0.1:1');
    const holderDir = dataDirWith('n1', { 'ca.crt': ca.cert, 'ca.key': ca.key, 'node.crt': n1.cert, 'node.key': n1.key });
    holderAddress = await serve('n1', holderDir, new ClusterTls({ ca: ca.cert, cert: n1.cert, key: n1.key }));
    const n3 = await issueNodeCert(ca, 'n3', '127.0.0.1:3');
    followerAddress = await serve('n3', dataDirWith('n3', { 'ca.crt': ca.cert, 'node.crt': n3.cert, 'node.key': n3.key }), new ClusterTls({ ca: ca.cert, cert: n3.cert, key: n3.key }));
    plainAddress = await serve('n1', holderDir, new Insecure());
  });
  afterAll(() => {
    for (const c of clients) c.close();
    for (const s of servers) s.forceShutdown();
    t.cleanup();
  });

  /** A node n2 whose certificate has `lifetimeS` left, set up to renew through `holderAt`. */
  async function nodeN2(lifetimeS: number, holderAt: string | undefined, fraction = 0.5) {
    const pair = await issueNodeCert(ca, 'n2', '127.0.0.1:2', { notAfter: new Date(Date.now() + lifetimeS * 1000) });
    const dir = dataDirWith(`n2-${Math.random().toString(36).slice(2)}`, { 'ca.crt': ca.cert, 'node.crt': pair.cert, 'node.key': pair.key });
    const transport = new ClusterTls({ ca: ca.cert, cert: pair.cert, key: pair.key });
    const renewed: X509Certificate[] = [];
    const renewer = new CertificateRenewer({
      nodeId: 'n2',
      dataDir: dir,
      transport,
      renewBeforeFraction: fraction,
      checkMs: 60_000,
      ttlSeconds: 120,
      address: () => '127.0.0.1:2',
      names: () => ['localhost', '::1', 'n2.example.org', '10.9.8.7'],
      addressOf: (id) => (id === 'n1' ? holderAt : undefined),
      onRenewed: (x) => renewed.push(x),
      // validity is in whole seconds: with fraction 0.999 the renewal is due about 0.1 s after the
      // issue time, which may still lie ahead; a clock 3 s ahead makes it due for sure
      clock: fraction > 0.99 ? () => Date.now() + 3000 : undefined,
    });
    return { pair, dir, transport, renewer, renewed };
  }

  const peerAs = (address: string, who: CertAndKey | 'none' | 'plain') => {
    const creds =
      who === 'plain'
        ? grpc.credentials.createInsecure()
        : who === 'none'
          ? grpc.credentials.createSsl(Buffer.from(ca.cert), null, null, { checkServerIdentity: () => undefined })
          : grpc.credentials.createSsl(Buffer.from(ca.cert), Buffer.from(who.key), Buffer.from(who.cert), { checkServerIdentity: () => undefined });
    const c = new (loadProtos().herd.Peer)(address, creds, { 'grpc.ssl_target_name_override': 'herd' });
    clients.push(c);
    return c;
  };
  const renewCall = (client: any, req: unknown) =>
    new Promise<string>((resolve) => client.RenewCertificate(req, { deadline: Date.now() + 5000 }, (e: grpc.ServiceError | null) => resolve(e ? `${grpc.status[e.code]}: ${e.details}` : 'OK')));

  it('renews through the CA holder: new files, new serial, the transport switches, and the new certificate is accepted', async () => {
    const n2 = await nodeN2(100, holderAddress);
    expect(await n2.renewer.check()).toBe('not-due'); // 100 s left of 100 s
    const far = await nodeN2(100, holderAddress, 0.999);
    const gen = far.transport.generation;
    expect(await far.renewer.check()).toBe('renewed');
    expect(far.transport.generation).toBe(gen + 1);
    const onDisk = new X509Certificate(readFileSync(join(far.dir, 'tls', 'node.crt')));
    expect(onDisk.serialNumber).not.toBe(new X509Certificate(far.pair.cert).serialNumber);
    expect(onDisk.serialNumber).toBe(far.transport.certificate.serialNumber);
    expect(far.renewed.map((x) => x.serialNumber)).toEqual([onDisk.serialNumber]);
    expect(onDisk.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(far.dir, 'tls', 'node.key'))))).toBe(true);
    expect(statSync(join(far.dir, 'tls', 'node.key')).mode & 0o777).toBe(0o600);
    expect(onDisk.subjectAltName).toContain('URI:herd://node/n2');
    expect(onDisk.subjectAltName).toContain('IP Address:127.0.0.1');
    // the names n2 asked for in its CSR (what it is dialled by), copied by the holder
    for (const n of ['DNS:localhost', 'DNS:n2.example.org', 'IP Address:10.9.8.7', 'IP Address:0:0:0:0:0:0:0:1']) expect(onDisk.subjectAltName).toContain(n);
    expect(onDisk.subjectAltName!.match(/URI:/g)).toHaveLength(1); // still exactly one identity
    // the holder's lifetime (ttlSeconds 120), counted from now
    expect(Date.parse(onDisk.validTo) - Date.now()).toBeGreaterThan(100_000);
    expect(Date.parse(onDisk.validTo) - Date.now()).toBeLessThan(125_000);
    // the new material is what the node now presents
    expect(await renewCall(peerAs(holderAddress, far.transport.current as CertAndKey), { csr_pem: (await createCsr('x')).csr, address: '127.0.0.1:2' })).toBe('OK');
  });

  it('the CA holder renews its own certificate locally', async () => {
    const pair = await issueNodeCert(ca, 'n1', '127.0.0.1:1', { notAfter: new Date(Date.now() + 10_000) });
    const dir = dataDirWith('n1-self', { 'ca.crt': ca.cert, 'ca.key': ca.key, 'node.crt': pair.cert, 'node.key': pair.key });
    const transport = new ClusterTls({ ca: ca.cert, cert: pair.cert, key: pair.key });
    const renewer = new CertificateRenewer({ nodeId: 'n1', dataDir: dir, transport, renewBeforeFraction: 0.5, checkMs: 60_000, ttlSeconds: 3600, address: () => '127.0.0.1:1', names: () => [], addressOf: () => undefined });
    // 10 s of a 10 s lifetime left: not due until half is gone; a clock 6 s ahead makes it due
    expect(await renewer.check()).toBe('not-due');
    const ahead = new CertificateRenewer({ nodeId: 'n1', dataDir: dir, transport, renewBeforeFraction: 0.5, checkMs: 60_000, ttlSeconds: 3600, address: () => '127.0.0.1:1', names: () => ['localhost'], addressOf: () => undefined, clock: () => Date.now() + 6000 });
    expect(await ahead.check()).toBe('renewed');
    expect(Date.parse(transport.certificate.validTo) - Date.now()).toBeGreaterThan(3_500_000);
    expect(transport.certificate.subjectAltName).toContain('DNS:localhost');
    // renewNow: at once, though not due; a certificate lacking the names gets them
    const bare = transport.certificate.serialNumber;
    const now = await renewer.renewNow();
    expect(now.old.serialNumber).toBe(bare);
    expect(now.cert.serialNumber).toBe(transport.certificate.serialNumber);
    expect(now.cert.serialNumber).not.toBe(bare);
    expect(now.signedBy).toMatch(/this node holds the CA key/);
  });

  it('a failed renewal is reported, changes nothing, and is retried at the next check', async () => {
    const n2 = await nodeN2(100, '127.0.0.1:1', 0.999); // nobody listens there
    const before = readFileSync(join(n2.dir, 'tls', 'node.crt'), 'utf8');
    const gen = n2.transport.generation;
    expect(await n2.renewer.check()).toBe('failed');
    expect(readFileSync(join(n2.dir, 'tls', 'node.crt'), 'utf8')).toBe(before);
    expect(n2.transport.generation).toBe(gen);
    // renewNow says why, and changes nothing either
    await expect(n2.renewer.renewNow()).rejects.toThrow(/node "n1" at 127\.0\.0\.1:1 answered UNAVAILABLE/);
    expect(readFileSync(join(n2.dir, 'tls', 'node.crt'), 'utf8')).toBe(before);
    expect(n2.transport.generation).toBe(gen);
    // a holder this node does not know of
    const lost = await nodeN2(100, undefined, 0.999);
    expect(await lost.renewer.check()).toBe('failed');
    // asking a node that does not hold the key: refused, nothing changes
    const wrong = await nodeN2(100, followerAddress, 0.999);
    expect(await wrong.renewer.check()).toBe('failed');
    // once the holder is reachable, the next check renews
    const later = await nodeN2(100, holderAddress, 0.999);
    expect(await later.renewer.check()).toBe('renewed');
  });

  it('one check at a time; none after stop', async () => {
    const n2 = await nodeN2(100, holderAddress, 0.999);
    const [a, b] = await Promise.all([n2.renewer.check(), n2.renewer.check()]);
    expect([a, b]).toEqual(['renewed', 'busy']);
    n2.renewer.stop();
    const gen = n2.transport.generation;
    expect(await n2.renewer.check()).toBe('not-due');
    expect(n2.transport.generation).toBe(gen);
  });

  it('refuses with a clear status: no certificate, plain text, an operator, a node that is not the holder, bad arguments', async () => {
    const n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:2');
    const { csr } = await createCsr('n2');
    const ok = { csr_pem: csr, address: '127.0.0.1:2' };
    expect(await renewCall(peerAs(holderAddress, n2), ok)).toBe('OK');
    expect(await renewCall(peerAs(holderAddress, 'none'), ok)).toMatch(/^UNAUTHENTICATED: .*no client certificate/);
    expect(await renewCall(peerAs(holderAddress, await issueAdminCert(ca, 'alice', 'admin')), ok)).toMatch(/^PERMISSION_DENIED: operator "alice" may not call \/herd.v1.Peer\/RenewCertificate/);
    expect(await renewCall(peerAs(plainAddress, 'plain'), ok)).toMatch(/^FAILED_PRECONDITION: renewal needs mTLS/);
    expect(await renewCall(peerAs(followerAddress, n2), ok)).toMatch(/^FAILED_PRECONDITION: node n3 does not hold the cluster CA key: certificates are renewed by node "n1"/);
    expect(await renewCall(peerAs(holderAddress, n2), { ...ok, address: 'nowhere' })).toMatch(/^INVALID_ARGUMENT: address "nowhere" is not valid/);
    expect(await renewCall(peerAs(holderAddress, n2), { ...ok, address: '' })).toMatch(/^INVALID_ARGUMENT: address is required/);
    expect(await renewCall(peerAs(holderAddress, n2), { ...ok, csr_pem: '' })).toMatch(/^INVALID_ARGUMENT: csr_pem must be a PEM certificate signing request/);
    const tampered = csr.replace(/(\n[A-Za-z0-9+/]{10})[A-Za-z0-9+/]/, (m, p) => p + (m.endsWith('A') ? 'B' : 'A'));
    expect(await renewCall(peerAs(holderAddress, n2), { ...ok, csr_pem: tampered })).toMatch(/^INVALID_ARGUMENT: the certificate signing request/);
    expect(await renewCall(peerAs(holderAddress, n2), { ...ok, csr_pem: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(20_000)}\n-----END CERTIFICATE REQUEST-----\n` })).toMatch(/^INVALID_ARGUMENT: csr_pem is longer than/);
  });

  it('the certificate it signs names the caller from its certificate, whatever the CSR says', async () => {
    const n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:2');
    const { csr } = await createCsr('n1'); // claims to be the holder
    const answer = await new Promise<any>((resolve, reject) =>
      (peerAs(holderAddress, n2) as any).RenewCertificate({ csr_pem: csr, address: '10.1.2.3:7400' }, (e: unknown, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    const x = new X509Certificate(answer.node_cert_pem);
    expect(x.subjectAltName).toContain('URI:herd://node/n2');
    expect(x.subjectAltName).not.toContain('herd://node/n1');
    expect(x.subjectAltName).toContain('IP Address:10.1.2.3');
    expect(answer.ca_cert_pem).toBe(ca.cert);
  });
});
