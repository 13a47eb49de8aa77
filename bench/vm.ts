/**
 * arm64 figures on emulated guests (issue 20, docs/vm-nodes.md): two arm64 VM nodes (qemu TCG,
 * Debian's arm64 kernel, cgroup v2, their own dockerd + CRIU) running the packaged
 * herd-linux-arm64, with one x64 bed node as the coordinator.
 *  - herd on the arm64 kernel: start to serving (spawn to "herd node started") and idle RSS;
 *  - `herd migrate` of a small busybox counter from one arm64 guest to the other and back, its
 *    count going on, each move next to Docker's own floor on the source guest: the same counter
 *    checkpointed and started from that checkpoint in place through the Engine API, nothing moved.
 * Emulated, so only the ratio means anything; both guests run at once (TCG: slow on a shared host).
 *
 *   node bench/run.mjs vm [rounds=3]   (root; bed "vm4", subnet 184)
 */
import { randomUUID } from 'node:crypto';
import { BUSYBOX_IMAGE, startBed } from '../test/bed/bed';
import { startVm, type VmNode } from '../test/bed/vm';
import { ensureExecutables } from '../cross/harness';
import { adminClient, PORT, startHerdOn } from '../test/helpers/cluster';
import { migrate } from '../test/helpers/migrate';
import { startGuestHerd } from '../test/helpers/vm-herd';
import { report } from './stats';

