/**
 * The model service on the coordinator (coordinator/forecast/): models stored versioned in
 * real LMDB, their pieces through a real sample log into another coordinator's store, a
 * model trained from real stores' samples in the real worker thread and run by the real
 * onnxruntime, the controller's forecast view, and every Admin refusal with its status.
 * The integration test test/integration/forecast-model.test.ts runs it on herd processes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { onnx } from 'onnx-proto';
import { openEnv, type Env } from '../../common/db';
import { meshCodec } from '../../common/proto';
import { SampleLog } from '../../agent/samplelog';
import { SampleStore } from '../../coordinator/samplestore';
import { Registry } from '../../coordinator/registry';
import { Migrations } from '../../coordinator/migrations';
import { buildSnapshot } from '../../coordinator/controller/snapshot-builder';
import { ControllerDriver } from '../../coordinator/controller/driver';
import { controlRecords } from '../../coordinator/controller/module';
import type { ForecastView, Snapshot } from '../../coordinator/control/snapshot';
import { CHUNK_BYTES, ModelStore, sha256, toChunks, type ModelInfo } from '../../coordinator/forecast/models';
import { ForecastService } from '../../coordinator/forecast/service';
import { checkTrainRequest, modelHandlers } from '../../coordinator/forecast/admin';
import { datasetFeatures } from '../../coordinator/forecast/feature-source';
import { parseTime } from '../../cli/model-cluster';
import { modelModule } from '../../coordinator/forecast/module';
import { tempDir } from '../helpers/tmp';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function env(): Env {
  const t = tempDir();
  const e = openEnv(t.dir, { mapSizeBytes: 256 * 1024 ** 2 });
  cleanups.push(() => {
    void e.close();
    t.cleanup();
  });
  return e;
}

const NOW = 1_700_000_000_000;
const MINUTES = 10;

/**
 * Two nodes (n1: 2 cores, n2: 8) and a container on each for ten minutes; a container's
 * ops/s grow with its CPU and fall with its host's load, which both vary over time.
 */
async function cluster(e: Env) {
  const store = new SampleStore(e);
  const registry = new Registry(e);
  const migrations = new Migrations(e);
  const nodes = [
    { id: 'n1', cores: 2, container: 'a' },
    { id: 'n2', cores: 8, container: 'b' },
  ];
  let seq = 0;
  for (const n of nodes) {
    registry.hello({ node_id: n.id, address: `127.0.0.1:${7400 + seq}`, arch: 'x64', cores: n.cores, memory_bytes: 8 * 1024 ** 3, labels: [], capabilities: ['docker', 'criu'], version: 't', last_seen_ms: NOW });
    registry.inventory(n.id, [{ herd_id: n.container, docker_id: `${n.container}-d`, name: n.container, image: 'alpine', state: 'running', node_id: n.id, labels: [], pid: 1, created_ms: NOW - 3600_000 }], true);
    const offsets = Array.from({ length: MINUTES * 60 }, (_, i) => -MINUTES * 60_000 + (i + 1) * 1000);
    const cpu = offsets.map((_, i) => 0.2 + ((i * 7) % 13) / 10);
    const load = offsets.map((_, i) => ((i * 11) % 17) / 20 / (n.cores / 2));
    const series = [
      { entity: n.id, metric: 'host.cpu.total', offsets_ms: offsets, values: load.map((l) => l * 100) },
      { entity: n.id, metric: 'host.mem.used_bytes', offsets_ms: offsets, values: offsets.map((_, i) => 1e9 + i * 1e6) },
      { entity: n.container, metric: 'container.cpu.usage', offsets_ms: offsets, values: cpu },
      { entity: n.container, metric: 'container.pids', offsets_ms: offsets, values: offsets.map(() => 2) },
      { entity: n.container, metric: 'container.ops', offsets_ms: offsets, values: cpu.map((c, i) => (1000 * c) / (1 + load[i])) },
    ];
    await store.ingest(n.id, 'log', ++seq, NOW, series);
  }
  await e.committed;
  return { store, registry, migrations };
}

function service(e: Env, src: Awaited<ReturnType<typeof cluster>>, extra: Partial<ConstructorParameters<typeof ForecastService>[0]> = {}) {
  const models = new ModelStore(e);
  const persisted: unknown[] = [];
  const s = new ForecastService({ models, features: datasetFeatures, sources: src, term: () => 3, persist: (c) => persisted.push(...c), clock: () => NOW, ...extra });
  cleanups.push(() => s.close());
  return { s, models, persisted };
}

