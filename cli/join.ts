/**
 * `herd token create` (a one-time join token, made by the node holding the CA key) and
 * `herd join` (a new node gets its certificate through the cluster with it).
 * docs/security.md, "Joining a node".
 *
 * `herd join` trusts nothing it is told until it has checked it: it fetches the CA over
 * TLS without verifying the server, compares its SHA-256 with the fingerprint in the token
 * (a man in the middle cannot serve a CA with that fingerprint), and only then opens a
 * channel that trusts that CA alone and sends the token and a CSR. The key is made here
 * and never leaves the machine.
 *
 * Exit codes: 0 done, 2 refused or bad usage, 1 the node could not be reached.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseSettings } from '../agent/config';
import { identityOf, parseBundle } from '../common/identity';
import { loadProtos } from '../common/proto';
import { checkHostPort } from '../common/validate';
import { colonFingerprint, fingerprintHex, MAX_TTL_SECONDS, parseJoinToken } from '../agent/security/signer';
import { localSans } from '../common/sans';
import { TLS_SAN_HELP } from './flags';
import { addConnectOptions, adminChannel, cleanDetails, ConnectError, rpcErrorText } from './connect';
import { defaultAddress } from './pki';

/** A failure with the exit code it means: 2 refused / usage, 1 unreachable. */
export class JoinCliError extends Error {
  constructor(
    readonly exitCode: 1 | 2,
    message: string,
  ) {
    super(message);
  }
}

/** "1h", "30m", "3600s", "7d" or plain seconds -> seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new JoinCliError(2, `--ttl "${text}" is not a duration: use e.g. 3600s, 30m, 1h or 7d`);
  const n = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  if (n < 1 || n > MAX_TTL_SECONDS) throw new JoinCliError(2, `--ttl ${text} is out of range: 1 second to 7 days`);
  return n;
}

function unaryCall(client: any, method: string, req: unknown, timeoutMs: number): Promise<any> {
  return new Promise((resolve, reject) => client[method](req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: any) => (err ? reject(err) : resolve(res))));
}

const UNREACHABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

/** A gRPC failure as a JoinCliError: unreachable -> 1, an answer that refuses -> 2 (with the status name). */
function rpcFailure(what: string, address: string, err: unknown): JoinCliError {
  const e = err as grpc.ServiceError;
  if (typeof e?.code !== 'number') return new JoinCliError(1, `${what} at ${address} failed: ${(err as Error)?.message ?? err}`);
  const name = grpc.status[e.code] ?? String(e.code);
  if (UNREACHABLE.has(e.code)) return new JoinCliError(1, rpcErrorText(address, err, what === 'CreateJoinToken' ? '-s' : '--address'));
  return new JoinCliError(2, `${address} refused ${what} (${name}): ${cleanDetails(e.details || e.message)}`);
}

export interface TokenCreateOptions {
  server: string;
  ttlSeconds: number;
  nodeId?: string;
  timeoutMs: number;
  channel: { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };
}

export async function createToken(o: TokenCreateOptions): Promise<{ token: string; expires_ms: number; ca_fingerprint: string }> {
  const { herd } = loadProtos();
  const admin = new herd.Admin(o.server, o.channel.credentials, o.channel.options);
  try {
    const r = await unaryCall(admin, 'CreateJoinToken', { ttl_seconds: o.ttlSeconds, node_id: o.nodeId ?? '' }, o.timeoutMs);
    return { token: r.token, expires_ms: Number(r.expires_ms), ca_fingerprint: r.ca_fingerprint };
  } catch (err) {
    throw rpcFailure('CreateJoinToken', o.server, err);
  } finally {
    admin.close();
  }
}

export interface JoinOptions {
  token: string;
  /** The node to ask (any member). */
  address: string;
  nodeId: string;
  /** Where other nodes reach this one; its host goes into the certificate. */
  advertise: string;
  dataDir: string;
  timeoutMs: number;
  /** The other names this node is dialled by (localSans), asked for in its CSR. */
  names: readonly string[];
}

export interface Joined {
  files: string[];
  signedBy: string;
  answeredBy: string;
  notAfter: string;
  caFingerprint: string;
}

