/**
 * CPU cost of one collection round, per container: CgroupCollector over synthetic trees of
 * 100, 1000 and 3600 containers (v1 and v2 layouts), against a baseline measured in the
 * same run: fs.readFileSync of exactly the files the collector reads, nothing parsed.
 * With --real, also over real (empty) v1 cgroups on this machine (root only): kernfs
 * generates memory.stat etc. on each read, which a synthetic tree on tmpfs does not show.
 * Ends with HostCollector's cost per round.
 *
 * Run:  node bench/run.mjs collect-cost [--counts 100,1000,3600] [--layouts v1,v2,hybrid]
 *                                        [--rounds 20] [--real 100,1000] [--dir /dev/shm]
 *   or: npx vite-node bench/collect-cost.ts -- [same options]   (no bundling; slower startup)
 * CPU is process.cpuUsage() (user + system, all threads, so GC and JIT helpers count too).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupCollector, type CgroupContainerRef } from '../agent/collectors/cgroup';
import { HostCollector } from '../agent/collectors/host';
import { type CgroupLayout, makeCgroupTree } from '../test/fixtures/make-cgroup-tree';

const TARGET_US = 50;

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}
const counts = opt('counts', '100,1000,3600').split(',').map(Number);
const layouts = opt('layouts', 'v1,v2').split(',') as CgroupLayout[];
const rounds = Number(opt('rounds', '20'));
const realCounts = opt('real', '').split(',').filter(Boolean).map(Number);
const baseDir = opt('dir', existsSync('/dev/shm') ? '/dev/shm' : tmpdir());

interface Row {
  what: string;
  n: number;
  files: number;
  us: number;
  wallMs: number;
  baseUs: number;
}
const rows: Row[] = [];

/** CPU µs and wall ms of fn, summed over rounds; before() runs unmeasured. */
function measure(n: number, before: () => void, fn: (round: number) => void): { cpuUs: number; wallMs: number } {
  let cpu = 0;
  let wall = 0;
  for (let r = 0; r < n; r++) {
    before();
    const c0 = process.cpuUsage();
    const w0 = process.hrtime.bigint();
    fn(r);
    const w = process.hrtime.bigint() - w0;
    const c = process.cpuUsage(c0);
    cpu += c.user + c.system;
    wall += Number(w) / 1e6;
  }
  return { cpuUs: cpu, wallMs: wall };
}

function run(what: string, list: CgroupContainerRef[], col: CgroupCollector, advance: () => void, metricsPer: number): void {
  let now = Date.now();
  const n = list.length;
  // Warm-up: locate everything, let the JIT settle.
  for (let i = 0; i < 5; i++) advance(), col.collectSync((now += 5000));
  let samples = 0;
  const c = measure(rounds, advance, () => (samples += col.collectSync((now += 5000)).length));
  if (samples !== rounds * n * metricsPer) console.warn(`  ${what}: ${samples / rounds} samples per round, expected ${n * metricsPer}`);
  const files = list.flatMap((x) => col.filesOf(x.herdId));
  for (let i = 0; i < 2; i++) for (const f of files) readFileSync(f);
  const b = measure(rounds, () => {}, () => {
    for (const f of files) readFileSync(f);
  });
  rows.push({ what, n, files: files.length / n, us: c.cpuUs / rounds / n, wallMs: c.wallMs / rounds, baseUs: b.cpuUs / rounds / n });
  console.error(`  done: ${what} x ${n}`);
}

function synthetic(layout: CgroupLayout, n: number): void {
  const tree = makeCgroupTree({ layout, count: n, dir: mkdtempSync(join(baseDir, 'herd-bench-cg-')) });
  try {
    const col = new CgroupCollector({ root: tree.root, procRoot: tree.procRoot, containers: () => tree.containers });
    run(`synthetic ${layout}`, tree.containers, col, () => tree.advance(), 11);
  } finally {
    tree.remove();
  }
}

/**
 * Real empty cgroups <controller>/docker/<id> on a v1 host. Their pid is one process in a
 * network namespace of its own, so every container also reads a real /proc/<pid>/net/dev.
 */
function real(n: number): void {
  const CG = '/sys/fs/cgroup';
  const ctrls = ['cpu', 'cpuacct', 'memory', 'blkio', 'pids'].filter((c) => existsSync(join(CG, c, 'cgroup.procs')));
  if (ctrls.length === 0 || process.getuid?.() !== 0) {
    console.error('  --real needs root on a cgroup v1 host: skipped');
    return;
  }
  const made: string[] = [];
  const list: CgroupContainerRef[] = [];
  const netns = spawn('unshare', ['--net', 'sleep', '600'], { stdio: 'ignore' });
  const own = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${netns.pid}/ns/net`) !== own) break;
    } catch {
      // not started yet
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  try {
    for (const c of ctrls) {
      const p = join(CG, c, 'docker');
      if (!existsSync(p)) mkdirSync(p), made.push(p);
    }
    for (let i = 0; i < n; i++) {
      const id = randomBytes(32).toString('hex');
      for (const c of ctrls) mkdirSync(join(CG, c, 'docker', id)), made.push(join(CG, c, 'docker', id));
      list.push({ herdId: `r${i}`, dockerId: id, pid: netns.pid ?? 0 });
    }
    const col = new CgroupCollector({ containers: () => list });
    run('real v1 cgroupfs', list, col, () => {}, 11);
  } finally {
    netns.kill('SIGKILL');
    for (const d of made.reverse()) {
      try {
        rmdirSync(d);
      } catch (err) {
        console.error(`  could not remove ${d}: ${(err as Error).message}`);
      }
    }
  }
}

async function hostCost(): Promise<{ median: number; min: number }> {
  const col = new HostCollector({ nodeId: 'bench', countContainers: () => 0 });
  let now = Date.now();
  for (let i = 0; i < 20; i++) await col.collect((now += 5000));
  const costs: number[] = [];
  for (let i = 0; i < 50; i++) {
    const c0 = process.cpuUsage();
    await col.collect((now += 5000));
    const c = process.cpuUsage(c0);
    costs.push(c.user + c.system);
  }
  costs.sort((a, b) => a - b);
  return { median: costs[costs.length >> 1], min: costs[0] };
}

async function main(): Promise<void> {
  console.error(`synthetic trees in ${baseDir}; ${rounds} measured rounds after 5 warm-up rounds`);
  for (const layout of layouts) for (const n of counts) synthetic(layout, n);
  for (const n of realCounts) real(n);
  const pad = (s: string | number, w: number) => String(s).padStart(w);
  console.log(
    `\n${'tree'.padEnd(28)}${pad('containers', 11)}${pad('files/c', 8)}${pad('CPU us/c/round', 16)}${pad('wall ms/round', 15)}` +
      `${pad('readFileSync us/c', 19)}${pad('ratio', 7)}${pad(`<=${TARGET_US}us`, 8)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.what.padEnd(28)}${pad(r.n, 11)}${pad(r.files.toFixed(0), 8)}${pad(r.us.toFixed(1), 16)}${pad(r.wallMs.toFixed(1), 15)}` +
        `${pad(r.baseUs.toFixed(1), 19)}${pad((r.us / r.baseUs).toFixed(2), 7)}${pad(r.us <= TARGET_US ? 'yes' : 'NO', 8)}`,
    );
  }
  const h = await hostCost();
  console.log(`\nHostCollector: ${h.median} us CPU per round (median of 50; min ${h.min})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