const snapshotOf = (src: Awaited<ReturnType<typeof cluster>>) => buildSnapshot(src, { nowMs: NOW, windowMs: 30_000, stepMs: 6000, historyMs: 60_000 });
const spec = (over: Partial<ReturnType<typeof checkTrainRequest>> = {}) => ({ ...checkTrainRequest({ from_ms: NOW - MINUTES * 60_000, to_ms: NOW, hyperparameters: { rounds: 30 } }, datasetFeatures.names, NOW), ...over });

function info(version: number, bytes: Uint8Array, createdMs = NOW): ModelInfo {
  return { version, created_ms: createdMs, term: 1, created_by: 't', source: 'loaded', from_ms: 0, to_ms: 0, step_ms: 0, features: ['node_cpu'], target: 'ops', hyperparameters_json: '{}', train_rows: 0, valid_rows: 0, trees: 0, train_rmse: 0, valid_rmse: 0, importance: [], onnx_bytes: bytes.length, onnx_sha256: sha256(bytes), max_abs_diff: 0, train_ms: 0, note: '' };
}

/** A foreign regressor: one float [N, 1] input per column, as onnxmltools writes one. */
function foreignModel(inputs: string[]): Uint8Array {
  const A = onnx.AttributeProto.AttributeType;
  const t = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }] } } } });
  const node = (op: string, input: string[], output: string, attribute: object[] = []) => ({ opType: op, input, output: [output], attribute, domain: '' });
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'sum',
      node: [node('Concat', inputs, 'x', [{ name: 'axis', type: A.INT, i: 1 }]), node('ReduceSum', ['x'], 'y', [{ name: 'keepdims', type: A.INT, i: 1 }])],
      input: inputs.map(t),
      output: [t('y')],
    },
  });
  return onnx.ModelProto.encode(m).finish();
}

describe('model store', () => {
  it('keeps versions; the highest is in force; a newer record of a version wins', async () => {
    const e = env();
    const m = new ModelStore(e);
    expect(m.inForce()).toBeUndefined();
    const seen: number[] = [];
    m.onInForce((i) => seen.push(i.version));
    const b1 = new Uint8Array([1, 2, 3]);
    const b2 = new Uint8Array([4, 5]);
    expect(m.put({ info: info(1, b1), onnx: b1 })).toBe(true);
    expect(m.put({ info: info(2, b2), onnx: b2 })).toBe(true);
    expect(m.put({ info: info(1, b2, NOW - 1), onnx: b2 })).toBe(false); // older record of version 1
    await e.committed;
    expect(m.inForce()!.info.version).toBe(2);
    expect([...m.get(1)!.onnx]).toEqual([1, 2, 3]);
    expect(m.history().map((i) => i.version)).toEqual([2, 1]);
    expect(seen).toEqual([1, 2]);
  });

  it('travels in pieces through a sample log; another coordinator rebuilds it, whatever the order, and skips a piece set whose checksum fails', async () => {
    const e = env();
    const log = new SampleLog(e, 'n1');
    const bytes = Uint8Array.from({ length: 2 * CHUNK_BYTES + 1000 }, (_, i) => (i * 31) % 251);
    const chunks = toChunks({ info: info(4, bytes), onnx: bytes });
    expect(chunks).toHaveLength(3);
    const forged = new Uint8Array([9, 9]);
    const bad = toChunks({ info: { ...info(5, forged), onnx_sha256: sha256(new Uint8Array([1])) }, onnx: forged });
    for (const c of [chunks[2], chunks[0], ...bad, chunks[0], chunks[1]]) await log.append([], [], [], { models: [c] });
    const next = new ModelStore(env()); // a new coordinator's empty store
    for (const b of log.read(0, 100)) next.recordBatch(meshCodec().decodeAgent(b.message).batch.models);
    expect(next.latestVersion()).toBe(4);
    expect(Buffer.from(next.inForce()!.onnx).equals(Buffer.from(bytes))).toBe(true);
    expect(next.inForce()!.info).toEqual(chunks[0].info);
    next.recordBatch([null, { info: { version: 7 }, index: 0, count: 1, data: new Uint8Array(1) }, 'x']);
    expect(next.latestVersion()).toBe(4);
  });
});

