// The linux-arm64 executable, run on this x86-64 machine under qemu-user-static (cross/qemu.ts):
// alone, and as a node of a cluster of x64 executables on the test bed. Nothing skips: a
// missing qemu, arm64 sysroot, bed or executable fails the run.
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../common/proto';
import { ensureExecutables, waitServing } from '../../cross/harness';
import { treeModel, treeModelExpected } from '../../cross/onnx-model';
import { arm64Command, qemuSysroot } from '../../cross/qemu';
import { predict, train } from '../../coordinator/forecast/trainer/booster';
import { checkParams } from '../../coordinator/forecast/trainer/params';
import { boosterToOnnx } from '../../coordinator/forecast/onnx-export';
import { BUSYBOX_IMAGE, startBed, type Bed, type BedProcess } from '../bed/bed';
import { call } from '../helpers/coord';
import { adminClient } from '../helpers/cluster';
import { testPki } from '../helpers/pki';
import { waitFor } from '../helpers/tmp';

const PINS = JSON.parse(fs.readFileSync(path.join(__dirname, '../../build/node-binaries.json'), 'utf8'));
let exe: { x64: string; arm64: string };
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'herd-cross-'));

beforeAll(async () => {
  exe = await ensureExecutables();
  qemuSysroot();
}, 900_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Runs the arm64 executable under qemu; asynchronous, so the test worker stays responsive. */
async function runArm64(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const c = arm64Command(exe.arm64, args, env);
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(c.cmd, c.args, { env: c.env, encoding: 'utf8', timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, ms: performance.now() - t0 }),
    );
  });
}

describe('herd-linux-arm64 under qemu', () => {
  it('prints its version', async () => {
    const home = fs.mkdtempSync(path.join(work, 'home-'));
    const r = await runArm64(['--version'], { PATH: process.env.PATH, HOME: home });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).version);
    console.log(`arm64 --version under qemu: ${r.ms.toFixed(0)} ms`);
  }, 180_000);

  it('passes its own checks in herd doctor: LMDB write and read, an onnxruntime inference', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'doctor-'));
    fs.mkdirSync(path.join(dir, 'home'));
    fs.writeFileSync(path.join(dir, 'tree.onnx'), treeModel());
    const r = await runArm64(['doctor', '--json', '--data-dir', path.join(dir, 'data'), '--listen', '127.0.0.1:0', '--pmproxy-url', '', '--onnx-model', path.join(dir, 'tree.onnx'), '--onnx-input', '0.2,9'],
      { PATH: process.env.PATH, HOME: path.join(dir, 'home') });
    const report = JSON.parse(r.stdout);
    console.log(`arm64 herd doctor under qemu (first run, extracting everything): ${r.ms.toFixed(0)} ms`);
    expect(r.status).toBe(report.canMigrate ? 0 : 1);
    expect(report).toMatchObject({ arch: 'arm64', sea: true, node: `v${PINS.node.version}` });
    const byId = Object.fromEntries(report.checks.map((c: any) => [c.id, c]));
    expect(byId.executable.status, byId.executable.summary).toBe('ok');
    expect(byId['data-dir'].summary).toMatch(/LMDB wrote and read a record/);
    expect(byId.onnxruntime.status, byId.onnxruntime.summary).toBe('ok');
    expect(byId.onnxruntime.data.selfCheck).toEqual([11, 22, 33]);
    expect(byId.onnxruntime.data.model.outputs.Y.data).toEqual([treeModelExpected(0.2, 9)]);
    expect(fs.readdirSync(path.join(dir, 'home/.cache/herd')).sort().map((d) => d.replace(/-[0-9a-f]{16}$/, ''))).toEqual(['lmdb-linux-arm64', 'onnxruntime-linux-arm64', 'proto-linux-arm64']);
  }, 180_000);

  it('loads a model herd trained and forecasts with it (herd model predict): the trainer\'s own predictions', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'model-'));
    fs.mkdirSync(path.join(dir, 'home'));
    // a forecast model as the coordinator trains one: the dataset's feature names, NaNs included
    const names = ['ctr_cpu_demand', 'ctr_threads', 'host_cores', 'host_other_cpu'];
    const rows = 400;
    const x = new Float32Array(rows * names.length);
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const row = [((r * 37) % 100) / 50, 1 + (r % 4), [2, 4, 8][r % 3], r % 9 === 0 ? NaN : ((r * 13) % 30) / 10];
      x.set(row, r * names.length);
      y[r] = (200 * Math.min(row[0], row[2])) / (1 + (Number.isNaN(row[3]) ? 1 : row[3]));
    }
    const booster = train({ x, y, rows, features: names.length }, checkParams({ rounds: 40, maxDepth: 4 }));
    fs.writeFileSync(path.join(dir, 'model.onnx'), boosterToOnnx(booster, { featureNames: names, target: 'ops' }));
    const csv = [names.join(','), ...Array.from({ length: rows }, (_, r) => Array.from(x.subarray(r * names.length, (r + 1) * names.length), (v) => (Number.isNaN(v) ? '' : String(v))).join(','))];
    fs.writeFileSync(path.join(dir, 'rows.csv'), csv.join('\n') + '\n');
    const r = await runArm64(['model', 'predict', '--model', path.join(dir, 'model.onnx'), '--csv', path.join(dir, 'rows.csv')], { PATH: process.env.PATH, HOME: path.join(dir, 'home') });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe([...names, 'prediction'].join(','));
    expect(lines).toHaveLength(rows + 1);
    const ours = predict(booster, x, rows);
    let maxDiff = 0;
    lines.slice(1).forEach((l, i) => (maxDiff = Math.max(maxDiff, Math.abs(Number(l.split(',').at(-1)) - ours[i]))));
    console.log(`arm64 herd model predict under qemu: ${rows} rows in ${r.ms.toFixed(0)} ms; largest difference from the trainer ${maxDiff.toExponential(1)}`);
    expect(maxDiff).toBeLessThan(1e-3); // float32 sums of 40 leaves (ops up to ~400)
  }, 180_000);
});

