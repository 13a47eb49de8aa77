import { describe, expect, it } from 'vitest';
import { decide, initialState, seededRandom, thresholdsOf } from '../../coordinator/control/decide';
import { makeFilters } from '../../coordinator/control/filters';
import { forecast } from '../../coordinator/control/forecast';
import { neighboursLoss, sourceGain } from '../../coordinator/control/forecast-neighbours';
import { loadsOf } from '../../coordinator/control/load';
import { validateSettings } from '../../coordinator/control/settings';
import type { ForecastView, Snapshot } from '../../coordinator/control/snapshot';
import { container, GiB, migration, node, snap, syntheticSnapshot } from '../fixtures/control-snapshot';

/** The forecast policy on a snapshot with these predictions, through the real filters. */
function propose(s: Snapshot, opsByNode: ForecastView['opsByNode'] | undefined, patch: unknown = {}, errorOps?: number) {
  const v = validateSettings(patch);
  if (!v.ok) throw new Error(v.error);
  const snapshot: Snapshot = opsByNode ? { ...s, forecast: { modelVersion: 'v7', opsByNode, errorOps } } : s;
  const filters = makeFilters(snapshot, v.settings);
  const notes: string[] = [];
  const settings = thresholdsOf(v.settings, 'forecast') as typeof forecast.defaults;
  const moves = forecast.propose({ snapshot, settings, allowed: filters.allowed, movable: filters.movable, relievable: () => true, random: seededRandom(1), note: (x) => notes.push(x) });
  return { moves, notes: notes.join(' | '), refusals: filters.refusals() };
}

/** x does 100 ops/s on a; the model says 150 on b and 120 on c. */
const three = (o: { x?: Parameters<typeof container>[2]; b?: Parameters<typeof node>[1] } = {}) =>
  snap([node('a', { cpu: 0.9 }), node('b', { cpu: 0.1, ...o.b }), node('c', { cpu: 0.3 })], [container('x', 'a', { cpu: 1, ops: 100, ...o.x }), container('y', 'a', { cpu: 0.8, ops: 50 })]);
const predictions = { x: { a: 95, b: 150, c: 120 }, y: { a: 50, b: 52, c: 51 } };

