/**
 * The cluster's forecast model from the command line (docs/forecast.md), against the
 * coordinator (any node's address; the call goes to the coordinator):
 *   herd model train [--from T] [--to T] [--step MS] [--features a,b] [hyperparameters]
 *   herd model show [--version N] [--json]
 *   herd model forecast HERD_ID [--node N] [--json]
 *   herd model load FILE [--note TEXT]
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { addConnectOptions } from './connect';
import { onCoordinator, table } from './nodes';

/** TrainModel answers when the training ends: a big range takes minutes on a Pi. */
const TRAIN_DEADLINE_MS = 60 * 60_000;

/** Hyperparameter flag -> herd.v1.Hyperparameters field. */
export const HYPER_FLAGS: Record<string, string> = {
  rounds: 'rounds',
  maxDepth: 'max_depth',
  eta: 'eta',
  lambda: 'lambda',
  gamma: 'gamma',
  minChildWeight: 'min_child_weight',
  maxBin: 'max_bin',
  earlyStoppingRounds: 'early_stopping_rounds',
};

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** A time flag: ms since the epoch, an ISO 8601 time, or a span ago ("30m", "2h", "1d"). */
export function parseTime(flag: string, v: string | undefined, now: number): number {
  if (v === undefined) return 0;
  const ago = /^(\d+(?:\.\d+)?)([smhd])$/.exec(v.trim());
  if (ago) return Math.round(now - Number(ago[1]) * UNITS[ago[2]]);
  if (/^\d+$/.test(v.trim())) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`${flag} "${v}" is not a time: give an ISO 8601 time (2026-12-07T03:00:00Z), ms since the epoch, or a span ago (30m, 2h, 1d)`);
  return t;
}

const time = (ms: number) => (Number(ms) ? new Date(Number(ms)).toISOString().replace(/\.\d+Z$/, 'Z') : '-');
const fmt = (v: number) => (Math.abs(v) >= 1000 || v === 0 ? Number(v).toFixed(0) : Number(v).toPrecision(4));

export function formatModel(m: any, inForce?: number): string {
  const lines = [
    `model version ${m.version}${inForce !== undefined ? (Number(m.version) === Number(inForce) ? ' (in force)' : ` (version ${inForce} is in force)`) : ''}: ${m.source}, ${time(m.created_ms)} by ${m.created_by || '?'} (term ${m.term})`,
    m.source === 'trained' ? `trained on samples from ${time(m.from_ms)} to ${time(m.to_ms)}, grid step ${m.step_ms} ms: ${m.train_rows} rows, validated on ${m.valid_rows} later rows` : `loaded${m.note ? `: ${m.note}` : ''}`,
    m.source === 'trained' ? `trees: ${m.trees}; RMSE: train ${fmt(m.train_rmse)}, validation ${m.valid_rows ? fmt(m.valid_rmse) : '-'}; training took ${m.train_ms} ms; onnxruntime agrees with the trainer to ${Number(m.max_abs_diff).toExponential(1)}` : '',
    m.source === 'trained' ? `hyperparameters: ${m.hyperparameters_json}` : '',
    `reads: ${m.features.join(', ')}; forecasts: ${m.target}; ONNX ${m.onnx_bytes} bytes, sha256 ${m.onnx_sha256.slice(0, 16)}...`,
  ].filter(Boolean);
  if (m.importance?.length) {
    const rows = [...m.importance].sort((a: any, b: any) => b.gain - a.gain).map((i: any) => [i.feature, fmt(i.gain), String(i.splits)]);
    lines.push('', 'feature importance (mean gain of its splits):', table([['FEATURE', 'GAIN', 'SPLITS'], ...rows]));
  }
  return lines.join('\n');
}

function usage(what: string, msg: string): never {
  process.stderr.write(`herd model ${what}: ${msg}\n`);
  process.exit(2);
}

