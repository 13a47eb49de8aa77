/**
 * Forecast models from files (no cluster needed):
 *   herd model train --csv FILE --target COL [--out model.onnx]   train, export to ONNX
 *   herd model predict --model M --csv F [--out FILE]             run a model over a CSV
 * Training runs in a worker thread (coordinator/forecast/driver.ts) as on a coordinator.
 * Without --csv, `herd model train` trains the cluster's model on the coordinator; that and
 * `herd model show|forecast|load` are in model-cluster.ts.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { predict } from '../coordinator/forecast/trainer/booster';
import { splitByTime } from '../coordinator/forecast/dataset';
import { trainInWorker } from '../coordinator/forecast/driver';
import { boosterToOnnx } from '../coordinator/forecast/onnx-export';
import { ModelError } from '../coordinator/forecast/onnx-binding';
import { checkParams, DEFAULT_PARAMS, ParamError, type TrainParams } from '../coordinator/forecast/trainer/params';
import { loadRegressor } from '../coordinator/forecast/regressor';
import { checkTrainable, column, columnsAsRead, informative, matrixOf, parseCsv, TableError, toCsv } from '../coordinator/forecast/table';
import { FEATURES } from '../coordinator/forecast/features';
import { table } from './nodes';
import { addConnectOptions } from './connect';
import { clusterTrain, registerClusterModel } from './model-cluster';

/** Hyperparameter -> flag (the errors name the flag the user typed). */
const FLAGS: Record<keyof TrainParams, string> = {
  rounds: '--rounds',
  maxDepth: '--max-depth',
  eta: '--eta',
  lambda: '--lambda',
  gamma: '--gamma',
  minChildWeight: '--min-child-weight',
  maxBin: '--max-bin',
  earlyStoppingRounds: '--early-stopping-rounds',
};

function fail(what: string, err: unknown): never {
  const known = err instanceof TableError || err instanceof ModelError || err instanceof ParamError;
  let msg = (err as Error).message ?? String(err);
  if (err instanceof ParamError && err.field in FLAGS) msg = `${FLAGS[err.field as keyof TrainParams]}: ${msg}`;
  process.stderr.write(`herd model ${what}: ${msg}\n`);
  process.exit(known ? 2 : 1);
}

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new TableError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
const fmt = (v: number) => (Math.abs(v) >= 1000 || v === 0 ? v.toFixed(0) : v.toPrecision(4));

