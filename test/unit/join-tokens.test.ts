// Join tokens and the CA holder's signing (agent/security/signer.ts) on a real LMDB in a
// temp dir, with an injected clock: format, expiry, replay, bound node id, another
// cluster's fingerprint, node ids already taken, concurrent redeems, malformed input.
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { createCsr, fingerprint, identityOf, initCluster } from '../../common/pki';
import { RpcError } from '../../common/validate';
import { colonFingerprint, formatJoinToken, JoinSigner, parseJoinToken, type SignerOptions } from '../../agent/security/signer';
import { tempDir } from '../helpers/tmp';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const T0 = Date.UTC(2030, 0, 1); // a fixed "now" far from the real one: only the injected clock counts

interface Holder {
  dir: string;
  env: Env;
  signer: JoinSigner;
  clock: { now: number };
  caPem: string;
}

async function holder(opts: Partial<SignerOptions> = {}): Promise<Holder> {
  const t = tempDir('herd-join-');
  await initCluster(t.dir, 'n1', '10.0.0.1:7400');
  const env = openEnv(t.dir, { mapSizeBytes: 64 << 20 });
  cleanups.push(t.cleanup, () => env.close());
  const clock = { now: T0 };
  const signer = new JoinSigner(env, { nodeId: 'n1', dataDir: t.dir, nodeCertTtlSeconds: 86_400, clock: () => clock.now, ...opts });
  return { dir: t.dir, env, signer, clock, caPem: readFileSync(join(t.dir, 'tls', 'ca.crt'), 'utf8') };
}

/** The RpcError a promise rejects with. */
async function refusal(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err, 'expected a refusal').toBeInstanceOf(RpcError);
  return err as RpcError;
}

async function redeem(h: Holder, token: string, nodeId = 'n2', address = '10.0.0.2:7400') {
  const { csr, key } = await createCsr(nodeId);
  const r = await h.signer.redeem({ token, nodeId, address, csrPem: csr });
  return { ...r, key };
}

describe('join tokens', () => {
  it('have the format herd1.<CA fingerprint hex>.<32 random bytes base64url> and only their hash is stored', async () => {
    const h = await holder();
    const r = await h.signer.createToken({ by: 'admin:alice' });
    expect(r.token).toMatch(/^herd1\.[0-9a-f]{64}\.[A-Za-z0-9_-]{43}$/);
    const [, fp, secret] = r.token.split('.');
    expect(fp).toBe(fingerprint(h.caPem).replace(/:/g, '').toLowerCase());
    expect(r.ca_fingerprint).toBe(fingerprint(h.caPem));
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    expect(r.expires_ms).toBe(T0 + 3600_000); // default ttl
    expect(h.signer.lookup(r.token)).toEqual({ created_ms: T0, expires_ms: T0 + 3600_000, created_by: 'admin:alice' });
    // Nothing in the database holds the secret (in any encoding) or the token.
    const db = h.env.openDB({ name: 'join-tokens' });
    const dump = JSON.stringify([...db.getRange()].map(({ key, value }) => [key, value]));
    for (const s of [secret, Buffer.from(secret, 'base64url').toString('hex'), Buffer.from(secret, 'base64url').toString('base64'), r.token]) expect(dump).not.toContain(s);
    // Two tokens differ.
    expect((await h.signer.createToken({ by: 'x' })).token).not.toBe(r.token);
  });

  it('take a ttl of 1 s to 7 days (0 means 1 h) and refuse others with INVALID_ARGUMENT', async () => {
    const h = await holder();
    expect((await h.signer.createToken({ ttlSeconds: 1, by: 'x' })).expires_ms).toBe(T0 + 1000);
    expect((await h.signer.createToken({ ttlSeconds: 604_800, by: 'x' })).expires_ms).toBe(T0 + 604_800_000);
    expect((await h.signer.createToken({ ttlSeconds: 0, by: 'x' })).expires_ms).toBe(T0 + 3600_000);
    for (const bad of [-1, 604_801, 1.5, Number.NaN]) {
      const e = await refusal(h.signer.createToken({ ttlSeconds: bad, by: 'x' }));
      expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(e.message).toMatch(/ttl_seconds must be a whole number of seconds from 1 to 604800/);
    }
    const e = await refusal(h.signer.createToken({ nodeId: '../etc', by: 'x' }));
    expect([e.code, e.message]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining('node_id "../etc" is not valid')]);
  });

  it('parse strictly', () => {
    const fp = 'ab'.repeat(32);
    const secret = randomBytes(32);
    const good = formatJoinToken(fp, secret);
    expect(parseJoinToken(good)).toEqual({ fingerprintHex: fp, secret });
    const cases: Array<[unknown, RegExp]> = [
      ['', /no token/],
      [undefined, /no token/],
      ['herd2' + good.slice(5), /does not start with "herd1\."/],
      [good + '.x', /4 dot-separated parts/],
      [good.replace(fp, fp.toUpperCase()), /64 lowercase hex/],
      [good.replace(fp, fp.slice(2)), /64 lowercase hex/],
      [good.slice(0, -1), /43 base64url/],
      [good.slice(0, -1) + '=', /43 base64url/],
      [`herd1.${fp}.${secret.toString('base64url').slice(0, -1)}B`, /decode to 32 bytes|base64url/],
    ];
    for (const [t, why] of cases) expect(parseJoinToken(t), String(t)).toMatch(why);
  });
});