describe('model store: keeping and handing out', () => {
  it('keeps the newest versions only', async () => {
    const e = env();
    const m = new ModelStore(e);
    const b = new Uint8Array([7]);
    for (let v = 1; v <= 5; v++) m.put({ info: info(v, b), onnx: b });
    await e.committed;
    expect(m.trim(2)).toBe(3);
    await e.committed;
    expect(m.history().map((i) => i.version)).toEqual([5, 4]);
  });

  it('a stored model goes to this node\'s log and to every agent, a piece per batch and per command; a reconnecting agent gets the one in force', async () => {
    const e = env();
    const src = await cluster(e);
    const models = new ModelStore(e);
    const logged: unknown[] = [];
    const sent: Array<{ to: string; cmd: any }> = [];
    const ingest = { command: (to: string, cmd: any) => (sent.push({ to, cmd }), true), commandAll: (cmd: any) => (sent.push({ to: '*', cmd }), []) };
    const mod = modelModule({ nodeId: 'n1', models, sources: src, ingest, term: () => 7, snapshot: () => snapshotOf(src), appendToLog: (c) => logged.push(c) });
    cleanups.push(() => mod.service.close());
    mod.catchUp('n2');
    expect(sent).toEqual([]); // nothing in force yet
    const big = foreignModel(['host_cores', 'host_other_containers']);
    const padded = Buffer.concat([big, Buffer.alloc(CHUNK_BYTES + 10)]); // two pieces (the store does not read the bytes)
    models.put({ info: info(1, padded), onnx: padded });
    mod.catchUp('n1'); // itself: its own log has it
    mod.catchUp('n2');
    expect(sent.map((x) => [x.to, x.cmd.term, x.cmd.control.models.length, x.cmd.control.models[0].index])).toEqual([['n2', 7, 1, 0], ['n2', 7, 1, 1]]);
    sent.length = 0;
    const loaded = await mod.service.load(big, 'x', 'operator:ops');
    expect(loaded.version).toBe(2);
    expect(logged).toHaveLength(1);
    expect(sent.map((x) => x.to)).toEqual(['*']);
    expect(sent[0].cmd.control.models[0].info.version).toBe(2);
  });
});

describe('model service', () => {
  it('trains from the coordinator\'s samples in the worker, stores version 1 in force, and forecasts every container on every node', async () => {
    const e = env();
    const src = await cluster(e);
    const { s, models, persisted } = service(e, src);
    const m = await s.train(spec(), 'operator:ops');
    expect(m).toMatchObject({ version: 1, source: 'trained', created_by: 'operator:ops', term: 3, step_ms: 5000, target: 'ops' });
    expect(m.train_rows + m.valid_rows).toBe(2 * MINUTES * 12); // two containers, one row per 5 s step
    expect(m.valid_rows).toBe(Math.floor(m.train_rows / 4));
    expect(m.trees).toBeGreaterThan(0);
    expect(m.valid_rmse).toBeGreaterThan(0);
    expect(m.max_abs_diff).toBeLessThan(1e-3);
    expect(m.importance.find((i) => i.feature === 'ctr_cpu_demand')!.gain).toBeGreaterThan(0);
    expect(models.inForce()!.info).toEqual(m);
    expect(persisted).toHaveLength(1); // one piece: the model is small
    expect(m.features).not.toContain('host_disk_iops'); // no disk declared: left out, and said
    expect(m.note).toMatch(/left out as empty or constant: .*host_mem_bytes.*host_disk_iops/);
    const view = (await s.view(snapshotOf(src)))!;
    expect(view.modelVersion).toBe('1');
    expect(Object.keys(view.opsByNode).sort()).toEqual(['a', 'b']);
    for (const c of ['a', 'b']) for (const n of ['n1', 'n2']) expect(Number.isFinite(view.opsByNode[c][n])).toBe(true);
    const one = await s.forecast(snapshotOf(src), 'a', '');
    expect(one.version).toBe(1);
    expect(one.ops.map((o) => o.ops)).toEqual([view.opsByNode.a.n1, view.opsByNode.a.n2]);
  });

  it('a failed training stores nothing and leaves the model in force; one training at a time', async () => {
    const e = env();
    const src = await cluster(e);
    let fail = false;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { trainInWorker } = await import('../../coordinator/forecast/driver');
    const { s, models } = service(e, src, {
      train: async (req) => {
        if (fail) throw new Error('the trainer thread exited (code 1) before finishing');
        await gate;
        return trainInWorker(req);
      },
    });
    const first = s.train(spec(), '');
    await expect(s.train(spec(), '')).rejects.toThrow(/a training is already running/);
    release();
    await first;
    fail = true;
    await expect(s.train(spec(), '')).rejects.toThrow(/exited/);
    await expect(s.train(spec({ fromMs: NOW - 7200_000, toMs: NOW - 3600_000 }), '')).rejects.toThrow(/hold no row to learn from: no container reported application ops/);
    expect(models.latestVersion()).toBe(1);
  });

  it('loads a foreign regressor whose inputs are feature columns; refuses one that reads anything else', async () => {
    const e = env();
    const src = await cluster(e);
    const { s, models } = service(e, src);
    await expect(s.load(foreignModel(['host_cores', 'gpu_temperature']), '', '')).rejects.toThrow(/reads feature "gpu_temperature", which the dataset lacks/);
    await expect(s.load(new Uint8Array([1, 2, 3]), '', '')).rejects.toThrow(/is not an ONNX model/);
    expect(models.latestVersion()).toBe(0);
    const m = await s.load(foreignModel(['host_cores', 'host_other_containers']), 'a sum', 'operator:ops');
    expect(m).toMatchObject({ version: 1, source: 'loaded', features: ['host_cores', 'host_other_containers'], note: 'a sum' });
    const f = await s.forecast(snapshotOf(src), 'a', 'n2');
    expect(f.ops).toEqual([{ node: 'n2', ops: 8 + 1 }]); // its cores + its containers
  });
});

