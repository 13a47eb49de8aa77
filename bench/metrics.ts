/**
 * Cost of a Prometheus scrape of a node with 200 containers, through the daemon's own path:
 * the HTTPS server with mutual TLS (agent/metrics/http.ts) over a kept-alive connection,
 * as Prometheus scrapes, rendering NodeMetrics fed a collection round between scrapes.
 *
 * Baseline (same run, alternated): the same series written by a bare template-string loop,
 * the least work that can produce those bytes (no library, no labels escaped, no TLS).
 *
 *   node bench/run.mjs metrics [containers=200] [scrapes=200]
 */
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWeb } from '../agent/metrics/http';
import { NodeMetrics } from '../agent/metrics/node-metrics';
import { containerSeries, nodeSeries } from '../agent/metrics/names';
import { setLogLevel } from '../common/log';
import { ClusterTls, readNodeMaterial } from '../common/transport';
import type { Sample } from '../common/types';
import { report } from './stats';

const CONTAINERS = Number(process.argv[2] ?? 200);
const SCRAPES = Number(process.argv[3] ?? 200);
const root = join(__dirname, '..', '..');
const CONTAINER_METRICS = ['container.cpu.usage', 'container.cpu.throttled_periods', 'container.cpu.throttled_ms', 'container.mem.usage_bytes', 'container.blkio.read_ops', 'container.blkio.write_ops', 'container.blkio.read_bytes', 'container.blkio.write_bytes', 'container.pids', 'container.net.rx_bytes', 'container.net.tx_bytes', 'container.ops'];
const NODE_METRICS = ['host.cpu.total', 'host.cpu.core.0', 'host.cpu.core.1', 'host.load.1', 'host.load.5', 'host.load.15', 'host.mem.total_bytes', 'host.mem.available_bytes', 'host.mem.used_bytes', 'host.disk.read_ops', 'host.disk.write_ops', 'host.disk.read_bytes', 'host.disk.write_bytes', 'host.disk.active_pct', 'host.net.rx_bytes', 'host.net.tx_bytes', 'host.containers'];

const containers = Array.from({ length: CONTAINERS }, (_, i) => ({ herdId: `h${i.toString(16).padStart(12, '0')}`, name: `app-${i}` }));

function round(ts: number): Sample[] {
  const out: Sample[] = [];
  for (const m of NODE_METRICS) out.push({ entity: 'bench', metric: m, ts, value: Math.random() * 100 });
  for (const c of containers) for (const m of CONTAINER_METRICS) out.push({ entity: c.herdId, metric: m, ts, value: Math.random() * 1e6 });
  return out;
}

/** The floor: the same series as bare text. */
function bareText(samples: Sample[]): string {
  const names = new Map(containers.map((c) => [c.herdId, c.name]));
  let s = '';
  for (const x of samples) {
    const p = x.entity === 'bench' ? nodeSeries(x.metric) : containerSeries(x.metric);
    if (!p) continue;
    s += x.entity === 'bench' ? `${p.name}{node="bench"} ${x.value * p.scale}\n` : `${p.name}{herd_id="${x.entity}",name="${names.get(x.entity)}",node="bench"} ${x.value * p.scale}\n`;
  }
  return s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const worst = (xs: number[]) => Math.max(...xs);

async function main() {
  setLogLevel('warn');
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-metrics-'));
  execFileSync(process.execPath, [join(root, 'dist', 'herd.cjs'), 'init', '--data-dir', dir, '--node-id', 'bench', '--address', '127.0.0.1:7400'], { stdio: 'pipe' });
  const transport = new ClusterTls(readNodeMaterial(dir));
  const metrics = new NodeMetrics({ nodeId: 'bench', containers: () => containers });
  const web = await startWeb({ listen: '127.0.0.1:0', plainMetrics: '', transport, metrics });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(join(dir, 'tls', 'ca.crt')), cert: readFileSync(join(dir, 'tls', 'admins', 'local.crt')), key: readFileSync(join(dir, 'tls', 'admins', 'local.key')) });
  const scrape = () =>
    new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: web.port, path: '/metrics', agent }, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`status ${res.statusCode}`))));
      }).on('error', reject);
    });

  const herdMs: number[] = [];
  const bareMs: number[] = [];
  const renderMs: number[] = [];
  let bytes = 0;
  let bareBytes = 0;
  let cpuMicros = 0;
  for (let i = 0; i < SCRAPES + 10; i++) {
    const samples = round(Date.now());
    metrics.observeSamples(samples);
    // Alternate which goes first, so neither always meets a warm cache.
    const runHerd = async () => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      bytes = await scrape();
      const t1 = performance.now();
      const c = process.cpuUsage(c0);
      const r0 = performance.now();
      await metrics.text();
      const r1 = performance.now();
      if (i >= 10) {
        herdMs.push(t1 - t0);
        cpuMicros += c.user + c.system;
        renderMs.push(r1 - r0);
      }
    };
    const runBare = () => {
      const t0 = performance.now();
      bareBytes = bareText(samples).length;
      const t1 = performance.now();
      if (i >= 10) bareMs.push(t1 - t0);
    };
    if (i % 2) {
      await runHerd();
      runBare();
    } else {
      runBare();
      await runHerd();
    }
  }
  await web.close();
  agent.destroy();
  rmSync(dir, { recursive: true, force: true });

  const cpuPerScrapeMs = cpuMicros / 1000 / SCRAPES;
  const series = NODE_METRICS.length + CONTAINERS * CONTAINER_METRICS.length;
  console.log(`scrape of a node with ${CONTAINERS} containers (${series} sample series + Herd's own), ${SCRAPES} scrapes over HTTPS + mutual TLS, kept-alive:`);
  console.log(`  herd scrape, end to end:       median ${median(herdMs).toFixed(2)} ms, worst ${worst(herdMs).toFixed(2)} ms, ${(bytes / 1024).toFixed(0)} KiB`);
  console.log(`  herd render only (text()):     median ${median(renderMs).toFixed(2)} ms, worst ${worst(renderMs).toFixed(2)} ms`);
  console.log(`  bare template loop (floor):    median ${median(bareMs).toFixed(2)} ms, ${(bareBytes / 1024).toFixed(0)} KiB`);
  console.log(`  ratio herd render / floor:     ${(median(renderMs) / median(bareMs)).toFixed(1)}x`);
  console.log(`  CPU per scrape (server and client in this process): ${cpuPerScrapeMs.toFixed(2)} ms -> ${((cpuPerScrapeMs / 15_000) * 100).toFixed(3)}% of a core at a 15 s scrape interval`);
  console.log(`  targets: < 50 ms and < 2 MB per scrape; < 1% of a core at 15 s`);
  report({ name: `Prometheus scrape of a node with ${CONTAINERS} containers, herd's render (text())`, unit: 'ms', herd: renderMs, baselineName: 'a bare template loop writing the same series', baseline: bareMs });
  report({ name: `Prometheus scrape of a node with ${CONTAINERS} containers, end to end over HTTPS + mutual TLS`, unit: 'ms', herd: herdMs, target: '< 50 ms and < 2 MB per scrape' });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
