/**
 * Node certificates renew themselves before they expire, without a restart.
 *
 *   - the handler (Peer.RenewCertificate) runs on every node but signs only where the
 *     cluster CA key is (`<dataDir>/tls/ca.key`); elsewhere it says which node holds it.
 *     The caller's identity comes from the certificate it connected with (verified and
 *     checked against the revocation list by the authorizer), never from the request.
 *   - the renewer runs on every TLS node: once less than `tls.renewBeforeFraction` of its
 *     certificate's lifetime is left it makes a new key and a CSR, has the CA holder sign
 *     it (the holder signs its own locally), checks the answer, writes node.crt/node.key
 *     and pushes them into the running transport (ClusterTls.reload): the server uses the
 *     new certificate for new handshakes, clients made afterwards present it. A failure
 *     is logged and retried at the next check; it never stops the node.
 *
 * docs/security.md, "Rotation".
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SKEW_MS, caHolderOf, identityOf, peerIdentity } from '../../common/identity';
import { cleanDetails } from '../../common/grpc-text';
import { logger } from '../../common/log';
import { loadProtos } from '../../common/proto';
import { ClusterTls, type Transport } from '../../common/transport';
import { checkHostPort, failedPrecondition, invalid, permissionDenied, unary } from '../../common/validate';

const log = logger('renewal');

const CA_KEY = 'ca.key';
const NODE_CERT = 'node.crt';
const NODE_KEY = 'node.key';
/** Suffix of the files a renewal writes before renaming them into place. */
const NEXT = '.next';
const MAX_CSR_BYTES = 16 * 1024;
const RENEW_DEADLINE_MS = 15_000;

// ------------------------------------------------------------------ when

export interface RenewalDecision {
  /** Renew now. */
  due: boolean;
  /** Time left until the certificate expires, ms (negative once it has). */
  remainingMs: number;
  /** The lifetime the issuer meant (notAfter less the issue time), ms. */
  lifetimeMs: number;
  /** When renewing becomes due, ms since the epoch. */
  renewAtMs: number;
}

/**
 * Whether a certificate valid from notBeforeMs to notAfterMs should be renewed at `now`:
 * once less than `fraction` of its lifetime is left. Herd's issuer back-dates notBefore by
 * the clock-skew allowance (SKEW_MS), so the lifetime counts from notBefore + SKEW_MS (the
 * issue time) when that is still before notAfter; otherwise from notBefore.
 */
export function renewalDecision(validity: { notBeforeMs: number; notAfterMs: number }, now: number, fraction: number): RenewalDecision {
  const { notBeforeMs, notAfterMs } = validity;
  const issued = notBeforeMs + SKEW_MS < notAfterMs ? notBeforeMs + SKEW_MS : notBeforeMs;
  const lifetimeMs = Math.max(0, notAfterMs - issued);
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const renewAtMs = notAfterMs - f * lifetimeMs;
  return { due: now >= renewAtMs, remainingMs: notAfterMs - now, lifetimeMs, renewAtMs };
}

export function validityOf(cert: X509Certificate): { notBeforeMs: number; notAfterMs: number } {
  return { notBeforeMs: Date.parse(cert.validFrom), notAfterMs: Date.parse(cert.validTo) };
}

// ------------------------------------------------------------------ the CA holder's side

export interface RenewalHandlerOptions {
  nodeId: string;
  dataDir: string;
  transport: Transport;
  /** Lifetime of the certificates this node signs (settings.tls.nodeCertTtlSeconds). */
  ttlSeconds: number;
  clock?: () => number;
}

