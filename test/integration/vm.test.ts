// A Raspberry Pi's truth in the test bed (issue 20, docs/vm-nodes.md): an emulated arm64 machine
// with Debian's arm64 kernel (cgroup v2), its own dockerd and CRIU, running the packaged
// herd-linux-arm64 as the third node of a cluster with two x64 bed nodes. One guest, booted once,
// shared by every test here. Nothing skips: a guest that cannot boot fails the file.
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExecutables } from '../../cross/harness';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { startVm, type VmNode } from '../bed/vm';
import { adminClient, PORT, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { waitFor } from '../helpers/tmp';
import { startGuestHerd } from '../helpers/vm-herd';

const MiB = 1 << 20;
let bed: Bed;
let vm: VmNode;
const x64 = new Map<string, HerdNode>();
const clients = new Map<string, any>();
let target = '';

/** An Admin call to the coordinator, whichever node that is: followers name it in their refusal. */
async function admin(method: string, req: unknown): Promise<any> {
  const addrs = [...bed.nodes.map((n) => `${n.ip}:${PORT}`), `${vm.ip}:${PORT}`];
  target ||= addrs[0];
  for (let hop = 0; ; hop++) {
    if (!clients.has(target)) clients.set(target, adminClient(target));
    try {
      return await call(clients.get(target), method, req);
    } catch (e) {
      const err = e as grpc.ServiceError;
      if (err.code !== grpc.status.UNAVAILABLE || hop >= 5) throw e;
      const hint = /ask \S+ at (\S+)$/.exec(err.details ?? '');
      target = hint ? hint[1] : addrs[(addrs.indexOf(target) + 1) % addrs.length];
    }
  }
}

/** The guest's agent: the arm64 executable from the share, peers the two x64 nodes. */
const startGuestAgent = (exe: string) => startGuestHerd(vm, { exe, peers: bed.nodes });

const points = async (entity: string, metric: string, from = 0) =>
  (await admin('QuerySamples', { entity, metric, from_ms: from })).points as Array<{ ts_ms: number; value: number }>;

async function herdIdOf(name: string): Promise<string> {
  return waitFor(`${name} in the inventory of ${vm.id}`, async () => {
    const cs = (await admin('ListContainers', { node_id: vm.id })).containers as any[];
    return cs.find((c) => c.name === name && c.state === 'running')?.herd_id as string | undefined;
  }, 180_000, 1000).catch((e) => { throw new Error(`${e.message}\nguest herd.log:\n${vm.log('herd').slice(-3000)}`); });
}

/** CPU seconds a guest process has used (utime + stime, USER_HZ 100), read with the guest's clock. */
async function cpuOf(pid: number): Promise<{ ms: number; cpuS: number }> {
  // busybox's date has no %N; its adjtimex prints the clock in microseconds
  const r = await vm.sh(`busybox adjtimex | grep -E 'time.tv_(sec|usec)'; cat /proc/${pid}/stat`);
  const sec = /tv_sec:\s*(\d+)/.exec(r.stdout);
  const usec = /tv_usec:\s*(\d+)/.exec(r.stdout);
  const stat = r.stdout.trim().split('\n').pop() ?? '';
  if (!sec || !usec || !stat.includes(')')) throw new Error(`cannot read the guest's clock and /proc/${pid}/stat: ${r.stdout}${r.stderr}`);
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return { ms: Number(sec[1]) * 1000 + Number(usec[1]) / 1000, cpuS: (Number(f[11]) + Number(f[12])) / 100 };
}

beforeAll(async () => {
  const t0 = Date.now();
  const exe = await ensureExecutables();
  bed = await startBed({ nodes: 2, docker: true, name: 'vm', subnet: 181 });
  vm = await startVm(bed, { arch: 'arm64', index: 3 });
  for (const n of bed.nodes) x64.set(n.id, startHerdOn(bed, n.id, ['--peer', `${vm.id}=${vm.ip}:${PORT}`]));
  await startGuestAgent(exe.arm64);
  console.log(`bed + arm64 guest + agents started in ${Date.now() - t0} ms (guest boot to docker: ${vm.bootMs} ms)`);
}, 900_000);

afterAll(async () => {
  for (const c of clients.values()) c.close();
  for (const n of x64.values()) await n.proc.stop();
  await vm?.stop();
  await bed?.stop();
}, 120_000);

describe('an arm64 VM node (Debian arm64 kernel, cgroup v2) in a cluster of x64 bed nodes', () => {
  it('boots a real arm64 kernel with a cgroup v2 root holding cpu, memory, io and pids', async () => {
    const r = await vm.sh('uname -m; grep -c "^cgroup2 /sys/fs/cgroup " /proc/mounts; cat /sys/fs/cgroup/cgroup.controllers');
    expect(r.code, r.stdout).toBe(0);
    const [machine, v2mounts, controllers] = r.stdout.trim().split('\n');
    expect(machine).toBe('aarch64');
    expect(v2mounts).toBe('1');
    expect(controllers.split(' ')).toEqual(expect.arrayContaining(['cpu', 'memory', 'io', 'pids']));
  });

  it('joins: the coordinator lists it as a connected arm64 node and stores its samples', async () => {
    const t0 = Date.now();
    await waitFor('the guest connected as arm64', async () => {
      const ns = (await admin('ListNodes', {})).nodes as any[];
      return ns.find((n) => n.node_id === vm.id && n.connected && n.arch === 'arm64');
    }, 180_000, 1000).catch((e) => { throw new Error(`${e.message}\nguest herd.log:\n${vm.log('herd').slice(-3000)}`); });
    console.log(`arm64 guest agent connected ${Date.now() - t0} ms after the wait began`);
    await waitFor('host samples of the guest', async () => (await points(vm.id, 'host.mem.used_bytes')).length > 0, 120_000, 1000)
      .catch((e) => { throw new Error(`${e.message}\nguest herd.log:\n${vm.log('herd').slice(-3000)}`); });
    // the guest really runs the arm64 executable, not qemu-user
    const r = await vm.sh(`od -An -tx1 -j18 -N2 /host/herd; cat /proc/$(cat /run/herd.pid)/comm`);
    expect(r.stdout.trim().split('\n')[0].trim()).toBe('b7 00'); // e_machine EM_AARCH64
  }, 300_000);

  it('collects per-container CPU, memory, I/O and pids from the real v2 files, matching what the containers do', async () => {
    // known workloads: a burner capped at half a core, 64 MiB held in /dev/shm (shmem: charged to
    // the container, never "inactive file"), 32 MiB written and fsynced, four processes
    const runs: Array<[string, string[]]> = [
      ['burn', ['--cpus', '0.5', BUSYBOX_IMAGE, 'sh', '-c', 'while :; do :; done']],
      ['hog', ['--shm-size', '128m', BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/zero of=/dev/shm/hog bs=1M count=64 2>/dev/null; exec sleep 100000']],
      ['writer', [BUSYBOX_IMAGE, 'sh', '-c', 'sleep 20; dd if=/dev/zero of=/data bs=1M count=32 conv=fsync 2>/dev/null; exec sleep 100000']],
      ['procs', [BUSYBOX_IMAGE, 'sh', '-c', 'sleep 100000 & sleep 100000 & sleep 100000 & wait']],
    ];
    for (const [name, args] of runs) {
      const r = await vm.docker('run', '-d', '--name', name, ...args);
      expect(r.code, r.stderr).toBe(0);
    }
    const ids: Record<string, string> = {};
    for (const [name] of runs) ids[name] = await herdIdOf(name);
    // CPU: the samples integrated over a window = the CPU time the kernel gives the burner's one
    // process (/proc/PID/stat, another file than the cgroup's cpu.stat herd reads), and the CFS
    // quota caps every sample at half a core. Under TCG the guest may get less than half a core
    // of its own clock, so the reference is what the process really got, not 0.5.
    const burnPid = Number((await vm.docker('inspect', '-f', '{{.State.Pid}}', 'burn')).stdout.trim());
    const a = await cpuOf(burnPid);
    await new Promise((r) => setTimeout(r, 15_000));
    const b = await cpuOf(burnPid);
    const cpu = await waitFor('CPU samples of the burner past the window', async () => {
      const p = await points(ids.burn, 'container.cpu.usage', a.ms - 5000);
      return p.length && p[p.length - 1].ts_ms >= b.ms ? p : undefined;
    }, 60_000, 1000);
    let integrated = 0;
    for (let i = 1; i < cpu.length; i++) {
      if (cpu[i].ts_ms > a.ms && cpu[i].ts_ms <= b.ms) integrated += cpu[i].value * (cpu[i].ts_ms - cpu[i - 1].ts_ms) / 1000;
    }
    const got = b.cpuS - a.cpuS;
    const max = Math.max(...cpu.map((p) => p.value));
    console.log(`burner --cpus 0.5: /proc says ${got.toFixed(2)} CPU s in ${((b.ms - a.ms) / 1000).toFixed(1)} s; container.cpu.usage integrates to ${integrated.toFixed(2)} s, max sample ${max.toFixed(3)} cores`);
    expect(got).toBeGreaterThan(0.5);
    expect(Math.abs(integrated - got)).toBeLessThan(0.15 * got + 0.55); // + one 1 s sample of 0.5 cores at either edge
    expect(max).toBeLessThan(0.56);
    // memory: 64 MiB of shmem plus the shell and sleep (< 8 MiB)
    const mem = await waitFor('memory of the hog', async () => { const p = await points(ids.hog, 'container.mem.usage_bytes'); return p.length >= 2 ? p : undefined; }, 120_000, 1000);
    const memLast = mem[mem.length - 1].value;
    console.log(`hog of 64 MiB: container.mem.usage_bytes ${(memLast / MiB).toFixed(1)} MiB`);
    expect(memLast).toBeGreaterThanOrEqual(64 * MiB);
    expect(memLast).toBeLessThan(72 * MiB);
    // pids: sh + three sleeps
    const pids = await waitFor('pids of procs', async () => { const p = await points(ids.procs, 'container.pids'); return p.length ? p : undefined; }, 120_000, 1000);
    expect(pids[pids.length - 1].value).toBe(4);
    // I/O: written bytes per second integrated over the samples = the 32 MiB written (v2 charges the
    // page cache writeback to the container), plus ext4 metadata and journal (< 4 MiB)
    const written = async () => {
      const p = await points(ids.writer, 'container.blkio.write_bytes');
      let sum = 0;
      for (let i = 1; i < p.length; i++) sum += p[i].value * (p[i].ts_ms - p[i - 1].ts_ms) / 1000;
      return sum;
    };
    await waitFor('the writer done', async () => (await vm.docker('exec', 'writer', 'ls', '/data')).code === 0, 180_000, 2000);
    const bytes = await waitFor('32 MiB written, as the samples integrate', async () => { const b = await written(); return b >= 31 * MiB ? b : undefined; }, 120_000, 2000)
      .catch(async (e) => { throw new Error(`${e.message}: integrated ${(await written()) / MiB} MiB`); });
    console.log(`writer of 32 MiB: container.blkio.write_bytes integrates to ${(bytes / MiB).toFixed(1)} MiB`);
    expect(bytes).toBeLessThan(36 * MiB);
    await vm.docker('rm', '-f', 'burn', 'hog', 'writer', 'procs');
  }, 600_000);

  it('refuses to move a container between arm64 and x64, saying why', async () => {
    const r = await vm.docker('run', '-d', '--name', 'stay', BUSYBOX_IMAGE, 'sleep', '100000');
    expect(r.code, r.stderr).toBe(0);
    const herdId = await herdIdOf('stay');
    await admin('ListNodes', {}); // target is now the coordinator's address
    const res = await migrate(target, herdId, 'n1', 'FS_MODE_DIFF', 60_000);
    expect(res.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(res.error?.details).toMatch(/cannot move between architectures \(n3 is arm64, n1 is x64\)/);
    expect((await vm.docker('inspect', '-f', '{{.State.Running}}', 'stay')).stdout.trim()).toBe('true');
    await vm.docker('rm', '-f', 'stay');
  }, 300_000);

  it('checkpoints and restores a counter with CRIU on the arm64 kernel: the count goes on', async () => {
    const criu = await vm.sh('criu --version | head -1; criu check 2>&1 | tail -1');
    console.log(`guest CRIU: ${criu.stdout.trim().replace(/\n/g, '; ')}`);
    expect(criu.stdout).toMatch(/Looks good/);
    const r = await vm.docker('run', '-d', '--name', 'counter', BUSYBOX_IMAGE, 'sh', '-c', 'i=0; while :; do echo $i; i=$((i+1)); sleep 0.5; done');
    expect(r.code, r.stderr).toBe(0);
    const count = async () => (await vm.docker('logs', 'counter')).stdout.trim().split('\n').map(Number);
    await waitFor('the counter at 4', async () => (await count()).length >= 5, 60_000, 1000);
    const t0 = Date.now();
    const cp = await vm.docker('checkpoint', 'create', 'counter', 'c1');
    expect(cp.code, cp.stderr).toBe(0);
    const checkpointMs = Date.now() - t0;
    // Docker 20.10 uploads the checkpoint dir to containerd's content store at restore; the same
    // bytes were committed there by the checkpoint, and unless containerd's GC removed them first
    // the commit fails "already exists" (moby/moby#42900). Herd's own restore writes a nonce
    // into the dir for this reason (agent/runtime/docker-runtime.ts); so does this test.
    const root = (await vm.docker('info', '-f', '{{.DockerRootDir}}')).stdout.trim();
    const full = (await vm.docker('inspect', '-f', '{{.Id}}', 'counter')).stdout.trim();
    const nonce = await vm.sh(`echo "${Date.now()} ${Math.random()}" > ${root}/containers/${full}/checkpoints/c1/herd-test-nonce`);
    expect(nonce.code, nonce.stderr).toBe(0);
    const before = await count();
    const t1 = Date.now();
    const st = await vm.docker('start', '--checkpoint', 'c1', 'counter');
    expect(st.code, st.stderr).toBe(0);
    console.log(`docker checkpoint ${checkpointMs} ms, restore ${Date.now() - t1} ms on the arm64 guest`);
    const after = await waitFor('the count going on', async () => { const c = await count(); return c.length >= before.length + 3 ? c : undefined; }, 60_000, 1000);
    // one sequence 0, 1, 2, ... with no restart from 0: the restored process kept its memory
    expect(after).toEqual(after.map((_, i) => i));
    await vm.docker('rm', '-f', 'counter');
  }, 300_000);
});


describe("the Pi's default: the same guest booted with cgroup_disable=memory", () => {
  let pi: VmNode;
  beforeAll(async () => {
    await vm.kill('herd');
    await vm.stop(); // one guest at a time: TCG is expensive
    pi = await startVm(bed, { arch: 'arm64', index: 4, kernelArgs: ['cgroup_disable=memory'] });
    fs.copyFileSync(path.join(vm.share, 'herd'), path.join(pi.share, 'herd'));
    fs.chmodSync(path.join(pi.share, 'herd'), 0o755);
  }, 600_000);
  afterAll(async () => { await pi?.stop(); }, 60_000);

  it('keeps collecting, says once that memory metrics are off and how to turn them on; doctor reports it with the fix', async () => {
    expect((await pi.sh('cat /sys/fs/cgroup/cgroup.controllers')).stdout.split(/\s+/)).not.toContain('memory');
    await pi.spawn('herd', `env HOME=/root /host/herd agent --insecure --node-id ${pi.id} --data-dir /var/lib/herd --listen ${pi.ip}:${PORT} ` +
      `--docker-socket /run/docker.sock --docker-timeout 60000 --pmproxy-url '' --host-interval 1000 --container-interval 1000`);
    await pi.docker('run', '-d', '--name', 'busy', BUSYBOX_IMAGE, 'sh', '-c', 'while :; do :; done');
    // serving, and has collected the container for a while: the warning must not repeat per round
    await waitFor('the agent collecting', async () => /herd node started/.test(pi.log('herd')), 300_000, 2000)
      .catch((e) => { throw new Error(`${e.message}\n${pi.log('herd').slice(-2000)}`); });
    await new Promise((r) => setTimeout(r, 15_000));
    const log = pi.log('herd');
    const warnings = log.split('\n').filter((l) => l.includes('container memory metrics are off'));
    expect(warnings, log.slice(-2000)).toHaveLength(1);
    expect(warnings[0]).toContain('cgroup_disable=memory');
    expect(warnings[0]).toContain('cgroup_enable=memory cgroup_memory=1');
    expect(warnings[0]).toContain('/boot/firmware/cmdline.txt');
    expect((await pi.sh('kill -0 $(cat /run/herd.pid)')).code).toBe(0); // still running
    const doc = await pi.sh(`HOME=/root /host/herd doctor --json --data-dir /tmp/doctor --listen 127.0.0.1:0 --pmproxy-url '' --docker-socket /run/docker.sock`, 300_000);
    const report = JSON.parse(doc.stdout.slice(doc.stdout.indexOf('{')));
    const cg = report.checks.find((c: any) => c.id === 'cgroups');
    expect(cg).toMatchObject({ status: 'warn', summary: expect.stringContaining('lacks memory'), fix: expect.stringContaining('/boot/firmware/cmdline.txt') });
    expect(cg.summary).toContain('cgroup_disable=memory');
  }, 600_000);
});
