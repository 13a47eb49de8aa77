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
import { identityOf } from '../common/identity';

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