/** Peer.RenewCertificate, to spread into the Peer service. */
export function renewalHandlers(opts: RenewalHandlerOptions): grpc.UntypedServiceImplementation {
  const now = opts.clock ?? Date.now;
  return {
    RenewCertificate: unary<any, any>(
      'RenewCertificate',
      async (req, call) => {
        const caller = opts.transport.secure ? peerIdentity(call) : undefined;
        if (!caller) throw failedPrecondition('renewal needs mTLS: the caller is identified by the node certificate it connects with, and this connection has none (plain text or no client certificate)');
        if (caller.kind !== 'node') throw permissionDenied(`operator "${caller.name}" has no node certificate to renew`);
        const bad = checkHostPort('address', req.address);
        if (bad) throw invalid(bad);
        if (typeof req.csr_pem !== 'string' || !req.csr_pem.includes('CERTIFICATE REQUEST')) throw invalid('csr_pem must be a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)');
        if (req.csr_pem.length > MAX_CSR_BYTES) throw invalid(`csr_pem is longer than ${MAX_CSR_BYTES} bytes`);
        if (!existsSync(join(opts.dataDir, 'tls', CA_KEY))) {
          const holder = caHolder(opts.transport);
          throw failedPrecondition(`node ${opts.nodeId} does not hold the cluster CA key: certificates are renewed by ${holder ? `node "${holder}"` : 'the node that ran `herd init` (the CA certificate names no holder)'}`);
        }
        const { loadCa, signNodeCsr } = await import('../../common/pki');
        let cert: string;
        let caCert: string;
        try {
          const ca = loadCa(opts.dataDir);
          caCert = ca.cert;
          cert = await signNodeCsr(ca, req.csr_pem, caller.nodeId, req.address, { notAfter: new Date(now() + opts.ttlSeconds * 1000) });
        } catch (err) {
          if ((err as Error)?.name === 'PkiError') throw invalid((err as Error).message);
          throw err;
        }
        const x = new X509Certificate(cert);
        log.info('signed a renewed node certificate', { node: caller.nodeId, address: req.address, serial: x.serialNumber, not_after: new Date(x.validTo).toISOString() });
        return { node_cert_pem: cert, ca_cert_pem: caCert };
      },
      (name, err) => log.error(`${name} failed`, { error: err }),
    ),
  };
}

/** The node the CA certificate that issued this node's certificate names as its key holder. */
function caHolder(transport: Transport): string | undefined {
  if (!(transport instanceof ClusterTls)) return undefined;
  const own = transport.certificate;
  const ca = transport.caCertificates.find((c) => own.checkIssued(c)) ?? transport.caCertificates[0];
  return ca && caHolderOf(ca);
}

// ------------------------------------------------------------------ checking and storing the answer

export class RenewalError extends Error {
  override name = 'RenewalError';
}

/**
 * Why a renewed certificate must not be used, or undefined: it must be issued and signed
 * by one of the cluster CAs, name this node, be for the key just made, and be valid now.
 */
export function checkRenewed(certPem: string, keyPem: string, cas: readonly X509Certificate[], nodeId: string, now = Date.now()): string | undefined {
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
  } catch (err) {
    return `the answer is not a certificate: ${(err as Error).message}`;
  }
  if (!cas.some((ca) => x.checkIssued(ca) && safeVerify(x, ca))) return `the certificate was not issued by this cluster's CA (issuer "${x.issuer.replace(/\n/g, ', ')}")`;
  const id = identityOf(x);
  if (id?.kind !== 'node' || id.nodeId !== nodeId) return `the certificate names ${id ? (id.kind === 'node' ? `node "${id.nodeId}"` : `operator "${id.name}"`) : 'no herd identity'}, not this node ("${nodeId}")`;
  try {
    if (!x.checkPrivateKey(createPrivateKey(keyPem))) return 'the certificate is not for the key this node just made';
  } catch (err) {
    return `the key cannot be checked against the certificate: ${(err as Error).message}`;
  }
  if (now > Date.parse(x.validTo)) return `the certificate expired at ${new Date(x.validTo).toISOString()}`;
  if (now + SKEW_MS < Date.parse(x.validFrom)) return `the certificate is not valid before ${new Date(x.validFrom).toISOString()}`;
  return undefined;
}

