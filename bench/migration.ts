/**
 * Migration figures on the test bed (real dockerd + CRIU, two nodes, real herd processes):
 *  - small busybox counter, each filesystem mode: per-step breakdown, downtime and total, median of N;
 *  - the same done by hand in the same run (docker CLI, tar and nc in sequence, as
 *    ../shared/recipes/docker-criu-reference.sh does), as the baseline;
 *  - a 200 MB-memory container: downtime, total, and the agents' RSS growth during it;
 *  - a container on a 200 MB image: diff layer vs whole filesystem, on the bed's link as it
 *    is (veth, several GB/s) and shaped to 1 Gbit/s (tc tbf on each node's eth0), the link
 *    between the thesis's Raspberry Pis.
 *
 *   npx vite-node bench/migration.ts [rounds=10] [small|image]   (root; uses test/bed;
 *   'small': the first two figures only; 'image': the 200 MB image figures only)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../test/bed/bed';
import { agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../test/helpers/cluster';
import { migrate } from '../test/helpers/migrate';

const rounds = Number(process.argv[2] ?? 10);
const only = process.argv[3]; // 'small': only the small-container figures; 'image': only the 200 MB image
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

/** The recipe's steps by hand, timed the same way: create on B, checkpoint on A, tar the upper dir, nc, untar, start --checkpoint. */
async function byHand(bed: Bed, name: string): Promise<{ downtime: number; total: number }> {
  const [a, b] = bed.nodes;
  await must(bed.docker(a.id, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER));
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = performance.now();
  await must(bed.docker(b.id, 'create', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER));
  const idB = await must(bed.docker(b.id, 'inspect', '-f', '{{.Id}}', name));
  const upperB = await must(bed.docker(b.id, 'inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', name));
  const upperA = await must(bed.docker(a.id, 'inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', name));
  const rootB = await must(bed.docker(b.id, 'info', '-f', '{{.DockerRootDir}}'));
  const x = `${a.dir}/byhand/${name}`;
  const rcv = `${b.dir}/byhand/${name}`;
  mkdirSync(x, { recursive: true });
  mkdirSync(rcv, { recursive: true });
  const tf = performance.now();
  await must(bed.docker(a.id, 'checkpoint', 'create', `--checkpoint-dir=${x}`, name, 'cp1'));
  await must(bed.exec(a.id, 'tar', ['-C', upperA, '--xattrs', "--xattrs-include=*", '-cf', `${x}/upper.tar`, '.']));
  // the receiver's stdin is a FIFO opened read-write, so nc never sees EOF and half-closes early
  const listener = bed.spawn(b.id, 'sh', ['-c', `rm -f ${rcv}/.idle; mkfifo ${rcv}/.idle; busybox nc -l -p 7099 0<>${rcv}/.idle | tar -C ${rcv} -xf -`], { name: `nc-${name}` });
  for (let i = 0; i < 100; i++) {
    if ((await bed.exec(b.id, 'sh', ['-c', 'busybox netstat -ltn | grep -q ":7099 "'])).code === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await must(bed.exec(a.id, 'sh', ['-c', `tar -C ${x} -cf - cp1 upper.tar | busybox nc ${b.ip} 7099`]));
  await listener.exited;
  await must(bed.exec(b.id, 'tar', ['-C', upperB, '--xattrs', "--xattrs-include=*", '-xpf', `${rcv}/upper.tar`]));
  await must(bed.exec(b.id, 'sh', ['-c', `mkdir -p ${rootB}/containers/${idB}/checkpoints && mv ${rcv}/cp1 ${rootB}/containers/${idB}/checkpoints/cp1`]));
  await must(bed.docker(b.id, 'start', '--checkpoint', 'cp1', name));
  const t1 = performance.now();
  await must(bed.docker(a.id, 'rm', '-f', name));
  await must(bed.docker(b.id, 'rm', '-f', name));
  return { downtime: t1 - tf, total: performance.now() - t0 };
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
async function dockerFloor(bed: Bed, image: string, name: string): Promise<{ checkpoint: number; restore: number }> {
  const n = bed.nodes[0];
  const id = await must(bed.docker(n.id, 'run', '-d', '--name', name, image, 'sh', '-c', COUNTER));
  const root = await must(bed.docker(n.id, 'info', '-f', '{{.DockerRootDir}}'));
  await new Promise((r) => setTimeout(r, 1500));
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

async function main() {
  const bed = await startBed({ nodes: 2, docker: true, name: 'mb' });
  const nodes = new Map<string, HerdNode>();
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id, ['--log-level', 'warn']));
  const addrs = () => [...nodes.values()].map((n) => n.address);
  let coordinator = (await agreedLeader(addrs(), 20_000)).address;
  for (let i = 0; i < 200 && (await connectedNodes(coordinator)).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 2000)); // criu check, inventories
  const out: string[] = [];
  let seq = 0;
  const herdMove = async (image: string, cmd: string, mode: string, extra: string[] = []) => {
    const name = `b${++seq}`;
    const id = (await must(bed.docker('n1', 'run', '-d', '--name', name, ...extra, image, 'sh', '-c', cmd))).slice(0, 12);
    await new Promise((r) => setTimeout(r, 1500)); // listed by the coordinator, warmed up
    coordinator = (await agreedLeader(addrs())).address;
    const t0 = performance.now();
    const r = await migrate(coordinator, id, 'n2', mode, 600_000);
    const total = performance.now() - t0;
    if (r.last?.state !== 'SUCCEEDED') throw new Error(`${name} (${mode}): ${r.last?.state} ${r.last?.reason ?? JSON.stringify(r.error)}`);
    await must(bed.docker('n2', 'rm', '-f', name));
    return { total, onSource: Number(r.last.ended_ms) - Number(r.last.started_ms), downtime: Number(r.last.downtime_ms), timings: r.last.timings as Array<{ step: string; ms: number }>, bytes: Number(r.last.bytes_total) };
  };
  try {
    if (only !== 'image') await smallAndMemory();
    if (only !== 'small') await bigImage();
  } finally {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    await bed.stop();
    console.log(out.join('\n'));
  }

  async function smallAndMemory() {
    out.push(`small busybox counter, ${rounds} migrations per mode (median ms):`);
    out.push('  mode  total  downtime  ' + ['PREPARE', 'CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE', 'REMOVE_SOURCE'].map((s) => s.padStart(10)).join(''));
    const small: Record<string, number> = {};
    for (const mode of ['FS_MODE_NONE', 'FS_MODE_DIFF', 'FS_MODE_FULL']) {
      const runs: Array<Awaited<ReturnType<typeof herdMove>>> = [];
      for (let i = 0; i < rounds; i++) runs.push(await herdMove(BUSYBOX_IMAGE, COUNTER, mode));
      const step = (s: string) => median(runs.map((r) => r.timings.find((t) => t.step === s)?.ms ?? 0));
      small[mode] = median(runs.map((r) => r.total));
      out.push(`  ${mode.slice(8).toLowerCase().padEnd(4)} ${String(Math.round(small[mode])).padStart(6)} ${String(median(runs.map((r) => r.downtime))).padStart(9)}  ` + ['PREPARE', 'CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE', 'REMOVE_SOURCE'].map((s) => String(step(s)).padStart(10)).join(''));
    }
    const hand: Array<{ downtime: number; total: number }> = [];
    for (let i = 0; i < rounds; i++) hand.push(await byHand(bed, `h${i}`));
    const handTotal = median(hand.map((h) => h.total));
    out.push(`  by hand (docker CLI + tar + nc, same steps, diff layer): total ${Math.round(handTotal)}, downtime ${Math.round(median(hand.map((h) => h.downtime)))}`);
    out.push(`  herd diff-layer total / by hand: ${(small.FS_MODE_DIFF / handTotal).toFixed(2)}  (target: downtime <= 800 ms, total <= 1200 ms)`);
    if (only === 'small') return;

    // 200 MB of anonymous memory in the container
    const pids = [...nodes.values()].map((n) => n.proc.pid);
    const idle = pids.map(rssMb);
    let peak = idle.slice();
    const sampler = setInterval(() => (peak = peak.map((p, i) => Math.max(p, rssMb(pids[i])))), 50);
    const big = await herdMove(BUSYBOX_IMAGE, 'x=$(head -c 209715200 /dev/zero | tr "\\0" a); while true; do sleep 1; done', 'FS_MODE_DIFF', ['--memory', '1g']);
    clearInterval(sampler);
    out.push(`200 MB-memory container: total ${Math.round(big.total)} ms, downtime ${big.downtime} ms, ${(big.bytes / 1048576).toFixed(0)} MB moved; steps ${big.timings.map((t) => `${t.step} ${t.ms}`).join(', ')}`);
    out.push(`  agents' RSS growth during it: ${peak.map((p, i) => `${[...nodes.keys()][i]} +${(p - idle[i]).toFixed(0)} MB`).join(', ')} (target < 100 MB)`);
  }

  /** A 200 MB image: diff layer vs whole filesystem, on the bed's link and on a 1 Gbit/s one. */
  async function bigImage() {
    for (const n of ['n1', 'n2']) {
      await must(bed.exec(n, 'sh', ['-c', `mkdir -p /tmp/herd-bigimg && cd /tmp/herd-bigimg && [ -f big.tar ] || { docker save ${BUSYBOX_IMAGE} >/dev/null; }; true`]));
    }
    const image = 'herd-bigimage:latest';
    await must(bed.exec('n1', 'sh', ['-c', `set -e; d=$(mktemp -d); docker create --name mkbig ${BUSYBOX_IMAGE} true >/dev/null; docker export mkbig | tar -C $d -xf -; docker rm mkbig >/dev/null; head -c 209715200 /dev/urandom > $d/blob; tar -C $d -cf /tmp/herd-bigimage.tar .; rm -rf $d`]));
    for (const n of ['n1', 'n2']) await must(bed.docker(n, 'import', '/tmp/herd-bigimage.tar', image));
    for (const link of ['bed veth, unshaped', '1 Gbit/s (tc tbf)']) {
      if (link.startsWith('1 Gbit')) {
        for (const n of ['n1', 'n2']) await must(bed.exec(n, 'tc', ['qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', '1gbit', 'burst', '256kb', 'latency', '50ms']));
      }
      const diff: Array<Awaited<ReturnType<typeof herdMove>>> = [];
      const full: Array<Awaited<ReturnType<typeof herdMove>>> = [];
      for (let i = 0; i < 3; i++) {
        diff.push(await herdMove(image, COUNTER, 'FS_MODE_DIFF'));
        full.push(await herdMove(image, COUNTER, 'FS_MODE_FULL'));
      }
      const d = median(diff.map((r) => r.total));
      const f = median(full.map((r) => r.total));
      const steps = (rs: typeof diff) => ['CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE'].map((st) => `${st.toLowerCase()} ${median(rs.map((r) => r.timings.find((t) => t.step === st)?.ms ?? 0))}`).join(', ');
      const floors: Array<{ checkpoint: number; restore: number }> = [];
      for (let i = 0; i < 3; i++) floors.push(await dockerFloor(bed, image, `floor${++seq}`));
      const fc = median(floors.map((x) => x.checkpoint));
      const fr = median(floors.map((x) => x.restore));
      const floor = median(floors.map((x) => x.checkpoint + x.restore));
      out.push(`200 MB image, ${link}, median of 3: diff layer ${Math.round(d)} ms (${median(diff.map((r) => r.onSource))} ms from the source's start to its end; ${(median(diff.map((r) => r.bytes)) / 1048576).toFixed(1)} MB; ${steps(diff)}), whole filesystem ${Math.round(f)} ms (${(median(full.map((r) => r.bytes)) / 1048576).toFixed(0)} MB; ${steps(full)}): diff is ${(f / d).toFixed(1)}x faster (target >= 8x)`);
      out.push(`  Docker's floor, the same container checkpointed and restored in place through the API, nothing moved: ${Math.round(floor)} ms (checkpoint ${Math.round(fc)}, restore ${Math.round(fr)}); whole filesystem / floor = ${(f / floor).toFixed(1)}x is the most any diff-layer migration on Docker's checkpoint and restore could reach here`);
    }
    for (const n of ['n1', 'n2']) await bed.exec(n, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
