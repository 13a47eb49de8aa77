// The cluster PKI (common/pki.ts): CA, node and operator certificates on disk, identities
// read back, and a real mTLS round trip through @grpc/grpc-js with the server reading the
// client's identity from call.getAuthContext().
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  caHolderOf, createAdminCert, createCa, fingerprint, identityOf, initCluster, issueAdminCert, issueNodeCert, loadCa,
  peerIdentity, type CertAndKey, type PeerIdentity,
} from '../../common/pki';
import { tempDir } from '../helpers/tmp';
import { ClusterTls, readNodeMaterial } from '../../common/transport';

const cleanups: Array<() => void> = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });
function tmp() {
  const t = tempDir('herd-pki-');
  cleanups.push(t.cleanup);
  return t.dir;
}
const mode = (p: string) => statSync(p).mode & 0o777;

describe('herd init and admin-cert files', () => {
  it('creates the CA and the node certificate in <dataDir>/tls with keys 0600, and refuses a second init', async () => {
    const dir = tmp();
    const r = await initCluster(dir, 'n1', '10.0.0.5:7400');
    const tls = join(dir, 'tls');
    // ... and the operator certificate the herd commands use on this node (admins/local).
    expect(r.files).toEqual([...['ca.crt', 'ca.key', 'node.crt', 'node.key'], ...['local.crt', 'local.key', 'ca.crt'].map((f) => join('admins', f))].map((f) => join(tls, f)));
    expect(mode(join(tls, 'admins', 'local.key'))).toBe(0o600);
    expect(identityOf(readFileSync(join(tls, 'admins', 'local.crt')))).toEqual({ kind: 'admin', name: 'local', role: 'admin' });
    expect(mode(join(tls, 'ca.key'))).toBe(0o600);
    expect(mode(join(tls, 'node.key'))).toBe(0o600);
    expect(mode(tls)).toBe(0o700);

    const ca = new X509Certificate(readFileSync(join(tls, 'ca.crt')));
    const node = new X509Certificate(readFileSync(join(tls, 'node.crt')));
    expect(ca.ca).toBe(true);
    expect(node.ca).toBe(false);
    expect(node.verify(ca.publicKey)).toBe(true);
    expect(node.checkIssued(ca)).toBe(true);
    expect(node.subject).toContain('CN=n1');
    expect(node.subjectAltName).toBe('URI:herd://node/n1, IP Address:10.0.0.5');
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(identityOf(node)).toEqual({ kind: 'node', nodeId: 'n1' });
    expect(identityOf(ca)).toBeUndefined();
    expect(caHolderOf(ca)).toBe('n1'); // where joins and renewals are signed

    // The fingerprint is stable: the same from the PEM, the DER and across reads; it is openssl's format.
    expect(r.caFingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(fingerprint(readFileSync(join(tls, 'ca.crt'), 'utf8'))).toBe(r.caFingerprint);
    expect(fingerprint(ca.raw)).toBe(r.caFingerprint);
    expect(ca.fingerprint256).toBe(r.caFingerprint);
    expect(fingerprint(loadCa(dir).cert)).toBe(r.caFingerprint);

    await expect(initCluster(dir, 'n1', '10.0.0.5:7400')).rejects.toThrow(/already belongs to a cluster/);
    expect(fingerprint(readFileSync(join(tls, 'ca.crt'), 'utf8'))).toBe(r.caFingerprint); // untouched
  });

  it('puts a DNS name or an IPv6 address into the SAN, and rejects a bad node id', async () => {
    const ca = await createCa();
    expect(new X509Certificate((await issueNodeCert(ca, 'a', 'node-a.lan:7400')).cert).subjectAltName).toBe('URI:herd://node/a, DNS:node-a.lan');
    expect(new X509Certificate((await issueNodeCert(ca, 'b', '[fd00::1]:7400')).cert).subjectAltName).toMatch(/^URI:herd:\/\/node\/b, IP Address:FD00:0:0:0:0:0:0:1$/i);
    await expect(issueNodeCert(ca, '../x', '1.2.3.4:1')).rejects.toThrow(/not valid/);
  });

  it('creates operator certificates with a role, key 0600 and a copy of ca.crt', async () => {
    const dir = tmp();
    await initCluster(dir, 'n1', '127.0.0.1:7400');
    const r = await createAdminCert(dir, 'alice', 'admin');
    const admins = join(dir, 'tls', 'admins');
    // init already put a copy of ca.crt in the default admins dir
    expect(r.files).toEqual([join(admins, 'alice.crt'), join(admins, 'alice.key')]);
    expect(readFileSync(join(admins, 'ca.crt'), 'utf8')).toBe(readFileSync(join(dir, 'tls', 'ca.crt'), 'utf8'));
    expect(mode(join(admins, 'alice.key'))).toBe(0o600);
    expect(identityOf(readFileSync(join(admins, 'alice.crt'), 'utf8'))).toEqual({ kind: 'admin', name: 'alice', role: 'admin' });

    const out = join(tmp(), 'ops');
    await createAdminCert(dir, 'bob', 'read-only', out);
    expect(identityOf(readFileSync(join(out, 'bob.crt')))).toEqual({ kind: 'admin', name: 'bob', role: 'read-only' });
    expect(existsSync(join(out, 'ca.crt'))).toBe(true);
    await expect(createAdminCert(dir, 'bob', 'admin', out)).rejects.toThrow(/exists/);
    await expect(createAdminCert(tmp(), 'carol', 'admin')).rejects.toThrow(/herd init/);
    await expect(issueAdminCert(loadCa(dir), 'dave', 'root' as never)).rejects.toThrow(/role/);
  });

  it('reads no identity from a certificate without exactly one herd URI', () => {
    expect(identityOf('not a certificate')).toBeUndefined();
    expect(identityOf({} as never)).toBeUndefined();
  });
});

// ---- a real mTLS round trip ----

const serialize = (v: unknown) => Buffer.from(JSON.stringify(v));
const deserialize = (b: Buffer) => JSON.parse(b.toString());
const WHO = {
  Who: { path: '/herd.test.Identity/Who', requestStream: false, responseStream: false, requestSerialize: serialize, requestDeserialize: deserialize, responseSerialize: serialize, responseDeserialize: deserialize },
} satisfies grpc.ServiceDefinition;
const WhoClient = grpc.makeGenericClientConstructor(WHO, 'Identity');

describe('mTLS with grpc-js', () => {
  let ca: CertAndKey;
  let server: grpc.Server;
  let address: string;
  let n2: CertAndKey;

  beforeAll(async () => {
    const dir = tmp();
    await initCluster(dir, 'n1', '127.0.0.1:7400');
    ca = loadCa(dir);
    const tls = readNodeMaterial(dir);
    n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:7401');
    server = new grpc.Server();
    server.addService(WHO, {
      Who: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { peer: peerIdentity(call) ?? null }),
    });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(tls.ca), [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => server?.forceShutdown());

  async function who(creds: grpc.ChannelCredentials): Promise<{ peer: PeerIdentity | null }> {
    const client = new WhoClient(address, creds);
    try {
      return await new Promise((resolve, reject) => (client as any).Who({}, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: any) => (err ? reject(err) : resolve(res))));
    } finally {
      client.close();
    }
  }
  const ssl = (c?: CertAndKey, opts?: grpc.VerifyOptions, caPem = ca.cert) =>
    grpc.credentials.createSsl(Buffer.from(caPem), c ? Buffer.from(c.key) : null, c ? Buffer.from(c.cert) : null, opts);
  const refused = (p: Promise<unknown>) => expect(p).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });

  it('a node certificate of the cluster gets through, and the server reads its node id', async () => {
    expect(await who(ssl(n2))).toEqual({ peer: { kind: 'node', nodeId: 'n2' } });
  });

  it('an operator certificate gets through with its name and role', async () => {
    const alice = await issueAdminCert(ca, 'alice', 'read-only');
    expect(await who(ssl(alice))).toEqual({ peer: { kind: 'admin', name: 'alice', role: 'read-only' } });
  });

  it('a client that expects the server to be n1 accepts it; one expecting another node refuses it', async () => {
    const asN2 = new ClusterTls({ ca: ca.cert, cert: n2.cert, key: n2.key });
    expect(await who(asN2.credentials('n1'))).toEqual({ peer: { kind: 'node', nodeId: 'n2' } });
    await refused(who(asN2.credentials('n3')));
  });

  it('refuses a client with no certificate', async () => {
    await refused(who(ssl()));
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const other = await createCa('other');
    const impostor = await issueNodeCert(other, 'n2', '127.0.0.1:7401');
    await refused(who(ssl(impostor)));
  });

  it('refuses an expired client certificate of the cluster', async () => {
    const expired = await issueNodeCert(ca, 'n2', '127.0.0.1:7401', { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    await refused(who(ssl(expired)));
  });

  it('refuses a plain-text client', async () => {
    await refused(who(grpc.credentials.createInsecure()));
  });

  it('the client refuses a server whose CA it does not trust', async () => {
    const other = await createCa('other');
    await refused(who(ssl(n2, undefined, other.cert)));
  });
});