/** The whole join; throws JoinCliError. */
export async function joinCluster(o: JoinOptions): Promise<Joined> {
  const token = o.token.trim();
  const parsed = parseJoinToken(token);
  if (typeof parsed === 'string') throw new JoinCliError(2, `bad --token: ${parsed}`);
  for (const [flag, v] of [['--address', o.address], ['--advertise', o.advertise]] as const) {
    const bad = checkHostPort(flag, v);
    if (bad) throw new JoinCliError(2, bad);
  }
  const want = colonFingerprint(parsed.fingerprintHex);
  const tls = join(o.dataDir, 'tls');
  for (const f of ['node.crt', 'node.key']) {
    if (existsSync(join(tls, f))) throw new JoinCliError(2, `${join(tls, f)} exists: this node already has a certificate (a node joins once; remove ${tls} only if it really must join again)`);
  }
  if (existsSync(join(tls, 'ca.key'))) throw new JoinCliError(2, `${join(tls, 'ca.key')} exists: this node started a cluster of its own (herd init); it cannot join another`);
  if (existsSync(join(tls, 'ca.crt'))) {
    const have = fingerprintHex(readFileSync(join(tls, 'ca.crt')));
    if (have !== parsed.fingerprintHex) throw new JoinCliError(2, `${join(tls, 'ca.crt')} is the CA of another cluster (fingerprint ${colonFingerprint(have)}) than the token's (${want}): remove it if this node really moves`);
  }

  const { herd } = loadProtos();
  const opts: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': 'herd' };

  // 1. The CA, over TLS that verifies nothing yet: the fingerprint check below is what counts.
  const blind = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const first = new herd.Join(o.address, blind, opts);
  let served: { ca_cert_pem: string; node_id: string };
  try {
    served = await unaryCall(first, 'GetCa', {}, o.timeoutMs);
  } catch (err) {
    throw rpcFailure('GetCa', o.address, err);
  } finally {
    first.close();
  }
  let bundle: X509Certificate[];
  try {
    bundle = parseBundle(served.ca_cert_pem ?? '');
  } catch (err) {
    throw new JoinCliError(2, `the CA served by ${o.address} cannot be parsed (${(err as Error).message}): refusing`);
  }
  const ca = bundle.find((c) => fingerprintHex(c.raw) === parsed.fingerprintHex);
  if (!ca) {
    const got = bundle.length ? bundle.map((c) => colonFingerprint(fingerprintHex(c.raw))).join(', ') : 'none (no certificate)';
    throw new JoinCliError(2, `the CA served by ${o.address} has fingerprint ${got} but the token is for ${want}: refusing (wrong address, or someone in between)`);
  }
  if (!ca.ca) throw new JoinCliError(2, `the certificate served by ${o.address} with the token's fingerprint is not a CA certificate: refusing`);

  // 2. The key stays here; the request carries its public half.
  const { createCsr, writeJoinedNodeFiles } = await import('../common/pki');
  const { csr, key } = await createCsr(o.nodeId, o.names);

  // 3. Join, over a channel that trusts only that CA: the server must be a node of the cluster.
  const trusted = grpc.credentials.createSsl(Buffer.from(ca.toString()), null, null, {
    checkServerIdentity: (_host, cert) => (identityOf(cert)?.kind === 'node' ? undefined : new Error('the server\'s certificate does not name a herd node')),
  });
  const second = new herd.Join(o.address, trusted, opts);
  let res: { node_cert_pem: string; ca_cert_pem: string; signed_by: string };
  try {
    res = await unaryCall(second, 'Join', { token, node_id: o.nodeId, address: o.advertise, csr_pem: csr }, o.timeoutMs);
  } catch (err) {
    throw rpcFailure('the join', o.address, err);
  } finally {
    second.close();
  }

  // 4. What came back must be a certificate of that CA, for this key, naming this node.
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(res.node_cert_pem);
  } catch (err) {
    throw new JoinCliError(2, `the certificate ${o.address} returned cannot be parsed: ${(err as Error).message}`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new JoinCliError(2, `the certificate ${o.address} returned was not signed by the cluster CA ${want}: refusing`);
  if (!cert.checkPrivateKey(createPrivateKey(key))) throw new JoinCliError(2, `the certificate ${o.address} returned is not for this node's key: refusing`);
  const id = identityOf(cert);
  if (id?.kind !== 'node' || id.nodeId !== o.nodeId) throw new JoinCliError(2, `the certificate ${o.address} returned does not name node "${o.nodeId}": refusing`);
  let caPem = ca.toString();
  if (res.ca_cert_pem) {
    try {
      if (parseBundle(res.ca_cert_pem).some((c) => fingerprintHex(c.raw) === parsed.fingerprintHex)) caPem = res.ca_cert_pem; // authenticated: it came over the trusted channel
    } catch {
      /* keep the verified CA alone */
    }
  }
  let files: string[];
  try {
    files = writeJoinedNodeFiles(o.dataDir, { caCert: caPem.endsWith('\n') ? caPem : `${caPem}\n`, nodeCert: res.node_cert_pem, nodeKey: key });
  } catch (err) {
    throw new JoinCliError(2, (err as Error).message);
  }
  return { files, signedBy: res.signed_by, answeredBy: served.node_id, notAfter: new Date(cert.validTo).toISOString(), caFingerprint: want };
}

function exitWith(cmd: string, err: unknown): never {
  if (err instanceof JoinCliError) {
    process.stderr.write(`herd ${cmd}: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof ConfigError || err instanceof ConnectError) {
    process.stderr.write(`herd ${cmd}: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`herd ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

export function registerJoin(program: Command): void {
  const token = program.command('token').description('one-time join tokens for new nodes');
  const create = token
    .command('create')
    .description('make a one-time join token (asks the node holding the CA key); prints the token, its expiry and the CA fingerprint')
    .option('--ttl <duration>', 'how long the token is valid: 3600s, 30m, 1h, up to 7d', '1h')
    .option('--node-id <id>', 'only a node with this id may join with the token')
    .option('-s, --server <host:port>', 'the node holding the CA key (the one that ran `herd init`)', '127.0.0.1:7400')
    .option('--timeout <ms>', 'call timeout', (v) => Number(v), 10_000);
  addConnectOptions(create).action(async (opts) => {
    try {
      const ttlSeconds = parseTtl(opts.ttl);
      const r = await createToken({ server: opts.server, ttlSeconds, nodeId: opts.nodeId, timeoutMs: opts.timeout, channel: adminChannel(opts) });
      process.stdout.write(
        [
          r.token,
          `expires: ${new Date(r.expires_ms).toISOString()} (in ${opts.ttl}); one-time${opts.nodeId ? `; only for node "${opts.nodeId}"` : ''}`,
          `CA fingerprint (SHA-256): ${r.ca_fingerprint}`,
          `on the new node: herd join --token <the token above> --address ${opts.server}${opts.nodeId ? ` --node-id ${opts.nodeId}` : ''} --advertise <its host:port>`,
          '',
        ].join('\n'),
      );
    } catch (err) {
      exitWith('token create', err);
    }
  });

  program
    .command('join')
    .description('get this node a certificate from the cluster with a join token: checks the CA fingerprint first, makes the key here, writes <data-dir>/tls/{ca.crt,node.crt,node.key}')
    .requiredOption('--token <token>', 'the token from `herd token create`')
    .requiredOption('--address <host:port>', 'any node of the cluster (the CA holder, or one that forwards to it)')
    .option('--node-id <id>', 'this node\'s id, written into its certificate (default: the host name)')
    .option('--advertise <host:port>', 'address other nodes reach this one at; its host goes into the certificate (default: first IPv4 address, port 7400)')
    .option('--data-dir <dir>', 'where the node keeps its data (default: as `herd agent`)')
    .option('--tls-san <name>', TLS_SAN_HELP, (v: string, prev: string[] = []) => [...prev, v])
    .option('--timeout <ms>', 'per-call timeout', (v) => Number(v), 20_000)
    .action(async (opts) => {
      try {
        const s = parseSettings({ dataDir: opts.dataDir, nodeId: opts.nodeId, ...(opts.advertise ? { advertise: opts.advertise } : {}), tls: { sans: opts.tlsSan ?? [] } }, 'command-line flags');
        const advertise = s.advertise ?? defaultAddress();
        const r = await joinCluster({ token: opts.token, address: opts.address, nodeId: s.nodeId, advertise, dataDir: s.dataDir, timeoutMs: opts.timeout, names: localSans(s.tls.sans) });
        process.stdout.write(
          [
            `node "${s.nodeId}" (${advertise}) joined: certificate signed by ${r.signedBy}${r.answeredBy && r.answeredBy !== r.signedBy ? ` (through ${r.answeredBy})` : ''}, valid until ${r.notAfter}`,
            ...r.files.map((f) => `  ${f}`),
            `CA fingerprint (SHA-256): ${r.caFingerprint}`,
            'next:',
            `  herd agent --node-id ${s.nodeId} --data-dir ${s.dataDir} --advertise ${advertise} --peer ${r.answeredBy || 'ID'}=${opts.address} (and a --peer for every other member)`,
            `  and add --peer ${s.nodeId}=${advertise} to every other member's settings, then restart them one at a time (membership is static)`,
            '',
          ].join('\n'),
        );
      } catch (err) {
        exitWith('join', err);
      }
    });
}
