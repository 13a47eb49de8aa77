/**
 * The CA holder's side of joining: one-time join tokens and the signing of a joining
 * node's certificate. Exists only on the node whose `<dataDir>/tls/ca.key` is there
 * (`JoinSigner.open` returns undefined elsewhere). docs/security.md, "Joining a node".
 *
 * A token is `herd1.<CA fingerprint: 64 lowercase hex>.<secret: 32 random bytes, base64url>`.
 * The fingerprint lets the joiner check, before it sends anything, that the node it talks
 * to serves this cluster's CA; the secret proves to the CA holder that an operator allowed
 * the join. Only SHA-256(secret) is stored (LMDB `join-tokens`), with its expiry, who made
 * it, the node id it is bound to (if any), and once burnt when and by which node. Burnt
 * and expired entries are kept for 7 days after expiry so that a replay is told what
 * happened ("already used at T by node X") instead of "unknown".
 *
 * Which node ids may join: not the CA holder's own; not an id this CA holder signed a
 * certificate for that is still valid and has not been revoked since (`herd node remove`
 * first: otherwise a token would let anyone impersonate a live node); not a member the
 * election currently hears from. Ledger of signed ids: LMDB `join-issued`.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { SKEW_MS } from '../../common/identity';
import { fingerprint, loadCa, signNodeCsr, tlsDir, TLS_FILES } from '../../common/pki';
import { checkHostPort, checkId, RpcError, truncate } from '../../common/validate';

export const TOKEN_VERSION = 'herd1';
export const MIN_TTL_SECONDS = 1;
export const MAX_TTL_SECONDS = 7 * 86_400;
export const DEFAULT_TTL_SECONDS = 3600;
/** Burnt or expired tokens are remembered this long after their expiry, then forgotten. */
export const KEEP_EXPIRED_MS = 7 * 86_400_000;
/** Largest CSR accepted (a P-256 CSR is about 500 bytes of PEM). */
export const MAX_CSR_CHARS = 16 * 1024;

const SECRET_BYTES = 32;

export interface TokenRecord {
  created_ms: number;
  expires_ms: number;
  /** Who made it: "admin:alice", "node:n1", "insecure:<address>". */
  created_by: string;
  /** If set, only this node id may join with it. */
  node_id?: string;
  used_ms?: number;
  /** Node id that joined with it. */
  used_by?: string;
  used_address?: string;
  /** Node the joiner contacted, if it forwarded the join (else this node). */
  used_via?: string;
}

/** A certificate this CA holder signed through a join. */
export interface IssuedRecord {
  issued_ms: number;
  not_after_ms: number;
  serial: string;
  address: string;
}

export interface ParsedToken {
  /** The CA fingerprint, 64 lowercase hex. */
  fingerprintHex: string;
  secret: Buffer;
}

/** A token's parts, or why it is not a token (a message for a person). */
export function parseJoinToken(token: unknown): ParsedToken | string {
  if (typeof token !== 'string' || token === '') return 'no token given';
  const parts = token.split('.');
  if (parts[0] !== TOKEN_VERSION) return `the token does not start with "${TOKEN_VERSION}.": give the whole token \`herd token create\` printed`;
  if (parts.length !== 3) return `the token has ${parts.length} dot-separated parts, not 3 ("${TOKEN_VERSION}.<CA fingerprint>.<secret>"): it was cut or mangled in copying`;
  const [, fp, secret] = parts;
  if (!/^[0-9a-f]{64}$/.test(fp)) return 'the token\'s CA fingerprint is not 64 lowercase hex digits: it was cut or mangled in copying';
  if (!/^[A-Za-z0-9_-]{43}$/.test(secret)) return 'the token\'s secret is not 43 base64url characters: it was cut or mangled in copying';
  const bytes = Buffer.from(secret, 'base64url');
  if (bytes.length !== SECRET_BYTES || bytes.toString('base64url') !== secret) return 'the token\'s secret does not decode to 32 bytes: it was mangled in copying';
  return { fingerprintHex: fp, secret: bytes };
}

