/**
 * How a node starts with respect to TLS, on real herd processes: a lone node without
 * certificates makes its cluster CA and serves mutual TLS; a node with peers and no
 * certificate refuses to start and says how to join; plain text only with --insecure,
 * which the node warns about; a TLS node does not talk plain text.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serving } from '../../cross/harness';
import { grpcurl, startHerd } from '../helpers/herd';
import { tempDir, waitFor } from '../helpers/tmp';

const running: Array<ReturnType<typeof startHerd>> = [];
const dirs: Array<ReturnType<typeof tempDir>> = [];

afterEach(async () => {
  for (const h of running.splice(0)) {
    if (h.child.exitCode === null) {
      h.child.kill('SIGTERM');
      await new Promise((r) => h.child.once('exit', r));
    }
  }
  for (const d of dirs.splice(0)) d.cleanup();
});

function herd(args: string[]) {
  const h = startHerd(args);
  running.push(h);
  return h;
}
function dir() {
  const d = tempDir('herd-modes-');
  dirs.push(d);
  return d.dir;
}
const base = (d: string, listen: string) => ['agent', '--node-id', 'solo', '--data-dir', d, '--listen', listen, '--pmproxy-url', '', '--docker-socket', '/nonexistent.sock'];

describe('transport modes', () => {
  it('a lone node without certificates creates its cluster and answers only mutual TLS', async () => {
    const d = dir();
    const addr = '127.0.0.1:7431';
    const h = herd(base(d, addr));
    await waitFor('node started', () => h.output().includes('herd node started'), 20_000, 100);
    expect(h.output()).toMatch(/created a new cluster CA/);
    expect(h.output()).toMatch(/security="mutual TLS \(prefers TLS_(AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)\)"/);
    expect(statSync(join(d, 'tls', 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'tls', 'node.key')).mode & 0o777).toBe(0o600);
    const T = join(d, 'tls');
    const flags = ['-cacert', join(T, 'ca.crt'), '-cert', join(T, 'admins', 'local.crt'), '-key', join(T, 'admins', 'local.key')];
    const ok = await grpcurl(addr, ['herd.v1.Admin/GetLeader'], flags);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).leader_id).toBe('solo');
    // No client certificate: a clear UNAUTHENTICATED, not a bare handshake failure.
    const anon = await grpcurl(addr, ['herd.v1.Admin/GetLeader'], ['-cacert', join(T, 'ca.crt')]);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/Code: Unauthenticated/);
    expect(anon.stderr).toMatch(/no client certificate of this cluster/);
    // Health needs none (liveness probes; grpcurl itself would need reflection, which does).
    expect(await serving(addr)).toBe(true);
    // Plain text gets nowhere.
    const plain = await grpcurl(addr, ['herd.v1.Admin/GetLeader'], ['-plaintext', '-max-time', '3']);
    expect(plain.code).not.toBe(0);
  }, 60_000);

  it('a node with peers and no certificate refuses to start and says how to join', async () => {
    const d = dir();
    const h = herd([...base(d, '127.0.0.1:7432'), '--peer', 'other=127.0.0.1:7433']);
    const code = await new Promise<number | null>((r) => h.child.once('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(h.output()).toMatch(/no node certificate in .*tls, and this node has peers: get one from the cluster with `herd join/);
    expect(existsSync(join(d, 'tls', 'ca.key'))).toBe(false); // it did not make a second cluster
  }, 30_000);

  it('--insecure serves plain text and warns at start', async () => {
    const d = dir();
    const addr = '127.0.0.1:7434';
    const h = herd([...base(d, addr), '--insecure']);
    await waitFor('node started', () => h.output().includes('herd node started'), 20_000, 100);
    expect(h.output()).toMatch(/WARN .*INSECURE: serving and dialling plain text \(--insecure\)/);
    expect(h.output()).toMatch(/security="INSECURE plain text"/);
    expect(existsSync(join(d, 'tls'))).toBe(false);
    const r = await grpcurl(addr, ['herd.v1.Admin/GetLeader'], ['-plaintext']);
    expect(r.code, r.stderr).toBe(0);
  }, 60_000);
});
