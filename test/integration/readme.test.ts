/**
 * The README's commands, as a user types them (bed "rd"): the quick start (`npx herd agent`,
 * the grpcurl lines against localhost:7400 and 127.0.0.1:7400, `npx herd status`) and the
 * cluster section (`herd init`, `herd agent`, `herd token create`, `herd join`, grpcurl to
 * each node's address, `herd status`), read from README.md and run through `sh`.
 *
 * grpcurl is test/tools/pygrpcurl.py (Debian has no grpcurl package): grpcio, which checks the
 * server's host name against the certificate exactly as grpcurl does; nothing here overrides
 * the TLS target name. Each bed node runs in its own network namespace with a private mount
 * of /var/lib, so the default data dir /var/lib/herd of the README is the node's own and the
 * host's stays untouched. The cluster nodes carry the README's addresses 10.0.0.11-13 on the
 * bed's link. `herd` on PATH is the program the tests build (dist/herd.cjs).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueNodeCert, loadCa } from '../../common/pki';
import { run, startBed, type Bed, type BedProcess } from '../bed/bed';
import { HERD, PYGRPCURL, ROOT } from '../helpers/herd';
import { tempDir, waitFor } from '../helpers/tmp';

let bed: Bed;
const tmp = tempDir('herd-rd-');
const procs: BedProcess[] = [];
const BIN = join(tmp.dir, 'bin');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The host directory a node sees as /var/lib. */
const varLib = (node: string) => join(tmp.dir, node, 'var-lib');

/** What the user's shell has: no npm_* or HERD_* from the test runner; grpcurl and herd on PATH. */
function userEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|HERD_|ONNXRUNTIME_)/i.test(k)));
  return { ...env, PATH: `${BIN}:${env.PATH ?? '/usr/bin:/bin'}` };
}

/** argv that runs `script` with sh inside a private mount namespace whose /var/lib is the node's. */
function shArgs(node: string, script: string): string[] {
  return ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /var/lib && cd "$1" && exec sh -c "$2"', varLib(node), ROOT, script];
}

async function sh(node: string, script: string, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return bed.exec(node, 'unshare', shArgs(node, script), { timeoutMs, env: userEnv() });
}

function spawnSh(node: string, script: string, name: string): BedProcess {
  const p = bed.spawn(node, 'unshare', shArgs(node, script), { name, env: userEnv() });
  procs.push(p);
  return p;
}

/** The lines of the README's sh block that follows `marker`. */
function block(marker: string): string[] {
  const at = README.indexOf(marker);
  expect(at, `README has "${marker}"`).toBeGreaterThan(-1);
  const m = /```sh\n([\s\S]*?)```/.exec(README.slice(at));
  return m![1].split('\n').filter((l) => l.trim());
}

