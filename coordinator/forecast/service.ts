/**
 * The model service on the coordinator: trains a model from the coordinator's own samples
 * (in the worker thread), stores it as the next version (models.ts) and carries it to every
 * node's log, and forecasts with the model in force through onnxruntime: the controller's
 * snapshot gets `forecast` from here, one batched call per container over every node.
 *
 * A model's inputs are checked against the feature list when it is loaded: a regressor
 * that reads anything else is refused before it is stored, or (stored by an older herd)
 * before it forecasts.
 */
import { logger } from '../../common/log';
import type { ContainerView, ForecastView, Snapshot } from '../control/snapshot';
import { splitByTime } from './dataset';
import { trainInWorker, type TrainRequest } from './driver';
import type { FeatureSource } from './feature-source';
import { FORECAST_BATCH_ROWS } from './features';
import type { DatasetSources } from './dataset-export';
import type { DatasetGrid } from './dataset-rows';
import { toChunks, sha256, type ModelChunk, type ModelInfo, type ModelStore, type StoredModel } from './models';
import { boosterToOnnx } from './onnx-export';
import { bindModel, ModelError } from './onnx-binding';
import { loadRegressor, type Regressor } from './regressor';
import { predict, type Booster } from './trainer/booster';
import type { TrainParams } from './trainer/params';
import { checkTrainable, informative, TableError } from './table';

const log = logger('forecast');

/** A refusal a caller can act on (the Admin layer turns it into FAILED_PRECONDITION). */
export class ForecastUnavailable extends Error {}

export interface TrainSpec extends DatasetGrid {
  /** End of the range (fromMs + steps x stepMs). */
  toMs: number;
  features: string[];
  /** The caller named the features: an unusable one is refused. Else such ones are left out. */
  featuresNamed: boolean;
  params: TrainParams;
  validFraction: number;
}

export interface ForecastServiceDeps {
  models: ModelStore;
  features: FeatureSource;
  sources: DatasetSources;
  term: () => number;
  /** Keeps a model's pieces in this node's log and hands them to every agent. */
  persist: (chunks: ModelChunk[]) => void;
  clock?: () => number;
  /** The trainer (the worker thread); a test may hand another. */
  train?: (req: TrainRequest) => Promise<Booster>;
}

interface Loaded {
  version: number;
  sha: string;
  regressor: Regressor;
  /** For each model input column, its index in the feature row. */
  columns: Int32Array;
  /** Its validation RMSE (ops/s); NaN when unknown (a loaded model). */
  errorOps: number;
}

const time = (ms: number) => new Date(ms).toISOString();

export class ForecastService {
  private readonly clock: () => number;
  private trainingSince = 0;
  private loaded: Promise<Loaded> | undefined;
  private loadedKey = '';