const rounds = Number(process.argv[2] ?? 3);
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs: number, stepMs = 1000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** One Docker Engine API call to a guest's dockerd (tcp, inside the bed's bridge): no CLI start-up in the timing. */
async function dockerApi(vm: VmNode, method: string, path: string, body?: unknown): Promise<void> {
  const r = await fetch(`http://${vm.ip}:2375/v1.41${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(600_000) });
  if (!r.ok) throw new Error(`${vm.id} ${method} ${path}: ${r.status} ${await r.text()}`);
}

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr || r.stdout);
  return r.stdout.trim();
}

/** Docker's floor on one guest: a counter checkpointed and started from the checkpoint in place. */
async function dockerFloor(vm: VmNode, name: string): Promise<number> {
  const id = await must(vm.docker('run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER));
  await sleep(3000);
  const t0 = performance.now();
  await dockerApi(vm, 'POST', `/containers/${name}/checkpoints`, { CheckpointID: 'floor', Exit: true });
  const t1 = performance.now();
  // as herd's runtime does: two identical checkpoints collide in containerd's content store
  await must(vm.sh(`echo ${randomUUID()} > /var/lib/docker/containers/${id}/checkpoints/floor/herd-nonce`));
  const t1b = performance.now();
  await dockerApi(vm, 'POST', `/containers/${name}/start?checkpoint=floor`);
  const t2 = performance.now();
  await must(vm.docker('rm', '-f', name));
  return t1 - t0 + (t2 - t1b);
}

const counts = async (vm: VmNode, name: string) => (await vm.docker('logs', name)).stdout.trim().split('\n').filter(Boolean).map(Number);

async function main() {
  const exe = await ensureExecutables();
  const bed = await startBed({ nodes: 1, docker: false, name: 'vm4', subnet: 184 });
  const guests: VmNode[] = [];
  try {
    const t0 = Date.now();
    for (const index of [3, 4]) guests.push(await startVm(bed, { arch: 'arm64', index }));
    console.log(`two arm64 guests serving docker ${Date.now() - t0} ms after the first qemu started (boots ${guests.map((g) => g.bootMs).join(', ')} ms)`);
    // the coordinator runs no containers: no Docker (not the host's, which other work uses)
    const coord = startHerdOn(bed, 'n1', ['--log-level', 'warn', '--docker-socket', '/nonexistent/docker.sock', ...guests.flatMap((g) => ['--peer', `${g.id}=${g.ip}:${PORT}`])]);
    // herd on the arm64 kernel: spawn to "herd node started" (host clock, log polled), idle RSS
    const startMs: number[] = [];
    for (const g of guests) {
      const t = Date.now();
      await startGuestHerd(g, { exe: exe.arm64, peers: [bed.nodes[0], ...guests.filter((o) => o !== g)] });
      await until(`${g.id}'s herd serving`, async () => /herd node started/.test(g.log('herd')), 600_000, 250);
      startMs.push(Date.now() - t);
    }
    // who leads, as the x64 node sees it (a guest answers too slowly for agreedLeader's 1 s rounds)
    const asked = adminClient(coord.address);
    const coordinator = await until('a coordinator', () => new Promise<string | undefined>((res) =>
      asked.GetLeader({}, { deadline: Date.now() + 5000 }, (e: unknown, r: any) => res(e || !r.leader_id ? undefined : r.address))), 600_000);
    asked.close();
    const admin = adminClient(coordinator);
    const call = (m: string, req: unknown) => new Promise<any>((res, rej) => admin[m](req, { deadline: Date.now() + 30_000 }, (e: unknown, v: any) => (e ? rej(e) : res(v))));
    await until('both guests connected with CRIU', async () => {
      const ns = (await call('ListNodes', {})).nodes as any[];
      return guests.every((g) => ns.some((n) => n.node_id === g.id && n.connected && n.capabilities.includes('criu')));
    }, 600_000);
    await sleep(20_000);
    const rssMb = await Promise.all(guests.map(async (g) => Number(/VmRSS:\s+(\d+)/.exec(await must(g.sh('cat /proc/$(cat /run/herd.pid)/status')))![1]) / 1024));
    console.log(`herd-linux-arm64 on the arm64 kernel: start to serving ${startMs.join(', ')} ms; idle RSS ${rssMb.map((r) => r.toFixed(1)).join(', ')} MB`);

    const downtimes: number[] = [];
    const totals: number[] = [];
    const floors: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const [src, dst] = i % 2 ? [guests[1], guests[0]] : guests;
      const name = `c${i}`;
      await must(src.docker('run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER));
      const herdId = await until(`${name} in ${src.id}'s inventory`, async () => {
        const cs = (await call('ListContainers', { node_id: src.id })).containers as any[];
        return cs.find((c) => c.name === name && c.state === 'running')?.herd_id as string | undefined;
      }, 300_000);
      await sleep(3000);
      const before = (await counts(src, name)).pop() ?? 0;
      const t = performance.now();
      const r = await migrate(coordinator, herdId, dst.id, 'FS_MODE_DIFF', 1_200_000);
      const total = performance.now() - t;
      if (r.last?.state !== 'SUCCEEDED') throw new Error(`move ${i + 1} ${src.id} -> ${dst.id}: ${r.last?.state} ${r.last?.reason ?? JSON.stringify(r.error)}\n${src.log('herd').slice(-2000)}\n${dst.log('herd').slice(-2000)}`);
      // the count goes on where it was: past the last value seen on the source, one step at a time
      // (a restart from 1 would need far longer than this wait to get there)
      const seen = await until(`${name} counting on ${dst.id} past ${before}`, async () => { const c = await counts(dst, name); return c.length && c[c.length - 1] >= before + 3 ? c : undefined; }, 120_000);
      const tail = seen.slice(-5);
      if (tail.some((v, j) => j > 0 && v !== tail[j - 1] + 1)) throw new Error(`move ${i + 1}: the count on ${dst.id} jumped: ${tail.join(' ')}`);
      downtimes.push(Number(r.last.downtime_ms));
      totals.push(total);
      floors.push(await dockerFloor(src, `floor${i}`));
      console.log(`move ${i + 1} ${src.id} -> ${dst.id}: downtime ${r.last.downtime_ms} ms, total ${Math.round(total)} ms (count ${before} before, ${seen[seen.length - 1]} after); ` +
        `steps ${(r.last.timings as any[]).map((s) => `${s.step.toLowerCase()} ${s.ms}`).join(', ')}; Docker's floor on ${src.id} ${Math.round(floors[i])} ms`);
      await must(dst.docker('rm', '-f', name));
    }
    admin.close();
    const base = "Docker's checkpoint + start --checkpoint in place, same guest";
    report({ name: 'arm64 guest (TCG): migration downtime, small busybox counter, guest to guest', unit: 'ms', herd: downtimes, baselineName: base, baseline: floors, target: '<= 1.2x' });
    report({ name: 'arm64 guest (TCG): migration total (Migrate call to SUCCEEDED)', unit: 'ms', herd: totals, baselineName: base, baseline: floors });
    report({ name: 'arm64 guest (TCG): herd start to serving', unit: 'ms', herd: startMs });
    report({ name: 'arm64 guest (TCG): herd idle RSS', unit: 'MB', herd: rssMb });
    await coord.proc.stop();
  } finally {
    for (const g of guests) await g.stop().catch(() => {});
    await bed.stop();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
