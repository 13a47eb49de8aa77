/**
 * The cluster's PKI: a cluster CA (EC P-256), node certificates and operator (admin)
 * certificates, kept as PEM files in `<dataDir>/tls/`, and the identity a presented
 * certificate carries.
 *
 * Identities live in the subject alternative name as URIs, so that they are checked from
 * a certificate the TLS layer has already verified against the cluster CA:
 *   - a node:     `herd://node/<nodeId>`  (CN = nodeId; SAN IP/DNS = its address's host)
 *   - an operator: `herd://admin/<name>`  (CN = name; OU = role, `read-only` or `admin`)
 *
 * X.509 creation uses @peculiar/x509 on Node's WebCrypto (pure JS; node-forge cannot make
 * EC certificates). Parsing a peer's certificate uses Node's own crypto.X509Certificate,
 * so the handshake path does not load the library. @peculiar/x509 needs a Reflect
 * polyfill (tsyringe); it is loaded lazily, with reflect-metadata first, by `lib()`.
 *
 * Nothing here is used by `herd agent` yet: see docs/security.md.
 */
import { X509Certificate, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { ID_PATTERN } from './validate';

export type Role = 'read-only' | 'admin';
export const ROLES: readonly Role[] = ['read-only', 'admin'];

export type PeerIdentity = { kind: 'node'; nodeId: string } | { kind: 'admin'; name: string; role: Role };

export const NODE_URI_PREFIX = 'herd://node/';
export const ADMIN_URI_PREFIX = 'herd://admin/';

/** File names inside `<dataDir>/tls/`. */
export const TLS_FILES = { caCert: 'ca.crt', caKey: 'ca.key', nodeCert: 'node.crt', nodeKey: 'node.key' } as const;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export class PkiError extends Error {
  override name = 'PkiError';
}

type X509Lib = typeof import('@peculiar/x509');
let libPromise: Promise<X509Lib> | undefined;

/** @peculiar/x509, loaded once, on Node's WebCrypto. */
function lib(): Promise<X509Lib> {
  libPromise ??= (async () => {
    await import('reflect-metadata'); // tsyringe (under @peculiar/x509) throws at load without a Reflect polyfill
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return libPromise;
}

/** A certificate and its private key, both PEM. */
export interface CertAndKey {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Validity start; default: now less 5 minutes (clock skew between nodes). */
  notBefore?: Date;
  /** Validity end; default: per kind (CA 10 years, node 1 year, admin 1 year). */
  notAfter?: Date;
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function keyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

async function pemToSigningKey(pem: string): Promise<webcrypto.CryptoKey> {
  // createPrivateKey also reads SEC1 ("EC PRIVATE KEY") PEM, e.g. a CA made by openssl.
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive
  b[0] |= 0x01; // and no leading zero byte to strip
  return b.toString('hex');
}

function window(opts: IssueOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = opts.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const notAfter = opts.notAfter ?? new Date(Date.now() + defaultDays * DAY_MS);
  return { notBefore, notAfter };
}

/** SHA-256 of a certificate's DER, as colon-separated upper-case hex (what `openssl x509 -fingerprint -sha256` prints). */
export function fingerprint(certPem: string | Buffer): string {
  const der = typeof certPem === 'string' ? new X509Certificate(certPem).raw : certPem;
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/** A new cluster CA: a self-signed EC P-256 certificate that may sign only end-entity certificates. */
export async function createCa(clusterName = 'herd', opts: IssueOptions = {}): Promise<CertAndKey> {
  const x509 = await lib();
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${clusterName} cluster CA, O=herd`,
    ...window(opts, 3650),
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyToPem(keys.privateKey) };
}

interface LeafProfile {
  subject: string;
  sans: { type: 'url' | 'ip' | 'dns'; value: string }[];
  usages: string[];
  days: number;
}

async function issueLeaf(ca: CertAndKey, profile: LeafProfile, opts: IssueOptions): Promise<CertAndKey> {
  const x509 = await lib();
  const caCert = new x509.X509Certificate(ca.cert);
  const signingKey = await pemToSigningKey(ca.key);
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: profile.subject,
    issuer: caCert.subject,
    ...window(opts, profile.days),
    publicKey: keys.publicKey as unknown as CryptoKey,
    signingKey: signingKey as unknown as CryptoKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(profile.usages),
      new x509.SubjectAlternativeNameExtension(profile.sans),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyToPem(keys.privateKey) };
}

function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i > 0 && /^\d{1,5}$/.test(address.slice(i + 1)) ? address.slice(0, i) : address;
  return host.replace(/^\[(.*)\]$/, '$1');
}

/**
 * A node certificate: CN and `herd://node/<nodeId>` name the node; the address's host is
 * a SAN IP (or DNS) so that TLS host-name checks pass when a peer dials that address.
 * Usable as both server and client certificate (every node is both).
 */
export async function issueNodeCert(ca: CertAndKey, nodeId: string, address: string, opts: IssueOptions = {}): Promise<CertAndKey> {
  if (!ID_PATTERN.test(nodeId)) throw new PkiError(`node id "${nodeId}" is not valid: use 1-128 letters, digits, '.', '_' or '-'`);
  const host = hostOf(address);
  const sans: LeafProfile['sans'] = [{ type: 'url', value: NODE_URI_PREFIX + nodeId }];
  if (host) sans.push({ type: isIP(host) ? 'ip' : 'dns', value: host });
  return issueLeaf(ca, { subject: `CN=${nodeId}, O=herd`, sans, usages: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], days: 365 }, opts);
}

/** An operator's client certificate: `herd://admin/<name>`, role in OU. Client use only. */
export async function issueAdminCert(ca: CertAndKey, name: string, role: Role, opts: IssueOptions = {}): Promise<CertAndKey> {
  if (!ID_PATTERN.test(name)) throw new PkiError(`admin name "${name}" is not valid: use 1-128 letters, digits, '.', '_' or '-'`);
  if (!ROLES.includes(role)) throw new PkiError(`role "${role}" is not valid: ${ROLES.join(' or ')}`);
  return issueLeaf(ca, { subject: `CN=${name}, OU=${role}, O=herd`, sans: [{ type: 'url', value: ADMIN_URI_PREFIX + name }], usages: ['1.3.6.1.5.5.7.3.2'], days: 365 }, opts);
}

/**
 * The herd identity a certificate names, or undefined if it names none (or is malformed).
 * It does not verify the chain: call it on a certificate TLS has verified against the
 * cluster CA (a gRPC server with checkClientCertificate, or a client's checkServerIdentity).
 */
export function identityOf(cert: string | Buffer | X509Certificate | PeerCertificate): PeerIdentity | undefined {
  let x: X509Certificate;
  try {
    if (cert instanceof X509Certificate) x = cert;
    else if (typeof cert === 'string' || Buffer.isBuffer(cert)) x = new X509Certificate(cert);
    else if (cert && Buffer.isBuffer((cert as PeerCertificate).raw)) x = new X509Certificate((cert as PeerCertificate).raw);
    else return undefined;
  } catch {
    return undefined;
  }
  const uris = (x.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4).replace(/^"(.*)"$/, '$1'));
  const herd = uris.filter((u) => u.startsWith(NODE_URI_PREFIX) || u.startsWith(ADMIN_URI_PREFIX));
  if (herd.length !== 1) return undefined; // none, or ambiguous: trust neither
  const u = herd[0];
  if (u.startsWith(NODE_URI_PREFIX)) {
    const nodeId = u.slice(NODE_URI_PREFIX.length);
    return ID_PATTERN.test(nodeId) ? { kind: 'node', nodeId } : undefined;
  }
  const name = u.slice(ADMIN_URI_PREFIX.length);
  const ous = x.subject.split('\n').filter((l) => l.startsWith('OU=')).map((l) => l.slice(3));
  if (!ID_PATTERN.test(name) || ous.length !== 1 || !ROLES.includes(ous[0] as Role)) return undefined;
  return { kind: 'admin', name, role: ous[0] as Role };
}

/**
 * The identity of the peer of a gRPC call, from `call.getAuthContext()` (grpc-js >= 1.10):
 * undefined on a plain-text channel or when the client showed no certificate.
 */
export function peerIdentity(call: { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null }): PeerIdentity | undefined {
  const cert = call.getAuthContext?.()?.sslPeerCertificate;
  return cert && cert.raw ? identityOf(cert) : undefined;
}

/**
 * A checkServerIdentity for grpc.credentials.createSsl that accepts the server only if its
 * (already CA-verified) certificate names the expected node: a node that dials peer B at
 * B's address must not be answered by C. Returns an Error to refuse, as tls expects.
 */
export function expectNode(nodeId: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const id = identityOf(cert);
    if (id?.kind === 'node' && id.nodeId === nodeId) return undefined;
    return new Error(`peer certificate names ${id ? (id.kind === 'node' ? `node "${id.nodeId}"` : `admin "${id.name}"`) : 'no herd identity'}, not node "${nodeId}"`);
  };
}

// ---- files in <dataDir>/tls ----

export function tlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600, flag: 'wx' }); // wx: never replace an existing key
  chmodSync(path, 0o600); // the mode option is masked by the umask
}

