/**
 * The forecast policy in the simulator (issue 14 point 3, issue 15 point 5). The simulator
 * has no coordinator and no onnxruntime, so it does what they do in-process and pure:
 *
 * 1. Training history: another day of the same cluster (forecast-history.ts: same nodes and
 *    applications, demand redrawn from another seed; or another trace day the caller gives),
 *    never the judged run, is run with an explorer (Herd's controller with the random policy,
 *    its filters and pacing), so containers are seen on several hosts beside several
 *    neighbours; every sample step of every snapshot gives dataset rows, built by the same
 *    `featureVector` as `herd dataset export` (features.ts): a container on its host at that
 *    step, its ops the target.
 * 2. A model is trained on them with Herd's own trainer (trainer/booster.ts; the latest 20%
 *    of the rows validate it and stop the boosting), the very code a coordinator runs.
 * 3. The judged run: Herd's controller with the forecast policy; before each evaluation the
 *    snapshot gets its `forecast` (each container on every node, `forecastMatrix` then the
 *    trainer's predict: onnxruntime's predictions equal it, forecast-onnx.test.ts) exactly as
 *    the coordinator's forecast driver fills it from the model in force.
 */
import { type Booster, type Dataset, predict, train } from '../forecast/trainer/booster';
import { checkParams, type TrainParams } from '../forecast/trainer/params';
import { FEATURES, FORECAST_BATCH_ROWS, featureVector, forecastMatrix } from '../forecast/features';
import type { Snapshot } from '../control/snapshot';
import { herdController } from './controllers';
import { simulate, type Controller } from './engine';
import { otherDay } from './forecast-history';
import type { SimSpec } from './model';

/** The training history's seed is the judged run's plus this: another day, never the same one. */
export const HISTORY_SEED_OFFSET = 1000;

/** The explorer's settings over the scenario's (its filters would hold the containers where they are). */
export const EXPLORE = {
  schedule: { windowMs: 60_000, periodMs: 60_000, firstAfterMs: 60_000 },
  filters: { cooldownMs: 0, pingPongWindowMs: 0, backoffMs: 0, backoffMaxMs: 0 },
  hysteresisRounds: 1,
};

export interface ForecastTraining {
  model: Booster;
  /** Rows learned from and validated on. */
  trainRows: number;
  validRows: number;
  validRmse: number;
  /** The simulated time the explorer ran, ms. */
  trainMs: number;
  /** The history's seed (the judged run's is another). */
  historySeed: number;
}

/** The snapshot's steps as dataset rows (features.ts), oldest first; rows without ops are left out. */
export function snapshotRows(s: Snapshot, since = -Infinity): { x: number[][]; y: number[]; t: number[] } {
  const out = { x: [] as number[][], y: [] as number[], t: [] as number[] };
  // each node's containers, and its water levels (busiest container's CPU and disk) per step back from now
  const onNode = new Map<string, Snapshot['containers'][number][]>();
  for (const c of s.containers) {
    const list = onNode.get(c.node);
    if (list) list.push(c);
    else onNode.set(c.node, [c]);
  }
  const fromEnd = (w: readonly number[], back: number) => (back < w.length ? w[w.length - 1 - back] : NaN);
  const levels = new Map<string, { cpu: number[]; disk: number[] }>();
  const levelsOf = (node: string) => {
    let l = levels.get(node);
    if (!l) {
      const mine = onNode.get(node) ?? [];
      const steps = Math.max(0, ...mine.map((c) => c.cpu.length));
      const top = (pick: (c: (typeof mine)[number]) => readonly number[]) =>
        Array.from({ length: steps }, (_, back) => Math.max(0, ...mine.map((c) => fromEnd(pick(c), back)).filter(Number.isFinite)));
      levels.set(node, (l = { cpu: top((c) => c.cpu), disk: top((c) => c.diskOps) }));
    }
    return l;
  };
  const nodes = new Map(s.nodes.map((n) => [n.id, n]));
  for (const c of s.containers) {
    const n = nodes.get(c.node);
    if (!n || c.migrating) continue;
    const len = c.ops.length;
    const level = levelsOf(c.node);
    for (let i = 0; i < len; i++) {
      const t = s.nowMs - (len - 1 - i) * s.stepMs;
      const ops = c.ops[i];
      if (t <= since || !Number.isFinite(ops)) continue;
      const back = len - 1 - i;
      const at = (w: readonly number[]) => fromEnd(w, back);
      const host = { cores: n.cores, memBytes: n.memoryBytes, cpu: at(n.cpu), diskOps: at(n.diskOps), containers: onNode.get(c.node)?.length ?? 0, diskIops: n.diskIops };
      const own = { cpu: host.cpu, level: level.cpu[back] ?? 0, disk: n.diskIops > 0 ? host.diskOps / n.diskIops : NaN, diskLevel: level.disk[back] ?? 0 };
      out.x.push(featureVector({ cpu: at(c.cpu), threads: at(c.threads), memBytes: c.memoryBytes, diskOps: at(c.diskOps), cpuLimit: c.limits.cpus }, own, host, true));
      out.y.push(ops);
      out.t.push(t);
    }
  }
  return out;
}