function safeVerify(cert: X509Certificate, ca: X509Certificate): boolean {
  try {
    return cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

function writeDurable(path: string, text: string, mode: number): void {
  const fd = openSync(path, 'w', mode);
  try {
    fchmodSync(fd, mode); // the open mode is masked by the umask
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not every filesystem lets a directory be synced */
  }
}

/**
 * Replaces `<dataDir>/tls/node.{crt,key}`: both are written whole (and synced) as
 * `*.next`, then renamed into place, key first. A crash between the two renames leaves
 * node.key new and node.crt.next waiting: `recoverRenewal` completes it at the next start.
 */
export function writeNodeMaterial(dataDir: string, cert: string, key: string): void {
  const dir = join(dataDir, 'tls');
  const keyPath = join(dir, NODE_KEY);
  const certPath = join(dir, NODE_CERT);
  writeDurable(keyPath + NEXT, key, 0o600);
  writeDurable(certPath + NEXT, cert, 0o644);
  syncDir(dir);
  renameSync(keyPath + NEXT, keyPath);
  renameSync(certPath + NEXT, certPath);
  syncDir(dir);
}

const matches = (certPem: string, keyPem: string) => {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
};

/**
 * Finishes or discards a renewal a crash interrupted (see writeNodeMaterial); run before
 * the node reads its TLS files. Returns what it did, for the log.
 */
export function recoverRenewal(dataDir: string): 'none' | 'completed' | 'discarded' {
  const dir = join(dataDir, 'tls');
  const keyPath = join(dir, NODE_KEY);
  const certPath = join(dir, NODE_CERT);
  const keyNext = keyPath + NEXT;
  const certNext = certPath + NEXT;
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);
  const kn = read(keyNext);
  const cn = read(certNext);
  if (kn === undefined && cn === undefined) return 'none';
  let outcome: 'completed' | 'discarded' = 'discarded';
  if (kn !== undefined && cn !== undefined && matches(cn, kn)) {
    // Both written whole before any rename: finish.
    renameSync(keyNext, keyPath);
    renameSync(certNext, certPath);
    outcome = 'completed';
  } else if (kn === undefined && cn !== undefined && matches(cn, read(keyPath) ?? '')) {
    // The key was renamed, the certificate not yet.
    renameSync(certNext, certPath);
    outcome = 'completed';
  }
  rmSync(keyNext, { force: true });
  rmSync(certNext, { force: true });
  syncDir(dir);
  log.warn(outcome === 'completed' ? 'completed a certificate renewal that a stop interrupted' : 'discarded the files of a certificate renewal that a stop interrupted (the previous certificate stays)', { dir });
  return outcome;
}

// ------------------------------------------------------------------ the renewer

export interface RenewerOptions {
  nodeId: string;
  dataDir: string;
  transport: ClusterTls;
  /** settings.tls.renewBeforeFraction */
  renewBeforeFraction: number;
  /** settings.tls.checkMs */
  checkMs: number;
  /** settings.tls.nodeCertTtlSeconds: lifetime when this node signs its own (it holds the CA key). */
  ttlSeconds: number;
  /** This node's address, into the new certificate. */
  address: () => string;
  /** The other names it is dialled by today (common/sans.ts localSans), asked for in the CSR. */
  names: () => readonly string[];
  /** Where a member is reached (the election's cluster view, then the configured peers). */
  addressOf: (nodeId: string) => string | undefined;
  clock?: () => number;
  /** Called after each successful renewal (tests, metrics). */
  onRenewed?: (cert: X509Certificate) => void;
}

export type CheckOutcome = 'not-due' | 'renewed' | 'failed' | 'busy';

export class CertificateRenewer {
  private timer?: NodeJS.Timeout;
  private running?: Promise<CheckOutcome>;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly opts: RenewerOptions) {
    this.now = opts.clock ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    const own = this.opts.transport.certificate;
    const d = renewalDecision(validityOf(own), this.now(), this.opts.renewBeforeFraction);
    log.info('certificate renewal on', {
      serial: own.serialNumber,
      expires: new Date(own.validTo).toISOString(),
      renew_from: new Date(d.renewAtMs).toISOString(),
      check_every_ms: this.opts.checkMs,
    });
    void this.check();
    this.timer = setInterval(() => void this.check(), this.opts.checkMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One check: renews when due. Never throws. */
  check(): Promise<CheckOutcome> {
    if (this.running) return Promise.resolve('busy');
    const p = this.checkOnce().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async checkOnce(): Promise<CheckOutcome> {
    if (this.stopped) return 'not-due';
    const old = this.opts.transport.certificate;
    const d = renewalDecision(validityOf(old), this.now(), this.opts.renewBeforeFraction);
    if (!d.due) return 'not-due';
    try {
      const { cert, signedBy } = await this.renew();
      if (this.stopped) return 'not-due';
      const x = new X509Certificate(cert.cert);
      log.info('renewed this node\'s certificate', {
        signed_by: signedBy,
        old_serial: old.serialNumber,
        serial: x.serialNumber,
        old_expires: new Date(old.validTo).toISOString(),
        expires: new Date(x.validTo).toISOString(),
      });
      this.opts.onRenewed?.(x);
      return 'renewed';
    } catch (err) {
      const left = Math.round(d.remainingMs / 1000);
      const fields = {
        error: err,
        expires: new Date(old.validTo).toISOString(),
        remaining: left > 0 ? `${left} s` : `expired ${-left} s ago`,
        retry_in_ms: this.opts.checkMs,
      };
      if (d.remainingMs > 0) log.warn('renewing this node\'s certificate failed; retrying at the next check', fields);
      else log.error('this node\'s certificate has expired and renewing it failed: peers refuse it; retrying at the next check (or give the node a new one: herd node-cert create / herd join)', fields);
      return 'failed';
    }
  }

  /**
   * Renews now, whatever the certificate's age (`herd node-cert renew`): after a running
   * check, never beside one. Throws why it failed; the node keeps its certificate then.
   */
  async renewNow(): Promise<{ cert: X509Certificate; old: X509Certificate; signedBy: string }> {
    while (this.running) await this.running;
    const old = this.opts.transport.certificate;
    const job = this.renew();
    this.running = job.then(
      () => 'renewed' as const,
      () => 'failed' as const,
    );
    void this.running.finally(() => (this.running = undefined));
    const { cert, signedBy } = await job;
    const x = new X509Certificate(cert.cert);
    log.info('renewed this node\'s certificate on request', { signed_by: signedBy, old_serial: old.serialNumber, serial: x.serialNumber, names: x.subjectAltName });
    this.opts.onRenewed?.(x);
    return { cert: x, old, signedBy };
  }

  /** New key, CSR, signature (here or at the CA holder), checks, files, reload. */
  private async renew(): Promise<{ cert: { cert: string; key: string }; signedBy: string }> {
    const { createCsr, loadCa, signNodeCsr } = await import('../../common/pki');
    const { nodeId, dataDir, transport } = this.opts;
    const { csr, key } = await createCsr(nodeId, this.opts.names());
    const address = this.opts.address();
    let certPem: string;
    let signedBy: string;
    if (existsSync(join(dataDir, 'tls', CA_KEY))) {
      certPem = await signNodeCsr(loadCa(dataDir), csr, nodeId, address, { notAfter: new Date(this.now() + this.opts.ttlSeconds * 1000) });
      signedBy = `${nodeId} (this node holds the CA key)`;
    } else {
      const holder = caHolder(transport);
      if (!holder) throw new RenewalError('the cluster CA certificate names no holder (herd://ca-holder/ID): renew by hand with `herd node-cert create` on the node that ran `herd init`');
      if (holder === nodeId) throw new RenewalError(`the CA certificate names this node as its key holder but ${join(dataDir, 'tls', CA_KEY)} is missing`);
      const at = this.opts.addressOf(holder);
      if (!at) throw new RenewalError(`the CA key holder, node "${holder}", is not a member this node knows (its peers): cannot ask it to sign`);
      certPem = await this.ask(holder, at, csr, address);
      signedBy = `${holder} at ${at}`;
    }
    const bad = checkRenewed(certPem, key, transport.caCertificates, nodeId, this.now());
    if (bad) throw new RenewalError(`the renewed certificate from ${signedBy} is refused: ${bad}`);
    if (this.stopped) throw new RenewalError('the node is stopping');
    writeNodeMaterial(dataDir, certPem, key);
    transport.reload({ ca: transport.current.ca, cert: certPem, key });
    return { cert: { cert: certPem, key }, signedBy };
  }

  private ask(holder: string, address: string, csr: string, selfAddress: string): Promise<string> {
    const { herd } = loadProtos();
    const t = this.opts.transport;
    const client = new herd.Peer(address, t.credentials(holder), t.channelOptions) as grpc.Client & Record<string, any>;
    return new Promise<string>((resolve, reject) => {
      client.RenewCertificate({ csr_pem: csr, address: selfAddress }, { deadline: Date.now() + RENEW_DEADLINE_MS }, (err: grpc.ServiceError | null, res: any) => {
        client.close();
        if (err) return reject(new RenewalError(`node "${holder}" at ${address} answered ${grpc.status[err.code] ?? err.code}: ${cleanDetails(err.details || err.message)}`));
        if (typeof res?.node_cert_pem !== 'string' || !res.node_cert_pem) return reject(new RenewalError(`node "${holder}" at ${address} sent no certificate`));
        resolve(res.node_cert_pem);
      });
    });
  }
}

/** A renewer for a TLS node; undefined on plain text (--insecure), where there is nothing to renew. */
export function certificateRenewer(transport: Transport, opts: Omit<RenewerOptions, 'transport'>): CertificateRenewer | undefined {
  return transport instanceof ClusterTls ? new CertificateRenewer({ ...opts, transport }) : undefined;
}
