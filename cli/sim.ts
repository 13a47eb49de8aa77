/**
 * herd sim: runs policies on a simulated cluster (coordinator/sim/) and prints them side by side.
 *   herd sim SCENARIO.json [--policy a,b] [--seed N] [--json] [--plot FILE.svg]
 *   herd sim --trace DAY.csv [--trace ...] [--setup cloudsim|fixed] [--nodes N] [--policy ...]
 * The thin loader: reads the files and writes the plot; everything else is the pure simulator.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parsePlanetLab, cloudSimSetup, fixedClusterSetup, PLANETLAB_SETTINGS, TraceError, type TraceRow } from '../coordinator/sim/planetlab';
import { parseScenario, scenarioSpec, ScenarioError } from '../coordinator/sim/scenario';
import { formatTable, knownController, runAll, usesForecast } from '../coordinator/sim/runner';
import { trainOnScenario, type ForecastTraining } from '../coordinator/sim/forecast';
import { plotRuns } from '../coordinator/sim/plot';
import type { SimSpec } from '../coordinator/sim/model';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function fail(msg: string): never {
  process.stderr.write(`herd sim: ${msg}\n`);
  process.exit(2);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

const int = (flag: string, v: string | undefined, min: number, max: number): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) fail(`${flag} must be a whole number from ${min} to ${max} (got "${v}")`);
  return Number(v);
};

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('simulate policies on a cluster: a scenario file (docs/simulator.md) or PlanetLab traces; prints ops vs the ideal, SLATAH, PDM, SLAV, energy, migrations, spread, decision time')
    .argument('[scenario]', 'scenario JSON file')
    .option('--trace <file>', 'a PlanetLab day (CSV: vm,t0,...,t1435); repeat to replay several at once', collect)
    .option('--setup <kind>', 'with --trace: cloudsim (800 hosts that switch off when idle, as CloudSim\'s benchmark) or fixed (--nodes hosts, all on)', 'cloudsim')
    .option('--policy <list>', 'comma-separated controllers: none, lr-mmt, mad-mmt, or Herd policies (cpu-greedy, cpu-greedy-mt, oltp-disk, balance, random, low-node-utilization, forecast; chain with +)')
    .option('--nodes <n>', 'hosts (with --trace)')
    .option('--seed <n>', 'random seed (same seed, same result)')
    .option('--settings <json>', "Herd's controller settings over the scenario's, as JSON")
    .option('--train-trace <file>', 'with --trace and the forecast policy: the PlanetLab day its model is trained on (another day than the judged one; default: the judged cluster with its demand redrawn from another seed)', collect)
    .option('--json', 'print the metrics as JSON')
    .option('--plot <file.svg>', 'draw host load and ops over time with migrations marked')
    .action((scenario: string | undefined, opts) => {
      if (!scenario === !opts.trace) fail('give a scenario file or --trace FILE (one of them)');
      const seed = int('--seed', opts.seed, 0, 2 ** 31 - 1);
      const nodes = int('--nodes', opts.nodes, 1, 100_000);
      let spec: SimSpec;
      let policies: string[];
      let settings: Record<string, unknown> = {};
      let title: string;
      let history: SimSpec | undefined;
      try {
        if (opts.trainTrace && !opts.trace) fail('--train-trace goes with --trace (a scenario file trains on another day of its own cluster)');
        if (scenario) {
          if (nodes !== undefined) fail('--nodes applies to --trace; a scenario file lists its nodes (use "count")');
          const s = parseScenario(readText(scenario), scenario);
          spec = scenarioSpec({ ...s, seed: seed ?? s.seed });
          policies = s.policies;
          settings = s.controller;
          title = `${s.name} (${scenario})`;
        } else {
          const rows: TraceRow[] = (opts.trace as string[]).flatMap((f) => parsePlanetLab(readText(f), f));
          if (opts.setup === 'cloudsim') spec = cloudSimSetup(rows, { hosts: nodes, seed });
          else if (opts.setup === 'fixed') {
            if (nodes === undefined) fail('--setup fixed needs --nodes N');
            spec = fixedClusterSetup(rows, nodes, undefined, seed);
            settings = PLANETLAB_SETTINGS;
            if (opts.trainTrace) history = fixedClusterSetup((opts.trainTrace as string[]).flatMap((f) => parsePlanetLab(readText(f), f)), nodes, undefined, seed);
          } else fail(`--setup must be cloudsim or fixed (got "${opts.setup}")`);
          if (opts.trainTrace && !history) history = cloudSimSetup((opts.trainTrace as string[]).flatMap((f) => parsePlanetLab(readText(f), f)), { hosts: nodes, seed });
          policies = ['none', 'lr-mmt', 'mad-mmt'];
          title = `PlanetLab ${(opts.trace as string[]).join(', ')}: ${rows.length} VMs on ${spec.nodes.length} hosts (${opts.setup})`;
        }
      } catch (err) {
        if (err instanceof ScenarioError || err instanceof TraceError) fail(err.message);
        throw err;
      }
      if (opts.policy) policies = String(opts.policy).split(',').map((p) => p.trim()).filter(Boolean);
      for (const p of policies) {
        const bad = knownController(p);
        if (bad) fail(bad);
      }
      if (opts.settings) {
        try {
          settings = { ...settings, ...JSON.parse(opts.settings) };
        } catch {
          fail('--settings must be JSON, e.g. \'{"hysteresisRounds":2}\'');
        }
      }
      let results;
      let forecast: ForecastTraining | undefined;
      try {
        if (policies.some(usesForecast)) forecast = trainOnScenario(spec, { settings, history });
        results = runAll(spec, policies, settings, () => performance.now(), forecast);
      } catch (err) {
        fail((err as Error).message);
      }
      if (opts.plot) writeFileSync(opts.plot, plotRuns(results, title));
      if (opts.json) process.stdout.write(`${JSON.stringify({ title, runs: results.map((r) => r.metrics) }, null, 2)}\n`);
      else {
        const model = forecast
          ? `forecast model: ${forecast.model.trees.length} trees trained on ${forecast.trainRows} rows of ${opts.trainTrace ? (opts.trainTrace as string[]).join(', ') : `another day of this cluster (demand redrawn, seed ${forecast.historySeed})`}, ${forecast.trainMs / 1000} s run by the random explorer (validation RMSE ${forecast.validRmse.toPrecision(4)} ops/s on the latest ${forecast.validRows})\n`
          : '';
        process.stdout.write(`${title}\n${model}${formatTable(results)}\n${opts.plot ? `plot: ${opts.plot}\n` : ''}`);
      }
    });
}
