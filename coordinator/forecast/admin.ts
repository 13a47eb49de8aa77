/**
 * Admin's model methods: TrainModel, GetModel, LoadModel, Forecast. Every argument is
 * checked before any work: INVALID_ARGUMENT names the field and its range; a request the
 * cluster cannot serve now (no model, nothing to learn from, a training running) is
 * FAILED_PRECONDITION; an unknown container or node NOT_FOUND. Access
 * (agent/security/authorize.ts): GetModel and Forecast are reads, the others need the
 * admin role and are audited.
 */
import * as grpc from '@grpc/grpc-js';
import { logger } from '../../common/log';
import { checkId, failedPrecondition, invalid, notFound, RpcError, unary } from '../../common/validate';
import type { Snapshot } from '../control/snapshot';
import { caller } from '../controller/admin';
import { meanOf } from './feature-source';
import { checkRange } from './dataset-export';
import { MAX_MODEL_BYTES, type ModelInfo, type ModelStore } from './models';
import { ForecastService, ForecastUnavailable, ModelError, NotRunning, TableError, type TrainSpec } from './service';
import { checkParams, ParamError, type TrainParams } from './trainer/params';

const log = logger('admin');

export const DEFAULT_RANGE_MS = 3600_000;
const HISTORY = 100;

/** Hyperparameters.<proto field> -> TrainParams key. */
const PARAM_FIELDS: Record<string, keyof TrainParams> = {
  rounds: 'rounds',
  max_depth: 'maxDepth',
  eta: 'eta',
  lambda: 'lambda',
  gamma: 'gamma',
  min_child_weight: 'minChildWeight',
  max_bin: 'maxBin',
  early_stopping_rounds: 'earlyStoppingRounds',
};
const FIELD_OF = Object.fromEntries(Object.entries(PARAM_FIELDS).map(([f, k]) => [k, f])) as Record<keyof TrainParams, string>;

export interface ModelAdminDeps {
  service: ForecastService;
  models: ModelStore;
  featureNames: readonly string[];
  /** The controller's snapshot now (the Forecast method forecasts from what the policies see). */
  snapshot: () => Snapshot;
  clock?: () => number;
}

/** A TrainModelRequest checked and filled with defaults; throws INVALID_ARGUMENT naming the field. */
export function checkTrainRequest(req: any, featureNames: readonly string[], now: number): TrainSpec {
  // the dataset export's range rules, with a default range: the last hour
  const toMs = Number(req.to_ms) || now;
  const grid = checkRange({ from_ms: Number(req.from_ms) || Math.max(1, toMs - DEFAULT_RANGE_MS), to_ms: toMs, step_ms: req.step_ms }, now);
  const asked: string[] = (req.features ?? []).map(String);
  const seen = new Set<string>();
  for (const f of asked) {
    if (!featureNames.includes(f)) throw invalid(`features: "${f.slice(0, 60)}" is not a feature herd exports; known: ${featureNames.join(', ')}`);
    if (seen.has(f)) throw invalid(`features: "${f}" is named twice`);
    seen.add(f);
  }
  const features = asked.length ? asked : [...featureNames];
  const h = req.hyperparameters ?? {};
  const given: Partial<Record<keyof TrainParams, unknown>> = {};
  for (const [field, key] of Object.entries(PARAM_FIELDS)) if (h[field] !== undefined && h[field] !== null) given[key] = Number(h[field]);
  const validFraction = req.valid_fraction ?? 0.2;
  if (!(validFraction >= 0 && validFraction <= 0.9)) throw invalid(`valid_fraction must be from 0 to 0.9 (the share of the latest rows held out for validation), not ${req.valid_fraction}`);
  if (given.earlyStoppingRounds === undefined && validFraction > 0) given.earlyStoppingRounds = 10;
  let params: TrainParams;
  try {
    params = checkParams(given);
  } catch (err) {
    if (err instanceof ParamError) throw invalid(`hyperparameters.${FIELD_OF[err.field as keyof TrainParams] ?? err.field}: ${err.message}`);
    throw err;
  }
  return { ...grid, toMs: grid.fromMs + grid.steps * grid.stepMs, features, featuresNamed: asked.length > 0, params, validFraction };
}

