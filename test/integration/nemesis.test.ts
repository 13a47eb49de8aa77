/**
 * The nemesis on the bed (test/bed/nemesis.ts): real herd processes, dockerd and CRIU on
 * three nodes; a bounded run of seeded fault schedules, one migration each (kill -9 of the
 * source, target or coordinator agent, the source-target link cut, a failing restore, or
 * none). bench/nemesis.ts runs many more and reports the counts. A failure names its seed:
 * NEMESIS_SEED=<seed> replays the same schedule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBed, type Bed } from '../bed/bed';
import { Nemesis, schedule, type StepResult } from '../bed/nemesis';
import { startHerdOn, type HerdNode } from '../helpers/cluster';

const SEED = Number(process.env.NEMESIS_SEED ?? 20261207);
const ROUNDS = Number(process.env.NEMESIS_ROUNDS ?? 10);
const CONTAINERS = 3; // migrating at the same time, one schedule each per round
let bed: Bed;
const nodes = new Map<string, HerdNode>();

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'nm2', subnet: 82 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

describe('nemesis', () => {
  it(`${ROUNDS * CONTAINERS} seeded fault schedules (seed ${SEED}): every container runs exactly once, its count never goes back, every migration ends with a reason, nothing left behind, no batch lost`, async () => {
    const nemesis = new Nemesis(bed, nodes, CONTAINERS, (s) => console.log(s));
    await nemesis.setup();
    const results: StepResult[] = [];
    for (const round of schedule(SEED, ROUNDS, CONTAINERS)) results.push(...(await nemesis.round(round)));
    await nemesis.finish();
    const r = nemesis.report(results);
    console.log(`nemesis seed ${SEED}: ${results.length} schedules; outcomes ${JSON.stringify(r.outcomes)}; faults ${JSON.stringify(r.faults)}; slowest recovery ${r.maxRecoveredMs} ms; ${r.violations.length} violations`);
    expect(r.violations, `seed ${SEED}:\n${r.violations.join('\n')}`).toEqual([]);
    // every migration that started ended; REFUSED (Migrate answered no: e.g. the target was
    // down) and LOST (the command went down with its coordinator) never started one
    expect(results.every((x) => ['SUCCEEDED', 'ROLLED_BACK', 'FAILED', 'REFUSED', 'LOST'].includes(x.outcome)), JSON.stringify(r.outcomes)).toBe(true);
    expect(results.filter((x) => ['SUCCEEDED', 'ROLLED_BACK', 'FAILED'].includes(x.outcome)).length).toBeGreaterThanOrEqual(results.length / 2);
    expect(r.maxRecoveredMs).toBeLessThanOrEqual(30_000);
  }, 15 * 60_000);
});
