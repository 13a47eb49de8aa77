/**
 * One cluster PKI per test file, made with the real herd commands (`herd init`,
 * `herd node-cert create`), so that test clusters run mutual TLS like real ones:
 * nodes get certificates of this CA, clients use its `local` operator certificate.
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HERD } from './herd';

export interface TestPki {
  /** Data dir of the CA holder (`herd init` ran there): tls/ca.key, tls/admins/local.*. */
  caDataDir: string;
  caCert: string;
  adminCert: string;
  adminKey: string;
  /** grpcurl-style flags with the admin operator certificate. */
  adminFlags: string[];
  /** Writes tls/{ca.crt,node.crt,node.key} for a node into its data dir unless they are there. */
  provision(dataDir: string, nodeId: string, address: string, ttlSeconds?: number): void;
  credentials(): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };
}

let pki: TestPki | undefined;

export function testPki(): TestPki {
  if (pki) return pki;
  const root = mkdtempSync(join(tmpdir(), 'herd-pki-'));
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  const caDataDir = join(root, 'ca');
  execFileSync(process.execPath, [HERD, 'init', '--data-dir', caDataDir, '--node-id', 'test-ca', '--address', '127.0.0.1:1'], { stdio: 'pipe' });
  const tls = join(caDataDir, 'tls');
  const p: TestPki = {
    caDataDir,
    caCert: join(tls, 'ca.crt'),
    adminCert: join(tls, 'admins', 'local.crt'),
    adminKey: join(tls, 'admins', 'local.key'),
    adminFlags: ['-cacert', join(tls, 'ca.crt'), '-cert', join(tls, 'admins', 'local.crt'), '-key', join(tls, 'admins', 'local.key')],
    provision(dataDir, nodeId, address, ttlSeconds) {
      if (existsSync(join(dataDir, 'tls', 'node.crt'))) return;
      const ttl = ttlSeconds ? ['--ttl-seconds', String(ttlSeconds)] : [];
      execFileSync(process.execPath, [HERD, 'node-cert', 'create', nodeId, '--address', address, '--out', join(dataDir, 'tls'), '--data-dir', caDataDir, ...ttl], { stdio: 'pipe' });
    },
    credentials() {
      const credentials = grpc.credentials.createSsl(readFileSync(join(tls, 'ca.crt')), readFileSync(join(tls, 'admins', 'local.key')), readFileSync(join(tls, 'admins', 'local.crt')), {
        checkServerIdentity: () => undefined,
      });
      return { credentials, options: { 'grpc.ssl_target_name_override': 'herd' } };
    },
  };
  pki = p;
  return p;
}
