/**
 * The simulator at scale and against CloudSim's baselines (issue 14).
 *
 *   node bench/run.mjs sim scale [policies=none,balance,cpu-greedy,lr-mmt]
 *     500 hosts (CloudSim's types, all on), the five PlanetLab days replayed at once (5,605
 *     containers), 24 h at a 5-minute evaluation: wall time of each whole run, the slowest
 *     round (decision) and the mean. Targets: run < 60 s, round < 1 s.
 *   node bench/run.mjs sim check [days]
 *     LR-MMT and MAD-MMT on CloudSim's own setup against cloudsim-reference.md's figures.
 *   node bench/run.mjs sim orders [days] [shuffles=3] [policies=lr-mmt,mad-mmt]
 *     How far LR-MMT's and MAD-MMT's figures move with the order of the trace's VMs alone (the
 *     order fixes the VM types, four contiguous blocks, and the initial placement): seeded
 *     shuffles 1..N of the rows (`check` runs the CSV's order); each figure against CloudSim's. CloudSim's own
 *     order is its JVM's directory listing, which differs between machines.
 *   node bench/run.mjs sim compare [tuneDays] [reportDays] [herdPolicies]
 *     Like with like: for each day, LR-MMT and MAD-MMT on CloudSim's setup (hosts switched off),
 *     then Herd's policies on a fixed cluster of as many hosts as LR-MMT kept on on average,
 *     side by side (energy, SLATAH, PDM, SLAV, migrations, ops vs the ideal). Settings are
 *     chosen on the tuning days only; the report days are never used to choose them.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { seededRandom } from '../coordinator/control/decide';
import { cpus, loadavg } from 'node:os';
import { cloudSimHosts, cloudSimSetup, fixedClusterSetup, parsePlanetLab, planetLabContainers, PLANETLAB_SETTINGS } from '../coordinator/sim/planetlab';
import { formatTable, makeController } from '../coordinator/sim/runner';
import { simulate, type SimResult } from '../coordinator/sim/engine';
import type { SimSpec } from '../coordinator/sim/model';

const DIR = process.env.PLANETLAB_DIR ?? '/work/shared/traces/planetlab';
const DAYS = ['20110303', '20110306', '20110309', '20110322', '20110325'];
const rowsOf = (day: string) => parsePlanetLab(readFileSync(`${DIR}/${day}.csv`, 'utf8'), `${day}.csv`);

function run(spec: SimSpec, name: string, settings: Record<string, unknown> = PLANETLAB_SETTINGS): { r: SimResult; wallMs: number; cpuMs: number; roundWallMs: number[] } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  // Decision time in CPU ms of this process: the machine is shared, wall time measures the neighbours too.
  const cpuClock = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const controller = makeController(name, settings, spec.seed);
  // Each round's wall time too (the none control is left as it is: the engine builds it no snapshot).
  const roundWallMs: number[] = [];
  const timed = name === 'none' ? controller : Object.assign(Object.create(controller), {
    evaluate: (s: Parameters<typeof controller.evaluate>[0]) => {
      const w0 = performance.now();
      const moves = controller.evaluate(s);
      roundWallMs.push(performance.now() - w0);
      return moves;
    },
  });
  const r = simulate(spec, timed, cpuClock);
  const c = process.cpuUsage(c0);
  return { r, wallMs: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, roundWallMs };
}

function scale(policies: string[]) {
  const rows = DAYS.flatMap(rowsOf);
  const spec: SimSpec = { ...cloudSimSetup(rows), nodes: cloudSimHosts(500, 65536), containers: DAYS.flatMap((d, k) => planetLabContainers(rowsOf(d), `d${k}-`)), placement: 'spread', cloudSimClock: false };
  console.log(`scale: ${spec.nodes.length} hosts, ${spec.containers.length} containers, 24 h at 5 min (${process.version}, load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`);
  console.log('policy                 run s   CPU s   rounds  round CPU ms mean  round CPU ms max  round wall ms max  migrations  ops/ideal  SLATAH%  load after');
  for (const p of policies) {
    const { r, wallMs, cpuMs, roundWallMs } = run(spec, p);
    const m = r.metrics;
    const wallMax = roundWallMs.length ? Math.max(...roundWallMs) : 0;
    console.log(`${p.padEnd(20)} ${(wallMs / 1000).toFixed(1).padStart(7)} ${(cpuMs / 1000).toFixed(1).padStart(7)} ${String(m.rounds).padStart(8)} ${m.decisionMsMean.toFixed(1).padStart(18)} ${m.decisionMsMax.toFixed(1).padStart(17)} ${wallMax.toFixed(1).padStart(18)} ${String(m.migrations).padStart(11)} ${m.opsVsIdeal.toFixed(4).padStart(10)} ${m.slatahPct.toFixed(3).padStart(8)} ${loadavg()[0].toFixed(1).padStart(11)}`);
  }
}

const REFERENCE: Record<string, Record<string, [number, number, number, number, number]>> = {
  // day -> policy -> [energy kWh, migrations, SLATAH %, PDM %, SLAV %] (cloudsim-reference.md)
  '20110303': { 'lr-mmt': [167.83, 27649, 5.722, 0.0755, 0.00432], 'mad-mmt': [189.79, 27781, 5.094, 0.0702, 0.00357] },
  '20110306': { 'lr-mmt': [127.98, 21661, 5.988, 0.083, 0.00497], 'mad-mmt': [145.85, 22129, 5.403, 0.0812, 0.00438] },
  '20110309': { 'lr-mmt': [139.4, 24239, 6.311, 0.0834, 0.00527], 'mad-mmt': [159.27, 23353, 5.088, 0.071, 0.00361] },
  '20110322': { 'lr-mmt': [172.88, 31376, 6.337, 0.0746, 0.00473], 'mad-mmt': [188.8, 27644, 5.083, 0.0564, 0.00287] },
  '20110325': { 'lr-mmt': [149.83, 26320, 5.759, 0.0768, 0.00442], 'mad-mmt': [165.94, 23761, 4.907, 0.0618, 0.00303] },
};

const pct = (x: number, ref: number) => `${x >= ref ? '+' : ''}${((100 * (x - ref)) / ref).toFixed(1)}%`;

function check(days: string[], policies = ['lr-mmt', 'mad-mmt']): Map<string, SimResult> {
  const out = new Map<string, SimResult>();
  console.log('day       policy   energy kWh (ref, diff)      migrations (ref, diff)   SLATAH % (ref, diff)    PDM % (ref, diff)         SLAV % (ref, diff)           hosts on  run s');
  for (const day of days) {
    const spec = cloudSimSetup(rowsOf(day));
    for (const p of policies) {
      const { r, wallMs } = run(spec, p);
      out.set(`${day}/${p}`, r);
      const m = r.metrics;
      const [e, mig, sl, pdm, slav] = REFERENCE[day][p];
      console.log(`${day}  ${p.padEnd(8)} ${m.energyKWh.toFixed(2)} (${e}, ${pct(m.energyKWh, e)})  ${m.migrations} (${mig}, ${pct(m.migrations, mig)})  ${m.slatahPct.toFixed(3)} (${sl}, ${pct(m.slatahPct, sl)})  ${m.pdmPct.toFixed(4)} (${pdm}, ${pct(m.pdmPct, pdm)})  ${m.slavPct.toFixed(5)} (${slav}, ${pct(m.slavPct, slav)})  ${m.meanActiveHosts.toFixed(1)}  ${(wallMs / 1000).toFixed(1)}`);
    }
  }
  return out;
}

/** The rows in a seeded random order (Fisher-Yates). */
function shuffled<T>(rows: readonly T[], seed: number): T[] {
  const out = rows.slice();
  const rnd = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function orders(days: string[], count: number, policies: string[]) {
  const names = ['energy kWh', 'migrations', 'SLATAH %', 'PDM %', 'SLAV %'];
  const pick = (r: SimResult) => [r.metrics.energyKWh, r.metrics.migrations, r.metrics.slatahPct, r.metrics.pdmPct, r.metrics.slavPct];
  console.log(`VM order sensitivity: ${count} seeded shuffles of each day's rows (load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`);
  for (const day of days) {
    const rows = rowsOf(day);
    for (const p of policies) {
      const figures: number[][] = [];
      for (let seed = 1; seed <= count; seed++) {
        const f = pick(run(cloudSimSetup(shuffled(rows, seed)), p).r);
        figures.push(f);
        console.log(`${day}  ${p.padEnd(8)} order ${seed}: ${f.map((x, i) => `${names[i]} ${x.toPrecision(4)} (${pct(x, REFERENCE[day][p][i])})`).join('  ')}`);
      }
      const ranges = names.map((n, i) => {
        const xs = figures.map((f) => f[i]);
        const ref = REFERENCE[day][p][i];
        const lo = Math.min(...xs);
        const hi = Math.max(...xs);
        return `${n} ${pct(lo, ref)}..${pct(hi, ref)}${lo <= ref && ref <= hi ? ' (CloudSim inside)' : ''}`;
      });
      console.log(`${day}  ${p.padEnd(8)} range vs CloudSim: ${ranges.join('  ')}`);
    }
  }
}

function compare(tune: string[], report: string[], herd: string[]) {
  console.log(`like with like: tuning days ${tune.join(', ')} (settings chosen there), report days ${report.join(', ')}`);
  for (const day of [...tune, ...report]) {
    const rows = rowsOf(day);
    const base = check([day]);
    const lr = base.get(`${day}/lr-mmt`)!;
    const hosts = Math.round(lr.metrics.meanActiveHosts);
    const spec = fixedClusterSetup(rows, hosts);
    const results = [lr, base.get(`${day}/mad-mmt`)!, ...herd.map((p) => run(spec, p).r)];
    console.log(`\n${day} (${tune.includes(day) ? 'tuning' : 'report'}): LR-MMT and MAD-MMT on CloudSim's 800 hosts (switched off when empty); Herd on ${hosts} hosts, all on`);
    console.log(formatTable(results));
  }
}

const [mode = 'scale', a, b, c] = process.argv.slice(2);
if (mode === 'scale') scale((a ?? 'none,balance,cpu-greedy,lr-mmt').split(','));
else if (mode === 'check') check(a ? a.split(',') : DAYS, b ? b.split(',') : undefined);
else if (mode === 'orders') orders(a ? a.split(',') : DAYS, Number(b ?? 3), (c ?? 'lr-mmt,mad-mmt').split(','));
else if (mode === 'compare') compare((a ?? '20110303,20110306').split(','), (b ?? '20110309,20110322,20110325').split(','), (c ?? 'none,cpu-greedy,balance,low-node-utilization,random').split(','));
else {
  console.error('usage: node bench/run.mjs sim scale|check|orders|compare ...');
  process.exit(2);
}
