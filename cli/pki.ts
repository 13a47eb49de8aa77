/**
 * `herd init` (a new cluster CA and this node's certificate) and `herd admin-cert create`
 * (an operator's client certificate), `herd node-cert create` (offline provisioning).
 * docs/security.md. common/pki is imported when a command runs, so that other commands
 * do not load the X.509 library.
 */
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import { networkInterfaces } from 'node:os';
import { ConfigError, defaultDataDir, parseSettings } from '../agent/config';
import { loadProtos } from '../common/proto';
import { checkSan, LOOPBACK_NAMES, localSans } from '../common/sans';
import { addConnectOptions, adminChannel, ConnectError, rpcErrorText } from './connect';
import { TLS_SAN_HELP } from './flags';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The first external IPv4 address with port 7400 (what `herd agent` advertises by default). */
export function defaultAddress(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `${a.address}:7400`;
  }
  return '127.0.0.1:7400';
}

function fail(cmd: string, err: unknown): never {
  process.stderr.write(`herd ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError || err instanceof ConnectError || (err as Error)?.name === 'PkiError' ? 2 : 1); // 2: a usage or state problem the operator fixes
}

export function registerPki(program: Command): void {
  program
    .command('init')
    .description('start a new cluster on this node: create the cluster CA (its key stays here, mode 0600) and this node\'s certificate in <data-dir>/tls/, and print the CA fingerprint')
    .option('--data-dir <dir>', 'where the node keeps its data (default: as `herd agent`)')
    .option('--node-id <id>', 'this node\'s id, written into its certificate (default: the host name)')
    .option('--address <host:port>', 'address other nodes reach this one at; its host goes into the certificate (default: first IPv4 address, port 7400)')
    .option('--tls-san <name>', TLS_SAN_HELP, collect)
    .action(async (opts) => {
      try {
        const s = parseSettings({ dataDir: opts.dataDir, nodeId: opts.nodeId, ...(opts.address ? { advertise: opts.address } : {}), tls: { sans: opts.tlsSan ?? [] } }, 'command-line flags');
        const { initCluster } = await import('../common/pki');
        const r = await initCluster(s.dataDir, s.nodeId, s.advertise ?? defaultAddress(), { names: localSans(s.tls.sans) });
        process.stdout.write(
          [
            `cluster CA and certificate of node "${r.nodeId}" (${r.address}) created in ${r.dir}:`,
            ...r.files.map((f) => `  ${f}`),
            `CA fingerprint (SHA-256): ${r.caFingerprint}`,
            'keep ca.key on this node only; every joining node checks the fingerprint.',
            '',
          ].join('\n'),
        );
      } catch (err) {
        fail('init', err);
      }
    });

  const nodeCert = program.command('node-cert').description('node certificates signed offline (provisioning without a join token; `herd join` is the online way)');
  nodeCert
    .command('create <node-id>')
    .description('sign a certificate for another node on the node that holds the CA key; copy the --out directory to that node as <data-dir>/tls')
    .requiredOption('--address <host:port>', 'address the node is reached at; its host goes into the certificate')
    .requiredOption('--out <dir>', 'where to write node.crt, node.key and ca.crt')
    .option('--data-dir <dir>', 'the data dir holding tls/ca.key (default: as `herd agent`)')
    .option('--ttl-seconds <n>', 'certificate lifetime (default: one year)', (v) => Number(v))
    .option('--tls-san <name>', "another DNS name or IP address of that node for its certificate, besides localhost, 127.0.0.1, ::1 and the --address host; repeat for each (its own host name and interface addresses are not known here: they come at its first renewal, or `herd node-cert renew` there)", collect)
    .action(async (nodeId: string, opts) => {
      try {
        const { createNodeCertFiles } = await import('../common/pki');
        const ttl = opts.ttlSeconds;
        if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 60)) throw new ConfigError('--ttl-seconds must be an integer of at least 60');
        for (const n of opts.tlsSan ?? []) {
          const bad = checkSan(n);
          if (bad) throw new ConfigError(`--tls-san ${bad}`);
        }
        const names = [...LOOPBACK_NAMES, ...(opts.tlsSan ?? [])];
        const r = await createNodeCertFiles(opts.dataDir ?? defaultDataDir(), nodeId, opts.address, opts.out, { names, ...(ttl ? { notAfter: new Date(Date.now() + ttl * 1000) } : {}) });
        process.stdout.write([`certificate of node "${nodeId}" (${opts.address}):`, ...r.files.map((f) => `  ${f}`), `CA fingerprint (SHA-256): ${r.caFingerprint}`, ''].join('\n'));
      } catch (err) {
        fail('node-cert create', err);
      }
    });

  const renew = nodeCert
    .command('renew')
    .description("renew a running node's certificate now (default: this node's), with the names it is dialled by today (localhost, 127.0.0.1, ::1, host name, interface addresses, advertised address, its --tls-san); it serves the new one at once")
    .option('-s, --server <host:port>', 'the node whose certificate to renew', '127.0.0.1:7400')
    .option('--timeout <ms>', 'call timeout', (v) => Number(v), 20_000);
  addConnectOptions(renew).action(async (opts) => {
    try {
      const r = await renewNodeCert(opts.server, opts.timeout, adminChannel(opts));
      process.stdout.write(
        [
          `node "${r.node_id}" renewed its certificate: serial ${r.serial} (was ${r.old_serial}), signed by ${r.signed_by}, valid until ${new Date(Number(r.not_after_ms)).toISOString()}`,
          `names: ${r.names.join(', ')}`,
          '',
        ].join('\n'),
      );
    } catch (err) {
      fail('node-cert renew', err);
    }
  });

  const adminCert = program.command('admin-cert').description('operator client certificates, for grpcurl (-cacert/-cert/-key) and the herd commands');
  adminCert
    .command('create <name>')
    .description('create an operator certificate and key signed by the cluster CA (run on the node that ran `herd init`)')
    .addOption(new Option('--role <role>', 'what the operator may do').choices(['read-only', 'admin']).default('read-only'))
    .option('--data-dir <dir>', 'the data dir holding tls/ca.key (default: as `herd agent`)')
    .option('--out <dir>', 'where to write NAME.crt, NAME.key and ca.crt (default: <data-dir>/tls/admins)')
    .option('--p12', 'also write NAME.p12 (certificate and key) for a browser to import, protected by a password: HERD_P12_PASSWORD, or a new random one printed once')
    .action(async (name: string, opts) => {
      try {
        const { createAdminCert } = await import('../common/pki');
        const r = await createAdminCert(opts.dataDir ?? defaultDataDir(), name, opts.role, opts.out);
        const lines = [`certificate of operator "${name}" (role ${opts.role}):`, ...r.files.map((f) => `  ${f}`), `CA fingerprint (SHA-256): ${r.caFingerprint}`];
        if (opts.p12) lines.push(...(await writeP12(name, r.files[0], r.files[1])));
        process.stdout.write([...lines, ''].join('\n'));
      } catch (err) {
        fail('admin-cert create', err);
      }
    });
}

/** Admin.RenewNodeCertificate on `server`; throws an error that says what was tried and what to do. */
async function renewNodeCert(server: string, timeoutMs: number, channel: ReturnType<typeof adminChannel>): Promise<any> {
  const { herd } = loadProtos();
  const admin = new herd.Admin(server, channel.credentials, channel.options);
  try {
    return await new Promise((resolve, reject) =>
      admin.RenewNodeCertificate({}, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(new Error(rpcErrorText(server, err))) : resolve(res))),
    );
  } finally {
    admin.close();
  }
}

/** NAME.p12 next to NAME.crt, for browsers (the cluster page); returns the lines to print. */
async function writeP12(name: string, certPath: string, keyPath: string): Promise<string[]> {
  const { randomBytes } = await import('node:crypto');
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { toPkcs12 } = await import('../common/p12');
  const given = process.env.HERD_P12_PASSWORD;
  const password = given ?? randomBytes(12).toString('base64url');
  const p12 = await toPkcs12(readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'), password, `herd operator ${name}`);
  const path = certPath.replace(/\.crt$/, '.p12');
  writeFileSync(path, p12, { mode: 0o600, flag: 'wx' });
  return [`  ${path} (for a browser: import it, and trust the cluster CA, ca.crt beside it)`, given ? '  its password: HERD_P12_PASSWORD' : `  its password (shown once): ${password}`];
}
