/**
 * Migration figures on the test bed (real dockerd + CRIU, two nodes, real herd processes,
 * mutual TLS). Every figure is alternated run by run with its baseline, Docker's own floor:
 * the same container checkpointed and started from that checkpoint in place on one node
 * through the Engine API (POST /checkpoints, then POST /start?checkpoint=), nothing moved.
 * No migration built on Docker's checkpoint and restore can be shorter.
 *  - small busybox counter, each filesystem mode: downtime and total, per-step medians;
 *  - a 200 MB-memory container: downtime, total, and the agents' RSS growth during it;
 *  - a container on a 200 MB image: diff layer vs whole filesystem, on the bed's link as it
 *    is (veth, several GB/s) and shaped to 1 Gbit/s (tc tbf on each node's eth0), the link
 *    between the thesis's Raspberry Pis.
 *
 *  - crossover: a container of HERD_BENCH_MEM_MB (default 64) MB, moved n1 -> n2 through the page
 *    server (n1: --page-server-min-bytes 0) and n2 -> n1 with the direct dump (n2's threshold
 *    above any container) in turn, next to Docker's floor: where the page server starts to pay.
 *
 *   npx vite-node bench/migration.ts [rounds=10] [small|memory|image|crossover]   (root; bed "bn", subnet 91, or HERD_BENCH_BED=name/subnet;
 *   no second argument: all three)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../test/bed/bed';
import { agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../test/helpers/cluster';
import { migrate } from '../test/helpers/migrate';
import { report } from './stats';

const rounds = Number(process.argv[2] ?? 10);
const only = process.argv[3]; // 'small', 'memory' or 'image': only those figures
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr || r.stdout);
  return r.stdout.trim();
}

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}

/** One Docker Engine API call over a node's socket, from this process (no CLI start-up in the timing). */
function dockerApi(sock: string, method: string, path: string, body?: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path: `/v1.41${path}`, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => ((res.statusCode ?? 500) < 300 ? resolve() : reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * Docker's own floor for any migration built on its checkpoint and restore: the same
 * container checkpointed and restored in place on one node through the API, nothing moved.
 */
async function dockerFloor(bed: Bed, image: string, name: string, cmd: string, extra: string[], readyLine?: string): Promise<{ checkpoint: number; restore: number }> {
  const n = bed.nodes[0];
  const id = await must(bed.docker(n.id, 'run', '-d', '--name', name, ...extra, image, 'sh', '-c', cmd));
  const root = await must(bed.docker(n.id, 'info', '-f', '{{.DockerRootDir}}'));
  await new Promise((r) => setTimeout(r, 1500));
  // the same container as the move's: its memory filled
  for (let i = 0; readyLine && i < 600 && !(await must(bed.docker(n.id, 'logs', name))).includes(readyLine); i++) await new Promise((r) => setTimeout(r, 100));
  const t0 = performance.now();
  await dockerApi(n.dockerSock, 'POST', `/containers/${name}/checkpoints`, { CheckpointID: 'floor', Exit: true });
  const t1 = performance.now();
  // As the runtime does: two identical checkpoints collide in containerd's content store.
  writeFileSync(`${root}/containers/${id}/checkpoints/floor/herd-nonce`, randomUUID());
  const t1b = performance.now();
  await dockerApi(n.dockerSock, 'POST', `/containers/${name}/start?checkpoint=floor`);
  const t2 = performance.now();
  await must(bed.docker(n.id, 'rm', '-f', name));
  return { checkpoint: t1 - t0, restore: t2 - t1b };
}

type Move = { total: number; downtime: number; timings: Array<{ step: string; ms: number }>; bytes: number };
const STEPS = ['PREPARE', 'CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE', 'REMOVE_SOURCE'];
const stepMedians = (runs: Move[], steps = STEPS) => steps.map((st) => `${st.toLowerCase()} ${median(runs.map((r) => r.timings.find((t) => t.step === st)?.ms ?? 0))}`).join(', ');

async function main() {
  // HERD_BENCH_BED=name/subnet: another bed, so two checkouts can bench at once
  const [bedName, bedSubnet] = (process.env.HERD_BENCH_BED ?? 'bn/91').split('/');
  const bed = await startBed({ nodes: 2, docker: true, name: bedName, subnet: Number(bedSubnet) });
  const nodes = new Map<string, HerdNode>();
  // crossover: n1 always sends the pages to a page server, n2 never
  const pathArgs = (id: string) => (only !== 'crossover' ? [] : ['--page-server-min-bytes', id === 'n1' ? '0' : String(2 ** 50)]);
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id, ['--log-level', 'warn', ...pathArgs(n.id)]));
  const addrs = () => [...nodes.values()].map((n) => n.address);
  let coordinator = (await agreedLeader(addrs(), 20_000)).address;
  for (let i = 0; i < 200 && (await connectedNodes(coordinator)).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 2000)); // criu check, inventories
  let seq = 0;
  const herdMove = async (image: string, cmd: string, mode: string, extra: string[] = [], readyLine?: string, from = 'n1', to = 'n2'): Promise<Move> => {
    const name = `b${++seq}`;
    const id = (await must(bed.docker(from, 'run', '-d', '--name', name, ...extra, image, 'sh', '-c', cmd))).slice(0, 12);
    await new Promise((r) => setTimeout(r, 1500)); // listed by the coordinator, warmed up
    // (its memory filled: the source chooses the page path from the memory in use)
    for (let i = 0; readyLine && i < 600 && !(await must(bed.docker(from, 'logs', name))).includes(readyLine); i++) await new Promise((r) => setTimeout(r, 100));
    coordinator = (await agreedLeader(addrs())).address;
    const t0 = performance.now();
    const r = await migrate(coordinator, id, to, mode, 600_000);
    const total = performance.now() - t0;
    if (r.last?.state !== 'SUCCEEDED') throw new Error(`${name} (${mode}): ${r.last?.state} ${r.last?.reason ?? JSON.stringify(r.error)}`);
    await must(bed.docker(to, 'rm', '-f', name));
    process.stderr.write(`${name} (${mode}): checkpoint ${r.last.checkpoint_method}, pages ${r.last.page_path || '-'}\n`);
    return { total, downtime: Number(r.last.downtime_ms), timings: r.last.timings as Array<{ step: string; ms: number }>, bytes: Number(r.last.bytes_total) };
  };
  /** Docker's floor for the same container: checkpoint + start from it, in place on n1. */
  const floor = async (image: string, cmd: string, extra: string[] = [], readyLine?: string) => {
    const f = await dockerFloor(bed, image, `floor${++seq}`, cmd, extra, readyLine);
    return f.checkpoint + f.restore;
  };
  try {
    if (!only || only === 'small') await small();
    if (!only || only === 'memory') await memory();
    if (!only || only === 'image') await bigImage();
    if (only === 'crossover') await crossover();
  } finally {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    await bed.stop();
  }

  /** The small counter in each mode, each round next to a floor run of the same container. */
  async function small() {
    const runs: Record<string, Move[]> = { FS_MODE_DIFF: [], FS_MODE_NONE: [], FS_MODE_FULL: [] };
    const floors: number[] = [];
    for (let i = 0; i < rounds; i++) {
      runs.FS_MODE_DIFF.push(await herdMove(BUSYBOX_IMAGE, COUNTER, 'FS_MODE_DIFF'));
      floors.push(await floor(BUSYBOX_IMAGE, COUNTER));
      runs.FS_MODE_NONE.push(await herdMove(BUSYBOX_IMAGE, COUNTER, 'FS_MODE_NONE'));
      runs.FS_MODE_FULL.push(await herdMove(BUSYBOX_IMAGE, COUNTER, 'FS_MODE_FULL'));
      process.stderr.write(`small #${i + 1}: diff ${runs.FS_MODE_DIFF[i].downtime}/${Math.round(runs.FS_MODE_DIFF[i].total)} ms, floor ${Math.round(floors[i])} ms\n`);
    }
    console.log(`small busybox counter, ${rounds} rounds (diff, floor, none, whole filesystem in turn); step medians, ms:`);
    for (const [mode, rs] of Object.entries(runs)) console.log(`  ${mode.slice(8).toLowerCase().padEnd(4)}: ${stepMedians(rs)}`);
    const base = "Docker's checkpoint + start --checkpoint in place";
    const target = 'downtime <= 800 ms, total <= 1200 ms';
    report({ name: 'migration downtime, small busybox counter, diff layer', unit: 'ms', herd: runs.FS_MODE_DIFF.map((r) => r.downtime), baselineName: base, baseline: floors, target });
    report({ name: 'migration total (Migrate call to SUCCEEDED), small busybox counter, diff layer', unit: 'ms', herd: runs.FS_MODE_DIFF.map((r) => r.total), baselineName: base, baseline: floors, target });
    report({ name: 'migration total, small busybox counter, no filesystem', unit: 'ms', herd: runs.FS_MODE_NONE.map((r) => r.total), baselineName: base, baseline: floors });
    report({ name: 'migration total, small busybox counter, whole filesystem', unit: 'ms', herd: runs.FS_MODE_FULL.map((r) => r.total), baselineName: base, baseline: floors });
  }

  /** 200 MB of anonymous memory in the container; the agents' RSS is sampled during the moves. */
  async function memory() {
    const cmd = 'x=$(head -c 209715200 /dev/zero | tr "\\0" a); echo filled; while true; do sleep 1; done';
    const extra = ['--memory', '1g'];
    const pids = [...nodes.values()].map((n) => n.proc.pid);
    const idle = pids.map(rssMb);
    let peak = idle.slice();
    const moves: Move[] = [];
    const floors: number[] = [];
    const n = Math.max(1, Math.min(rounds, 3));
    for (let i = 0; i < n; i++) {
      const sampler = setInterval(() => (peak = peak.map((p, j) => Math.max(p, rssMb(pids[j])))), 50);
      moves.push(await herdMove(BUSYBOX_IMAGE, cmd, 'FS_MODE_DIFF', extra, 'filled'));
      clearInterval(sampler);
      floors.push(await floor(BUSYBOX_IMAGE, cmd, extra, 'filled'));
    }
    console.log(`200 MB-memory container, ${n} rounds; step medians: ${stepMedians(moves)}; ${(median(moves.map((m) => m.bytes)) / 1048576).toFixed(0)} MB moved`);
    console.log(`  agents' RSS growth during the moves: ${peak.map((p, i) => `${[...nodes.keys()][i]} +${(p - idle[i]).toFixed(0)} MB`).join(', ')} (target < 100 MB)`);
    report({ name: 'migration downtime, 200 MB-memory container, diff layer', unit: 'ms', herd: moves.map((m) => m.downtime), baselineName: "Docker's checkpoint + start --checkpoint in place", baseline: floors });
  }

  /** Page server and direct dump in turn for one memory size, each next to Docker's floor. */
  async function crossover() {
    const mb = Number(process.env.HERD_BENCH_MEM_MB ?? 64);
    const cmd = `x=$(head -c ${mb * 1048576} /dev/zero | tr "\\0" a); echo filled; while true; do sleep 1; done`;
    const extra = ['--memory', '1g'];
    const viaServer: Move[] = [];
    const direct: Move[] = [];
    const floors: number[] = [];
    for (let i = 0; i < rounds; i++) {
      viaServer.push(await herdMove(BUSYBOX_IMAGE, cmd, 'FS_MODE_DIFF', extra, 'filled', 'n1', 'n2'));
      direct.push(await herdMove(BUSYBOX_IMAGE, cmd, 'FS_MODE_DIFF', extra, 'filled', 'n2', 'n1'));
      floors.push(await floor(BUSYBOX_IMAGE, cmd, extra, 'filled'));
    }
    console.log(`${mb} MB-memory container, ${rounds} rounds; page server: ${stepMedians(viaServer)}; direct: ${stepMedians(direct)}`);
    const base = "Docker's checkpoint + start --checkpoint in place";
    report({ name: `migration downtime, ${mb} MB-memory container, page server`, unit: 'ms', herd: viaServer.map((m) => m.downtime), baselineName: base, baseline: floors });
    report({ name: `migration downtime, ${mb} MB-memory container, direct dump`, unit: 'ms', herd: direct.map((m) => m.downtime), baselineName: base, baseline: floors });
    report({ name: `migration downtime, ${mb} MB-memory container: page server over direct dump`, unit: 'ms', herd: viaServer.map((m) => m.downtime), baselineName: 'the direct dump', baseline: direct.map((m) => m.downtime) });
  }

  /** A 200 MB image: diff layer vs whole filesystem, on the bed's link and on a 1 Gbit/s one. */
  async function bigImage() {
    const image = 'herd-bigimage:latest';
    await must(bed.exec('n1', 'sh', ['-c', `set -e; d=$(mktemp -d); docker create --name mkbig ${BUSYBOX_IMAGE} true >/dev/null; docker export mkbig | tar -C $d -xf -; docker rm mkbig >/dev/null; head -c 209715200 /dev/urandom > $d/blob; tar -C $d -cf /tmp/herd-bigimage.tar .; rm -rf $d`]));
    for (const n of ['n1', 'n2']) await must(bed.docker(n, 'import', '/tmp/herd-bigimage.tar', image));
    const n = Math.max(1, Math.min(rounds, 3));
    for (const link of ['bed veth, unshaped', '1 Gbit/s (tc tbf)']) {
      if (link.startsWith('1 Gbit')) {
        for (const node of ['n1', 'n2']) await must(bed.exec(node, 'tc', ['qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', '1gbit', 'burst', '256kb', 'latency', '50ms']));
      }
      const diff: Move[] = [];
      const full: Move[] = [];
      const floors: number[] = [];
      for (let i = 0; i < n; i++) {
        diff.push(await herdMove(image, COUNTER, 'FS_MODE_DIFF'));
        floors.push(await floor(image, COUNTER));
        full.push(await herdMove(image, COUNTER, 'FS_MODE_FULL'));
      }
      console.log(`200 MB image, ${link}, ${n} rounds: diff layer ${(median(diff.map((r) => r.bytes)) / 1048576).toFixed(1)} MB (${stepMedians(diff, STEPS.slice(1, 6))}); whole filesystem ${(median(full.map((r) => r.bytes)) / 1048576).toFixed(0)} MB (${stepMedians(full, STEPS.slice(1, 6))})`);
      report({ name: `200 MB image, ${link}: whole filesystem over diff layer, total`, unit: 'ms', ratioHigherIsBetter: true, herd: full.map((r) => r.total), baselineName: 'the diff layer (ratio = how many times faster the diff layer is)', baseline: diff.map((r) => r.total), target: '>= 8x' });
      report({ name: `200 MB image, ${link}: diff layer total`, unit: 'ms', herd: diff.map((r) => r.total), baselineName: "Docker's checkpoint + start --checkpoint in place", baseline: floors });
      report({ name: `200 MB image, ${link}: whole filesystem total (whole / floor bounds the diff-vs-whole ratio)`, unit: 'ms', herd: full.map((r) => r.total), baselineName: "Docker's checkpoint + start --checkpoint in place", baseline: floors });
    }
    for (const node of ['n1', 'n2']) await bed.exec(node, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
