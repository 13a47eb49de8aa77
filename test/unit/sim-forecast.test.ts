/**
 * The forecast policy in the simulator: rows from snapshots (the export's features), a model
 * trained in-process on the explorer's run of a scenario, the forecast filled into each
 * snapshot and judged by Herd's own decide().
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURES } from '../../coordinator/forecast/features';
import { fillForecast, HISTORY_SEED_OFFSET, snapshotRows, trainOnScenario } from '../../coordinator/sim/forecast';
import { IDLE_SHARE, otherDay } from '../../coordinator/sim/forecast-history';
import { simulate } from '../../coordinator/sim/engine';
import { gainOverNone, knownController, makeController, runAll } from '../../coordinator/sim/runner';
import { parseScenario, scenarioSpec } from '../../coordinator/sim/scenario';
import { container, node, snap } from '../fixtures/control-snapshot';

const staircase = () => {
  const file = path.resolve(__dirname, '../../scenarios/staircase-cpu.json');
  return parseScenario(readFileSync(file, 'utf8'), file);
};

describe('the forecast in the simulator', () => {
  it('turns each step of a snapshot into dataset rows, leaving out steps without ops and moving containers', () => {
    const s = snap([node('a', { cpu: [0.5, 1], cores: 2 })], [container('x', 'a', { cpu: [1, 2], ops: [100, NaN], threads: 2 }), container('y', 'a', { ops: 5, migrating: true })]);
    const rows = snapshotRows({ ...s, nodes: [{ ...s.nodes[0], cpu: [0.5, 1] }], containers: s.containers.map((c) => ({ ...c, cpu: c.cpu.slice(0, 2), ops: c.ops.slice(0, 2) })) });
    expect(rows.y).toEqual([100]);
    expect(rows.x[0]).toHaveLength(FEATURES.length);
    expect(rows.t).toEqual([s.nowMs - s.stepMs]);
  });

  it('trains on the explorer run of another day of the cluster, never the judged one, the same model every time', () => {
    const s = staircase();
    const spec = scenarioSpec(s);
    const a = trainOnScenario(spec, { settings: s.controller });
    const b = trainOnScenario(spec, { settings: s.controller });
    expect(a.trainRows).toBeGreaterThan(100);
    expect(a.model.trees.length).toBeGreaterThan(0);
    expect(b.model.trees).toEqual(a.model.trees);
    expect(a.trainMs).toBe(2_400_000);
    expect(a.historySeed).toBe(spec.seed + HISTORY_SEED_OFFSET);
    // the other day: same nodes and applications, demand redrawn (idle a third of the steps, else a share of the peak)
    const day = otherDay(spec, 7);
    expect(day.nodes).toEqual(spec.nodes);
    expect(day.containers.map((c) => [c.id, c.threads, c.ops])).toEqual(spec.containers.map((c) => [c.id, c.threads, c.ops]));
    const levels = day.containers.flatMap((c) => Array.from(c.cpu.values));
    expect(levels.every((v) => v >= 0 && v <= 1000)).toBe(true);
    expect(levels.filter((v) => v === 0).length / levels.length).toBeCloseTo(IDLE_SHARE, 1);
    expect(day.containers[0].cpu.values).not.toEqual(otherDay(spec, 8).containers[0].cpu.values);
  });

  it('meets the issue\'s target on the staircases: at least as good as the best heuristic, trained on another day', () => {
    const heuristics = ['cpu-greedy', 'cpu-greedy-mt', 'oltp-disk', 'balance', 'low-node-utilization', 'random'];
    for (const kind of ['cpu', 'mt', 'disk']) {
      const file = path.resolve(__dirname, `../../scenarios/staircase-${kind}.json`);
      const s = parseScenario(readFileSync(file, 'utf8'), file);
      const results = runAll(scenarioSpec(s), [...heuristics, 'forecast'], s.controller);
      const best = Math.max(...results.slice(0, -1).map((r) => r.metrics.opsVsIdeal));
      expect(results.at(-1)!.metrics.opsVsIdeal, kind).toBeGreaterThanOrEqual(best);
    }
  });

  it('judges the forecast policy with Herd\'s decide(): it gains over no migration, each move naming the model and its prediction', () => {
    const s = staircase();
    const spec = scenarioSpec(s);
    const training = trainOnScenario(spec, { settings: s.controller });
    const results = runAll(spec, ['none', 'forecast'], s.controller, undefined, training);
    expect(gainOverNone(results, results[1])).toBeGreaterThan(0.5);
    expect(results[1].metrics.ops).toBeLessThanOrEqual(results[1].metrics.idealOps * (1 + 1e-9));
    const reasons: string[] = [];
    const ctl = makeController('forecast', s.controller, spec.seed, training);
    simulate(spec, { ...ctl, evaluate: (snapshot) => {
      const moves = ctl.evaluate(snapshot);
      reasons.push(...moves.map((m) => m.reason));
      return moves;
    } });
    expect(reasons.length).toBeGreaterThan(0);
    for (const r of reasons) expect(r).toMatch(/^model sim-1 predicts [\d.]+ ops\/s for c\d on n\d against its measured [\d.]+ ops\/s/);
  });

  it('fills every container on every node, and needs a model to run', () => {
    const s = staircase();
    const spec = scenarioSpec(s);
    const training = trainOnScenario(spec, { settings: s.controller, trainFraction: 0.25 });
    const filled = fillForecast(snap([node('a', { cpu: 1 }), node('b')], [container('x', 'a', { cpu: 1, ops: 10 })]), training.model, 'v');
    expect(Object.keys(filled.forecast!.opsByNode.x).sort()).toEqual(['a', 'b']);
    expect(Object.values(filled.forecast!.opsByNode.x).every(Number.isFinite)).toBe(true);
    expect(knownController('forecast')).toBeNull();
    expect(() => makeController('forecast', {}, 1)).toThrow(/needs a forecast model/);
  });
});