export function formatJoinToken(fingerprintHex: string, secret: Buffer): string {
  return `${TOKEN_VERSION}.${fingerprintHex}.${secret.toString('base64url')}`;
}

/** A certificate's SHA-256 fingerprint as the token carries it: 64 lowercase hex, no colons. PEM (string or Buffer) or DER. */
export function fingerprintHex(cert: string | Buffer): string {
  const pem = typeof cert === 'string' || cert.subarray(0, 11).toString('latin1') === '-----BEGIN ';
  return fingerprint(pem ? cert.toString() : cert).replace(/:/g, '').toLowerCase();
}

/** "AB:CD:..." from 64 hex digits (how `openssl x509 -fingerprint -sha256` prints it). */
export function colonFingerprint(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(':');
}

const iso = (ms: number) => new Date(ms).toISOString();
const unauthenticated = (msg: string) => new RpcError(grpc.status.UNAUTHENTICATED, msg);
const invalid = (msg: string) => new RpcError(grpc.status.INVALID_ARGUMENT, msg);
const precondition = (msg: string) => new RpcError(grpc.status.FAILED_PRECONDITION, msg);
const denied = (msg: string) => new RpcError(grpc.status.PERMISSION_DENIED, msg);

export interface SignerOptions {
  /** This node's id: the CA holder. */
  nodeId: string;
  dataDir: string;
  /** Lifetime of the certificates it signs (settings.tls.nodeCertTtlSeconds). */
  nodeCertTtlSeconds: number;
  clock?: () => number;
  /** When the node's certificates were last revoked (RevocationStore), if ever. */
  revokedAt?: (nodeId: string) => number | undefined;
  /** Why this id is taken by a live member (e.g. the election hears from it), if it is. */
  liveMember?: (nodeId: string) => string | undefined;
}

export interface CreateTokenRequest {
  ttlSeconds?: number;
  nodeId?: string;
  by: string;
}

export interface CreatedToken {
  token: string;
  expires_ms: number;
  /** Colon-separated upper-case hex. */
  ca_fingerprint: string;
}

export interface RedeemRequest {
  token: string;
  nodeId: string;
  address: string;
  csrPem: string;
  /** The node the joiner contacted, when it forwarded the request here. */
  via?: string;
}

export interface Redeemed {
  nodeCertPem: string;
  caCertPem: string;
  signedBy: string;
}

export class JoinSigner {
  private readonly tokens: Database<TokenRecord, string>;
  private readonly issued: Database<IssuedRecord, string>;
  private readonly now: () => number;

  /** The signer if this node holds the CA key (`<dataDir>/tls/ca.key`), else undefined. */
  static open(env: Env, opts: SignerOptions): JoinSigner | undefined {
    return existsSync(join(tlsDir(opts.dataDir), TLS_FILES.caKey)) ? new JoinSigner(env, opts) : undefined;
  }

