/**
 * One round of the forecast policy at scale (issue 15): 500 hosts, the five PlanetLab days at
 * once (5,605 containers), every container's ops predicted on every node (2.8M rows), as the
 * coordinator's driver (onnxruntime) and the simulator (the trainer's predict) fill the
 * snapshot before the policy runs; then the policy itself (decide() with the forecast).
 *
 *   node bench/run.mjs forecast-round [repeats=3] [trainDay=20110303]
 *
 * Baseline in the same run, interleaved: the per-container way this replaced (forecastRows,
 * then one call per container: 5,605 onnxruntime calls of 500 rows). The model: trained by
 * the simulator's own path (trainOnScenario) on another PlanetLab day on 51 hosts. CPU time
 * of this process is reported next to wall time: the machine is shared.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { FEATURES, forecastMatrix, forecastRows, FORECAST_BATCH_ROWS } from '../coordinator/forecast/features';
import { boosterToOnnx } from '../coordinator/forecast/onnx-export';
import { loadRegressor, type Regressor } from '../coordinator/forecast/regressor';
import type { Snapshot } from '../coordinator/control/snapshot';
import { cloudSimHosts, cloudSimSetup, fixedClusterSetup, parsePlanetLab, planetLabContainers, PLANETLAB_SETTINGS } from '../coordinator/sim/planetlab';
import { fillForecast, forecastController, trainOnScenario } from '../coordinator/sim/forecast';
import { simulate } from '../coordinator/sim/engine';
import type { SimSpec } from '../coordinator/sim/model';

const DIR = process.env.PLANETLAB_DIR ?? '/work/shared/traces/planetlab';
const DAYS = ['20110303', '20110306', '20110309', '20110322', '20110325'];
const repeats = Number(process.argv[2] ?? 3);
const trainDay = process.argv[3] ?? '20110303';
const rowsOf = (day: string) => parsePlanetLab(readFileSync(`${DIR}/${day}.csv`, 'utf8'), `${day}.csv`);

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const range = (v: number[]) => `${Math.min(...v).toFixed(0)}..${Math.max(...v).toFixed(0)}`;

/** Wall and CPU ms of f. */
async function timed<T>(f: () => T | Promise<T>): Promise<{ value: T; wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const c = process.cpuUsage(c0);
  return { value, wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
}

/** The coordinator driver's loop (service.ts view()): batches of containers x every node, one call each. */
async function batched(s: Snapshot, reg: Regressor): Promise<number> {
  const ids = s.nodes.map((n) => n.id);
  const reporting = s.containers.filter((c) => c.ops.some(Number.isFinite)).map((c) => c.herdId);
  const per = Math.max(1, Math.floor(FORECAST_BATCH_ROWS / ids.length));
  let buffer: Float32Array | undefined;
  let n = 0;
  for (let i = 0; i < reporting.length; i += per) {
    const m = forecastMatrix(s, reporting.slice(i, i + per), ids, FEATURES, buffer);
    if (!buffer || m.x.buffer.byteLength > buffer.byteLength) buffer = new Float32Array(m.x.buffer);
    n += (await reg.predict(m.x, m.herdIds.length * ids.length)).length;
  }
  return n;
}

/** The loop it replaced: one forecastRows and one onnxruntime call per container. */
async function perContainer(s: Snapshot, reg: Regressor): Promise<number> {
  const ids = s.nodes.map((n) => n.id);
  let n = 0;
  for (const c of s.containers) {
    const x = forecastRows(s, c.herdId, ids);
    if (x) n += (await reg.predict(x, ids.length)).length;
  }
  return n;
}

async function main() {
  const history = fixedClusterSetup(rowsOf(trainDay), 51);
  const t = await timed(() => trainOnScenario(history, { settings: PLANETLAB_SETTINGS, history }));
  const training = t.value;
  console.log(`model: ${training.model.trees.length} trees (depth <= 4) trained on ${training.trainRows} rows of ${trainDay} on 51 hosts in ${(t.wall / 1000).toFixed(1)} s`);

  const spec: SimSpec = { ...cloudSimSetup(DAYS.flatMap(rowsOf)), nodes: cloudSimHosts(500, 65536), containers: DAYS.flatMap((d, k) => planetLabContainers(rowsOf(d), `d${k}-`)), placement: 'spread', cloudSimClock: false };
  // the snapshot of the third round (windows full), as the controller sees it
  let snapshot: Snapshot | undefined;
  simulate({ ...spec, durationMs: 3 * spec.periodMs + 1 }, { name: 'capture', windowMs: PLANETLAB_SETTINGS.schedule.windowMs, periodMs: spec.periodMs, firstAfterMs: spec.periodMs, evaluate: (s) => ((snapshot = s), []) });
  const s = snapshot!;
  const rows = s.nodes.length * s.containers.length;
  console.log(`round: ${s.nodes.length} hosts, ${s.containers.length} containers, ${rows} rows (${process.version}, load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores), ${repeats} interleaved runs`);

  const reg = await loadRegressor(boosterToOnnx(training.model, { featureNames: [...FEATURES], target: 'ops' }), [...FEATURES]);
  const fresh = (): Snapshot => ({ ...s }); // a new snapshot object: nothing cached from the run before
  const r: Record<string, { wall: number[]; cpu: number[] }> = { ortBatched: { wall: [], cpu: [] }, ortPerContainer: { wall: [], cpu: [] }, simFill: { wall: [], cpu: [] }, policy: { wall: [], cpu: [] } };
  const ctl = forecastController('forecast', PLANETLAB_SETTINGS, training.model, 1);
  for (let i = 0; i < repeats; i++) {
    for (const who of i % 2 ? ['ortPerContainer', 'ortBatched', 'simFill', 'policy'] : ['ortBatched', 'ortPerContainer', 'policy', 'simFill']) {
      const m =
        who === 'ortBatched' ? await timed(() => batched(fresh(), reg))
        : who === 'ortPerContainer' ? await timed(() => perContainer(fresh(), reg))
        : who === 'simFill' ? await timed(() => fillForecast(fresh(), training.model, 'v'))
        : await timed(() => ctl.evaluate(fresh())); // the sim's whole round: fill, then decide() with the forecast policy
      r[who].wall.push(m.wall);
      r[who].cpu.push(m.cpu);
    }
  }
  await reg.close();
  const line = (name: string, k: string) => console.log(`  ${name.padEnd(62)} wall ${median(r[k].wall).toFixed(0).padStart(6)} ms (${range(r[k].wall)})  CPU ${median(r[k].cpu).toFixed(0).padStart(6)} ms (${range(r[k].cpu)})`);
  line('coordinator driver, batched (65,536 rows per onnxruntime call)', 'ortBatched');
  line('coordinator driver, one onnxruntime call per container (before)', 'ortPerContainer');
  line("simulator's fill (forecastMatrix + the trainer's predict)", 'simFill');
  line('simulator round: fill + decide() with the forecast policy', 'policy');
  const ratio = r.ortBatched.wall.map((w, i) => w / r.ortPerContainer.wall[i]);
  console.log(`  batched / per-container, wall, per run: ${ratio.map((x) => x.toFixed(2)).join(' ')} (target: a round < 1 s)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