describe('forecast policy', () => {
  it('moves a container where the model predicts more ops than it does, naming the prediction, its ops and the model version', () => {
    const { moves } = propose(three(), predictions);
    expect(moves).toHaveLength(1); // y's best gain (4%, and x's ops lost to it on a) is under the 10% reward threshold
    const m = moves[0];
    expect(m).toMatchObject({ herdId: 'x', from: 'a', to: 'b', policy: 'forecast' });
    // against its own prediction (95), plus what y gains on a: y is held back there (a at 90%),
    // wants 1 core (its thread) and gets 0.8, so it takes 0.2 of the core x frees: 0.2 / 0.8 x 50 ops
    expect(m.score).toBeCloseTo((150 - 95 + 12.5) / 95, 9);
    expect(m.reason).toMatch(/^model v7 predicts 150 ops\/s for x on b against its measured 100 ops\/s on a \(predicted 95 on a\), its neighbours on a gaining 12.5 and on b losing 0 ops\/s: 71.1% more >= reward threshold 10%; /);
    expect(m.reason).toMatch(/10125 ops gained over the 150 s period outweigh 81.2 ops lost while frozen: expected downtime 812 ms/);
    expect(m.figures).toMatchObject({ predictedOps: 150, measuredOps: 100, predictedOwnOps: 95, gainOps: 10125, neighboursLoss: 0 });
    expect(m.figures.sourceGain).toBeCloseTo(12.5, 9);
  });

  it('moves nothing without a model in force, and says so', () => {
    const r = propose(three(), undefined);
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/no model in force/);
  });

  it('moves nothing for a container without predictions, or only for its own node or unknown nodes', () => {
    for (const opsByNode of [{}, { x: {} }, { x: { a: 500 } }, { x: { ghost: 500, a: 10 } }] as ForecastView['opsByNode'][]) {
      const r = propose(three(), opsByNode);
      expect(r.moves).toEqual([]);
      expect(r.notes).toMatch(/gives no usable prediction for 2 container\(s\)/);
    }
  });

  it('ignores NaN and infinite predictions and takes the best finite one', () => {
    const r = propose(three(), { x: { b: NaN, c: 130 }, y: { b: Infinity, c: -Infinity } });
    expect(r.moves.map((m) => [m.herdId, m.to])).toEqual([['x', 'c']]);
    expect(r.notes).toMatch(/no usable prediction for 1 container/);
  });

  it('compares with the measured ops: none reported (NaN window) means no move', () => {
    const r = propose(three({ x: { ops: NaN } }), predictions);
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/1 container\(s\) report no ops/);
  });

  it('needs another node: a one-node cluster moves nothing', () => {
    const s = snap([node('a', { cpu: 1 })], [container('x', 'a', { ops: 10 })]);
    expect(propose(s, { x: { a: 100 } }).moves).toEqual([]);
  });

  it('takes the next best target when a filter refuses the best, and nothing when all refuse', () => {
    const draining = propose(three({ b: { draining: true } }), predictions);
    expect(draining.moves.map((m) => m.to)).toEqual(['c']);
    expect(draining.refusals).toContainEqual(expect.objectContaining({ filter: 'draining', to: 'b' }));
    const pinned = propose(three({ x: { labels: { 'herd.pin': 'true' } } }), predictions);
    expect(pinned.moves).toEqual([]);
    expect(pinned.refusals).toContainEqual(expect.objectContaining({ herdId: 'x', filter: 'pinned' }));
    const pingPong = { ...three(), migrations: [migration('x', 'b', 'a', { endedMs: 1_000_000_000 - 700_000, startedMs: 1_000_000_000 - 701_000 }), migration('x', 'c', 'b', { endedMs: 1_000_000_000 - 800_000, startedMs: 1_000_000_000 - 801_000 })] };
    const back = propose(pingPong, predictions);
    expect(back.moves).toEqual([]);
    expect(back.refusals.filter((r) => r.herdId === 'x').map((r) => r.filter).sort()).toEqual(['ping-pong', 'ping-pong']);
  });

  it('holds a gain under the reward threshold or the minimum ops gain, with the best near miss in the note', () => {
    const alone = snap([node('a', { cpu: 0.5 }), node('b', { cpu: 0.1 })], [container('x', 'a', { cpu: 1, ops: 100 })]);
    const r = propose(alone, { x: { b: 109 } });
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/forecast: the best prediction, model v7 predicts 109 ops\/s for x on b against its measured 100 ops\/s on a, is 9% more, under the reward threshold 10%/);
    expect(propose(alone, { x: { b: 109 } }, { thresholds: { forecast: { rewardThreshold: 0.05 } } }).moves).toHaveLength(1);
    const small = snap([node('a'), node('b')], [container('x', 'a', { ops: 1 })]);
    expect(propose(small, { x: { b: 1.5 } }).moves).toEqual([]); // +50% but half an op
    expect(propose(small, { x: { b: 1.5 } }, { thresholds: { forecast: { minOpsGain: 0.1 } } }).moves).toHaveLength(1);
  });

  it('weighs prediction against prediction, and what the move costs the neighbours it joins', () => {
    // b (1 core) is filled by k; x alone on a (quarter core). The model rightly predicts x gets
    // half of b, 500 against 250 on a, but k would lose half of its 1000 ops: no move.
    const full = snap([node('a', { cpu: 1, cores: 0.25 }), node('b', { cpu: 1, cores: 1 }), node('c', { cpu: 0, cores: 0.5 })], [container('x', 'a', { cpu: 0.25, ops: 250 }), container('k', 'b', { cpu: 1, ops: 1000 })]);
    const r = propose(full, { x: { a: 250, b: 500 } });
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/model v7 predicts 500 ops\/s for x on b against its measured 250 ops\/s on a \(predicted 250 on a\), its neighbours on a gaining 0 and on b losing 500 ops\/s, is -100% more/);
    // an empty c with a smaller prediction wins: nobody there loses
    const [m] = propose(full, { x: { a: 250, b: 500, c: 450 } }).moves;
    expect(m).toMatchObject({ to: 'c', figures: expect.objectContaining({ neighboursLoss: 0, predictedOps: 450 }) });
    // the model's error on x, the same everywhere (it predicts 400 on a where x does 250), cancels:
    // 420 on c is 5% over its own prediction, not 68% over what x does
    expect(propose(full, { x: { a: 400, c: 420 } }).moves).toEqual([]);
  });

  it('counts as gaining on the source only the containers held back there, on the resource that holds them', () => {
    // a (1 core) saturated by x and y (held back, one thread each, 0.5 core each); z idle there
    const s = snap([node('a', { cpu: 1, cores: 1 }), node('b', { cpu: 0, cores: 1 })], [container('x', 'a', { cpu: 0.5, ops: 500 }), container('y', 'a', { cpu: 0.5, ops: 500 }), container('z', 'a', { cpu: 0, ops: 0 })]);
    const loads = loadsOf(s);
    const [x] = loads.get('a')!.containers;
    expect(sourceGain(x, loads.get('a')!)).toBeCloseTo(500, 9); // y takes x's half core: +100% of its 500 ops; z nothing
    expect(neighboursLoss(x, loads.get('a')!, loads.get('b')!)).toBe(0); // b is empty
    // the same on a declared disk: a disk-bound neighbour grows with the disk ops freed, not with CPU
    const d = snap([node('a', { cpu: 0.1, cores: 4, diskIops: 100, diskOps: 100 }), node('b', { cores: 4, diskIops: 100 })], [container('x', 'a', { cpu: 0.1, diskOps: 50, ops: 50 }), container('y', 'a', { cpu: 0.1, diskOps: 50, ops: 50 })]);
    const dl = loadsOf(d);
    expect(sourceGain(dl.get('a')!.containers[0], dl.get('a')!)).toBeCloseTo(50, 9);
  });

  it('holds a gain within the model\'s own error (its validation RMSE)', () => {
    const alone = snap([node('a', { cpu: 0.5 }), node('b', { cpu: 0.1 })], [container('x', 'a', { cpu: 1, ops: 100 })]);
    const run = (errorOps: number) => propose(alone, { x: { a: 100, b: 130 } }, {}, errorOps);
    const held = run(40);
    expect(held.moves).toEqual([]);
    expect(held.notes).toMatch(/is 30 ops\/s more, within the model's error \(validation RMSE 40 ops\/s\)/);
    expect(run(20).moves).toHaveLength(1);
    expect(run(NaN).moves).toHaveLength(1); // unknown (a loaded model): no floor
  });

  it('holds a move whose gain over the period does not pay for the ops lost while frozen', () => {
    // 60 GiB of memory: the prior downtime is about 8 minutes, more than the 150 s period can pay back at +20%
    const big = three({ x: { memoryBytes: 60 * GiB }, b: { memoryBytes: 128 * GiB } });
    const r = propose(big, { x: { b: 120 } });
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/ops gained over the 150 s period do not outweigh .* ops lost x ratio 1 \(expected downtime/);
    // a longer period pays it back
    expect(propose(big, { x: { b: 120 } }, { schedule: { periodMs: 3_600_000 } }).moves).toHaveLength(1);
  });

  it('proposes a container that does nothing yet when the model predicts it would', () => {
    const s = snap([node('a', { cpu: 1 }), node('b')], [container('x', 'a', { ops: 0 })]);
    const [m] = propose(s, { x: { b: 40 } }).moves;
    expect(m).toMatchObject({ herdId: 'x', to: 'b', score: 40 });
    expect(m.reason).not.toMatch(/NaN|Infinity/);
  });

  it('validates its settings, naming the field and range', () => {
    expect(forecast.validate(forecast.defaults)).toBeNull();
    expect(forecast.validate({ rewardThreshold: 2 })).toBe('rewardThreshold: must be from 0 to 1');
    expect(forecast.validate({ minOpsGain: -1 })).toMatch(/^minOpsGain: must be from 0 to 1e12/);
    expect(forecast.validate({ periodMs: 0 })).toBe('periodMs: must be a number of milliseconds above 0');
    expect(validateSettings({ thresholds: { forecast: { costBenefitRatio: 0 } } })).toMatchObject({ ok: false, error: expect.stringMatching(/^thresholds.forecast.costBenefitRatio: must be above 0/) });
  });

  it('runs as the chosen policy of a decision: moves best first, paced, each named in the record', () => {
    const v = validateSettings({ mode: 'recommend', policies: ['forecast'], pacing: { maxMovesPerRound: 2, maxClusterWide: 2 } });
    if (!v.ok) throw new Error(v.error);
    const s: Snapshot = {
      ...snap([node('a', { cpu: 0.9 }), node('d', { cpu: 0.9 }), node('b'), node('c')], [container('x', 'a', { ops: 100 }), container('y', 'd', { ops: 100 })]),
      forecast: { modelVersion: 'v7', opsByNode: { x: { b: 300 }, y: { b: 200, c: 150 } } },
    };
    const { moves, decision } = decide(initialState(), s, v.settings, { term: 1, trigger: 'test', id: 'd-1' });
    // x to b first (+200%); b then takes part in a migration, so y goes to c (pacing: one per node at once)
    expect(moves.map((m) => [m.herdId, m.to])).toEqual([['x', 'b'], ['y', 'c']]);
    expect(decision.actions.map((a) => a.reason)).toEqual([expect.stringMatching(/^model v7 predicts 300 ops\/s for x on b/), expect.stringMatching(/^model v7 predicts 150 ops\/s for y on c/)]);
  });

  it('is deterministic and finite on a large synthetic cluster with random predictions', () => {
    const s = syntheticSnapshot(40, 400, 5);
    const r = seededRandom(3);
    const opsByNode: Record<string, Record<string, number>> = {};
    const withOps = { ...s, containers: s.containers.map((c) => ({ ...c, ops: c.cpu.map((v) => v * 100) })) };
    for (const c of withOps.containers) opsByNode[c.herdId] = Object.fromEntries(s.nodes.map((n) => [n.id, r() < 0.1 ? NaN : r() * 200]));
    const a = propose(withOps, opsByNode);
    const b = propose(withOps, opsByNode);
    expect(a.moves.length).toBeGreaterThan(0);
    expect(b.moves).toEqual(a.moves);
    for (const m of a.moves) expect(Object.values(m.figures).every(Number.isFinite) && Number.isFinite(m.score)).toBe(true);
  });
});
