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
 * How the node uses them: docs/security.md.
 */
import { X509Certificate, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ID_PATTERN } from './validate';

import { ADMIN_URI_PREFIX, CA_HOLDER_URI_PREFIX, NODE_URI_PREFIX, ROLES, type Role } from './identity';
import { assertSans, checkSan, MAX_NAMES, sanEntries } from './sans';

export * from './identity';

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

export interface NodeCertOptions extends IssueOptions {
  /**
   * Host names and IP addresses the node is dialled by, besides its address's host
   * (common/sans.ts: localSans() on the node itself). Checked: DNS names and IPs only.
   */
  names?: readonly string[];
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

/**
 * A new cluster CA: a self-signed EC P-256 certificate that may sign only end-entity
 * certificates. `holder` (the node that keeps the key) is written into it as
 * `herd://ca-holder/<id>`, so any node knows where joins and renewals are signed.
 */
export async function createCa(clusterName = 'herd', opts: IssueOptions & { holder?: string } = {}): Promise<CertAndKey> {
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
      ...(opts.holder ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: CA_HOLDER_URI_PREFIX + opts.holder }])] : []),
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
  const keys = await newKeyPair();
  const cert = await signLeaf(ca, profile, keys.publicKey, opts);
  return { cert, key: await keyToPem(keys.privateKey) };
}

/** Signs a certificate of this profile for a public key (made here, or from a CSR). */
async function signLeaf(ca: CertAndKey, profile: LeafProfile, publicKey: webcrypto.CryptoKey, opts: IssueOptions): Promise<string> {
  const x509 = await lib();
  const caCert = new x509.X509Certificate(ca.cert);
  const signingKey = await pemToSigningKey(ca.key);
  const keys = { publicKey };
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
  return cert.toString('pem') + '\n';
}

function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i > 0 && /^\d{1,5}$/.test(address.slice(i + 1)) ? address.slice(0, i) : address;
  return host.replace(/^\[(.*)\]$/, '$1');
}

/**
 * A node certificate: CN and `herd://node/<nodeId>` name the node (the only thing that
 * says who it is); the address's host and `opts.names` are SAN IPs and DNS names so that
 * TLS host-name checks pass however the node is dialled. Usable as both server and client
 * certificate (every node is both).
 */
export async function issueNodeCert(ca: CertAndKey, nodeId: string, address: string, opts: NodeCertOptions = {}): Promise<CertAndKey> {
  return issueLeaf(ca, nodeProfile(nodeId, address, opts.names ?? []), opts);
}

function nodeProfile(nodeId: string, address: string, names: readonly string[]): LeafProfile {
  if (!ID_PATTERN.test(nodeId)) throw new PkiError(`node id "${nodeId}" is not valid: use 1-128 letters, digits, '.', '_' or '-'`);
  assertSans(names, (m) => new PkiError(m));
  const host = hostOf(address);
  const sans: LeafProfile['sans'] = [{ type: 'url', value: NODE_URI_PREFIX + nodeId }, ...sanEntries(host ? [host, ...names] : names)];
  return { subject: `CN=${nodeId}, O=herd`, sans, usages: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], days: 365 };
}

const SAN_OID = '2.5.29.17';

/**
 * A new key pair and a PKCS#10 request for it (PEM both): what a joining or renewing
 * node sends. The key never leaves the node; the CSR's signature proves it holds it.
 * `names` (DNS names and IPs the node is dialled by) travel as the request's subject
 * alternative names; the signer copies them after checking them (signNodeCsr).
 */
export async function createCsr(nodeId: string, names: readonly string[] = []): Promise<{ csr: string; key: string }> {
  assertSans(names, (m) => new PkiError(m));
  const x509 = await lib();
  const keys = await newKeyPair();
  const extensions = names.length ? [new x509.SubjectAlternativeNameExtension(sanEntries(names))] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${nodeId}, O=herd`, keys: keys as unknown as CryptoKeyPair, signingAlgorithm: SIGN, extensions });
  return { csr: csr.toString('pem') + '\n', key: await keyToPem(keys.privateKey) };
}

/** The DNS names and IPs a CSR asks for; anything else (a URI that could claim an identity, an e-mail) is refused. */
function requestedNames(x509: X509Lib, csr: InstanceType<X509Lib['Pkcs10CertificateRequest']>): string[] {
  const ext = csr.getExtension(SAN_OID);
  if (!ext) return [];
  const san = ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData);
  const names: string[] = [];
  for (const n of san.names.toJSON()) {
    if (n.type !== 'dns' && n.type !== 'ip') throw new PkiError(`the certificate signing request asks for a ${n.type} name ("${n.value}"): a node may ask only for DNS names and IP addresses (who it is comes from its token or its certificate)`);
    const bad = checkSan(n.value);
    if (bad) throw new PkiError(`the certificate signing request asks for a name that cannot be signed: ${bad}`);
    names.push(n.value);
  }
  if (names.length > MAX_NAMES) throw new PkiError(`the certificate signing request asks for ${names.length} names; at most ${MAX_NAMES}`);
  return names;
}

/**
 * A node certificate for the key in a CSR, after checking the CSR's self-signature. The
 * node id and address come from the caller (the token's request, or the renewing node's
 * verified certificate), never from the CSR's subject; the CSR's DNS and IP names are
 * copied (host-name checks only: the herd://node URI is the signer's, never the CSR's).
 */
export async function signNodeCsr(ca: CertAndKey, csrPem: string, nodeId: string, address: string, opts: IssueOptions = {}): Promise<string> {
  const x509 = await lib();
  let csr: InstanceType<X509Lib['Pkcs10CertificateRequest']>;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new PkiError(`the certificate signing request cannot be parsed: ${(err as Error).message}`);
  }
  if (!(await csr.verify())) throw new PkiError('the certificate signing request is not signed by its own key');
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new PkiError(`the request's key must be EC P-256, not ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}`);
  const names = requestedNames(x509, csr);
  const publicKey = await csr.publicKey.export(EC, ['verify'], webcrypto as unknown as Crypto);
  return signLeaf(ca, nodeProfile(nodeId, address, names), publicKey as unknown as webcrypto.CryptoKey, opts);
}