describe('an arm64 node in a cluster of x64 nodes (test bed)', () => {
  let bed: Bed;
  const agents = new Map<string, BedProcess>();
  const PORT = 7400;
  const clients = new Map<string, any>();
  let target = '';

  /** An Admin call to the coordinator, whichever node that is now: followers name it in their refusal. */
  async function admin(method: string, req: unknown): Promise<any> {
    const addrs = bed.nodes.map((n) => `${n.ip}:${PORT}`);
    target ||= addrs[0];
    for (let hop = 0; ; hop++) {
      if (!clients.has(target)) clients.set(target, adminClient(target));
      try {
        return await call(clients.get(target), method, req);
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (err.code !== grpc.status.UNAVAILABLE || hop >= 5) throw e;
        const hint = /ask \S+ at (\S+)$/.exec(err.details ?? '');
        target = hint ? hint[1] : addrs[(addrs.indexOf(target) + 1) % addrs.length]; // down or no leader yet: try another
      }
    }
  }
  const leader = async () => (await admin('GetLeader', {})).leader_id as string;

  function startAgent(id: string): BedProcess {
    const node = bed.node(id);
    const peers = bed.nodes.filter((n) => n.id !== id).flatMap((n) => ['--peer', `${n.id}=${n.ip}:${PORT}`]);
    const args = ['agent', '--node-id', id, '--data-dir', path.join(node.dir, 'herd-data'), '--listen', `${node.ip}:${PORT}`, ...peers,
      '--docker-socket', node.dockerSock, '--pmproxy-url', '', '--host-interval', '500', '--container-interval', '500', '--track-interval', '500'];
    testPki().provision(path.join(node.dir, 'herd-data'), id, `${node.ip}:${PORT}`);
    const env = { HOME: path.join(node.dir, 'home'), HERD_CACHE_DIR: undefined };
    fs.mkdirSync(env.HOME, { recursive: true });
    const p = id === 'n3'
      ? (() => { const c = arm64Command(exe.arm64, args, env); return bed.spawn(id, c.cmd, c.args, { name: 'herd', env: c.env }); })()
      : bed.spawn(id, exe.x64, args, { name: 'herd', env });
    agents.set(id, p);
    return p;
  }
  const nodes = async () => (await admin('ListNodes', {})).nodes as any[];
  const n3 = async () => (await nodes()).find((n) => n.node_id === 'n3');
  const points = async (metric: string, from = 0) =>
    (await admin('QuerySamples', { entity: 'n3', metric, from_ms: from })).points as Array<{ ts_ms: number }>;

  beforeAll(async () => {
    const t0 = Date.now();
    bed = await startBed({ nodes: 3, docker: true, name: 'cross', subnet: 213 }); // a subnet no other test bed uses
    console.log(`bed up in ${Date.now() - t0} ms`);
    for (const id of ['n1', 'n2', 'n3']) startAgent(id);
    await waitServing(`${bed.node('n1').ip}:${PORT}`, 20_000, 50, () => (agents.get('n1')!.child.exitCode !== null ? agents.get('n1')!.log() : undefined));
  }, 300_000);

  afterAll(async () => {
    for (const c of clients.values()) c.close();
    for (const p of agents.values()) await p.stop();
    await bed?.stop();
  }, 120_000);

  it('joins: the coordinator lists it as a connected arm64 node and stores its samples', async () => {
    const t0 = Date.now();
    const joined = await waitFor('n3 connected as arm64', async () => {
      const ns = await nodes();
      return ns.find((n) => n.node_id === 'n3' && n.connected && n.arch === 'arm64') && ns.find((n) => n.node_id === 'n2' && n.connected && n.arch === 'x64');
    }, 60_000, 200).catch((e) => { throw new Error(`${e.message}\nn3 log:\n${agents.get('n3')!.log()}`); });
    console.log(`arm64 agent connected ${Date.now() - t0} ms after the coordinator served`);
    expect(joined).toBeTruthy();
    const series = await waitFor('samples of n3', async () => {
      const s = (await admin('ListSeries', { entity: 'n3' })).series as any[];
      return s.some((x) => x.metric === 'host.mem.used_bytes') ? s : undefined;
    }, 30_000, 200);
    expect(series.every((s: any) => s.node_id === 'n3')).toBe(true);
    expect((await points('host.mem.used_bytes')).length).toBeGreaterThan(0);
  }, 120_000);

  it('collects a container on its own dockerd (cgroups read by the arm64 agent)', async () => {
    const name = `on-arm64-${Date.now()}`;
    const r = await bed.docker('n3', 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', 'while true; do :; done');
    expect(r.code, r.stderr).toBe(0);
    const herdId = await waitFor('the container in the inventory of n3', async () => {
      const cs = (await admin('ListContainers', { node_id: 'n3' })).containers as any[];
      return cs.find((c) => c.name === name && c.state === 'running')?.herd_id as string | undefined;
    }, 30_000, 200);
    // CPU is a rate: it needs two readings of the container's cgroup
    const series = await waitFor('container CPU samples', async () => {
      const s = (await admin('ListSeries', { entity: herdId })).series as any[];
      return s.some((x) => /cpu/.test(x.metric)) ? s : undefined;
    }, 30_000, 200);
    expect(series.every((s: any) => s.node_id === 'n3')).toBe(true);
  }, 90_000);

  it('survives its own restart: same history, the stream resumes, no sequence reset', async () => {
    const before = await n3();
    const first = (await points('host.mem.used_bytes'))[0].ts_ms;
    const old = agents.get('n3')!;
    await old.stop(15_000);
    expect((await old.exited).code).toBe(0); // SIGTERM: a clean shutdown, through qemu
    await waitFor('n3 seen disconnected', async () => (await n3())?.connected === false, 10_000, 100);
    const restartedAt = Date.now();
    startAgent('n3');
    await waitFor('n3 back', async () => { const n = await n3(); return n?.connected && Number(n.acked_seq) > Number(before.acked_seq); }, 60_000, 200);
    await waitFor('samples after the restart', async () => (await points('host.mem.used_bytes', restartedAt)).length > 0, 30_000, 200);
    expect((await points('host.mem.used_bytes'))[0].ts_ms).toBe(first);
    expect(agents.get('n3')!.log()).toMatch(/streaming to coordinator/);
  }, 120_000);

  it('loses no sample when the coordinator dies: the new one has its whole history and what it took meanwhile', async () => {
    let victim = await leader();
    if (victim === 'n3') {
      // the arm64 node's own stream must be the one cut: hand the lead to an x64 node first
      await agents.get('n3')!.stop(15_000);
      target = '';
      victim = await waitFor('an x64 coordinator', async () => { const l = await leader(); return l !== 'n3' ? l : undefined; }, 30_000, 200);
      startAgent('n3');
      await waitFor('n3 back', async () => (await n3())?.connected, 60_000, 200);
    }
    // what the coordinator has stored of n3 up to a moment already acknowledged
    const cut = Date.now() - 2000;
    const before = (await points('host.mem.used_bytes')).filter((x) => x.ts_ms < cut);
    await agents.get(victim)!.stop(15_000);
    const downFrom = Date.now();
    target = '';
    const next = await waitFor('a new coordinator', async () => { const l = await leader(); return l !== victim ? l : undefined; }, 30_000, 200);
    console.log(`coordinator ${victim} stopped; ${next} elected after ${Date.now() - downFrom} ms`);
    startAgent(victim);
    await waitFor('all three connected again', async () => (await nodes()).filter((n) => n.connected).length === 3, 60_000, 200);
    // The new coordinator rebuilt n3's history from n3's own log: every sample, not one missing,
    // and the ones n3 took while there was no coordinator to send them to.
    const state = async () => { const p = await points('host.mem.used_bytes'); return { old: p.filter((x) => x.ts_ms < cut), outage: p.filter((x) => x.ts_ms >= downFrom && x.ts_ms <= downFrom + 3000) }; };
    const after = await waitFor('n3 history and outage samples on the new coordinator', async () => {
      const s = await state();
      return s.old.length >= before.length && s.outage.length > 0 ? s : undefined;
    }, 60_000, 200).catch(async (e) => { throw new Error(`${e.message}; had ${before.length} samples before ${cut}, now ${JSON.stringify(await state().then((s) => [s.old.length, s.outage.length]).catch((x: Error) => x.message))}`); });
    expect(after.old.map((x) => x.ts_ms)).toEqual(before.map((x) => x.ts_ms));
    }, 180_000);
});