describe('the controller', () => {
  it('evaluates with the forecast of the model in force in its snapshot, when a policy in force reads it', async () => {
    const e = env();
    const src = await cluster(e);
    const { s } = service(e, src);
    await s.train(spec(), '');
    const seen: Array<{ snapshot: Snapshot; view: ForecastView | undefined }> = [];
    const forecast = async (snapshot: Snapshot) => {
      const view = await s.view(snapshot);
      seen.push({ snapshot, view });
      return view;
    };
    const ingest = { command: () => true, commandAll: () => [], settle: () => {} };
    const driver = new ControllerDriver({ ...src, records: controlRecords(e), migrate: { registry: src.registry, migrations: src.migrations, ingest, term: () => 3 }, term: () => 3, persist: () => {}, forecast, clock: () => NOW + 1000 });
    await driver.evaluate('test', 'recommend');
    expect(seen).toHaveLength(0); // no policy in force reads a forecast: none is made
    driver.setSettings({ policies: ['forecast'] }, false, 'operator:ops');
    const d = await driver.evaluate('test', 'recommend');
    expect(seen).toHaveLength(1);
    expect(JSON.stringify(d)).toMatch(/model 1 (predicts|gives)/); // the forecast policy read it
    expect(seen[0].snapshot.containers.map((c) => c.herdId).sort()).toEqual(['a', 'b']);
    expect(seen[0].view!.modelVersion).toBe('1');
    expect(Object.keys(seen[0].view!.opsByNode.a).sort()).toEqual(['n1', 'n2']);
  });
});

