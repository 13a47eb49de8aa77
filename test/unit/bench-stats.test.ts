import { describe, expect, it } from 'vitest';
import { spread, summarise } from '../../bench/stats';

describe('bench figures: median, worst, spread and run-by-run ratios', () => {
  it('takes the middle run as the median, the mean of the two middle ones for an even count', () => {
    expect(spread([5, 1, 3]).median).toBe(3);
    expect(spread([4, 1, 3, 2]).median).toBe(2.5);
  });

  it('calls the highest time the worst, and the lowest rate when higher is better', () => {
    expect(spread([700, 900, 650])).toEqual({ median: 700, worst: 900, min: 650, max: 900, n: 3 });
    expect(spread([170_000, 120_000, 180_000], true).worst).toBe(120_000);
  });

  it('refuses to summarise no runs rather than report NaN', () => {
    expect(() => spread([])).toThrow(/no runs/);
  });

  it('divides each run by the baseline run next to it, so a slow minute hits both sides of a pair', () => {
    // run 2 is on a loaded machine: both sides twice as slow; the pair's ratio is unchanged
    const l = summarise({ name: 'x', unit: 'ms', herd: [110, 220, 121], baselineName: 'floor', baseline: [100, 200, 110] });
    expect(l.ratio!.min).toBeCloseTo(1.1);
    expect(l.ratio!.max).toBeCloseTo(1.1);
    expect(l.herd.median).toBe(121);
    expect(l.baseline!.worst).toBe(200);
  });

  it('takes the lowest ratio as the worst for rates, and leaves the ratio out without a baseline', () => {
    const l = summarise({ name: 'ingest', unit: 'samples/s', higherIsBetter: true, herd: [80, 90, 60], baseline: [100, 100, 100] });
    expect(l.ratio!.worst).toBeCloseTo(0.6);
    expect(summarise({ name: 'failover', unit: 'ms', herd: [600, 900] }).ratio).toBeUndefined();
  });
});

describe('bench figures: a ratio whose better side differs from its runs', () => {
  it('keeps the slowest time as the worst run while the lowest ratio is the worst ratio', () => {
    // whole filesystem over diff layer: times (lower is better), the ratio higher is better
    const l = summarise({ name: 'whole/diff', unit: 'ms', ratioHigherIsBetter: true, herd: [4000, 9000], baseline: [500, 500] });
    expect(l.herd.worst).toBe(9000);
    expect(l.ratio!.worst).toBe(8);
  });
});
