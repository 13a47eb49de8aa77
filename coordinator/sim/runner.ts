/**
 * Runs several controllers on one scenario (same demand, same seed) and lays the results
 * side by side. Controller names: 'none'; 'lr-mmt', 'mad-mmt' (CloudSim's baselines); any
 * policy of Herd's registry ('cpu-greedy', 'balance', 'random', 'low-node-utilization'...),
 * run through Herd's decide() with the scenario's controller settings; 'a+b' for a chain.
 */
import { POLICY_NAMES, type PolicyName } from '../control/settings';
import { lrMmt } from './baselines/lr-mmt';
import { madMmt } from './baselines/mad-mmt';
import { herdController, noMigration, policyController } from './controllers';
import { simulate, type Controller, type SimResult } from './engine';
import { forecastController, trainOnScenario, type ForecastTraining } from './forecast';
import type { SimSpec } from './model';

export const BASELINES = ['none', 'lr-mmt', 'mad-mmt'] as const;

export function knownController(name: string): string | null {
  if ((BASELINES as readonly string[]).includes(name)) return null;
  for (const part of name.split('+')) {
    if (!(POLICY_NAMES as readonly string[]).includes(part)) return `unknown policy "${part}": known are ${[...BASELINES, ...POLICY_NAMES].join(', ')} (chain Herd's with +)`;
  }
  return null;
}

/** Whether a controller name runs the forecast policy (it then needs a model: trainOnScenario). */
export const usesForecast = (name: string): boolean => name.split('+').includes('forecast');

/**
 * `settings`: Herd's controller settings over its defaults (mode is auto in the simulator).
 * A chain with the forecast policy needs `forecast`, the model trained on the scenario's training part.
 */
export function makeController(name: string, settings: Record<string, unknown> = {}, seed = 1, forecast?: ForecastTraining): Controller {
  const bad = knownController(name);
  if (bad) throw new Error(bad);
  if (name === 'none') return noMigration;
  if (name === 'lr-mmt') return policyController(lrMmt, lrMmt.defaults, seed);
  if (name === 'mad-mmt') return policyController(madMmt, madMmt.defaults, seed);
  const patch = { ...settings, policies: name.split('+') as PolicyName[] };
  if (!usesForecast(name)) return herdController(name, patch, seed);
  if (!forecast) throw new Error(`${name} needs a forecast model: train one on the scenario first (trainOnScenario)`);
  return forecastController(name, patch, forecast.model, seed, 'sim-1', forecast.validRmse);
}

/** Runs each controller on the spec; a forecast model is trained once first if one of them needs it (or given). */
export function runAll(spec: SimSpec, names: readonly string[], settings: Record<string, unknown> = {}, clock?: () => number, forecast?: ForecastTraining): SimResult[] {
  const model = forecast ?? (names.some(usesForecast) ? trainOnScenario(spec, { settings }) : undefined);
  return names.map((n) => simulate(spec, makeController(n, settings, spec.seed, model), clock));
}

const COLUMNS: [string, (r: SimResult) => string][] = [
  ['policy', (r) => r.metrics.policy],
  ['ops/ideal', (r) => r.metrics.opsVsIdeal.toFixed(4)],
  ['SLATAH%', (r) => r.metrics.slatahPct.toFixed(3)],
  ['PDM%', (r) => r.metrics.pdmPct.toFixed(4)],
  ['SLAV%', (r) => r.metrics.slavPct.toFixed(5)],
  ['energy kWh', (r) => r.metrics.energyKWh.toFixed(2)],
  ['hosts on', (r) => r.metrics.meanActiveHosts.toFixed(1)],
  ['migr', (r) => String(r.metrics.migrations)],
  ['/ctr/h', (r) => r.metrics.migrationsPerContainerHour.toFixed(4)],
  ['ping-pong', (r) => String(r.metrics.pingPong)],
  ['failed', (r) => String(r.metrics.failedMigrations)],
  ['downtime s', (r) => r.metrics.downtimeS.toFixed(1)],
  ['util SD', (r) => r.metrics.hostUtilSd.toFixed(3)],
  ['util CV', (r) => r.metrics.hostUtilCv.toFixed(3)],
  ['>thr %', (r) => r.metrics.overThresholdPct.toFixed(2)],
  ['decide ms', (r) => `${r.metrics.decisionMsMean.toFixed(1)}/${r.metrics.decisionMsMax.toFixed(1)}`],
];

/** Ops gain over the no-migration run of the same set (+0.0641 = +6.41 %), NaN without one. */
export function gainOverNone(results: readonly SimResult[], r: SimResult): number {
  const none = results.find((x) => x.metrics.policy === 'none');
  return none && none.metrics.ops > 0 ? r.metrics.ops / none.metrics.ops - 1 : NaN;
}

/** A plain-text table, one row per run. */
export function formatTable(results: readonly SimResult[]): string {
  const cols: typeof COLUMNS = [...COLUMNS.slice(0, 2), ['ops vs none', (r) => { const g = gainOverNone(results, r); return Number.isNaN(g) ? '-' : `${g >= 0 ? '+' : ''}${(100 * g).toFixed(2)}%`; }], ...COLUMNS.slice(2)];
  const rows = [cols.map((c) => c[0]), ...results.map((r) => cols.map((c) => c[1](r)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}
