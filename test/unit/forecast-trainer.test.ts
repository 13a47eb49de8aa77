import { describe, expect, it } from 'vitest';
import { binMatrix, binOf, featureCuts, layoutOf, missingSlot } from '../../coordinator/forecast/trainer/cuts';
import { buildHistogram, subtractHistogram } from '../../coordinator/forecast/trainer/histogram';
import { partitionRows } from '../../coordinator/forecast/trainer/partition';
import { bestSplit } from '../../coordinator/forecast/trainer/split';
import { mean, predict, rmse, train, type Dataset } from '../../coordinator/forecast/trainer/booster';
import { checkParams, ParamError } from '../../coordinator/forecast/trainer/params';

const f32 = (a: number[]) => Float32Array.from(a);
const P = { lambda: 1, gamma: 0, minChildWeight: 1 };

describe('quantile cuts', () => {
  it('gives each distinct value its own bin when there are few, a cut being the upper bin bound', () => {
    const cuts = featureCuts(f32([3, 1, 2, 2, NaN, 3, 1]), 256);
    expect([...cuts]).toEqual([2, 3]);
    expect([1, 1.5, 2, 2.9, 3, 100].map((v) => binOf(cuts, v))).toEqual([0, 0, 1, 1, 2, 2]);
  });

  it('makes at most max_bin equal-count bins of float32 data values', () => {
    const v = Float32Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 10_000 / 3);
    const cuts = featureCuts(v, 16);
    expect(cuts.length).toBe(15);
    for (let i = 1; i < cuts.length; i++) expect(cuts[i]).toBeGreaterThan(cuts[i - 1]);
    for (const c of cuts) expect(v.includes(c)).toBe(true); // a data value: float32 comparisons route exactly
    const counts = new Array(16).fill(0);
    for (const x of v) counts[binOf(cuts, x)]++;
    for (const c of counts) expect(c).toBe(625);
  });

  it('gives an all-missing or constant feature one bin, and missing values their own slot', () => {
    expect(featureCuts(f32([NaN, NaN]), 256).length).toBe(0);
    expect(featureCuts(f32([5, 5, 5]), 256).length).toBe(0);
    const layout = layoutOf([f32([2, 3]), f32([])]);
    expect([...layout.offset]).toEqual([0, 4, 6]);
    const slots = binMatrix(f32([1, 7, NaN, 7, 3, NaN]), 3, 2, layout);
    expect([...slots]).toEqual([0, 4, 3, 4, 2, 5]);
    expect(missingSlot(layout, 0)).toBe(3);
  });
});

describe('histograms', () => {
  it('sums gradients and row counts per slot, and the sibling equals parent minus built child', () => {
    const layout = layoutOf([f32([2, 3]), f32([10])]);
    const x = f32([1, 5, 2, 20, NaN, 5, 3, NaN]);
    const slots = binMatrix(x, 4, 2, layout);
    const grad = f32([1, -2, 4, 8]);
    const rows = Uint32Array.from([0, 1, 2, 3]);
    const all = new Float64Array(2 * layout.slots);
    buildHistogram(all, slots, 2, grad, rows, 0, 4);
    // feature 0: bins {1}->0, {2}->1, {3}->2, NaN->3
    expect([...all.subarray(0, 8)]).toEqual([1, 1, -2, 1, 8, 1, 4, 1]);
    const left = new Float64Array(2 * layout.slots);
    buildHistogram(left, slots, 2, grad, rows, 0, 2);
    const right = new Float64Array(2 * layout.slots);
    buildHistogram(right, slots, 2, grad, rows, 2, 4);
    const derived = new Float64Array(2 * layout.slots);
    subtractHistogram(derived, all, left);
    expect([...derived]).toEqual([...right]);
  });
});