describe('redeeming a token', () => {
  it('signs a certificate for the CSR\'s key naming the node, for the configured lifetime, and burns the token', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'admin:local' });
    const r = await redeem(h, token, 'n2', '10.0.0.2:7400');
    const cert = new X509Certificate(r.nodeCertPem);
    const ca = new X509Certificate(h.caPem);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(r.key))).toBe(true);
    expect(identityOf(cert)).toEqual({ kind: 'node', nodeId: 'n2' });
    expect(cert.subjectAltName).toContain('IP Address:10.0.0.2');
    expect(Date.parse(cert.validTo)).toBe(Math.floor((T0 + 86_400_000) / 1000) * 1000);
    expect([r.caCertPem, r.signedBy]).toEqual([h.caPem, 'n1']);
    expect(h.signer.lookup(token)).toMatchObject({ used_ms: T0, used_by: 'n2', used_address: '10.0.0.2:7400', used_via: 'n1' });
  });

  it('refuses a replay with UNAUTHENTICATED "already used at T by node X"', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'x' });
    await redeem(h, token, 'n2');
    h.clock.now += 5000;
    const e = await refusal(redeem(h, token, 'n3', '10.0.0.3:7400'));
    expect(e.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(e.message).toBe(`the join token was already used at ${new Date(T0).toISOString()} by node "n2" (10.0.0.2:7400): tokens are one-time, create another with \`herd token create\``);
    // ... also after a restart of the node (the burn is in LMDB, not in memory).
    const again = new JoinSigner(h.env, { nodeId: 'n1', dataDir: h.dir, nodeCertTtlSeconds: 60, clock: () => h.clock.now });
    expect((await refusal(redeem({ ...h, signer: again }, token, 'n3'))).message).toMatch(/already used/);
  });

  it('refuses an expired token with UNAUTHENTICATED and keeps it unburnt', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ ttlSeconds: 60, by: 'x' });
    h.clock.now = T0 + 59_999;
    const ok = await redeem(h, token, 'n2');
    expect(ok.signedBy).toBe('n1');
    const { token: t2 } = await h.signer.createToken({ ttlSeconds: 60, by: 'x' });
    h.clock.now += 60_000;
    const e = await refusal(redeem(h, t2, 'n3'));
    expect(e.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(e.message).toMatch(/^the join token expired at 2030-01-01T00:01:59\.999Z \(0 s ago\): create another with `herd token create`/);
    expect(h.signer.lookup(t2)?.used_ms).toBeUndefined();
  });

  it('honours a token bound to a node id', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ nodeId: 'n3', by: 'x' });
    expect(h.signer.lookup(token)?.node_id).toBe('n3');
    const e = await refusal(redeem(h, token, 'n4'));
    expect([e.code, e.message]).toEqual([grpc.status.UNAUTHENTICATED, 'the join token is only for node "n3", not "n4": join with --node-id n3, or create a token for "n4"']);
    expect((await redeem(h, token, 'n3')).signedBy).toBe('n1'); // the refusal did not burn it
  });

  it('refuses a token of another cluster, and one this cluster never issued', async () => {
    const h = await holder();
    const other = await holder();
    const { token } = await other.signer.createToken({ by: 'x' });
    const e = await refusal(redeem(h, token));
    expect(e.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(e.message).toBe(
      `the join token is for the cluster whose CA has fingerprint ${fingerprint(other.caPem)}, but this cluster's CA has fingerprint ${fingerprint(h.caPem)}: get a token from this cluster (\`herd token create\` on n1)`,
    );
    const forged = formatJoinToken(fingerprint(h.caPem).replace(/:/g, '').toLowerCase(), randomBytes(32));
    const u = await refusal(redeem(h, forged));
    expect([u.code, u.message]).toEqual([grpc.status.UNAUTHENTICATED, expect.stringMatching(/^this cluster does not know the join token/)]);
  });

  it('refuses malformed tokens with UNAUTHENTICATED and missing ones with INVALID_ARGUMENT', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'x' });
    const { csr } = await createCsr('n2');
    for (const bad of [token.slice(0, -3), token.replace('herd1', 'herd0'), `${token} `, token.toUpperCase()]) {
      const e = await refusal(h.signer.redeem({ token: bad, nodeId: 'n2', address: '10.0.0.2:7400', csrPem: csr }));
      expect([e.code, e.message], bad).toEqual([grpc.status.UNAUTHENTICATED, expect.stringMatching(/^bad join token: /)]);
    }
    const e = await refusal(h.signer.redeem({ token: '', nodeId: 'n2', address: '10.0.0.2:7400', csrPem: csr }));
    expect([e.code, e.message]).toEqual([grpc.status.INVALID_ARGUMENT, 'token is required: the one `herd token create` printed']);
    expect(h.signer.lookup(token)?.used_ms).toBeUndefined();
  });

  it('refuses malformed requests with INVALID_ARGUMENT and keeps the token', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'x' });
    const { csr } = await createCsr('n2');
    // A CSR whose signature does not match its content (one byte of the signature flipped).
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] ^= 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    // A CSR for a P-384 key (openssl).
    const t = tempDir('herd-csr-');
    cleanups.push(t.cleanup);
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', join(t.dir, 'k.pem')]);
    execFileSync('openssl', ['req', '-new', '-key', join(t.dir, 'k.pem'), '-subj', '/CN=n2', '-out', join(t.dir, 'r.pem')]);
    const p384 = readFileSync(join(t.dir, 'r.pem'), 'utf8');
    const cases: Array<[Partial<{ nodeId: string; address: string; csrPem: string }>, RegExp]> = [
      [{ nodeId: '' }, /^node_id is required$/],
      [{ nodeId: 'a/b' }, /^node_id "a\/b" is not valid/],
      [{ address: 'nowhere' }, /^address "nowhere" is not valid: use host:port/],
      [{ address: '10.0.0.2:99999' }, /^address "10.0.0.2:99999" is not valid/],
      [{ csrPem: '' }, /^csr_pem is required/],
      [{ csrPem: 'hello' }, /^csr_pem is not a PEM certificate signing request/],
      [{ csrPem: 'x'.repeat(20_000) }, /^csr_pem is 20000 characters/],
      [{ csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, /^the certificate signing request cannot be parsed/],
      [{ csrPem: tampered }, /^the certificate signing request (is not signed by its own key|cannot be parsed)/],
      [{ csrPem: p384 }, /^the request's key must be EC P-256, not ECDSA P-384/],
    ];
    for (const [over, why] of cases) {
      const e = await refusal(h.signer.redeem({ token, nodeId: 'n2', address: '10.0.0.2:7400', csrPem: csr, ...over }));
      expect([e.code, e.message], JSON.stringify(over).slice(0, 80)).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(why)]);
    }
    expect(h.signer.lookup(token)?.used_ms).toBeUndefined();
    expect((await redeem(h, token)).signedBy).toBe('n1');
  });

  it('lets exactly one of concurrent redeems of one token win', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'x' });
    const csrs = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => createCsr(id)));
    const results = await Promise.allSettled(csrs.map((c, i) => h.signer.redeem({ token, nodeId: 'abcde'[i], address: `10.0.0.${i + 2}:7400`, csrPem: c.csr })));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.map((r) => [(r.reason as RpcError).code, /already used/.test((r.reason as RpcError).message)])).toEqual(Array(4).fill([grpc.status.UNAUTHENTICATED, true]));
    const winner = identityOf((won[0] as PromiseFulfilledResult<{ nodeCertPem: string }>).value.nodeCertPem);
    expect(h.signer.lookup(token)?.used_by).toBe(winner?.kind === 'node' ? winner.nodeId : '?');
  });

  it('gives a node id one live certificate: two tokens redeemed at once for the same id, exactly one wins', async () => {
    const h = await holder();
    const [a, b] = await Promise.all([h.signer.createToken({ by: 'x' }), h.signer.createToken({ by: 'x' })]);
    const results = await Promise.allSettled([redeem(h, a.token, 'n2'), redeem(h, b.token, 'n2')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason as RpcError;
    expect(lost.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(lost.message).toMatch(/^node "n2" already has a certificate \(signed at .* for 10\.0\.0\.2:7400, valid until .*\): to give the id to a new machine, remove the old one first \(`herd node remove n2`\)/);
    // the loser's token was not burnt
    expect([a, b].filter((t) => h.signer.lookup(t.token)?.used_ms === undefined)).toHaveLength(1);
  });
});

describe('which node ids may join', () => {
  it('never the CA holder\'s own (PERMISSION_DENIED), in a token or a request', async () => {
    const h = await holder();
    const { token } = await h.signer.createToken({ by: 'x' });
    const e = await refusal(redeem(h, token, 'n1'));
    expect([e.code, e.message]).toEqual([grpc.status.PERMISSION_DENIED, 'node id "n1" is the CA holder\'s own: a joining node needs an id of its own (--node-id)']);
    expect((await refusal(h.signer.createToken({ nodeId: 'n1', by: 'x' }))).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('an id with a certificate still valid only once it is revoked (herd node remove), or expired', async () => {
    let revokedAt: number | undefined;
    const h = await holder({ revokedAt: () => revokedAt });
    await redeem(h, (await h.signer.createToken({ by: 'x' })).token, 'n2');
    const { token } = await h.signer.createToken({ by: 'x' });
    expect((await refusal(redeem(h, token, 'n2'))).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await refusal(h.signer.createToken({ nodeId: 'n2', by: 'x' }))).code).toBe(grpc.status.FAILED_PRECONDITION);
    revokedAt = Date.now() - 10 * 60_000; // before the certificate was issued: does not cover it
    expect((await refusal(redeem(h, token, 'n2'))).code).toBe(grpc.status.FAILED_PRECONDITION);
    revokedAt = Date.now() + 1000; // `herd node remove n2`
    expect((await redeem(h, token, 'n2')).signedBy).toBe('n1');
    revokedAt = undefined;
    h.clock.now += 86_400_000 + 1000; // the last certificate (1 day) has expired
    expect((await redeem(h, (await h.signer.createToken({ by: 'x' })).token, 'n2')).signedBy).toBe('n1');
  });

  it('an id whose certificate was renewed stays taken until the newest one expires (recordIssued)', async () => {
    const h = await holder();
    const first = await redeem(h, (await h.signer.createToken({ by: 'x' })).token, 'n2');
    const { csr } = await createCsr('n2');
    const { signNodeCsr, loadCa } = await import('../../common/pki');
    const renewed = await signNodeCsr(loadCa(h.dir), csr, 'n2', '10.0.0.2:7400', { notAfter: new Date(T0 + 3 * 86_400_000) });
    await h.signer.recordIssued('n2', renewed, '10.0.0.2:7400');
    await h.signer.recordIssued('n2', first.nodeCertPem, '10.0.0.2:7400'); // an older one does not shorten it
    h.clock.now = T0 + 2 * 86_400_000; // the joined certificate has expired, the renewed one has not
    const e = await refusal(redeem(h, (await h.signer.createToken({ by: 'x' })).token, 'n2'));
    expect([e.code, e.message]).toEqual([grpc.status.FAILED_PRECONDITION, expect.stringContaining(`valid until ${new Date(T0 + 3 * 86_400_000).toISOString()}`)]);
  });

  it('not a live member the election hears from', async () => {
    const h = await holder({ liveMember: (id) => (id === 'n5' ? 'this node hears from it at 10.0.0.5:7400 as follower' : undefined) });
    const e = await refusal(redeem(h, (await h.signer.createToken({ by: 'x' })).token, 'n5'));
    expect([e.code, e.message]).toEqual([grpc.status.FAILED_PRECONDITION, 'node "n5" is a live member of the cluster (this node hears from it at 10.0.0.5:7400 as follower): join with another --node-id, or `herd node remove n5` first']);
  });
});

describe('pruning', () => {
  it('forgets tokens 7 days after they expired, burnt or not', async () => {
    const h = await holder();
    const used = (await h.signer.createToken({ ttlSeconds: 60, by: 'x' })).token;
    await redeem(h, used, 'n2');
    const unused = (await h.signer.createToken({ ttlSeconds: 60, by: 'x' })).token;
    h.clock.now = T0 + 60_000 + 7 * 86_400_000; // exactly 7 days after expiry: still kept
    expect(await h.signer.prune()).toBe(0);
    expect((await refusal(redeem(h, used, 'n3'))).message).toMatch(/already used/);
    h.clock.now += 1;
    const fresh = await h.signer.createToken({ by: 'x' }); // creating prunes too
    expect(h.signer.lookup(used)).toBeUndefined();
    expect(h.signer.lookup(unused)).toBeUndefined();
    expect(h.signer.lookup(fresh.token)).toBeDefined();
    expect((await refusal(redeem(h, used, 'n3'))).message).toMatch(/^this cluster does not know the join token/);
    expect(colonFingerprint('ab'.repeat(32))).toBe(Array(32).fill('AB').join(':'));
  });
});
