/**
 * The nemesis at length (test/bed/nemesis.ts): real herd processes, dockerd and CRIU on
 * three bed nodes, 3 counter containers migrating at once per round, each migration with a
 * seeded random fault. Reports the outcomes, the faults, the slowest recovery and every
 * invariant violation with the seed that replays it.
 *
 *   node bench/run.mjs nemesis [rounds=20] [seed=<now>]     (root; bed nm3/83, or HERD_BENCH_BED=name/subnet)
 */
import { startBed } from '../test/bed/bed';
import { Nemesis, schedule, type StepResult } from '../test/bed/nemesis';
import { startHerdOn, type HerdNode } from '../test/helpers/cluster';

const rounds = Number(process.argv[2] ?? 20);
const seed = Number(process.argv[3] ?? Date.now() % 1_000_000_007);
const CONTAINERS = 3;

async function main(): Promise<void> {
  // HERD_BENCH_BED=name/subnet: another bed, so two checkouts can run it at once
  const [name, subnet] = (process.env.HERD_BENCH_BED ?? 'nm3/83').split('/');
  const bed = await startBed({ nodes: 3, docker: true, name, subnet: Number(subnet) });
  const nodes = new Map<string, HerdNode>();
  const t0 = Date.now();
  try {
    for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
    const nemesis = new Nemesis(bed, nodes, CONTAINERS, (s) => console.log(s));
    await nemesis.setup();
    const results: StepResult[] = [];
    for (const [i, round] of schedule(seed, rounds, CONTAINERS).entries()) {
      results.push(...(await nemesis.round(round)));
      console.log(`round ${i + 1}/${rounds}: ${results.length} schedules, ${nemesis.violations.length} violations so far`);
    }
    await nemesis.finish();
    const r = nemesis.report(results);
    console.log(`\nnemesis seed ${seed}: ${results.length} schedules in ${Math.round((Date.now() - t0) / 1000)} s`);
    console.log(`outcomes ${JSON.stringify(r.outcomes)}`);
    console.log(`faults   ${JSON.stringify(r.faults)}`);
    console.log(`slowest recovery after a fault healed: ${r.maxRecoveredMs} ms (target: 30000)`);
    console.log(`violations: ${r.violations.length}${r.violations.length ? `\n  ${r.violations.join('\n  ')}` : ''}`);
    process.exitCode = r.violations.length ? 1 : 0;
  } finally {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    await bed.stop();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(2);
});