describe('split evaluation', () => {
  // one feature, bins 0..3 + missing slot 4; hist = [g, h] per slot
  const layout = layoutOf([f32([1, 2, 3])]);
  const hist = (pairs: [number, number][]) => Float64Array.from(pairs.flat());

  it('uses gain = GL^2/(HL+l) + GR^2/(HR+l) - G^2/(H+l) and picks the best boundary', () => {
    const h = hist([[-4, 2], [-6, 2], [5, 2], [7, 2], [0, 0]]);
    const s = bestSplit(h, layout, 2, 8, P)!;
    expect(s).toMatchObject({ feature: 0, bin: 1, defaultLeft: false, leftG: -10, leftH: 4 });
    expect(s.gain).toBeCloseTo(100 / 5 + 144 / 5 - 4 / 9, 12);
  });

  it('refuses splits below gamma or leaving a child lighter than min_child_weight', () => {
    const h = hist([[-4, 2], [-6, 2], [5, 2], [7, 2], [0, 0]]);
    const gain = 100 / 5 + 144 / 5 - 4 / 9;
    expect(bestSplit(h, layout, 2, 8, { ...P, gamma: gain + 1e-9 })).toBeNull();
    expect(bestSplit(h, layout, 2, 8, { ...P, gamma: gain - 1e-6 })).not.toBeNull();
    // min_child_weight 5: boundary after bin 1 (4 | 4) is out; after bin 2 (6 | 2) too
    expect(bestSplit(h, layout, 2, 8, { ...P, minChildWeight: 5 })).toBeNull();
    expect(bestSplit(hist([[0, 1], [0, 1], [0, 1], [0, 1], [0, 0]]), layout, 0, 4, P)).toBeNull(); // no gain
  });

  it('sends missing values the way that gains most', () => {
    // missing rows have large negative gradients like bin 0's: they should go left with it
    const h = hist([[-10, 2], [4, 2], [5, 2], [6, 2], [-12, 2]]);
    const s = bestSplit(h, layout, -7, 10, P)!;
    expect(s).toMatchObject({ bin: 0, defaultLeft: true, leftG: -22, leftH: 4 });
    // like bin 3's: right
    const h2 = hist([[-10, 2], [-4, 2], [5, 2], [6, 2], [12, 2]]);
    expect(bestSplit(h2, layout, 9, 10, P)).toMatchObject({ bin: 1, defaultLeft: false, leftG: -14, leftH: 4 });
  });
});

describe('row partition', () => {
  it('keeps order on each side, sends missing its default way, and builds one side histogram in passing', () => {
    const layout = layoutOf([f32([2, 3])]);
    const slots = binMatrix(f32([1, 3, NaN, 2, 1, NaN]), 6, 1, layout);
    const rows = Uint32Array.from([0, 1, 2, 3, 4, 5]);
    const scratch = new Uint32Array(6);
    const grad = f32([1, 2, 3, 4, 5, 6]);
    const out = new Float64Array(2 * layout.slots);
    const mid = partitionRows(rows, 0, 6, slots, 1, { feature: 0, lastLeftSlot: 0, missingSlot: 3, defaultLeft: true }, scratch, { out, left: false, grad });
    expect(mid).toBe(4);
    expect([...rows]).toEqual([0, 2, 4, 5, 1, 3]);
    const expected = new Float64Array(2 * layout.slots);
    buildHistogram(expected, slots, 1, grad, rows, mid, 6);
    expect([...out]).toEqual([...expected]);
    const rows2 = Uint32Array.from([0, 1, 2, 3, 4, 5]);
    expect(partitionRows(rows2, 1, 5, slots, 1, { feature: 0, lastLeftSlot: 1, missingSlot: 3, defaultLeft: false }, scratch)).toBe(3);
    expect([...rows2]).toEqual([0, 3, 4, 1, 2, 5]);
  });
});

function steps(rows: number): Dataset {
  const x = new Float32Array(rows * 2);
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    x[2 * r] = r % 10;
    x[2 * r + 1] = (r * 37) % 11; // noise feature
    y[r] = x[2 * r] < 5 ? 1 : 3;
  }
  return { x, y, rows, features: 2 };
}

