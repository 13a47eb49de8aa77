/**
 * The forecast trainer against XGBoost 1.7.4 (`hist`) and scikit-learn's
 * HistGradientBoostingRegressor on the same data in the same run, runs interleaved:
 * RMSE on the later rows (time-later test split), training time as a ratio to XGBoost's,
 * and the latency of one batched onnxruntime call forecasting one container on 50 nodes.
 * Data: make_friedman1 (10 features, noise 1) with 5% missing values in x3, made by
 * scikit-learn. Needs Debian's python3-xgboost and python3-sklearn:
 *   apt-get install -y python3-xgboost python3-sklearn
 *
 *   node bench/run.mjs forecast [rows=1000000] [repeats=3] [smallRows=20000] [hgbRepeats=1]
 *   node bench/run.mjs forecast csv FILE [repeats=3]
 * The csv form takes a table of `herd dataset export` (the bed fixture,
 * test/fixtures/forecast-bed.csv): its features (those that vary), target ops, the latest 20%
 * of the rows by time_ms as the test split; the same three trainers, accuracy only.
 * HistGradientBoostingRegressor runs hgbRepeats times only: it is the accuracy yardstick,
 * and on shared cores its OpenMP barriers make it by far the slowest of the three.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { predict, rmse, type Dataset } from '../coordinator/forecast/trainer/booster';
import { trainInWorker } from '../coordinator/forecast/driver';
import { boosterToOnnx } from '../coordinator/forecast/onnx-export';
import { checkParams } from '../coordinator/forecast/trainer/params';
import { loadRegressor } from '../coordinator/forecast/regressor';
import { FEATURES } from '../coordinator/forecast/features';
import { column, informative, matrixOf, parseCsv } from '../coordinator/forecast/table';
import { writeFileSync } from 'node:fs';

const rows = Number(process.argv[2] ?? 1_000_000);
const repeats = Number(process.argv[3] ?? 3);
const smallRows = Number(process.argv[4] ?? 20_000);
const hgbRepeats = Number(process.argv[5] ?? 1);
const PY = '/usr/bin/python3';
const SCRIPT = join(__dirname, '..', '..', 'bench', 'forecast_baselines.py');
const params = checkParams({ rounds: 100, maxDepth: 6, eta: 0.3, lambda: 1, maxBin: 256 });
const TEST_SHARE = 0.2;
let F = 10;

function python(args: string[]): string {
  try {
    return execFileSync(PY, [SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' }, maxBuffer: 1 << 20 });
  } catch (e) {
    const err = String((e as { stderr?: string }).stderr ?? e);
    if (/No module named/.test(err)) throw new Error(`the baselines need Debian's XGBoost and scikit-learn: apt-get install -y python3-xgboost python3-sklearn (${err.trim().split('\n').pop()})`);
    throw e;
  }
}

interface Run { seconds: number; rmse: number; version?: string }

/** The file's bytes alone: a small file's Buffer is a view into a shared pool. */
const own = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const spread = (v: number[]) => `${Math.min(...v).toFixed(2)}..${Math.max(...v).toFixed(2)}`;

async function ours(dir: string, nTrain: number): Promise<Run & { model: Awaited<ReturnType<typeof trainInWorker>>; test: Dataset }> {
  const y = new Float64Array(own(readFileSync(join(dir, 'y.f64'))));
  const x = new Float32Array(own(readFileSync(join(dir, 'x.f32'))));
  const train: Dataset = { x: x.subarray(0, nTrain * F), y: y.subarray(0, nTrain), rows: nTrain, features: F };
  const test: Dataset = { x: x.subarray(nTrain * F), y: y.subarray(nTrain), rows: y.length - nTrain, features: F };
  const t0 = performance.now();
  const model = await trainInWorker({ train, params });
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, rmse: rmse(predict(model, test.x, test.rows), test.y), model, test };
}

