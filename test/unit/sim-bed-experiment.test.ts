/**
 * The control issue's bed experiment (bench/control-experiment.ts, docs/control-experiment.md)
 * simulated with the same scenario (scenarios/bed-experiment-*.json: nodes capped at 0.25 /
 * 0.25 / 0.5 cores and 150 / 150 / 300 IOPS, a container more every 30 s phase then the
 * oldest stopped, the bench's 6 s schedule, hysteresis 1, cooldown 24 s). What the simulator
 * must reproduce of the bed's run; docs/simulator.md compares the gains point by point.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScenario, scenarioSpec } from '../../coordinator/sim/scenario';
import { gainOverNone, runAll } from '../../coordinator/sim/runner';

const run = (kind: string) => {
  const file = path.resolve(__dirname, '../../scenarios', `bed-experiment-${kind}.json`);
  const s = parseScenario(readFileSync(file, 'utf8'), file);
  const results = runAll(scenarioSpec(s), s.policies, s.controller);
  return Object.fromEntries(results.map((r) => [r.metrics.policy, { r, gain: gainOverNone(results, r) }]));
};

describe('the bed experiment, simulated', () => {
  it.each([
    ['cpu', 'cpu-greedy'],
    ['mt', 'cpu-greedy-mt'],
    ['disk', 'oltp-disk'],
  ])('%s: naive placement on n1 serves a third of the ideal; %s moves containers off n1, gains over it, stays under the ideal, never ping-pongs', (kind, policy) => {
    const out = run(kind);
    expect(out.none.r.metrics.opsVsIdeal).toBeCloseTo(1 / 3, 2);
    const p = out[policy].r;
    expect(out[policy].gain).toBeGreaterThan(0.8);
    expect(p.metrics.opsVsIdeal).toBeLessThan(1);
    expect(p.migrations[0].from).toBe('n1');
    // The bed's move times (docs/control-experiment.md): 12 s (a window of c1's samples after
    // its docker start and first rate), 66 s, 96 s.
    expect(p.migrations.map((m) => m.atMs / 1000)).toEqual([12, 66, 96]);
    expect(p.metrics.pingPong).toBe(0);
  });
  it('disk: balance sees the disk-bound node (load = its busiest resource) and moves fio containers off n1 as oltp-disk does, as on the bed (2.73x)', () => {
    const out = run('disk');
    expect(out.balance.r.migrations[0].from).toBe('n1');
    expect(out.balance.gain).toBeGreaterThan(0.8);
    expect(out.balance.r.metrics.migrations).toBeLessThanOrEqual(out['oltp-disk'].r.metrics.migrations);
    expect(out.balance.r.metrics.pingPong).toBe(0);
  });
});
