import { describe, expect, it } from 'vitest';
import { choosePagePath } from '../../agent/migration/page-path';

const MB = 1 << 20;

describe('choosePagePath: the page server only where it pays', () => {
  it('a container at or above the threshold: the page server, with its figures', () => {
    expect(choosePagePath(212 * MB, 64 * MB)).toEqual({ pageServer: true, reason: 'page server: 212 MB in use >= 64 MB' });
    expect(choosePagePath(64 * MB, 64 * MB)).toEqual({ pageServer: true, reason: 'page server: 64 MB in use >= 64 MB' });
  });

  it('below it: the direct dump, with its figures', () => {
    expect(choosePagePath(3 * MB, 64 * MB)).toEqual({ pageServer: false, reason: 'direct: 3 MB in use < 64 MB' });
    expect(choosePagePath(64 * MB - 1, 64 * MB).pageServer).toBe(false);
    expect(choosePagePath(0, 64 * MB).pageServer).toBe(false);
  });

  it('threshold 0: the page server for every container, even an unmeasured one', () => {
    expect(choosePagePath(0, 0)).toEqual({ pageServer: true, reason: 'page server: pageServerMinBytes is 0' });
    expect(choosePagePath(undefined, 0).pageServer).toBe(true);
  });

  it('memory in use unknown: the page server, saying so', () => {
    for (const m of [undefined, NaN, Infinity]) {
      const p = choosePagePath(m, 64 * MB);
      expect(p.pageServer).toBe(true);
      expect(p.reason).toContain('memory in use unknown');
    }
  });
});