function writePublic(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o644 });
}

export interface InitResult {
  dir: string;
  nodeId: string;
  address: string;
  caFingerprint: string;
  files: string[];
}

/**
 * `herd init`: a new cluster CA and this node's certificate in `<dataDir>/tls/`.
 * Refuses if a CA is already there (a second init would split the cluster).
 */
export async function initCluster(dataDir: string, nodeId: string, address: string, opts: { clusterName?: string } = {}): Promise<InitResult> {
  const dir = tlsDir(dataDir);
  const paths = Object.fromEntries(Object.entries(TLS_FILES).map(([k, f]) => [k, join(dir, f)])) as Record<keyof typeof TLS_FILES, string>;
  for (const p of Object.values(paths)) if (existsSync(p)) throw new PkiError(`${p} exists: this node already belongs to a cluster (remove ${dir} to start a new one)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa(opts.clusterName);
  const node = await issueNodeCert(ca, nodeId, address);
  writeSecret(paths.caKey, ca.key);
  writePublic(paths.caCert, ca.cert);
  writeSecret(paths.nodeKey, node.key);
  writePublic(paths.nodeCert, node.cert);
  return { dir, nodeId, address, caFingerprint: fingerprint(ca.cert), files: [paths.caCert, paths.caKey, paths.nodeCert, paths.nodeKey] };
}

/** The cluster CA kept in `<dataDir>/tls/` (the key is there only on the node that ran `herd init`). */
export function loadCa(dataDir: string): CertAndKey {
  const dir = tlsDir(dataDir);
  const certPath = join(dir, TLS_FILES.caCert);
  const keyPath = join(dir, TLS_FILES.caKey);
  if (!existsSync(certPath)) throw new PkiError(`no cluster CA at ${certPath}: run \`herd init\` first`);
  if (!existsSync(keyPath)) throw new PkiError(`${keyPath} is missing: certificates are signed on the node that ran \`herd init\``);
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

/** This node's TLS material, as Buffers for grpc.ServerCredentials.createSsl / grpc.credentials.createSsl. */
export function loadNodeTls(dataDir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const dir = tlsDir(dataDir);
  const read = (f: string) => {
    const p = join(dir, f);
    if (!existsSync(p)) throw new PkiError(`${p} is missing: run \`herd init\` (or, later, \`herd join\`)`);
    return readFileSync(p);
  };
  return { ca: read(TLS_FILES.caCert), cert: read(TLS_FILES.nodeCert), key: read(TLS_FILES.nodeKey) };
}

/** `herd admin-cert create`: an operator certificate and key in outDir (default `<dataDir>/tls/admins`), with a copy of ca.crt. */
export async function createAdminCert(dataDir: string, name: string, role: Role, outDir?: string): Promise<{ files: string[]; caFingerprint: string }> {
  const ca = loadCa(dataDir);
  const admin = await issueAdminCert(ca, name, role);
  const dir = outDir ?? join(tlsDir(dataDir), 'admins');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  if (existsSync(certPath) || existsSync(keyPath)) throw new PkiError(`${certPath} or ${keyPath} exists: remove it or choose another name or --out`);
  writeSecret(keyPath, admin.key);
  writePublic(certPath, admin.cert);
  const files = [certPath, keyPath];
  const caCopy = join(dir, TLS_FILES.caCert);
  if (!existsSync(caCopy)) {
    writePublic(caCopy, ca.cert);
    files.push(caCopy);
  }
  return { files, caFingerprint: fingerprint(ca.cert) };
}
