/**
 * Who a verified certificate names, and the check that it was issued by this cluster.
 * Kept apart from pki.ts (which makes certificates with @peculiar/x509) so that the
 * per-call path loads nothing but Node's own crypto.X509Certificate.
 *
 * Identities live in the subject alternative name as URIs:
 *   - a node:      `herd://node/<nodeId>`
 *   - an operator: `herd://admin/<name>`, role in the subject's OU (`read-only` or `admin`)
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { ID_PATTERN } from './validate';

export type Role = 'read-only' | 'admin';
export const ROLES: readonly Role[] = ['read-only', 'admin'];

export type PeerIdentity = { kind: 'node'; nodeId: string } | { kind: 'admin'; name: string; role: Role };

export const NODE_URI_PREFIX = 'herd://node/';
export const ADMIN_URI_PREFIX = 'herd://admin/';
export const CA_HOLDER_URI_PREFIX = 'herd://ca-holder/';

/** The node that keeps the CA key, as the CA certificate names it (`herd init` writes it). */
export function caHolderOf(ca: X509Certificate): string | undefined {
  const m = /URI:"?herd:\/\/ca-holder\/([A-Za-z0-9._-]+)/.exec(ca.subjectAltName ?? '');
  return m?.[1];
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



/** The clock-skew allowance the issuer subtracts from notBefore (pki.ts), added back to date an issue. */
export const SKEW_MS = 5 * 60_000;

/** When a certificate was issued, as the issuer meant it: notBefore plus the skew allowance. */
export function issuedAt(cert: X509Certificate): number {
  return Date.parse(cert.validFrom) + SKEW_MS;
}

/** Every certificate in a PEM bundle (ca.crt may hold the old and the new CA during a CA rotation). */
export function parseBundle(pem: string | Buffer): X509Certificate[] {
  const text = String(pem);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

const describe = (id: PeerIdentity | undefined, x: X509Certificate) =>
  id ? (id.kind === 'node' ? `node "${id.nodeId}"` : `operator "${id.name}"`) : `"${x.subject.replace(/\n/g, ', ')}"`;

/**
 * Checks a presented certificate the way the TLS layer would (issued and signed by one of
 * the cluster's CAs, inside its validity window) and reads its herd identity. Servers ask
 * for client certificates without letting TLS reject them, so that a refusal reaches the
 * caller as a gRPC status with this message instead of a bare handshake failure.
 * Returns the identity, or the reason it is refused.
 */
export function verifyPeer(cert: X509Certificate, cas: readonly X509Certificate[], now = Date.now()): PeerIdentity | string {
  const id = identityOf(cert);
  const who = describe(id, cert);
  const ca = cas.find((c) => cert.checkIssued(c) && safeVerify(cert, c));
  if (!ca) return `the certificate of ${who} was not issued by this cluster's CA (it names issuer "${cert.issuer.replace(/\n/g, ', ')}")`;
  if (now < Date.parse(cert.validFrom)) return `the certificate of ${who} is not valid before ${new Date(cert.validFrom).toISOString()}`;
  if (now > Date.parse(cert.validTo)) return `the certificate of ${who} expired at ${new Date(cert.validTo).toISOString()}`;
  if (!id) return `the certificate ${who} names no herd identity (herd://node/ID or herd://admin/NAME)`;
  return id;
}

function safeVerify(cert: X509Certificate, ca: X509Certificate): boolean {
  try {
    return cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** "node:n1", "admin:alice": how logs and the audit trail name a caller. */
export function principal(id: PeerIdentity): string {
  return id.kind === 'node' ? `node:${id.nodeId}` : `admin:${id.name}`;
}