async function dataset(n: number, label: string) {
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-forecast-'));
  try {
    python(['make', dir, String(n), '0']);
    const nTrain = Math.floor(n * (1 - TEST_SHARE));
    const base = [dir, String(nTrain), String(params.maxDepth), String(params.rounds), String(params.eta), String(params.lambda), String(params.maxBin)];
    const runs: { herd: Run[]; xgb: Run[]; hgb: Run[] } = { herd: [], xgb: [], hgb: [] };
    let last: Awaited<ReturnType<typeof ours>> | undefined;
    for (let i = 0; i < repeats; i++) {
      // interleaved, the order rotating, so a neighbour's load spreads over all three
      const order = [['xgb', 'herd', 'hgb'], ['herd', 'hgb', 'xgb'], ['hgb', 'xgb', 'herd']][i % 3].filter((w) => w !== 'hgb' || i < hgbRepeats);
      for (const who of order) {
        if (who === 'herd') runs.herd.push((last = await ours(dir, nTrain)));
        else runs[who as 'xgb' | 'hgb'].push(JSON.parse(python([who, ...base])) as Run);
      }
    }
    const t = (k: keyof typeof runs) => runs[k].map((r) => r.seconds);
    const ratios = runs.herd.map((r, i) => r.seconds / runs.xgb[i].seconds);
    console.log(`\n${label}: make_friedman1, ${n} rows (train ${nTrain}, test = the last ${n - nTrain}), 10 features, 5% missing in x3; 100 trees, depth 6, eta 0.3, lambda 1, 256 bins; ${repeats} interleaved runs (HGB ${Math.min(repeats, hgbRepeats)})`);
    console.log(`  RMSE on the test rows: herd ${runs.herd[0].rmse.toFixed(4)}  xgboost ${runs.xgb[0].version} ${runs.xgb[0].rmse.toFixed(4)}  sklearn ${runs.hgb[0].version} HGB ${runs.hgb[0].rmse.toFixed(4)}`);
    console.log(`  herd/xgboost RMSE ${(runs.herd[0].rmse / runs.xgb[0].rmse).toFixed(4)} (target <= 1.02), herd/HGB ${(runs.herd[0].rmse / runs.hgb[0].rmse).toFixed(4)} (target <= 1.02)`);
    console.log(`  training seconds, median (min..max): herd ${median(t('herd')).toFixed(2)} (${spread(t('herd'))}, 1 thread)  xgboost ${median(t('xgb')).toFixed(2)} (${spread(t('xgb'))}, 2 threads)  HGB ${median(t('hgb')).toFixed(2)} (${spread(t('hgb'))}, 2 threads)`);
    console.log(`  herd/xgboost training time, per run: ${ratios.map((r) => r.toFixed(2)).join(' ')}; median ${median(ratios).toFixed(2)} (target <= 2)`);
    return last!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function inference(run: Awaited<ReturnType<typeof ours>>) {
  const bytes = boosterToOnnx(run.model, { featureNames: Array.from({ length: F }, (_, i) => `x${i}`), target: 'y' });
  const reg = await loadRegressor(bytes, Array.from({ length: F }, (_, i) => `x${i}`));
  // one container on each of 50 nodes: 50 rows, one call
  const batch = run.test.x.slice(0, 50 * F);
  const ort: number[] = [];
  const js: number[] = [];
  for (let i = 0; i < 200; i++) await reg.predict(batch, 50); // warm up
  for (let i = 0; i < 2000; i++) {
    let t0 = performance.now();
    await reg.predict(batch, 50);
    ort.push(performance.now() - t0);
    t0 = performance.now();
    predict(run.model, batch, 50);
    js.push(performance.now() - t0);
  }
  const check = await reg.predict(run.test.x, run.test.rows);
  const mine = predict(run.model, run.test.x, run.test.rows);
  let diff = 0;
  for (let r = 0; r < run.test.rows; r++) diff = Math.max(diff, Math.abs(check[r] - mine[r]));
  await reg.close();
  const p99 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.99)];
  console.log(`\ninference, ${run.model.trees.length} trees, 50 rows (one container x 50 nodes) per call, 2000 calls:`);
  console.log(`  onnxruntime (one batched call): median ${median(ort).toFixed(3)} ms, p99 ${p99(ort).toFixed(3)} ms (target median < 1 ms)`);
  console.log(`  the trainer's own JS predict, same rows: median ${median(js).toFixed(3)} ms; onnxruntime/JS ${(median(ort) / median(js)).toFixed(2)}`);
  console.log(`  onnxruntime vs trainer over ${run.test.rows} test rows: max abs diff ${diff.toExponential(2)}`);
}

