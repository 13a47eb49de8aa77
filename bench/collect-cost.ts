/**
 * CPU cost of one container collection round, per container, on the daemon's path: the
 * agent's Scheduler.round(CgroupCollector), i.e. the async collect (yielding every 256
 * containers), sanitising, grouping and encoding the batch, and its durable LMDB append.
 *
 * Baseline, alternated round by round: the collector's own file reader (readInto, one
 * open/read/close into a shared buffer) over exactly the files the collector reads for
 * those containers, nothing parsed, nothing stored: what any cgroup collector must spend.
 *
 * Trees: real v1 cgroups on this machine (root only), one per container, each holding a
 * process of its own in a network namespace of its own (as a container's init is), so
 * kernfs generates every file on each read and every container has its own net/dev; and
 * synthetic v1 and v2 trees on tmpfs (layouts this host does not run). Ends with the host
 * collector's round on the same path.
 *
 *   node bench/run.mjs collect-cost [--real 100,1000] [--counts 1000,3600] [--layouts v1,v2]
 *                                   [--rounds 20] [--dir /dev/shm]
 * CPU is process.cpuUsage() (user + system, all threads: LMDB's writer, GC and JIT count).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupCollector, type CgroupContainerRef } from '../agent/collectors/cgroup';
import { readInto } from '../agent/collectors/cgroup-read';
import { HostCollector } from '../agent/collectors/host';
import { SampleLog } from '../agent/samplelog';
import { Scheduler } from '../agent/scheduler';
import { openEnv, type Env } from '../common/db';
import { setLogLevel } from '../common/log';
import type { Collector } from '../common/types';
import { type CgroupLayout, makeCgroupTree } from '../test/fixtures/make-cgroup-tree';
import { report, spread, sleep } from './stats';

setLogLevel('warn');
const TARGET_US = 50;

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}
const list = (s: string) => s.split(',').filter(Boolean);
const counts = list(opt('counts', '1000,3600')).map(Number);
const layouts = list(opt('layouts', 'v1,v2')) as CgroupLayout[];
const rounds = Number(opt('rounds', '20'));
const realCounts = list(opt('real', '100,1000')).map(Number);
const baseDir = opt('dir', existsSync('/dev/shm') ? '/dev/shm' : tmpdir());

/** CPU µs of one awaited call (all threads of this process). */
async function cpuOf(fn: () => unknown): Promise<number> {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

/** Rounds of the daemon's path and of the bare reads, alternated; µs per container per round. */
async function measure(what: string, refs: CgroupContainerRef[], col: CgroupCollector, advance: () => void, env: Env): Promise<void> {
  const scheduler = new Scheduler(new SampleLog(env, 'bench'));
  const n = refs.length;
  for (let i = 0; i < 3; i++) advance(), await scheduler.round(col); // locate everything, let the JIT settle
  const files = refs.flatMap((r) => col.filesOf(r.herdId));
  if (files.length < n * 5) throw new Error(`${what}: the collector found ${files.length} files for ${n} containers; is the tree there?`);
  const herd: number[] = [];
  const base: number[] = [];
  for (let r = 0; r < rounds; r++) {
    advance();
    herd.push((await cpuOf(() => scheduler.round(col))) / n);
    base.push((await cpuOf(() => files.forEach((f) => readInto(f)))) / n);
    await sleep(5); // let the LMDB writer finish what is not awaited (nothing is, but be fair to the next reading)
  }
  report({ name: `collection round per container, ${what}, ${n} containers (${(files.length / n).toFixed(0)} files each)`, unit: 'us CPU', herd, baselineName: "the collector's own reads of the same files", baseline: base, target: `<= ${TARGET_US} us per container per round` });
}

async function synthetic(layout: CgroupLayout, n: number, env: Env): Promise<void> {
  const tree = makeCgroupTree({ layout, count: n, dir: mkdtempSync(join(baseDir, 'herd-bench-cg-')) });
  try {
    const col = new CgroupCollector({ root: tree.root, procRoot: tree.procRoot, containers: () => tree.containers });
    await measure(`synthetic ${layout} tree on tmpfs`, tree.containers, col, () => tree.advance(), env);
  } finally {
    tree.remove();
  }
}

/**
 * n real v1 cgroups <controller>/docker/<id>, each with its own `sleep` in a network
 * namespace of its own (`unshare --net` execs sleep, so the pid is sleep's).
 */
async function real(n: number, env: Env): Promise<void> {
  const CG = '/sys/fs/cgroup';
  const ctrls = ['cpu', 'cpuacct', 'memory', 'blkio', 'pids'].filter((c) => existsSync(join(CG, c, 'cgroup.procs')));
  if (ctrls.length === 0 || process.getuid?.() !== 0) throw new Error('real cgroups need root on a cgroup v1 host (pass --real "" to leave them out)');
  const made: string[] = [];
  const pids = execFileSync('sh', ['-c', `for i in $(seq ${n}); do unshare --net sleep 900 </dev/null >/dev/null 2>&1 & echo $!; done`], { encoding: 'utf8' }).trim().split('\n').map(Number);
  try {
    // Each pid is unshare's until it has made its namespace and exec'd sleep.
    const own = readlinkSync('/proc/self/ns/net');
    const inOwnNetns = (p: number) => readlinkSync(`/proc/${p}/ns/net`) !== own && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sleep';
    for (let i = 0; i < 500 && !pids.every(inOwnNetns); i++) await sleep(20);
    if (!pids.every(inOwnNetns)) throw new Error('the containers\' processes did not reach their own network namespaces');
    for (const c of ctrls) {
      const p = join(CG, c, 'docker');
      if (!existsSync(p)) mkdirSync(p), made.push(p);
    }
    const refs: CgroupContainerRef[] = pids.map((pid, i) => {
      const id = randomBytes(32).toString('hex');
      for (const c of ctrls) {
        const dir = join(CG, c, 'docker', id);
        mkdirSync(dir);
        made.push(dir);
        writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      }
      return { herdId: `r${i}`, dockerId: id, pid };
    });
    await measure('real v1 cgroupfs, a process in its own netns each', refs, new CgroupCollector({ containers: () => refs }), () => {}, env);
  } finally {
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (let i = 0; i < 200 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(10);
    for (const d of made.reverse()) {
      try {
        rmdirSync(d);
      } catch (err) {
        console.error(`  could not remove ${d}: ${(err as Error).message}`);
      }
    }
  }
}

/** The host collector's round on the same path; no baseline (systeminformation and /proc). */
async function host(env: Env): Promise<void> {
  const scheduler = new Scheduler(new SampleLog(env, 'host'));
  const col: Collector = new HostCollector({ nodeId: 'bench', countContainers: () => 0 });
  for (let i = 0; i < 5; i++) await scheduler.round(col);
  const costs: number[] = [];
  for (let i = 0; i < 50; i++) costs.push(await cpuOf(() => scheduler.round(col)));
  const s = spread(costs);
  console.log(`host collection round (collect + encode + append): median ${s.median} us CPU, worst ${s.worst} (min ${s.min}, n=${s.n})`);
  report({ name: 'host collection round', unit: 'us CPU', herd: costs });
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herd-bench-collect-'));
  const env = openEnv(dataDir, { mapSizeBytes: 4 * 1024 ** 3 });
  console.error(`real cgroups ${realCounts.join(',') || 'none'}; synthetic trees in ${baseDir}; ${rounds} measured rounds after 3 warm-up rounds`);
  try {
    for (const n of realCounts) await real(n, env);
    for (const layout of layouts) for (const n of counts) await synthetic(layout, n, env);
    await host(env);
  } finally {
    await env.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