  constructor(
    env: Env,
    private readonly opts: SignerOptions,
  ) {
    this.tokens = env.openDB<TokenRecord, string>({ name: 'join-tokens' });
    this.issued = env.openDB<IssuedRecord, string>({ name: 'join-issued' });
    this.now = opts.clock ?? Date.now;
    void this.prune().catch(() => {});
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  /** The cluster CA certificate (PEM, as in ca.crt) and its fingerprint as 64 hex digits. */
  ca(): { certPem: string; fingerprintHex: string } {
    const { cert } = loadCa(this.opts.dataDir);
    return { certPem: cert, fingerprintHex: fingerprintHex(cert) };
  }

  /** A new one-time token; only its hash is kept. */
  async createToken(req: CreateTokenRequest): Promise<CreatedToken> {
    const ttl = req.ttlSeconds === undefined || req.ttlSeconds === 0 ? DEFAULT_TTL_SECONDS : req.ttlSeconds;
    if (!Number.isInteger(ttl) || ttl < MIN_TTL_SECONDS || ttl > MAX_TTL_SECONDS) {
      throw invalid(`ttl_seconds must be a whole number of seconds from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS} (7 days), or 0 for ${DEFAULT_TTL_SECONDS}; got ${truncate(String(req.ttlSeconds))}`);
    }
    if (req.nodeId) {
      const bad = checkId('node_id', req.nodeId);
      if (bad) throw invalid(bad);
      const taken = this.whyTaken(req.nodeId);
      if (taken) throw taken;
    }
    const { fingerprintHex: fp } = this.ca();
    const secret = randomBytes(SECRET_BYTES);
    const now = this.now();
    const record: TokenRecord = { created_ms: now, expires_ms: now + ttl * 1000, created_by: req.by, ...(req.nodeId ? { node_id: req.nodeId } : {}) };
    await this.prune();
    await this.tokens.put(hashOf(secret), record);
    return { token: formatJoinToken(fp, secret), expires_ms: record.expires_ms, ca_fingerprint: colonFingerprint(fp) };
  }

  /**
   * Checks the token and the request, signs, and burns the token in one LMDB write
   * transaction: of two redeems of one token exactly one gets a certificate. A refused
   * request leaves the token as it was (a typo in the node id does not cost the token).
   */
  async redeem(req: RedeemRequest): Promise<Redeemed> {
    const bad = checkId('node_id', req.nodeId) ?? checkHostPort('address', req.address);
    if (bad) throw invalid(bad);
    if (typeof req.csrPem !== 'string' || req.csrPem.trim() === '') throw invalid('csr_pem is required: a PKCS#10 certificate signing request (PEM) for the joining node\'s key');
    if (req.csrPem.length > MAX_CSR_CHARS) throw invalid(`csr_pem is ${req.csrPem.length} characters; a node's request is under ${MAX_CSR_CHARS}`);
    if (!req.csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw invalid('csr_pem is not a PEM certificate signing request (no "-----BEGIN CERTIFICATE REQUEST-----" line)');
    if (typeof req.token !== 'string' || req.token === '') throw invalid('token is required: the one `herd token create` printed');
    const parsed = parseJoinToken(req.token);
    if (typeof parsed === 'string') throw unauthenticated(`bad join token: ${parsed}`);
    const ca = this.ca();
    if (parsed.fingerprintHex !== ca.fingerprintHex) {
      throw unauthenticated(
        `the join token is for the cluster whose CA has fingerprint ${colonFingerprint(parsed.fingerprintHex)}, but this cluster's CA has fingerprint ${colonFingerprint(ca.fingerprintHex)}: get a token from this cluster (\`herd token create\` on ${this.opts.nodeId})`,
      );
    }
    const key = hashOf(parsed.secret);
    // Cheap checks first, so that a bad token costs no signature; repeated in the transaction.
    const refusal = this.checkToken(this.tokens.get(key), req.nodeId) ?? this.whyTaken(req.nodeId);
    if (refusal) throw refusal;

    const now = this.now();
    let certPem: string;
    try {
      certPem = await signNodeCsr({ cert: ca.certPem, key: loadCa(this.opts.dataDir).key }, req.csrPem, req.nodeId, req.address, {
        notAfter: new Date(now + this.opts.nodeCertTtlSeconds * 1000),
      });
    } catch (err) {
      if ((err as Error)?.name === 'PkiError') throw invalid((err as Error).message);
      throw err;
    }
    const cert = new X509Certificate(certPem);
    const outcome = await this.tokens.transaction(() => {
      const why = this.checkToken(this.tokens.get(key), req.nodeId) ?? this.whyTaken(req.nodeId);
      if (why) return why;
      const rec = this.tokens.get(key)!;
      void this.tokens.put(key, { ...rec, used_ms: now, used_by: req.nodeId, used_address: req.address, used_via: req.via ?? this.opts.nodeId });
      void this.issued.put(req.nodeId, issuedRecord(cert, req.address));
      return undefined;
    });
    if (outcome) throw outcome;
    return { nodeCertPem: certPem, caCertPem: ca.certPem, signedBy: this.opts.nodeId };
  }

  /**
   * Notes a certificate signed for a node another way (e.g. a renewal), so that the id
   * stays taken for joins as long as its newest certificate is valid.
   */
  async recordIssued(nodeId: string, certPem: string, address: string): Promise<void> {
    const cert = new X509Certificate(certPem);
    const rec = issuedRecord(cert, address);
    await this.issued.transaction(() => {
      const have = this.issued.get(nodeId);
      if (!have || have.not_after_ms <= rec.not_after_ms) void this.issued.put(nodeId, rec);
    });
  }

  /** What this signer knows of a token (for tests and diagnostics); the argument is the whole token. */
  lookup(token: string): TokenRecord | undefined {
    const p = parseJoinToken(token);
    return typeof p === 'string' ? undefined : this.tokens.get(hashOf(p.secret));
  }

  /** Forgets tokens that expired more than 7 days ago. Returns how many. */
  async prune(): Promise<number> {
    const cutoff = this.now() - KEEP_EXPIRED_MS;
    const old: string[] = [];
    for (const { key, value } of this.tokens.getRange()) if (value.expires_ms < cutoff) old.push(key);
    if (old.length) await this.tokens.transaction(() => old.forEach((k) => void this.tokens.remove(k)));
    return old.length;
  }

  private checkToken(rec: TokenRecord | undefined, nodeId: string): RpcError | undefined {
    if (!rec) {
      return unauthenticated(
        `this cluster does not know the join token (never issued by ${this.opts.nodeId}, or expired more than 7 days ago and forgotten): create one with \`herd token create\``,
      );
    }
    if (rec.used_ms !== undefined) {
      return unauthenticated(
        `the join token was already used at ${iso(rec.used_ms)} by node "${rec.used_by}"${rec.used_address ? ` (${rec.used_address})` : ''}: tokens are one-time, create another with \`herd token create\``,
      );
    }
    const now = this.now();
    if (now >= rec.expires_ms) {
      return unauthenticated(`the join token expired at ${iso(rec.expires_ms)} (${Math.round((now - rec.expires_ms) / 1000)} s ago): create another with \`herd token create\` (--ttl sets how long it lasts)`);
    }
    if (rec.node_id && rec.node_id !== nodeId) {
      return unauthenticated(`the join token is only for node "${rec.node_id}", not "${nodeId}": join with --node-id ${rec.node_id}, or create a token for "${nodeId}"`);
    }
    return undefined;
  }

  /** Why a node id may not join (taken), or undefined. */
  private whyTaken(nodeId: string): RpcError | undefined {
    if (nodeId === this.opts.nodeId) {
      return denied(`node id "${nodeId}" is the CA holder's own: a joining node needs an id of its own (--node-id)`);
    }
    const issued = this.issued.get(nodeId);
    const now = this.now();
    if (issued && issued.not_after_ms > now) {
      const revoked = this.opts.revokedAt?.(nodeId);
      if (revoked === undefined || revoked < issued.issued_ms) {
        return precondition(
          `node "${nodeId}" already has a certificate (signed at ${iso(issued.issued_ms - SKEW_MS)} for ${issued.address}, valid until ${iso(issued.not_after_ms)}): to give the id to a new machine, remove the old one first (\`herd node remove ${nodeId}\`), or join with another --node-id`,
        );
      }
    }
    const live = this.opts.liveMember?.(nodeId);
    if (live) return precondition(`node "${nodeId}" is a live member of the cluster (${live}): join with another --node-id, or \`herd node remove ${nodeId}\` first`);
    return undefined;
  }
}

function issuedRecord(cert: X509Certificate, address: string): IssuedRecord {
  return { issued_ms: Date.parse(cert.validFrom) + SKEW_MS, not_after_ms: Date.parse(cert.validTo), serial: cert.serialNumber, address };
}

function hashOf(secret: Buffer): string {
  return createHash('sha256').update(secret).digest('hex');
}