/** A dataset export, its rows ordered by time, as the python script's files; the feature columns used. */
function exported(file: string, dir: string): string[] {
  const t = parseCsv(readFileSync(file, 'utf8'), file);
  const { kept } = informative(t, FEATURES.filter((f) => t.columns.includes(f))); // an older export lacks the newer columns
  const x = matrixOf(t, kept, file);
  const y = column(t, 'ops', file);
  const time = column(t, 'time_ms', file);
  const order = Array.from({ length: t.rows }, (_, i) => i).sort((a, b) => time[a] - time[b] || a - b);
  const xs = new Float32Array(x.length);
  const ys = new Float64Array(t.rows);
  order.forEach((r, i) => {
    xs.set(x.subarray(r * kept.length, (r + 1) * kept.length), i * kept.length);
    ys[i] = y[r];
  });
  writeFileSync(join(dir, 'x.f32'), xs);
  writeFileSync(join(dir, 'y.f64'), ys);
  return kept;
}

async function csvBench(file: string, n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-forecast-'));
  try {
    const kept = exported(file, dir);
    F = kept.length;
    const rowsIn = readFileSync(join(dir, 'y.f64')).length / 8;
    const nTrain = Math.floor(rowsIn * (1 - TEST_SHARE));
    const base = [dir, String(nTrain), String(params.maxDepth), String(params.rounds), String(params.eta), String(params.lambda), String(params.maxBin)];
    const runs: Record<'herd' | 'xgb' | 'hgb', Run[]> = { herd: [], xgb: [], hgb: [] };
    for (let i = 0; i < n; i++) {
      for (const who of [['xgb', 'herd', 'hgb'], ['herd', 'hgb', 'xgb'], ['hgb', 'xgb', 'herd']][i % 3]) {
        if (who === 'herd') runs.herd.push(await ours(dir, nTrain));
        else runs[who as 'xgb' | 'hgb'].push(JSON.parse(python([who, ...base])) as Run);
      }
    }
    const sd = rmse(new Float64Array(rowsIn - nTrain).fill(mean(readY(dir).subarray(0, nTrain))), readY(dir).subarray(nTrain));
    console.log(`${file}: ${rowsIn} rows (train ${nTrain}, test = the latest ${rowsIn - nTrain} by time_ms), features ${kept.join(', ')}; 100 trees, depth 6, eta 0.3, lambda 1, 256 bins; ${n} interleaved runs`);
    console.log(`  RMSE on the test rows: herd ${runs.herd[0].rmse.toFixed(4)}  xgboost ${runs.xgb[0].version} ${runs.xgb[0].rmse.toFixed(4)}  sklearn ${runs.hgb[0].version} HGB ${runs.hgb[0].rmse.toFixed(4)}  (the train mean as forecast: ${sd.toFixed(4)})`);
    console.log(`  herd/xgboost RMSE ${(runs.herd[0].rmse / runs.xgb[0].rmse).toFixed(4)} (target <= 1.02), herd/HGB ${(runs.herd[0].rmse / runs.hgb[0].rmse).toFixed(4)} (target <= 1.02)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const readY = (dir: string) => new Float64Array(own(readFileSync(join(dir, 'y.f64'))));
const mean = (v: Float64Array) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);

async function main() {
  if (process.argv[2] === 'csv') return csvBench(process.argv[3], Number(process.argv[4] ?? 3));
  const small = await dataset(smallRows, 'small set');
  void small;
  const big = await dataset(rows, 'large set');
  await inference(big);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
