/**
 * The thesis's staircase scenarios as shipped (scenarios/*.json), run through Herd's own
 * decide(): each thesis policy must reach at least its thesis gain in ops over no migration
 * (CPU greedy +6.41 %, multi-threaded +15.38 %, OLTP 2x), and stay under the ideal.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScenario, scenarioSpec } from '../../coordinator/sim/scenario';
import { gainOverNone, runAll } from '../../coordinator/sim/runner';

const load = (name: string) => {
  const file = path.resolve(__dirname, '../../scenarios', name);
  return parseScenario(readFileSync(file, 'utf8'), file);
};

describe('staircase scenarios', () => {
  it.each([
    ['staircase-cpu.json', 'cpu-greedy', 0.0641],
    ['staircase-mt.json', 'cpu-greedy-mt', 0.1538],
    ['staircase-disk.json', 'oltp-disk', 1.0],
  ])('%s: %s reaches its thesis gain over no migration', (file, policy, thesisGain) => {
    const s = load(file);
    const results = runAll(scenarioSpec(s), ['none', policy], s.controller);
    const run = results[1];
    expect(gainOverNone(results, run)).toBeGreaterThanOrEqual(thesisGain);
    expect(run.metrics.ops).toBeLessThanOrEqual(run.metrics.idealOps * (1 + 1e-9));
    expect(run.metrics.migrations).toBeGreaterThan(0);
    expect(run.metrics.pingPong).toBe(0);
  });
  it('the synthetic OLTP scenario parses and runs', () => {
    const s = load('oltp-synthetic.json');
    const [none] = runAll({ ...scenarioSpec(s), durationMs: 1_800_000 }, ['none'], s.controller);
    expect(none.metrics.containers).toBe(40);
    expect(none.metrics.rejected).toBe(0);
    expect(none.metrics.opsVsIdeal).toBeLessThanOrEqual(1);
  });
});