/** `herd model train` without --csv: TrainModel on the coordinator. */
export async function clusterTrain(opts: any): Promise<void> {
  const hyperparameters: Record<string, number> = {};
  let req: Record<string, unknown>;
  try {
    const now = Date.now();
    for (const [key, field] of Object.entries(HYPER_FLAGS)) {
      if (opts[key] === undefined) continue;
      const v = Number(opts[key]);
      if (!Number.isFinite(v)) throw new Error(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} "${opts[key]}" is not a number`);
      hyperparameters[field] = v;
    }
    const validFraction = Number(opts.validFraction);
    if (!Number.isFinite(validFraction)) throw new Error(`--valid-fraction "${opts.validFraction}" is not a number`);
    const step = opts.step === undefined ? 0 : Number(opts.step);
    if (!Number.isFinite(step)) throw new Error(`--step "${opts.step}" is not a number of ms`);
    req = {
      from_ms: parseTime('--from', opts.from, now),
      to_ms: parseTime('--to', opts.to, now),
      step_ms: step,
      features: opts.features ? String(opts.features).split(',').map((s) => s.trim()).filter(Boolean) : [],
      hyperparameters,
      valid_fraction: validFraction,
    };
  } catch (err) {
    usage('train', (err as Error).message);
  }
  const m = await onCoordinator('model train', opts, 'TrainModel', req, TRAIN_DEADLINE_MS);
  process.stdout.write(opts.json ? `${JSON.stringify(m, null, 2)}\n` : `${formatModel(m, Number(m.version))}\n`);
}

export function registerClusterModel(model: Command, server: (c: Command) => Command): void {
  addConnectOptions(
    server(
      model
        .command('show')
        .description("the cluster's forecast model in force (or a stored version): where it came from, its validation RMSE and feature importance, and every version")
        .option('--version <n>', 'a stored version instead of the one in force')
        .option('--json', 'the raw GetModel answer'),
    ),
  ).action(async (opts) => {
    const version = opts.version === undefined ? 0 : Number(opts.version);
    if (!Number.isInteger(version) || version < 1 && opts.version !== undefined) usage('show', `--version must be a stored version (1, 2, ...), not "${opts.version}"`);
    const r = await onCoordinator('model show', opts, 'GetModel', { version });
    if (opts.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    const out = [formatModel(r.model, Number(r.in_force))];
    if (Number(r.training_since_ms)) out.push('', `a training is running since ${time(r.training_since_ms)}`);
    if (r.history.length > 1) {
      out.push('', 'versions:', table([['VERSION', 'SOURCE', 'CREATED', 'ROWS', 'TREES', 'VALID RMSE'], ...r.history.map((h: any) => [String(h.version), h.source, time(h.created_ms), String(h.train_rows), String(h.trees), h.valid_rows ? fmt(h.valid_rmse) : '-'])]));
    }
    process.stdout.write(`${out.join('\n')}\n`);
  });

  addConnectOptions(
    server(
      model
        .command('forecast')
        .description("a container's predicted ops/s on every node (or one) by the model in force, and its measured ops/s where it runs")
        .argument('<herd-id>', 'the container (herd containers lists them)')
        .option('--node <id>', 'only this node')
        .option('--json', 'the raw Forecast answer'),
    ),
  ).action(async (herdId: string, opts) => {
    const r = await onCoordinator('model forecast', opts, 'Forecast', { herd_id: herdId, node_id: opts.node ?? '' });
    if (opts.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    const rows = r.nodes.map((n: any) => [n.node_id, fmt(n.ops), n.current ? `runs here now (measured ${fmt(r.current_ops)} ops/s)` : '']);
    process.stdout.write(`container ${r.herd_id} on ${r.current_node_id}, forecast by model version ${r.model_version}:\n${table([['NODE', 'PREDICTED OPS/S', ''], ...rows])}\n`);
  });

  addConnectOptions(
    server(
      model
        .command('load')
        .description('store an ONNX regressor as the next model version, in force: herd\'s own (herd model train --csv writes one) or one whose inputs are feature columns herd exports')
        .argument('<file>', 'the ONNX model')
        .option('--note <text>', 'kept with the model (where it came from)', ''),
    ),
  ).action(async (file: string, opts) => {
    let onnx: Buffer;
    try {
      onnx = fs.readFileSync(file);
    } catch (err) {
      usage('load', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const m = await onCoordinator('model load', opts, 'LoadModel', { onnx, note: opts.note }, 60_000);
    process.stdout.write(`${formatModel(m, Number(m.version))}\n`);
  });
}