const withoutComment = (line: string) => line.replace(/\s+#\s.*$/, '');

beforeAll(async () => {
  mkdirSync(BIN, { recursive: true });
  writeFileSync(join(BIN, 'herd'), `#!/bin/sh\nexec ${process.execPath} ${HERD} "$@"\n`, { mode: 0o755 });
  writeFileSync(join(BIN, 'grpcurl'), `#!/bin/sh\nexec ${PYGRPCURL} "$@"\n`, { mode: 0o755 });
  for (const n of ['n1', 'n2', 'n3', 'n4']) mkdirSync(join(varLib(n), 'herd'), { recursive: true });
  bed = await startBed({ nodes: 4, name: 'rd', subnet: 71 });
  // the README's cluster addresses, on the same link as the bed's own
  for (const [i, n] of ['n2', 'n3', 'n4'].entries()) {
    const r = await run('ip', ['-n', bed.node(n).netns, 'addr', 'add', `10.0.0.${11 + i}/24`, 'dev', 'eth0']);
    expect(r.code, r.stderr).toBe(0);
  }
});

afterAll(async () => {
  for (const p of procs) await p.stop().catch(() => {});
  await bed?.stop();
  tmp.cleanup();
});

describe('quick start (bed node n1, alone)', () => {
  const grpcLines = () => block('Talk to it with grpcurl');

  it('herd status before any agent ever ran: what is missing and what to do', async () => {
    const r = await sh('n1', 'npx herd status');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'herd status: no certificates in /var/lib/herd/tls yet: is herd agent running? Start it with `herd agent` (on its first start a lone node makes the cluster CA and the operator certificate admins/local.* that these commands use), or give --cacert/--cert/--key from `herd admin-cert create NAME` (--insecure for a cluster that runs with --insecure)',
    );
  });

  it('npx herd agent, then the grpcurl lines verbatim against localhost:7400 and 127.0.0.1:7400, then npx herd status', async () => {
    const start = block('## Quick start')[0];
    expect(withoutComment(start)).toBe('npm ci && npx herd agent');
    const agent = spawnSh('n1', 'npx herd agent', 'quickstart');
    const lines = grpcLines();
    expect(lines.filter((l) => l.startsWith('grpcurl')).every((l) => l.includes(' localhost:7400 '))).toBe(true);
    // the QuerySamples line shows points once the node has stored its first host sample
    const query = lines.find((l) => l.includes('QuerySamples'))!;
    await waitFor('the first host samples', async () => /"points"/.test((await sh('n1', `${lines[0]}\n${query}`)).stdout), 30_000, 500).catch((err) => {
      throw new Error(`${(err as Error).message}\nagent log:\n${agent.log().slice(-3000)}`);
    });
    for (const host of ['localhost', '127.0.0.1']) {
      const r = await sh('n1', `set -e\n${lines.join('\n').replaceAll(' localhost:7400 ', ` ${host}:7400 `)}\n`);
      expect(r.stderr, host).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('herd.v1.Admin');
      expect(r.stdout).toContain('"points"');
      expect(r.stdout).toContain('"status": "SERVING"');
      expect(r.stdout).toMatch(/"node_id": "[^"]+"/);
      expect(r.stdout).toMatch(/coordinator: \S+ at 10\.77\.71\.11:7400/);
    }
    const cert = new X509Certificate(readFileSync(join(varLib('n1'), 'herd', 'tls', 'node.crt')));
    for (const name of ['localhost', hostname().toLowerCase()]) expect(cert.checkHost(name), name).toBe(name);
    for (const ip of ['127.0.0.1', '::1', '10.77.71.11']) expect(cert.checkIP(ip), ip).toBe(ip);
  });

  it('the client is strict: a name the certificate does not carry is refused', async () => {
    const r = await sh('n1', `T=/var/lib/herd/tls; grpcurl -cacert $T/ca.crt -cert $T/admins/local.crt -key $T/admins/local.key -connect-timeout 3 -servername not-this-node.example localhost:7400 list`);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
  });

  it('a certificate made before these names is refused by the strict client until `herd node-cert renew`, which fixes it without a restart', async () => {
    const dir = join(varLib('n1'), 'herd');
    const agent = procs.find((p) => p.name === 'quickstart')!;
    await agent.stop();
    // the certificates exist now, the agent is gone: herd status says what it tried
    const down = await sh('n1', 'npx herd status');
    expect([down.code, down.stderr.trim()]).toEqual([
      1,
      'herd status: cannot reach 127.0.0.1:7400: connection refused, nothing listens there (connect ECONNREFUSED 127.0.0.1:7400). Is herd agent running there? Start it with `herd agent` (`npx herd agent` in a checkout), or name a running node with -s HOST:PORT.',
    ]);
    const nodeId = new X509Certificate(readFileSync(join(dir, 'tls', 'node.crt'))).subject.match(/CN=([^\n]+)/)![1];
    const old = await issueNodeCert(loadCa(dir), nodeId, '10.77.71.11:7400'); // what herd issued before: identity and address only
    writeFileSync(join(dir, 'tls', 'node.crt'), old.cert);
    writeFileSync(join(dir, 'tls', 'node.key'), old.key, { mode: 0o600 });
    spawnSh('n1', 'npx herd agent', 'quickstart-2');
    const health = 'T=/var/lib/herd/tls; grpcurl -cacert $T/ca.crt -cert $T/admins/local.crt -key $T/admins/local.key -connect-timeout 3 localhost:7400 grpc.health.v1.Health/Check';
    await waitFor('the restarted node serving on its advertised address', async () => (await sh('n1', health.replace('localhost:', '10.77.71.11:'))).code === 0, 30_000, 300);
    const before = await sh('n1', health);
    expect(before.code).toBe(1); // the bug of issue 12: "Peer name localhost is not in peer certificate"
    const renew = await sh('n1', 'npx herd node-cert renew');
    expect(renew.stderr).toBe('');
    expect(renew.code).toBe(0);
    expect(renew.stdout).toMatch(new RegExp(`^node "${nodeId}" renewed its certificate: serial [0-9A-F]+ \\(was ${new X509Certificate(old.cert).serialNumber}\\), signed by ${nodeId} \\(this node holds the CA key\\)`));
    expect(renew.stdout).toMatch(/\nnames: 10\.77\.71\.11, localhost, 127\.0\.0\.1, ::1, /);
    const after = await sh('n1', health);
    expect(after.stderr).toBe('');
    expect(after.stdout).toContain('SERVING');
    expect(new X509Certificate(readFileSync(join(dir, 'tls', 'node.crt'))).checkHost('localhost')).toBe('localhost');
  });

  it('--tls-san: empty, wildcard or garbage is refused at start (exit 2), and nothing is written', async () => {
    const fresh = join(varLib('n4'), 'herd');
    // every bad kind at `herd agent` start; each other command with one (the same check, unit-tested in sans.test.ts)
    const cases: Array<[string, string, RegExp]> = [
      ['herd agent', "--tls-san ''", /--tls-san a TLS name must not be empty/],
      ['herd agent', "--tls-san '*.lan'", /--tls-san "\*\.lan" is a wildcard/],
      ['herd agent', "--tls-san 'not a name'", /--tls-san "not a name" is neither a DNS name/],
      ['herd agent', '--tls-san pi4:7400', /--tls-san "pi4:7400" has a port/],
      ['herd init', "--tls-san '*.lan'", /--tls-san "\*\.lan" is a wildcard/],
      ['herd join --token herd1.x.y --address 10.0.0.11:7400', "--tls-san ''", /--tls-san a TLS name must not be empty/],
      ['herd node-cert create pi9 --address 10.0.0.19:7400 --out /tmp/never', "--tls-san 'not a name'", /--tls-san "not a name" is neither a DNS name/],
    ];
    const runs = cases.map(async ([cmd, flag, why]) => {
      const r = await sh('n4', `${cmd} ${flag}`);
      expect([r.code, r.stderr], `${cmd} ${flag}`).toEqual([2, expect.stringMatching(why)]);
    });
    await Promise.all(runs);
    expect(existsSync(join(fresh, 'tls')), 'nothing written').toBe(false);
    expect(existsSync('/tmp/never')).toBe(false);
    // a good one goes into the certificate
    const ok = await sh('n4', 'herd init --node-id pi4 --address 10.77.71.14:7400 --tls-san pi4.example.org --tls-san 192.0.2.44');
    expect(ok.code, ok.stderr).toBe(0);
    const cert = new X509Certificate(readFileSync(join(fresh, 'tls', 'node.crt')));
    expect(cert.checkHost('pi4.example.org')).toBe('pi4.example.org');
    expect(cert.checkIP('192.0.2.44')).toBe('192.0.2.44');
    expect(cert.checkHost('localhost')).toBe('localhost');
  });
});

