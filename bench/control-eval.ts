/**
 * CPU time of one controller evaluation (decide(): filters, hysteresis, the policy chain,
 * pacing, the record) on a synthetic 500-node / 5,000-container snapshot, per policy.
 * Target (issue 13): < 200 ms. Baseline, measured in the same run and interleaved: one pass
 * over the snapshot computing every window's mean (loadsOf), the least any evaluation must do.
 * Each round gets a fresh snapshot object, so nothing cached on the previous one is reused.
 *
 * Run: node bench/run.mjs control-eval [--nodes 500] [--containers 5000] [--rounds 15] [--policies a,b+c]
 * CPU is process.cpuUsage() (user + system: GC and JIT helpers count too); reported as the
 * median and the spread (min..max) over rounds, after 3 warm-up rounds.
 */
import { decide, initialState } from '../coordinator/control/decide';
import { loadsOf } from '../coordinator/control/load';
import { POLICY_NAMES, validateSettings } from '../coordinator/control/settings';
import type { Snapshot } from '../coordinator/control/snapshot';
import { syntheticSnapshot } from '../test/fixtures/control-snapshot';
import { report } from './stats';

const TARGET_MS = 200;

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}
const nodes = Number(opt('nodes', '500'));
const containers = Number(opt('containers', '5000'));
const rounds = Number(opt('rounds', '15'));
/** A '+' joins policies into one ordered chain (the OLTP policy's fallback joins it too). */
const policies = opt('policies', [...POLICY_NAMES, 'oltp-disk+balance'].join(',')).split(',');

const base = syntheticSnapshot(nodes, containers, 42);
/** A new object each round: loadsOf caches per snapshot object. */
const fresh = (): Snapshot => ({ ...base });

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f1 = (x: number) => x.toFixed(1);

const runs = new Map<string, number[]>([['baseline (means of every window)', []], ...policies.map((p) => [p, []] as [string, number[]])]);
const settingsOf = new Map(
  policies.map((p) => {
    const v = validateSettings({ mode: 'recommend', policies: p.split('+'), hysteresisRounds: 1, thresholds: { balance: { minImprovement: 0 } } });
    if (!v.ok) throw new Error(v.error);
    return [p, v.settings];
  }),
);
const moves = new Map<string, number>();
for (let r = 0; r < rounds + 3; r++) {
  // Interleaved: every candidate once per round, so drift on a shared machine hits all alike.
  for (const [name, xs] of runs) {
    const s = fresh();
    const st = settingsOf.get(name);
    const ms = st
      ? cpuMs(() => moves.set(name, decide(initialState(), s, st, { term: 1, trigger: 'bench', id: `d-${r}` }).moves.length))
      : cpuMs(() => loadsOf(s));
    if (r >= 3) xs.push(ms);
  }
}

const baseMs = median(runs.values().next().value!);
console.log(`control-eval: one evaluation of ${nodes} nodes / ${containers} containers, ${rounds} rounds, CPU ms (median, min..max); target < ${TARGET_MS} ms`);
console.log(`${'what'.padEnd(34)} ${'median'.padStart(8)} ${'spread'.padStart(14)} ${'x baseline'.padStart(11)} moves`);
let worst = 0;
for (const [name, xs] of runs) {
  const m = median(xs);
  if (settingsOf.has(name)) worst = Math.max(worst, m);
  console.log(`${name.padEnd(34)} ${f1(m).padStart(8)} ${`${f1(Math.min(...xs))}..${f1(Math.max(...xs))}`.padStart(14)} ${(m / baseMs).toFixed(1).padStart(11)} ${moves.get(name) ?? ''}`);
}
console.log(`worst policy median ${f1(worst)} ms: ${worst < TARGET_MS ? 'within' : 'OVER'} the ${TARGET_MS} ms target`);
const [baseName, baseXs] = runs.entries().next().value!;
const slowest = [...runs].filter(([name]) => settingsOf.has(name)).sort((a, b) => median(b[1]) - median(a[1]))[0];
if (slowest) report({ name: `controller evaluation, ${nodes} nodes / ${containers} containers, slowest policy (${slowest[0]})`, unit: 'ms CPU', herd: slowest[1], baselineName: baseName, baseline: baseXs, target: `< ${TARGET_MS} ms` });
