import { describe, expect, it } from 'vitest';
import { AdaptiveTimeout } from '../../agent/docker-timeout';

describe('AdaptiveTimeout: the wait for one Docker call', () => {
  it('starts at the configured wait and doubles after each timeout, up to the cap', () => {
    const t = new AdaptiveTimeout({ baseMs: 10_000 });
    expect(t.ms).toBe(10_000);
    expect(t.timedOut()).toEqual({ fromMs: 10_000, toMs: 20_000 });
    expect(t.timedOut()).toEqual({ fromMs: 20_000, toMs: 40_000 });
    expect(t.timedOut()).toEqual({ fromMs: 40_000, toMs: 80_000 });
    expect(t.timedOut()).toBeUndefined(); // at 8x: no change, nothing to log
    expect(t.ms).toBe(80_000);
  });

  it('a cap below the next doubling stops at the cap; a cap below the base is the base', () => {
    const t = new AdaptiveTimeout({ baseMs: 10_000, maxMs: 15_000 });
    expect(t.timedOut()).toEqual({ fromMs: 10_000, toMs: 15_000 });
    expect(t.timedOut()).toBeUndefined();
    const fixed = new AdaptiveTimeout({ baseMs: 10_000, maxMs: 5_000 });
    expect(fixed.maxMs).toBe(10_000);
    expect(fixed.timedOut()).toBeUndefined();
    expect(fixed.ms).toBe(10_000);
  });

  it('at the configured wait, answers change nothing', () => {
    const t = new AdaptiveTimeout({ baseMs: 1000, fastAnswersToRelax: 2 });
    for (let i = 0; i < 10; i++) expect(t.answered(1)).toBeUndefined();
    expect(t.ms).toBe(1000);
  });

  it('relaxes by halves after enough quick answers in a row, never below the configured wait', () => {
    const t = new AdaptiveTimeout({ baseMs: 1000, fastAnswersToRelax: 3 });
    t.timedOut();
    t.timedOut(); // 4000
    expect(t.answered(1000)).toBeUndefined(); // exactly a quarter counts as quick
    expect(t.answered(10)).toBeUndefined();
    expect(t.answered(10)).toEqual({ fromMs: 4000, toMs: 2000 });
    expect(t.answered(10)).toBeUndefined();
    expect(t.answered(10)).toBeUndefined();
    expect(t.answered(10)).toEqual({ fromMs: 2000, toMs: 1000 });
    expect(t.answered(10)).toBeUndefined();
    expect(t.ms).toBe(1000);
  });

  it('a slow answer or a timeout restarts the count of quick answers', () => {
    const t = new AdaptiveTimeout({ baseMs: 1000, fastAnswersToRelax: 3 });
    t.timedOut(); // 2000
    t.answered(10);
    t.answered(10);
    expect(t.answered(501)).toBeUndefined(); // slower than a quarter of 2000
    t.answered(10);
    t.answered(10);
    expect(t.timedOut()).toEqual({ fromMs: 2000, toMs: 4000 });
    t.answered(10);
    t.answered(10);
    expect(t.ms).toBe(4000);
    expect(t.answered(10)).toEqual({ fromMs: 4000, toMs: 2000 });
  });

  it('refuses a wait that is not positive', () => {
    expect(() => new AdaptiveTimeout({ baseMs: 0 })).toThrow(/positive/);
  });
});
