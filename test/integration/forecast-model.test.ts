/**
 * The cluster's forecast model on real herd processes (bed "mdl", subnet 151, one dockerd
 * per node), driven with the herd CLI as an operator types it: `herd model train` from the
 * coordinator's own samples of two containers reporting ops through their logs (real LMDB,
 * the real worker thread, the real onnxruntime), `herd model show`, `herd model forecast`;
 * bad input refused with its status and a sentence, leaving the model in force; then kill -9
 * of the coordinator: the next one answers GetModel with the same version (rebuilt from the
 * agents' logs) and forecasts with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { waitFor } from '../helpers/tmp';
import { HERD, runCmd } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { FEATURES } from '../../coordinator/forecast/features';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
const dead = new Set<string>();
const alive = () => [...nodes.values()].filter((n) => !dead.has(n.id));
const coordinator = async () => agreedLeader(alive().map((n) => n.address), 30_000);
const PHASE_MS = 180_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herd-model-'));

async function herd(...args: string[]) {
  const p = testPki();
  const server = (await coordinator()).address;
  for (let attempt = 1; ; attempt++) {
    const r = await runCmd(process.execPath, [HERD, ...args, '-s', server, '--cacert', p.caCert, '--cert', p.adminCert, '--key', p.adminKey], 120_000);
    if (attempt === 10 || !/UNAVAILABLE: (no coordinator is elected yet|this node is not the coordinator)/.test(r.stderr)) return r;
    await new Promise((res) => setTimeout(res, 1000));
  }
}
async function herdOk(...args: string[]): Promise<string> {
  const r = await herd(...args);
  expect(r.code, `herd ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

/** A container whose log says its ops/s, varying with a spinner's duty cycle. */
async function opsContainer(node: string, name: string): Promise<string> {
  const script = 'i=0; while true; do i=$((i+1)); d=$((i % 5)); j=0; while [ $j -lt $((d * 400)) ]; do j=$((j+1)); done; echo "[ ${i}s ] thds: 1 eps: $((100 + d * 40))"; sleep 0.1; done';
  const run = await bed.docker(node, 'run', '-d', '--name', name, '--label', 'herd.ops.regex=^\\[ *(\\d+)s \\] thds: (\\d+) eps: ([0-9.]+)', '--label', 'herd.ops.group=3', BUSYBOX_IMAGE, 'sh', '-c', script);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim().slice(0, 12);
}