async function trainCommand(opts: any): Promise<void> {
  const source = opts.csv as string;
  const t = parseCsv(readFile(source, 'the CSV').toString('utf8'), source);
  column(t, opts.target, source);
  if (opts.time) column(t, opts.time, source);
  // a table of `herd dataset export` (its id columns and feature columns): its features, not its ids;
  // an export of an older herd lacks the newer feature columns, which are left out
  const exported = ['herd_id', 'node_id'].every((c) => t.columns.includes(c)) && FEATURES.some((f) => t.columns.includes(f));
  let features: string[] = opts.features ? list(opts.features) : exported ? FEATURES.filter((f) => t.columns.includes(f)) : t.columns.filter((c) => c !== opts.target && c !== opts.time);
  if (exported && !opts.features) {
    const lacking = FEATURES.filter((f) => !t.columns.includes(f));
    if (lacking.length) process.stderr.write(`herd model train: ${source} lacks the feature column${lacking.length > 1 ? 's' : ''} ${lacking.join(', ')} (an export of an older herd): trained without\n`);
    // a cluster without CPU limits has a constant ctr_cpu_limit, one of a single node size a constant host_cores: not errors of the user's
    const { kept, dropped } = informative(t, features);
    if (dropped.length) process.stderr.write(`herd model train: leaving out ${dropped.join(', ')}: the same value (or none) in every row\n`);
    features = kept;
  }
  for (const f of features) if (f === opts.target) throw new TableError(`--features names the target "${f}": a model cannot read what it forecasts`);
  checkTrainable(t, opts.target, features, source);
  const validFraction = Number(opts.validFraction);
  const given: Partial<Record<keyof TrainParams, unknown>> = {};
  for (const key of Object.keys(FLAGS) as (keyof TrainParams)[]) if (opts[key] !== undefined) given[key] = opts[key];
  if (given.earlyStoppingRounds === undefined && validFraction > 0) given.earlyStoppingRounds = 10;
  const params = checkParams(given);
  const split = splitByTime(t, { target: opts.target, features, time: opts.time, validFraction }, source);
  const model = await trainInWorker({ ...split, params });
  const validRmse = split.valid ? model.validRmse[model.bestRounds - 1] : undefined;
  const bytes = boosterToOnnx(model, {
    featureNames: features,
    target: opts.target,
    metadata: {
      'herd.rounds': String(model.trees.length),
      'herd.params': JSON.stringify(params),
      ...(validRmse !== undefined ? { 'herd.valid_rmse': String(validRmse) } : {}),
    },
  });
  // the file must forecast what the trainer does: run it once before it is written
  const check = split.valid ?? split.train;
  const reg = await loadRegressor(bytes, features, opts.out);
  let maxDiff = 0;
  try {
    const theirs = await reg.predict(check.x, check.rows);
    const ours = predict(model, check.x, check.rows);
    for (let r = 0; r < check.rows; r++) maxDiff = Math.max(maxDiff, Math.abs(theirs[r] - ours[r]));
  } finally {
    await reg.close();
  }
  fs.writeFileSync(opts.out, bytes);
  const out = [
    `trained on ${split.train.rows} rows (${features.length} features), validated on ${split.valid?.rows ?? 0} later rows`,
    `trees: ${model.trees.length}${split.valid && params.earlyStoppingRounds > 0 ? ` (early stopping after ${params.earlyStoppingRounds} rounds without improvement)` : ''}`,
    `RMSE: train ${fmt(model.trainRmse[model.trees.length - 1])}${validRmse !== undefined ? `, validation ${fmt(validRmse)}` : ''}`,
    `wrote ${opts.out} (${bytes.length} bytes; onnxruntime agrees with the trainer to ${maxDiff.toExponential(1)})`,
    '',
    'feature importance (mean gain of its splits):',
    table([['FEATURE', 'GAIN', 'SPLITS'], ...features.map((f, i) => [f, fmt(model.importance.gain[i]), String(model.importance.splits[i])]).sort((a, b) => Number(b[1]) - Number(a[1]))]),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

async function predictCommand(opts: any): Promise<void> {
  const bytes = readFile(opts.model, 'the model');
  const t = parseCsv(readFile(opts.csv, 'the CSV').toString('utf8'), opts.csv);
  const reg = await loadRegressor(bytes, t.columns, opts.model);
  try {
    const x = matrixOf(t, reg.binding.features, opts.csv);
    const y = await reg.predict(x, t.rows);
    const text = toCsv([...t.columns, opts.column], [...columnsAsRead(t), y]);
    if (opts.out) fs.writeFileSync(opts.out, text);
    else {
      // `| head` closing the pipe early is not an error
      process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
      process.stdout.write(text);
    }
  } finally {
    await reg.close();
  }
}

export function registerModel(program: Command): void {
  const model = program.command('model').description("forecast models: the cluster's (train on the coordinator's samples, show, forecast, load), or from files (train on a CSV and export to ONNX, run an ONNX regressor over a CSV)");
  const server = (cmd: Command) => cmd.option('-s, --server <host:port>', 'any node of the cluster (the call is sent to the coordinator it names)', '127.0.0.1:7400');
  const train = model
    .command('train')
    .description("train gradient-boosted trees (XGBoost hist style); the latest rows validate the model and stop the boosting early. Without --csv: the cluster's model, from the coordinator's samples of --from..--to, stored as the next version and put in force. With --csv FILE --target COL: from a file, written as an ONNX model (--out)")
    .option('--csv <file>', 'train from this table instead of the cluster: a header of column names, then rows of numbers (an empty cell is a missing value)')
    .option('--target <column>', 'with --csv: the column to forecast')
    .option('--out <file>', 'with --csv: where to write the ONNX model', 'model.onnx')
    .option('--features <a,b,...>', 'the feature columns (default: a `herd dataset export` table\'s features, else every column but the target and --time; for the cluster, every feature herd exports)')
    .option('--time <column>', 'with --csv: order rows by this column for the validation split (default: file order); not a feature')
    .option('--from <time>', 'cluster: first sample time: ISO 8601, ms since the epoch, or a span ago (2h); default an hour before --to')
    .option('--to <time>', 'cluster: end of the range (same forms); default now')
    .option('--step <ms>', 'cluster: grid step the samples are resampled onto (default 5000)')
    .option('--json', 'cluster: the raw TrainModel answer')
    .option('--valid-fraction <f>', 'share of the latest rows held out for validation and early stopping (0 turns both off)', '0.2');
  for (const [key, flag] of Object.entries(FLAGS)) {
    train.option(`${flag} <n>`, `${key} (default ${DEFAULT_PARAMS[key as keyof TrainParams]}${key === 'earlyStoppingRounds' ? '; 10 with a validation set' : ''})`);
  }
  addConnectOptions(server(train));
  train.action((opts) => {
    if (!opts.csv) {
      if (opts.target || opts.time) {
        process.stderr.write(`herd model train: ${opts.target ? '--target' : '--time'} goes with --csv; the cluster's model forecasts a container's ops/s from the features herd exports\n`);
        process.exit(2);
      }
      return clusterTrain(opts);
    }
    if (!opts.target) {
      process.stderr.write("herd model train: --csv needs --target COL, the column to forecast\n");
      process.exit(2);
    }
    return trainCommand(opts).catch((e) => fail('train', e));
  });
  registerClusterModel(model, server);
  model
    .command('predict')
    .description('run an ONNX regressor (herd\'s, or one with an input per column) over a CSV; prints the CSV with a prediction column')
    .requiredOption('--model <file>', 'the ONNX model')
    .requiredOption('--csv <file>', 'the rows to forecast; must have the columns the model reads')
    .option('--out <file>', 'write the CSV here instead of to standard output')
    .option('--column <name>', 'name of the prediction column', 'prediction')
    .action((opts) => predictCommand(opts).catch((e) => fail('predict', e)));
}