/** An operator's client certificate: `herd://admin/<name>`, role in OU. Client use only. */
export async function issueAdminCert(ca: CertAndKey, name: string, role: Role, opts: IssueOptions = {}): Promise<CertAndKey> {
  if (!ID_PATTERN.test(name)) throw new PkiError(`admin name "${name}" is not valid: use 1-128 letters, digits, '.', '_' or '-'`);
  if (!ROLES.includes(role)) throw new PkiError(`role "${role}" is not valid: ${ROLES.join(' or ')}`);
  return issueLeaf(ca, { subject: `CN=${name}, OU=${role}, O=herd`, sans: [{ type: 'url', value: ADMIN_URI_PREFIX + name }], usages: ['1.3.6.1.5.5.7.3.2'], days: 365 }, opts);
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
export async function initCluster(dataDir: string, nodeId: string, address: string, opts: { clusterName?: string; names?: readonly string[] } = {}): Promise<InitResult> {
  assertSans(opts.names ?? [], (m) => new PkiError(m)); // before anything is written
  const dir = tlsDir(dataDir);
  const paths = Object.fromEntries(Object.entries(TLS_FILES).map(([k, f]) => [k, join(dir, f)])) as Record<keyof typeof TLS_FILES, string>;
  for (const p of Object.values(paths)) if (existsSync(p)) throw new PkiError(`${p} exists: this node already belongs to a cluster (remove ${dir} to start a new one)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa(opts.clusterName, { holder: nodeId });
  const node = await issueNodeCert(ca, nodeId, address, { names: opts.names });
  writeSecret(paths.caKey, ca.key);
  writePublic(paths.caCert, ca.cert);
  writeSecret(paths.nodeKey, node.key);
  writePublic(paths.nodeCert, node.cert);
  // The operator certificate the herd commands use by default on this node.
  const local = await createAdminCert(dataDir, LOCAL_ADMIN, 'admin');
  return { dir, nodeId, address, caFingerprint: fingerprint(ca.cert), files: [paths.caCert, paths.caKey, paths.nodeCert, paths.nodeKey, ...local.files] };
}

/** The operator certificate `herd init` makes for the herd commands run on the CA node. */
export const LOCAL_ADMIN = 'local';

/**
 * `herd node-cert create`: a node certificate signed offline on the CA node, written with
 * ca.crt into outDir (e.g. the new node's `<dataDir>/tls`), for provisioning without a
 * join token (images, tests). `herd join` is the online way.
 */
export async function createNodeCertFiles(caDataDir: string, nodeId: string, address: string, outDir: string, opts: NodeCertOptions = {}): Promise<{ files: string[]; caFingerprint: string }> {
  assertSans(opts.names ?? [], (m) => new PkiError(m)); // before anything is read or written
  const ca = loadCa(caDataDir);
  const node = await issueNodeCert(ca, nodeId, address, opts);
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const certPath = join(outDir, TLS_FILES.nodeCert);
  const keyPath = join(outDir, TLS_FILES.nodeKey);
  if (existsSync(certPath) || existsSync(keyPath)) throw new PkiError(`${certPath} or ${keyPath} exists: that node already has a certificate`);
  writeSecret(keyPath, node.key);
  writePublic(certPath, node.cert);
  writePublic(join(outDir, TLS_FILES.caCert), ca.cert);
  return { files: [join(outDir, TLS_FILES.caCert), certPath, keyPath], caFingerprint: fingerprint(ca.cert) };
}

/**
 * `herd join`: writes what the join got into `<dataDir>/tls/` (mode 0700): node.key (0600,
 * O_EXCL: never replaces a key), node.crt and ca.crt. Refuses if node.key or node.crt is
 * there already. Returns the paths written.
 */
export function writeJoinedNodeFiles(dataDir: string, files: { caCert: string; nodeCert: string; nodeKey: string }): string[] {
  const dir = tlsDir(dataDir);
  const keyPath = join(dir, TLS_FILES.nodeKey);
  const certPath = join(dir, TLS_FILES.nodeCert);
  const caPath = join(dir, TLS_FILES.caCert);
  for (const p of [certPath, keyPath]) if (existsSync(p)) throw new PkiError(`${p} exists: this node already has a certificate`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeSecret(keyPath, files.nodeKey);
  writeFileSync(certPath, files.nodeCert, { mode: 0o644, flag: 'wx' });
  writePublic(caPath, files.caCert);
  return [caPath, certPath, keyPath];
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
