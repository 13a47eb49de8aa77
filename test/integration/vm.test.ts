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
import { testPki } from '../helpers/pki';
import { waitFor } from '../helpers/tmp';

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

/** The guest's agent: the arm64 executable from the share, its data dir on the guest's own disk. */
async function startGuestAgent(extra: string[] = []): Promise<void> {
  const addr = `${vm.ip}:${PORT}`;
  testPki().provision(path.join(vm.share, 'herd-data'), vm.id, addr);
  const peers = bed.nodes.map((n) => `--peer ${n.id}=${n.ip}:${PORT}`).join(' ');
  await vm.sh('mkdir -p /var/lib/herd && cp -r /host/herd-data/tls /var/lib/herd/');
  await vm.spawn('herd', `env HOME=/root HERD_LOG_LEVEL=${process.env.VM_HERD_LOG_LEVEL ?? "info"} /host/herd agent --node-id ${vm.id} --data-dir /var/lib/herd --listen ${addr} ${peers} ` +
    `--docker-socket /run/docker.sock --pmproxy-url '' --host-interval 1000 --container-interval 1000 --track-interval 1000 ${extra.join(' ')}`);
}

const points = async (entity: string, metric: string, from = 0) =>
  (await admin('QuerySamples', { entity, metric, from_ms: from })).points as Array<{ ts_ms: number; value: number }>;

beforeAll(async () => {
  const t0 = Date.now();
  const exe = await ensureExecutables();
  bed = await startBed({ nodes: 2, docker: true, name: 'vm', subnet: 181 });
  vm = await startVm(bed, { arch: 'arm64', index: 3 });
  fs.copyFileSync(exe.arm64, path.join(vm.share, 'herd'));
  fs.chmodSync(path.join(vm.share, 'herd'), 0o755);
  for (const n of bed.nodes) x64.set(n.id, startHerdOn(bed, n.id, ['--peer', `${vm.id}=${vm.ip}:${PORT}`]));
  await startGuestAgent();
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
    await waitFor('host samples of the guest', async () => (await points(vm.id, 'host.mem.used_bytes')).length > 0, 60_000, 1000);
    // the guest really runs the arm64 executable, not qemu-user
    const r = await vm.sh(`od -An -tx1 -j18 -N2 /host/herd; cat /proc/$(cat /run/herd.pid)/comm`);
    expect(r.stdout.trim().split('\n')[0].trim()).toBe('b7 00'); // e_machine EM_AARCH64
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
      `--docker-socket /run/docker.sock --pmproxy-url '' --host-interval 1000 --container-interval 1000`);
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