const finite = (v: number) => (Number.isFinite(v) ? v : 0);

export function modelHandlers(deps: ModelAdminDeps): grpc.UntypedServiceImplementation {
  const internal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  const clock = deps.clock ?? Date.now;
  const unchanged = () => {
    const v = deps.models.latestVersion();
    return v ? `the model in force (version ${v}) is unchanged` : 'no model is in force';
  };
  return {
    TrainModel: unary<any, ModelInfo>('TrainModel', async (req, call) => {
      const spec = checkTrainRequest(req, deps.featureNames, clock());
      try {
        return await deps.service.train(spec, caller(call));
      } catch (err) {
        if (err instanceof ForecastUnavailable || err instanceof TableError) throw failedPrecondition(`${err.message}; ${unchanged()}`);
        if (err instanceof RpcError) throw err;
        throw new RpcError(grpc.status.INTERNAL, `the training failed: ${(err as Error).message}; ${unchanged()}`);
      }
    }, internal),

    GetModel: unary('GetModel', (req: any) => {
      const asked = Number(req.version || 0);
      if (!Number.isSafeInteger(asked) || asked < 0) throw invalid(`version must be a stored version (1, 2, ...) or 0 for the model in force, not ${req.version}`);
      const inForce = deps.models.latestVersion();
      if (!inForce) throw failedPrecondition('no forecast model is stored yet: train one from the cluster\'s samples (herd model train) or load an ONNX regressor (herd model load)');
      const m = deps.models.get(asked || inForce);
      if (!m) throw notFound(`no model version ${asked} is stored; versions 1 to ${inForce} may be (herd model show lists them)`);
      return { model: m.info, in_force: inForce, history: deps.models.history(HISTORY), training_since_ms: deps.service.trainingSinceMs() };
    }, internal),

    LoadModel: unary<any, ModelInfo>('LoadModel', async (req, call) => {
      const onnx: Uint8Array | undefined = req.onnx;
      if (!onnx || onnx.length === 0) throw invalid('onnx is empty: give the bytes of an ONNX regressor (herd model load FILE)');
      if (onnx.length > MAX_MODEL_BYTES) throw invalid(`onnx is ${onnx.length} bytes; at most ${MAX_MODEL_BYTES}`);
      const note = String(req.note ?? '');
      if (note.length > 2000) throw invalid('note is longer than 2000 characters');
      try {
        return await deps.service.load(onnx, note, caller(call));
      } catch (err) {
        if (err instanceof ModelError) throw invalid(`onnx: ${err.message}; ${unchanged()}`);
        throw err;
      }
    }, internal),

    Forecast: unary('Forecast', async (req: any) => {
      const bad = checkId('herd_id', req.herd_id) ?? (req.node_id ? checkId('node_id', req.node_id) : undefined);
      if (bad) throw invalid(bad);
      const s = deps.snapshot();
      if (!s.containers.some((c) => c.herdId === req.herd_id)) throw notFound(new NotRunning(req.herd_id).message);
      if (req.node_id && !s.nodes.some((n) => n.id === req.node_id)) throw notFound(`no node "${req.node_id}" in the cluster; herd nodes lists them`);
      try {
        const r = await deps.service.forecast(s, req.herd_id, req.node_id ?? '');
        return {
          herd_id: req.herd_id,
          model_version: r.version,
          nodes: r.ops.map((o) => ({ node_id: o.node, ops: finite(o.ops), current: o.node === r.container.node })).sort((a, b) => b.ops - a.ops),
          current_ops: finite(meanOf(r.container.ops)),
          current_node_id: r.container.node,
        };
      } catch (err) {
        if (err instanceof ForecastUnavailable) throw failedPrecondition(err.message);
        if (err instanceof NotRunning) throw notFound(err.message);
        throw err;
      }
    }, internal),
  };
}
