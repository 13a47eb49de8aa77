/**
 * How the herd commands reach a node: mutual TLS with an operator certificate
 * (`herd admin-cert create`), by default the one `herd init` made on this node
 * (`<data-dir>/tls/admins/local.*`), or plain text with --insecure for a cluster that
 * runs with --insecure.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDataDir } from '../agent/config';
import { cleanDetails } from '../common/grpc-text';
import { identityOf } from '../common/identity';

export { cleanDetails };

export interface ConnectFlags {
  cacert?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  dataDir?: string;
}

export interface Channel {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

export class ConnectError extends Error {}

export function addConnectOptions(cmd: Command): Command {
  return cmd
    .option('--cacert <file>', 'cluster CA certificate (default: <data-dir>/tls/ca.crt)')
    .option('--cert <file>', 'operator certificate (default: <data-dir>/tls/admins/local.crt, made by `herd init`)')
    .option('--key <file>', 'operator key (default: <data-dir>/tls/admins/local.key)')
    .option('--data-dir <dir>', 'where the default certificate files are (default: as `herd agent`)')
    .option('--insecure', 'plain text, for a cluster running with --insecure');
}

export function adminChannel(flags: ConnectFlags): Channel {
  if (flags.insecure) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const tls = join(flags.dataDir ?? defaultDataDir(), 'tls');
  const files = {
    cacert: flags.cacert ?? join(tls, 'ca.crt'),
    cert: flags.cert ?? join(tls, 'admins', 'local.crt'),
    key: flags.key ?? join(tls, 'admins', 'local.key'),
  };
  const defaults = !flags.cacert && !flags.cert && !flags.key;
  if (defaults && !Object.values(files).some(existsSync)) {
    // A node's first start makes these (herd init too): on a machine where no agent ever ran, say so.
    throw new ConnectError(
      `no certificates in ${tls} yet: is herd agent running? Start it with \`herd agent\` (on its first start a lone node makes the cluster CA and the operator certificate admins/local.* that these commands use), or give --cacert/--cert/--key from \`herd admin-cert create NAME\` (--insecure for a cluster that runs with --insecure)`,
    );
  }
  for (const [flag, path] of Object.entries(files)) {
    if (!existsSync(path)) {
      throw new ConnectError(`--${flag} ${path}: no such file. Use the files from \`herd admin-cert create NAME\` (--cacert ca.crt --cert NAME.crt --key NAME.key), or --insecure for a cluster that runs with --insecure`);
    }
  }
  const credentials = grpc.credentials.createSsl(readFileSync(files.cacert), readFileSync(files.key), readFileSync(files.cert), {
    // Nodes are dialled by address; what matters is that a node of this cluster answers.
    checkServerIdentity: (_host, cert) => (identityOf(cert)?.kind === 'node' ? undefined : new Error('the server\'s certificate does not name a herd node')),
  });
  return { credentials, options: { 'grpc.ssl_target_name_override': 'herd' } };
}

const startHint = (flag: string) => `is herd agent running there? Start it with \`herd agent\` (\`npx herd agent\` in a checkout), or name a running node with ${flag} HOST:PORT`;
const capital = (s: string) => s[0].toUpperCase() + s.slice(1);

/**
 * A failed call as one sentence for a person: what was tried, what happened, what to do.
 * Connection failures (nothing listens, no route, a certificate refused) are told apart
 * from an answer the node gave (its status and its own explanation).
 */
export function rpcErrorText(server: string, err: unknown, flag = '-s'): string {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e?.code !== 'number') return `asking ${server} failed: ${(err as Error)?.message ?? String(err)}`;
  const raw = e.details || e.message || '';
  const detail = cleanDetails(raw);
  const name = grpc.status[e.code] ?? String(e.code);
  // grpc-js's own text for a connection it could not make; a node's answer that quotes one
  // (a forwarded call that failed further on) does not start with it.
  const connectFailure = e.code === grpc.status.UNAVAILABLE && /^(No connection established|Connection dropped|Failed to connect|connect E|getaddrinfo|Name resolution failed)/i.test(raw);
  if (e.code === grpc.status.DEADLINE_EXCEEDED) {
    return `no answer from ${server} in time (${detail || 'deadline exceeded'}): ${/waiting for LB pick|connect/i.test(raw) ? `nothing answered there; ${startHint(flag)}` : 'the node is busy or the network slow; try again, or a longer --timeout'}`;
  }
  if (!connectFailure) return `${server} answered ${name}: ${detail || '(no details)'}`;
  if (/ECONNREFUSED/.test(raw)) return `cannot reach ${server}: connection refused, nothing listens there (${detail}). ${capital(startHint(flag))}.`;
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed/.test(raw)) return `cannot reach ${server}: its host name does not resolve (${detail}). Check the address given with ${flag}.`;
  if (/EHOSTUNREACH|ENETUNREACH|ETIMEDOUT/.test(raw)) return `cannot reach ${server}: no route to it or no answer (${detail}). Check the address given with ${flag} and that the node is up and its port is open.`;
  if (/certificate|self.signed|verify|SSL|TLS|handshake/i.test(raw)) {
    return `cannot talk to ${server}: the TLS handshake failed (${detail}). Use this cluster's files: --cacert ca.crt --cert NAME.crt --key NAME.key (\`herd admin-cert create\`), or --insecure if the cluster runs with --insecure.`;
  }
  return `cannot reach ${server}: ${detail}. ${capital(startHint(flag))}.`;
}