let started = 0;
const herdIds: string[] = [];
let leader = '';

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'mdl', subnet: 151 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  leader = (await coordinator()).id;
  await waitFor('3 agents streaming', async () => (await connectedNodes((await coordinator()).address)).length === 3, 30_000, 100);
  // the containers run on the nodes that will outlive the coordinator
  started = Date.now();
  for (const n of bed.nodes.filter((x) => x.id !== leader)) herdIds.push(await opsContainer(n.id, `ops-${n.id}`));
  const admin = adminClient((await coordinator()).address);
  for (const h of herdIds) {
    await waitFor(`ops of ${h}`, async () => ((await call(admin, 'QuerySamples', { entity: h, metric: 'container.ops' }).catch(() => undefined))?.points.length ?? 0) > 10, 60_000, 500);
  }
  // 25 s of samples: a row per container per 1 s step
  await new Promise((r) => setTimeout(r, Math.max(0, started + 25_000 - Date.now())));
}, PHASE_MS);

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the cluster forecast model', () => {
  it('before any model: show and forecast say how to get one (FAILED_PRECONDITION)', async () => {
    const show = await herd('model', 'show');
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/FAILED_PRECONDITION: no forecast model is stored yet: train one from the cluster's samples \(herd model train\)/);
    const f = await herd('model', 'forecast', herdIds[0]);
    expect(f.stderr).toMatch(/FAILED_PRECONDITION: no forecast model is in force yet/);
  }, PHASE_MS);

  it('herd model train learns from the coordinator\'s samples; show and forecast use version 1', async () => {
    const from = new Date(started - 5000).toISOString();
    // On a crowded machine an election may move the coordinator; the new one has the samples
    // once the agents' replays reach it: until then it says it has nothing to learn from.
    const out = await waitFor('a trained model', async () => {
      const r = await herd('model', 'train', '--from', from, '--step', '1000', '--rounds', '30', '--max-depth', '4');
      if (r.code === 0) return r.stdout;
      expect(r.stderr).toMatch(/FAILED_PRECONDITION: .* hold no row to learn from/);
      return undefined;
    }, 90_000, 3000);
    expect(out).toMatch(/^model version 1 \(in force\): trained/);
    expect(out).toMatch(/trained on samples from .* grid step 1000 ms: \d+ rows, validated on \d+ later rows/);
    expect(out).toMatch(/feature importance \(mean gain of its splits\)/);
    const show = JSON.parse(await herdOk('model', 'show', '--json'));
    expect(show.in_force).toBe(1);
    expect(show.model.train_rows + show.model.valid_rows, JSON.stringify(show.model)).toBeGreaterThan(30);
    expect(show.model.max_abs_diff).toBeLessThan(1e-2);
    expect(show.model.features.length).toBeGreaterThan(0);
    for (const f of show.model.features) expect(FEATURES).toContain(f); // the dataset's feature list
    const f = await herdOk('model', 'forecast', herdIds[0]);
    expect(f).toMatch(new RegExp(`^container ${herdIds[0]} on n\\d, forecast by model version 1:`));
    const json = JSON.parse(await herdOk('model', 'forecast', herdIds[0], '--json'));
    expect(json.nodes.map((n: any) => n.node_id).sort()).toEqual(['n1', 'n2', 'n3']);
    for (const n of json.nodes) expect(n.ops).toBeGreaterThan(50); // the container's ops span 100-260
    expect(json.current_ops).toBeGreaterThan(50);
    const one = JSON.parse(await herdOk('model', 'forecast', herdIds[1], '--node', 'n1', '--json'));
    expect(one.nodes).toHaveLength(1);
  }, PHASE_MS);

  it('the controller evaluates with the model in force: the forecast policy names its prediction and version', async () => {
    await herdOk('policy', 'set', 'mode=recommend', 'policies=forecast');
    // (a coordinator elected meanwhile has the settings once the replays reach it)
    const d = await waitFor('an evaluation by the forecast policy', async () => {
      const e = await call(adminClient((await coordinator()).address), 'EvaluateNow', { mode: 'recommend' }).catch(() => undefined);
      return e?.policies?.includes('forecast') ? e : undefined;
    }, 60_000, 1000);
    expect(JSON.stringify(d)).toMatch(/model 1 predicts \d+(\.\d+)? ops\/s for ops-n\d on n\d against its measured/);
  }, PHASE_MS);

  it('refuses bad input with a status and a sentence, and the model in force stays', async () => {
    const depth = await herd('model', 'train', '--max-depth', '0');
    expect(depth.stderr).toMatch(/INVALID_ARGUMENT: hyperparameters.max_depth: .*the depth of each tree must be an integer >= 1 and <= 20/);
    const empty = await herd('model', 'train', '--from', '3d', '--to', '2d', '--step', '60000');
    expect(empty.stderr).toMatch(/FAILED_PRECONDITION: the samples from .* hold no row to learn from: no container reported application ops\/s.*; the model in force \(version 1\) is unchanged/);
    expect((await herd('model', 'forecast', 'nosuch')).stderr).toMatch(/NOT_FOUND: no running container has herd id "nosuch"/);
    expect((await herd('model', 'forecast', herdIds[0], '--node', 'n9')).stderr).toMatch(/NOT_FOUND: no node "n9" in the cluster/);
    // a regressor that reads a column herd does not export
    fs.writeFileSync(path.join(dir, 'other.csv'), ['gpu_temp,ops', ...Array.from({ length: 50 }, (_, i) => `${i},${2 * i}`)].join('\n'));
    await herdOk('model', 'train', '--csv', path.join(dir, 'other.csv'), '--target', 'ops', '--out', path.join(dir, 'other.onnx'));
    const foreign = await herd('model', 'load', path.join(dir, 'other.onnx'));
    expect(foreign.stderr).toMatch(/INVALID_ARGUMENT: onnx: the model reads feature "gpu_temp", which the dataset lacks/);
    expect(JSON.parse(await herdOk('model', 'show', '--json')).in_force).toBe(1);
  }, PHASE_MS);

  it('kill -9 of the coordinator: the next one has version 1 in force and forecasts with it', async () => {
    const before = JSON.parse(await herdOk('model', 'show', '--json')).model;
    const old = await coordinator();
    await kill9(nodes.get(old.id)!);
    dead.add(old.id);
    const next = await waitFor('a new coordinator', async () => {
      const l = await coordinator().catch(() => undefined);
      return l && l.id !== old.id ? l : undefined;
    }, 60_000, 500);
    const admin = adminClient(next.address);
    const got = await waitFor('the model on the new coordinator', async () => (await call(admin, 'GetModel', {}).catch(() => undefined))?.model, 60_000, 500);
    expect(got).toMatchObject({ version: 1, onnx_sha256: before.onnx_sha256, created_ms: before.created_ms, trees: before.trees });
    const f = await waitFor('a forecast on the new coordinator', async () => call(admin, 'Forecast', { herd_id: herdIds[0] }).catch(() => undefined), 60_000, 500);
    expect(f.model_version).toBe(1);
    expect(f.nodes.length).toBeGreaterThanOrEqual(2);
    // its controller has the model too (the settings came back by replay as well)
    const d = await waitFor('an evaluation with the forecast', async () => {
      const e = await call(admin, 'EvaluateNow', { mode: 'recommend' }).catch(() => undefined);
      return e && /model 1 predicts/.test(JSON.stringify(e)) ? e : undefined;
    }, 60_000, 1000);
    expect(d.policies).toEqual(['forecast']);
  }, PHASE_MS);
});