  constructor(private readonly deps: ForecastServiceDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  /** When the running training started (0: none runs). */
  trainingSinceMs(): number {
    return this.trainingSince;
  }

  /**
   * Trains from the samples of a range and stores the model as the next version, in force.
   * Throws TableError/ForecastUnavailable (nothing to learn from), or the trainer's error;
   * in every failure nothing is stored and the model in force stays.
   */
  async train(spec: TrainSpec, by: string): Promise<ModelInfo> {
    if (this.trainingSince) throw new ForecastUnavailable(`a training is already running (since ${time(this.trainingSince)}); one runs at a time, try again when it ends`);
    this.trainingSince = this.clock();
    try {
      const f = this.deps.features;
      const source = `the samples from ${time(spec.fromMs)} to ${time(spec.toMs)}`;
      const { table, settling } = await f.table(this.deps.sources, spec);
      const settlingNote = settling ? ` (${settling} row${settling > 1 ? 's' : ''} right after a migration left out)` : '';
      if (table.rows === 0) throw new ForecastUnavailable(`${source} hold no row to learn from${settlingNote}: no container reported application ops/s (its ${f.target}) then; label a container with herd.ops.regex (docs/forecast.md) and train on a range when it ran`);
      const { kept: features, dropped: leftOut } = spec.featuresNamed ? { kept: spec.features, dropped: [] as string[] } : informative(table, spec.features);
      if (features.length === 0) throw new ForecastUnavailable(`${source}: every feature is empty or constant (${leftOut.join(', ')}); nothing tells one row from another`);
      checkTrainable(table, f.target, features, source);
      spec = { ...spec, features };
      const split = splitByTime(table, { target: f.target, features: spec.features, time: f.time, validFraction: spec.validFraction }, source);
      const t0 = performance.now();
      const booster = await (this.deps.train ?? trainInWorker)({ ...split, params: spec.params });
      const trainMs = Math.round(performance.now() - t0);
      const version = this.deps.models.latestVersion() + 1;
      const validRmse = split.valid ? booster.validRmse[booster.bestRounds - 1] : 0;
      const onnx = boosterToOnnx(booster, { featureNames: spec.features, target: f.target, metadata: { 'herd.version': String(version), 'herd.params': JSON.stringify(spec.params) } });
      // the stored model must forecast what the trainer does: run it once before it is stored
      const check = split.valid ?? split.train;
      const reg = await loadRegressor(onnx, [...f.names], `model version ${version}`);
      let maxDiff = 0;
      try {
        const theirs = await reg.predict(check.x, check.rows);
        const ours = predict(booster, check.x, check.rows);
        for (let r = 0; r < check.rows; r++) maxDiff = Math.max(maxDiff, Math.abs(theirs[r] - ours[r]));
      } finally {
        await reg.close();
      }
      const info: ModelInfo = {
        ...this.baseInfo(version, by, 'trained', onnx),
        from_ms: spec.fromMs,
        to_ms: spec.toMs,
        step_ms: spec.stepMs,
        features: spec.features,
        hyperparameters_json: JSON.stringify(spec.params),
        train_rows: split.train.rows,
        valid_rows: split.valid?.rows ?? 0,
        trees: booster.trees.length,
        train_rmse: booster.trainRmse[booster.trees.length - 1],
        valid_rmse: validRmse,
        importance: spec.features.map((feature, i) => ({ feature, gain: booster.importance.gain[i], splits: booster.importance.splits[i] })),
        max_abs_diff: maxDiff,
        train_ms: trainMs,
        note: `${booster.trees.length} trees${split.valid && spec.params.earlyStoppingRounds > 0 && booster.trees.length < spec.params.rounds ? ' (early stopping)' : ''}${leftOut.length ? `; left out as empty or constant: ${leftOut.join(', ')}` : ''}${settling ? `; ${settling} rows right after a migration left out` : ''}`,
      };
      this.keep({ info, onnx });
      log.info('forecast model trained', { version, rows: split.train.rows, valid_rows: info.valid_rows, trees: info.trees, valid_rmse: validRmse, train_ms: trainMs, by: by || '-' });
      return info;
    } finally {
      this.trainingSince = 0;
    }
  }

  /** Stores an ONNX regressor a user brought as the next version; throws ModelError if it does not fit. */
  async load(onnx: Uint8Array, note: string, by: string): Promise<ModelInfo> {
    const f = this.deps.features;
    const version = this.deps.models.latestVersion() + 1;
    const reg = await loadRegressor(onnx, [...f.names], 'the model');
    const features = reg.binding.features;
    await reg.close();
    const info: ModelInfo = { ...this.baseInfo(version, by, 'loaded', onnx), features, note };
    this.keep({ info, onnx });
    log.info('forecast model loaded', { version, features: features.join(','), bytes: onnx.length, by: by || '-' });
    return info;
  }

  private baseInfo(version: number, by: string, source: ModelInfo['source'], onnx: Uint8Array): ModelInfo {
    return {
      version,
      created_ms: this.clock(),
      term: this.deps.term(),
      created_by: by,
      source,
      from_ms: 0,
      to_ms: 0,
      step_ms: 0,
      features: [],
      target: this.deps.features.target,
      hyperparameters_json: '{}',
      train_rows: 0,
      valid_rows: 0,
      trees: 0,
      train_rmse: 0,
      valid_rmse: 0,
      importance: [],
      onnx_bytes: onnx.length,
      onnx_sha256: sha256(onnx),
      max_abs_diff: 0,
      train_ms: 0,
      note: '',
    };
  }

  private keep(m: StoredModel): void {
    this.deps.models.put(m);
    this.deps.persist(toChunks(m));
  }

  /** The model in force, loaded in onnxruntime (once per version); undefined when none is stored. */
  private async inForce(): Promise<Loaded | undefined> {
    const m = this.deps.models.inForce();
    if (!m) return undefined;
    const key = `${m.info.version}:${m.info.onnx_sha256}`;
    if (key !== this.loadedKey || !this.loaded) {
      const previous = this.loaded;
      this.loadedKey = key;
      this.loaded = this.open(m);
      this.loaded.catch(() => undefined);
      void previous?.then((p) => p.regressor.close()).catch(() => undefined);
    }
    return this.loaded;
  }

  private async open(m: StoredModel): Promise<Loaded> {
    const names = [...this.deps.features.names];
    const source = `model version ${m.info.version}`;
    const binding = bindModel(m.onnx, names, source);
    const regressor = await loadRegressor(m.onnx, names, source);
    const errorOps = m.info.source === 'trained' && m.info.valid_rows > 0 ? m.info.valid_rmse : NaN;
    return { version: m.info.version, sha: m.info.onnx_sha256, regressor, columns: Int32Array.from(binding.features, (f) => names.indexOf(f)), errorOps };
  }

  /** Predicted ops/s of container c on each of the nodes (one onnxruntime call). */
  private async predictOn(loaded: Loaded, s: Snapshot, c: ContainerView, nodes: Snapshot['nodes']): Promise<Float64Array> {
    const all = this.deps.features.rows(s, c.herdId, nodes.map((n) => n.id));
    if (!all) throw new NotRunning(c.herdId);
    const F = loaded.columns.length;
    const width = this.deps.features.names.length;
    // the model's columns, in its order (a loaded model may read a subset)
    const x = new Float32Array(nodes.length * F);
    for (let r = 0; r < nodes.length; r++) for (let i = 0; i < F; i++) x[r * F + i] = all[r * width + loaded.columns[i]];
    return loaded.regressor.predict(x, nodes.length);
  }

  /** What the model in force predicts for every container on every node; undefined without a usable model. */
  async view(s: Snapshot): Promise<ForecastView | undefined> {
    let loaded: Loaded | undefined;
    try {
      loaded = await this.inForce();
    } catch (err) {
      log.warn('the model in force cannot forecast; the controller runs without a forecast', { error: err });
      return undefined;
    }
    if (!loaded || s.nodes.length === 0) return undefined;
    const opsByNode: Record<string, Record<string, number>> = {};
    // batches of containers x every node, one onnxruntime call each, one buffer for them all
    // (one call per container was 5,000 calls a round at 500 nodes); a container that reports
    // no ops gets no forecast: the policy has nothing to compare one with
    const ids = s.nodes.map((n) => n.id);
    const names = Array.from(loaded.columns, (i) => this.deps.features.names[i]);
    const reporting = s.containers.filter((c) => c.ops.some(Number.isFinite)).map((c) => c.herdId);
    const per = Math.max(1, Math.floor(FORECAST_BATCH_ROWS / ids.length));
    let buffer: Float32Array | undefined;
    for (let i = 0; i < reporting.length; i += per) {
      const m = this.deps.features.matrix(s, reporting.slice(i, i + per), ids, names, buffer);
      if (!buffer || m.x.buffer.byteLength > buffer.byteLength) buffer = new Float32Array(m.x.buffer);
      const y = await loaded.regressor.predict(m.x, m.herdIds.length * ids.length);
      m.herdIds.forEach((herdId, k) => {
        const row: Record<string, number> = {};
        for (let j = 0; j < ids.length; j++) row[ids[j]] = y[k * ids.length + j];
        opsByNode[herdId] = row;
      });
    }
    return { modelVersion: String(loaded.version), opsByNode, errorOps: loaded.errorOps };
  }

  /** One container's forecast on the given nodes (all when empty); throws ForecastUnavailable without a model. */
  async forecast(s: Snapshot, herdId: string, nodeId: string): Promise<{ version: number; container: ContainerView; ops: { node: string; ops: number }[] }> {
    let loaded: Loaded | undefined;
    try {
      loaded = await this.inForce();
    } catch (err) {
      throw new ForecastUnavailable(`the model in force cannot forecast: ${(err as Error).message}; train a new one (herd model train) or load one (herd model load)`);
    }
    if (!loaded) throw new ForecastUnavailable('no forecast model is in force yet: train one from the cluster\'s samples (herd model train) or load an ONNX regressor (herd model load)');
    const container = s.containers.find((c) => c.herdId === herdId);
    if (!container) throw new NotRunning(herdId);
    const nodes = nodeId ? s.nodes.filter((n) => n.id === nodeId) : s.nodes;
    const y = await this.predictOn(loaded, s, container, nodes);
    return { version: loaded.version, container, ops: nodes.map((n, i) => ({ node: n.id, ops: y[i] })) };
  }

  async close(): Promise<void> {
    const l = this.loaded;
    this.loaded = undefined;
    this.loadedKey = '';
    await l?.then((p) => p.regressor.close()).catch(() => undefined);
  }
}

/** The container is not running in the cluster (the Admin layer: NOT_FOUND). */
export class NotRunning extends Error {
  constructor(readonly herdId: string) {
    super(`no running container has herd id "${herdId}"; herd containers lists them`);
  }
}

export { ModelError, TableError };