describe('boosting', () => {
  it('starts from the mean of the labels and learns a step exactly, all gain going to the informative feature', () => {
    const d = steps(200);
    const m = train(d, checkParams({ rounds: 50, eta: 0.5, lambda: 0 }));
    expect(m.baseScore).toBe(mean(d.y));
    expect(m.trees[0].feature[0]).toBe(0);
    expect(m.trees[0].threshold[0]).toBe(5);
    // lambda 0 and eta 0.5: one split halves the residual each round, until the gain is
    // below XGBoost's 1e-6 rounding floor (200 rows x r^2 < 1e-6: r < 1e-4)
    const err = rmse(predict(m, d.x, d.rows), d.y);
    expect(err).toBeLessThan(1e-4);
    expect(m.trainRmse[0]).toBeCloseTo(0.5, 9);
    expect(m.importance.gain[0]).toBeGreaterThan(0);
    expect(m.importance.splits[1]).toBe(0);
    // the first tree's leaves: -G/(H+lambda)*eta with G = sum(base - y) over each side
    expect(m.trees[0].value[m.trees[0].left[0]]).toBeCloseTo(-0.5, 12);
    expect(m.trees[0].value[m.trees[0].right[0]]).toBeCloseTo(0.5, 12);
  });

  it('respects max_depth and is deterministic', () => {
    const d = steps(500);
    d.y = d.y.map((v, r) => v + ((r * 13) % 7) * 0.1);
    const a = train(d, checkParams({ rounds: 5, maxDepth: 2 }));
    const b = train(d, checkParams({ rounds: 5, maxDepth: 2 }));
    expect(a).toEqual(b);
    const depth = (t: (typeof a.trees)[0], n = 0): number => (t.feature[n] < 0 ? 0 : 1 + Math.max(depth(t, t.left[n]), depth(t, t.right[n])));
    for (const t of a.trees) expect(depth(t)).toBeLessThanOrEqual(2);
  });

  it('stops early on a later validation set and keeps the best rounds', () => {
    const d = steps(300);
    // validation from a later period where the step moved: more rounds only hurt after a while
    const v = steps(100);
    v.y = v.y.map((y, r) => (v.x[2 * r] === 4 ? 3 : y));
    const m = train(d, checkParams({ rounds: 200, earlyStoppingRounds: 5, eta: 0.1 }), v);
    expect(m.validRmse.length).toBeLessThan(200);
    expect(m.trees.length).toBe(m.bestRounds);
    const best = Math.min(...m.validRmse);
    expect(m.validRmse[m.bestRounds - 1]).toBe(best);
    expect(m.validRmse.length - m.bestRounds).toBe(5);
  });

  it('refuses fewer than 2 rows', () => {
    expect(() => train({ x: f32([1]), y: Float64Array.of(1), rows: 1, features: 1 }, checkParams())).toThrow(/at least 2 rows/);
  });
});

describe('hyperparameters', () => {
  it('defaults as XGBoost and refuses values out of range naming the field', () => {
    expect(checkParams()).toMatchObject({ eta: 0.3, maxDepth: 6, lambda: 1, gamma: 0, minChildWeight: 1, maxBin: 256 });
    expect(checkParams({ eta: '0.1' })).toMatchObject({ eta: 0.1 });
    expect(() => checkParams({ eta: 0 })).toThrow(/eta = 0 is out of range: the learning rate must be a number > 0 and <= 1/);
    expect(() => checkParams({ maxDepth: 2.5 })).toThrow(/maxDepth = 2.5 .* an integer/);
    expect(() => checkParams({ lambda: -1 })).toThrow(ParamError);
    expect(() => checkParams({ rounds: 'many' })).toThrow(/rounds = "many"/);
    expect(() => checkParams({ depth: 3 } as never)).toThrow(/unknown hyperparameter "depth"/);
  });
});