describe('model Admin methods', () => {
  const call = (h: any, req: any) =>
    new Promise<any>((resolve, reject) => h({ request: req, getPeer: () => 'test', getAuthContext: () => ({}) }, (err: any, res: any) => (err ? reject(err) : resolve(res))));
  const status = (p: Promise<unknown>) => p.then(() => 'OK', (err) => `${grpc.status[err.code]}: ${err.details}`);

  it('checks a TrainModel request, naming the field and its range', () => {
    const names = datasetFeatures.names;
    const bad: [object, RegExp][] = [
      [{ from_ms: NOW, to_ms: NOW - 1 }, /to_ms 1699999999999 must be after from_ms 1700000000000/],
      [{ from_ms: NOW - 40 * 86_400_000, to_ms: NOW }, /spans 691200 steps of 5000 ms, more than 250000/],
      [{ step_ms: 5 }, /step_ms must be from 1000 to 3600000 ms/],
      [{ features: ['cpu_temperature'] }, /features: "cpu_temperature" is not a feature herd exports; known: ctr_cpu_demand/],
      [{ features: ['host_cores', 'host_cores'] }, /"host_cores" is named twice/],
      [{ hyperparameters: { max_depth: 0 } }, /hyperparameters.max_depth: hyperparameter maxDepth = 0 is out of range: the depth of each tree must be an integer >= 1 and <= 20/],
      [{ hyperparameters: { eta: 0 } }, /hyperparameters.eta: .* must be a number > 0 and <= 1/],
      [{ valid_fraction: 0.95 }, /valid_fraction must be from 0 to 0.9/],
    ];
    for (const [req, msg] of bad) expect(() => checkTrainRequest(req, names, NOW), JSON.stringify(req)).toThrow(msg);
    const ok = checkTrainRequest({ hyperparameters: { lambda: 0 }, valid_fraction: 0 }, names, NOW);
    expect(ok).toMatchObject({ fromMs: NOW - 3600_000, toMs: NOW, stepMs: 5000, validFraction: 0, features: [...names] });
    expect(ok.params).toMatchObject({ lambda: 0, earlyStoppingRounds: 0, rounds: 100 });
    expect(checkTrainRequest({}, names, NOW).params.earlyStoppingRounds).toBe(10);
  });

  it('answers each refusal with its status and a sentence; TrainModel, GetModel and Forecast work end to end', async () => {
    const e = env();
    const src = await cluster(e);
    const { s, models } = service(e, src);
    const h = modelHandlers({ service: s, models, featureNames: datasetFeatures.names, snapshot: () => snapshotOf(src), clock: () => NOW });
    expect(await status(call(h.GetModel, {}))).toMatch(/^FAILED_PRECONDITION: no forecast model is stored yet: train one/);
    expect(await status(call(h.Forecast, { herd_id: 'a' }))).toMatch(/^FAILED_PRECONDITION: no forecast model is in force yet/);
    expect(await status(call(h.Forecast, { herd_id: 'zz' }))).toMatch(/^NOT_FOUND: no running container has herd id "zz"/);
    expect(await status(call(h.Forecast, { herd_id: '../a' }))).toMatch(/^INVALID_ARGUMENT: herd_id/);
    expect(await status(call(h.TrainModel, { hyperparameters: { rounds: 0 } }))).toMatch(/^INVALID_ARGUMENT: hyperparameters.rounds/);
    expect(await status(call(h.TrainModel, { from_ms: NOW - 7200_000, to_ms: NOW - 3600_000 }))).toMatch(/^FAILED_PRECONDITION: the samples from .* hold no row to learn from.*; no model is in force$/);
    expect(await status(call(h.TrainModel, { features: ['ctr_mem_bytes'] }))).toMatch(/^FAILED_PRECONDITION: .*column "ctr_mem_bytes" is empty/);
    expect(await status(call(h.LoadModel, { onnx: Buffer.from('nope') }))).toMatch(/^INVALID_ARGUMENT: onnx: the model is not an ONNX model/);
    const trained = await call(h.TrainModel, { from_ms: NOW - MINUTES * 60_000, to_ms: NOW, hyperparameters: { rounds: 10 } });
    expect(trained.version).toBe(1);
    const got = await call(h.GetModel, {});
    expect(got).toMatchObject({ in_force: 1, model: { version: 1, trees: trained.trees }, training_since_ms: 0 });
    expect(await status(call(h.GetModel, { version: 9 }))).toMatch(/^NOT_FOUND: no model version 9 is stored/);
    expect(await status(call(h.Forecast, { herd_id: 'a', node_id: 'n9' }))).toMatch(/^NOT_FOUND: no node "n9" in the cluster/);
    const f = await call(h.Forecast, { herd_id: 'a' });
    expect(f).toMatchObject({ herd_id: 'a', model_version: 1, current_node_id: 'n1' });
    expect(f.nodes.map((n: any) => n.node_id).sort()).toEqual(['n1', 'n2']);
    expect(f.nodes.find((n: any) => n.node_id === 'n1').current).toBe(true);
    expect(f.current_ops).toBeGreaterThan(0);
    expect(await status(call(h.TrainModel, { to_ms: NOW - 7200_000 }))).toMatch(/; the model in force \(version 1\) is unchanged$/);
  }, 60_000);
});

describe('herd model CLI', () => {
  it('reads times as ISO 8601, ms, or a span ago', () => {
    expect(parseTime('--from', '2h', NOW)).toBe(NOW - 7200_000);
    expect(parseTime('--from', '90s', NOW)).toBe(NOW - 90_000);
    expect(parseTime('--to', '2023-11-14T22:13:20Z', NOW)).toBe(NOW);
    expect(parseTime('--to', String(NOW), 0)).toBe(NOW);
    expect(parseTime('--to', undefined, NOW)).toBe(0);
    expect(() => parseTime('--from', 'yesterday', NOW)).toThrow(/--from "yesterday" is not a time/);
  });
});
