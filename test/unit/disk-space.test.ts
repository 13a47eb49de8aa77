import { describe, expect, it } from 'vitest';
import { FULL_BELOW_BYTES, fullDisk } from '../../agent/runtime/disk-space';

describe('fullDisk: which file system a failed migration step filled', () => {
  const free = (m: Record<string, number>) => (dir: string) => {
    if (!(dir in m)) throw new Error(`ENOENT: ${dir}`);
    return m[dir];
  };

  it('names the first dir whose file system has less than 1 MiB free, with what is left', () => {
    expect(fullDisk(['/a', '/b'], free({ '/a': 10 << 20, '/b': 12 * 1024 }))).toBe('no space left on device: the file system of /b has 12 KiB free');
    expect(fullDisk(['/a', '/b'], free({ '/a': 0, '/b': 0 }))).toMatch(/of \/a has 0 KiB/);
  });

  it('says nothing when every file system has room, at exactly the threshold too', () => {
    expect(fullDisk(['/a'], free({ '/a': FULL_BELOW_BYTES }))).toBeUndefined();
    expect(fullDisk([], free({}))).toBeUndefined();
  });

  it('passes over dirs that are gone or not given (a removed staging dir)', () => {
    expect(fullDisk([undefined, '/gone', '/b'], free({ '/b': 5 }))).toMatch(/of \/b has 0 KiB/);
    expect(fullDisk(['/gone'], free({}))).toBeUndefined();
  });

  it('reads a real file system by default', () => {
    expect(fullDisk(['/'])).toBeUndefined(); // the machine's root has more than 1 MiB free
  });
});