/**
 * Runs the explorer over the first `trainFraction` (all by default) of the training history
 * (`history`, else another day of the same cluster: otherDay), collecting a row per container
 * per sample step, and trains a model on them (the latest `validFraction` validate).
 */
export function trainOnScenario(
  spec: SimSpec,
  o: { history?: SimSpec; trainFraction?: number; settings?: Record<string, unknown>; params?: Partial<TrainParams>; validFraction?: number } = {},
): ForecastTraining {
  const history = o.history ?? otherDay(spec, spec.seed + HISTORY_SEED_OFFSET);
  const trainMs = Math.max(history.sampleMs, Math.round((history.durationMs * (o.trainFraction ?? 1)) / history.sampleMs) * history.sampleMs);
  // The explorer moves a random container every minute (no cooldown, no anti-ping-pong): the
  // more placements the training part shows, the more a model can tell hosts apart.
  const explorer = herdController('random', { ...o.settings, ...EXPLORE, policies: ['random'] }, history.seed + 1);
  const x: number[][] = [];
  const y: number[] = [];
  let seen = -Infinity;
  let calls = 0;
  const every = Math.max(1, Math.round((explorer.periodMs ?? history.periodMs) / history.sampleMs));
  // Called every sample step so every step is seen once; moves on the explorer's own period.
  const collector: Controller = {
    name: 'forecast-explorer',
    windowMs: history.sampleMs,
    periodMs: history.sampleMs,
    firstAfterMs: history.sampleMs,
    evaluate(snapshot) {
      const rows = snapshotRows(snapshot, seen);
      seen = snapshot.nowMs;
      x.push(...rows.x);
      y.push(...rows.y);
      return ++calls % every === 0 ? explorer.evaluate(snapshot) : [];
    },
  };
  simulate({ ...history, durationMs: trainMs, windowSteps: 1 }, collector);
  if (y.length < 10) throw new Error(`the training history (${trainMs / 1000} s) gave ${y.length} rows with ops: too few to train a forecast model`);
  const F = FEATURES.length;
  const nValid = Math.floor(y.length * (o.validFraction ?? 0.2));
  const take = (from: number, to: number): Dataset => {
    const dx = new Float32Array((to - from) * F);
    for (let r = from; r < to; r++) dx.set(x[r], (r - from) * F);
    return { x: dx, y: Float64Array.from(y.slice(from, to)), rows: to - from, features: F };
  };
  const trainSet = take(0, y.length - nValid);
  const validSet = nValid > 0 ? take(y.length - nValid, y.length) : undefined;
  const params = checkParams({ rounds: 100, maxDepth: 4, eta: 0.3, ...(validSet ? { earlyStoppingRounds: 10 } : {}), ...o.params });
  const model = train(trainSet, params, validSet);
  return { model, trainRows: trainSet.rows, validRows: nValid, validRmse: validSet ? model.validRmse[model.bestRounds - 1] : NaN, trainMs, historySeed: history.seed };
}

/**
 * Every container's predicted ops on every node of the snapshot, as the coordinator's driver
 * fills it: the rows of as many containers as fit a batch built at once (forecastMatrix) and
 * predicted in one call. A container that reports no ops gets none: the policy has nothing to
 * compare a prediction with (and says so).
 */
export function fillForecast(s: Snapshot, model: Booster, version: string, errorOps = NaN): Snapshot {
  const ids = s.nodes.map((n) => n.id);
  const opsByNode: Record<string, Record<string, number>> = {};
  const reporting = s.containers.filter((c) => c.ops.some(Number.isFinite)).map((c) => c.herdId);
  const per = Math.max(1, Math.floor(FORECAST_BATCH_ROWS / Math.max(1, ids.length)));
  let buffer: Float32Array | undefined;
  for (let i = 0; i < reporting.length; i += per) {
    const m = forecastMatrix(s, reporting.slice(i, i + per), ids, FEATURES, buffer);
    if (!buffer || m.x.buffer.byteLength > buffer.byteLength) buffer = new Float32Array(m.x.buffer);
    const p = predict(model, m.x, m.herdIds.length * ids.length);
    m.herdIds.forEach((herdId, k) => {
      const row: Record<string, number> = {};
      for (let j = 0; j < ids.length; j++) row[ids[j]] = p[k * ids.length + j];
      opsByNode[herdId] = row;
    });
  }
  return { ...s, forecast: { modelVersion: version, opsByNode, errorOps } };
}

/** Herd's controller (decide(), filters, pacing) with `patch`, each snapshot given the model's forecast. */
export function forecastController(name: string, patch: Record<string, unknown>, model: Booster, seed = 1, version = 'sim-1', errorOps = NaN): Controller {
  const inner = herdController(name, patch, seed);
  return { ...inner, evaluate: (snapshot) => inner.evaluate(fillForecast(snapshot, model, version, errorOps)) };
}
