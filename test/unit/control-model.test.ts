import { describe, expect, it } from 'vitest';
import { gain, idealPlacement, mean, modelOps, opsBuckets, pingPongs, staircase } from '../../bench/control-model';
import { plotExperiment } from '../../bench/control-plot';

describe('control experiment arithmetic', () => {
  it('steps up one container per phase, then stops the oldest first', () => {
    expect(staircase(3, 1)).toEqual([[0], [0, 1], [0, 1, 2], [1, 2]]);
    expect(staircase(3, 2)).toEqual([[0], [0, 1], [0, 1, 2], [1, 2], [2]]);
    expect(staircase(2, 5)).toEqual([[0], [0, 1], [1]]);
  });

  it('models a busy node as its capacity, shared, and finds the best static placement', () => {
    const phases = staircase(3, 1);
    const cap = [1000, 1000, 2000];
    expect(modelOps([0, 0, 0], phases, cap)).toBe(1000);
    // c1 and c3 share the big node, c2 alone on a small one: every phase keeps two nodes busy after the first
    const best = idealPlacement(3, phases, cap);
    expect(best.ops).toBeCloseTo((2000 + 3000 + 3000 + 3000) / 4);
    expect(best.ops).toBeGreaterThanOrEqual(modelOps([2, 0, 1], phases, cap));
    expect(modelOps(best.placement, phases, cap)).toBe(best.ops);
    expect(idealPlacement(2, [[0, 1]], [5])).toEqual({ placement: [0, 0], ops: 5 });
  });

  it('counts a move back to a node the container left as ping-pong, in time order', () => {
    expect(pingPongs([])).toBe(0);
    expect(pingPongs([{ herdId: 'a', from: 'n1', to: 'n2', ms: 1 }, { herdId: 'a', from: 'n2', to: 'n3', ms: 2 }])).toBe(0);
    expect(pingPongs([{ herdId: 'a', from: 'n2', to: 'n1', ms: 9 }, { herdId: 'a', from: 'n1', to: 'n2', ms: 1 }])).toBe(1);
    expect(pingPongs([{ herdId: 'a', from: 'n1', to: 'n2', ms: 1 }, { herdId: 'b', from: 'n2', to: 'n1', ms: 2 }])).toBe(0);
  });

  it('adds up the once-a-second reports of every container per bucket; silence is lost work', () => {
    const a: [number, number][] = [[1000, 10], [2000, 10], [3100, 10], [3900, 10]];
    const b: [number, number][] = [[1500, 4], [9000, 99]];
    expect(opsBuckets([a, b], 0, 4000, 2000)).toEqual([7, 15]);
    expect(opsBuckets([], 0, 500, 1000)).toEqual([]);
    expect(mean([1, NaN, 3])).toBe(2);
    expect(mean([])).toBe(0);
    expect(gain(106.41, 100)).toBeCloseTo(0.0641);
    expect(gain(5, 0)).toBe(0);
  });

  it('plots every run as a line and every migration as a mark', () => {
    const svg = plotExperiment([
      { scenario: 'cpu', label: 'control', bucketMs: 5000, ops: [1, 2], load: [0.2, 0.3], moves: [] },
      { scenario: 'cpu', label: 'balance', bucketMs: 5000, ops: [1, 3], load: [0.2, 0.6], moves: [{ herdId: 'h<1>', from: 'n1', to: 'n3', ms: 4000 }] },
    ], 'test');
    expect(svg.match(/<polyline/g)).toHaveLength(4);
    expect(svg.match(/<path /g)).toHaveLength(1);
    expect(svg).toContain('h&lt;1&gt; n1 -&gt; n3 at 4 s');
  });
});