describe('a cluster (bed nodes n2, n3, n4 as pi1, pi2, pi3 at 10.0.0.11-13)', () => {
  const NODE: Record<string, string> = { pi1: 'n2', pi2: 'n3', pi3: 'n4' };

  it('runs the README lines verbatim; grpcurl reaches every node at its address, strictly', { timeout: 180_000 }, async () => {
    // n4 made a cluster of its own in the --tls-san test: it starts afresh as pi3
    await run('rm', ['-rf', join(varLib('n4'), 'herd')]);
    mkdirSync(join(varLib('n4'), 'herd'));
    const lines = block('## A cluster');
    let token = '';
    let env = '';
    const outputs: string[] = [];
    for (const line of lines) {
      const m = /^(pi\d)\$ (.*)$/.exec(line);
      expect(m, line).not.toBeNull();
      const [, who, typed] = m!;
      let cmd = withoutComment(typed);
      if (cmd.startsWith('herd join')) cmd = cmd.replace('herd1....', token);
      if (cmd.startsWith('T=')) {
        env = `${cmd}\n`; // the shell variables of the lines that follow
        continue;
      }
      if (cmd.startsWith('herd agent')) {
        spawnSh(NODE[who], cmd, `${who}-agent`);
        // the next line needs this agent serving (asked as grpcurl asks, with the node's own certificate)
        const T = '/var/lib/herd/tls';
        await waitFor(`${who}'s agent serving`, async () => (await sh(NODE[who], `grpcurl -cacert ${T}/ca.crt -cert ${T}/node.crt -key ${T}/node.key localhost:7400 grpc.health.v1.Health/Check`)).code === 0, 30_000, 300);
        continue;
      }
      const r = await waitFor(`${who}$ ${cmd}`, async () => {
        const x = await sh(NODE[who], `${env}${cmd}`);
        if (x.code === 0) return x;
        outputs.push(`${who}$ ${cmd}\n${x.stdout}${x.stderr}`);
        // herd status waits for an elected coordinator; anything else must work at once
        return cmd.startsWith('herd status') ? undefined : Promise.reject(new Error(x.stderr));
      }, 30_000, 500).catch((err) => {
        throw new Error(`${who}$ ${cmd} failed: ${(err as Error).message}\n${outputs.slice(-3).join('\n')}`);
      });
      if (cmd.startsWith('herd token create')) token = r.stdout.split('\n')[0].trim();
      if (cmd.startsWith('herd token create')) expect(token).toMatch(/^herd1\.[0-9a-f]{64}\.\S+$/);
      if (cmd.startsWith('herd join')) expect(r.stdout).toMatch(/^node "pi\d" \(10\.0\.0\.1\d:7400\) joined: certificate signed by pi1/);
      if (cmd.startsWith('grpcurl')) expect(r.stdout).toContain('"answered_by": "pi2"');
      if (cmd === 'herd status') expect(r.stdout).toMatch(/coordinator: pi\d at 10\.0\.0\.1\d:7400/);
    }
    // every node, at its address, through the strict client, with pi1's operator certificate
    for (const [pi, ip] of [['pi1', '10.0.0.11'], ['pi2', '10.0.0.12'], ['pi3', '10.0.0.13']]) {
      const r = await sh('n2', `${env}grpcurl $C ${ip}:7400 herd.v1.Admin/GetCluster`);
      expect(r.stderr, `grpcurl to ${pi} at ${ip}`).toBe('');
      expect(r.stdout).toContain(`"answered_by": "${pi}"`);
      // and each node on itself, by localhost, with the same files (the joined nodes' certificates name it too)
      const self = await sh(NODE[pi], `C="-cacert ${varLib('n2')}/herd/tls/ca.crt -cert ${varLib('n2')}/herd/tls/admins/local.crt -key ${varLib('n2')}/herd/tls/admins/local.key"; grpcurl $C localhost:7400 grpc.health.v1.Health/Check`);
      expect(self.stderr, `grpcurl to ${pi} by localhost`).toBe('');
      expect(self.stdout).toContain('SERVING');
    }
    const members = await sh('n2', 'herd status');
    for (const pi of ['pi1', 'pi2', 'pi3']) expect(members.stdout).toMatch(new RegExp(`^${pi}\\s+10\\.0\\.0\\.1\\d:7400\\s+(leader|follower)`, 'm'));
  });

  it('herd node-cert renew -s renews another node through the CA holder, with that node\'s own names', async () => {
    const r = await sh('n2', 'herd node-cert renew -s 10.0.0.13:7400');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^node "pi3" renewed its certificate: serial \S+ \(was \S+\), signed by pi1 at 10\.0\.0\.11:7400/);
    expect(r.stdout).toMatch(/names: 10\.0\.0\.13, localhost, 127\.0\.0\.1, ::1, .*10\.77\.71\.14/);
    const cert = new X509Certificate(readFileSync(join(varLib('n4'), 'herd', 'tls', 'node.crt')));
    expect(cert.subjectAltName!.match(/URI:/g)).toEqual(['URI:']);
    expect(cert.subjectAltName).toContain('URI:herd://node/pi3');
  });
});
