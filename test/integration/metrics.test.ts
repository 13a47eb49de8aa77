/**
 * /metrics of a real herd process, read as Prometheus would: over HTTPS with a cluster
 * certificate (curl, which checks the server's host name), linted by Prometheus' own
 * promtool, and refused to callers without a certificate of this cluster.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { containerSeries } from '../../agent/metrics/names';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HERD, runCmd, startHerd } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { tempDir, waitFor } from '../helpers/tmp';

const ADDR = '127.0.0.1:7441';
const WEB = 'https://127.0.0.1:7442';
const PLAIN = '127.0.0.1:7449';
let herd: ReturnType<typeof startHerd>;
let tmp: ReturnType<typeof tempDir>;

const curl = (args: string[]) => runCmd('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args]);
const adminCurl = (url: string, extra: string[] = []) => {
  const p = testPki();
  return curl(['--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey, ...extra, url]);
};
const split = (out: string) => {
  const i = out.lastIndexOf('\n');
  return { body: out.slice(0, i), code: Number(out.slice(i + 1)) };
};

beforeAll(async () => {
  tmp = tempDir();
  testPki().provision(tmp.dir, 'solo', ADDR);
  herd = startHerd(['agent', '--node-id', 'solo', '--data-dir', tmp.dir, '--listen', ADDR, '--metrics-plain', PLAIN, '--host-interval', '300', '--pmproxy-url', '', '--docker-socket', '/nonexistent.sock']);
  await waitFor('/metrics with host samples and the cluster view', async () => {
    const r = split((await adminCurl(`${WEB}/metrics`)).stdout);
    return r.code === 200 && r.body.includes('herd_node_cpu_busy_ratio') && /herd_cluster_member_up\{[^}]*member="solo"[^}]*\} 1/.test(r.body);
  }, 30_000, 300);
});

afterAll(async () => {
  herd?.child.kill('SIGTERM');
  await new Promise((r) => herd?.child.once('exit', r));
  tmp?.cleanup();
});

describe('/metrics on a real node', () => {
  it('serves the node, Herd and cluster metrics to a cluster certificate, valid for promtool', async () => {
    const r = await adminCurl(`${WEB}/metrics`);
    expect(r.code, r.stderr).toBe(0);
    const { body, code } = split(r.stdout);
    expect(code).toBe(200);
    for (const name of ['herd_node_cpu_busy_ratio', 'herd_node_memory_total_bytes', 'node_load1', 'herd_samples_logged_total', 'herd_samplelog_committed_seq', 'herd_uplink_acked_seq', 'herd_election_term']) {
      expect(body, name).toMatch(new RegExp(`^${name}\\{[^}]*node="solo"[^}]*\\} [0-9.e+-]+$`, 'm'));
    }
    expect(body).toMatch(/^herd_election_is_coordinator\{node="solo"\} 1$/m);
    expect(body).toMatch(/^herd_uplink_connected\{node="solo"\} 1$/m);
    expect(Number(/^herd_samples_logged_total\{node="solo"\} (\d+)/m.exec(body)?.[1])).toBeGreaterThan(0);
    // Prometheus' own linter: exit 0 and nothing to say.
    expect(execFileSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })).toBe('');
  });

  it("counts the controller's evaluations after `herd policy evaluate`, valid for promtool", async () => {
    const p = testPki();
    const evaluated = await runCmd(process.execPath, [HERD, 'policy', 'evaluate', '-s', ADDR, '--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey], 60_000);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const { body } = split((await adminCurl(`${WEB}/metrics`)).stdout);
    expect(body).toMatch(/^herd_controller_evaluations_total\{trigger="evaluate-now",mode="recommend",node="solo"\} 1$/m);
    expect(body).toMatch(/^herd_controller_evaluation_seconds_count\{node="solo"\} 1$/m);
    for (const family of ['herd_controller_proposals_total', 'herd_controller_refusals_total', 'herd_controller_moves_total']) expect(body).toContain(`# TYPE ${family} counter`);
    expect(execFileSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })).toBe('');
  });

  it('the Grafana dashboard in docs/ asks only for series a node exposes', async () => {
    const { body } = split((await adminCurl(`${WEB}/metrics`)).stdout);
    const exposed = new Set([...body.matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]));
    // Container series appear once a container runs; their names come from the same table.
    for (const m of ['container.cpu.usage', 'container.ops']) exposed.add(containerSeries(m)!.name);
    const dashboard = JSON.parse(readFileSync(join(__dirname, '../../docs/grafana/herd-cluster.json'), 'utf8'));
    const asked = new Set<string>();
    for (const p of dashboard.panels) for (const t of p.targets) for (const m of String(t.expr).matchAll(/\b((?:herd|node|container)_[a-z0-9_]+?)(?:_bucket)?\b(?!\()/g)) asked.add(m[1]);
    expect(asked.size).toBeGreaterThan(8);
    for (const name of asked) expect(exposed, name).toContain(name);
  });

  it('refuses a caller without a certificate, saying what to present', async () => {
    const { body, code } = split((await curl(['--cacert', testPki().caCert, `${WEB}/metrics`])).stdout);
    expect(code).toBe(401);
    expect(body).toMatch(/showed no client certificate of this cluster/);
  });

  it("refuses another cluster's operator certificate with the reason", async () => {
    const other = tempDir();
    try {
      execFileSync(process.execPath, [HERD, 'init', '--data-dir', other.dir, '--node-id', 'elsewhere', '--address', '127.0.0.1:1'], { stdio: 'pipe' });
      const tls = join(other.dir, 'tls');
      const { body, code } = split((await curl(['--cacert', testPki().caCert, '--cert', join(tls, 'admins', 'local.crt'), '--key', join(tls, 'admins', 'local.key'), `${WEB}/metrics`])).stdout);
      expect(code).toBe(401);
      expect(body).toMatch(/not issued by this cluster's CA|was not issued/);
    } finally {
      other.cleanup();
    }
  });

  it('answers unknown paths and other methods with a sentence, and keeps serving', async () => {
    const nf = split((await adminCurl(`${WEB}/nothing?x=%00`)).stdout);
    expect(nf.code).toBe(404);
    expect(nf.body).toMatch(/no page at \/nothing: this node serves .*\/metrics/);
    const post = split((await adminCurl(`${WEB}/metrics`, ['-X', 'POST', '-d', 'x'])).stdout);
    expect(post.code).toBe(405);
    expect(split((await adminCurl(`${WEB}/metrics`)).stdout).code).toBe(200);
  });

  it('serves plain-text /metrics only on the opt-in plain port', async () => {
    const ok = split((await curl([`http://${PLAIN}/metrics`])).stdout);
    expect(ok.code).toBe(200);
    expect(ok.body).toContain('herd_samples_logged_total');
    expect(split((await curl([`http://${PLAIN}/`])).stdout).code).toBe(404);
  });
});
