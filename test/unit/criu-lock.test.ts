import { describe, expect, it } from 'vitest';
import { CriuLock } from '../../agent/migration/criu-lock';

describe('CriuLock', () => {
  it('runs one operation at a time, in order, whatever their outcome', async () => {
    const lock = new CriuLock();
    const log: string[] = [];
    let inside = 0;
    let maxInside = 0;
    const op = (name: string, ms: number, fail = false) =>
      lock.run(async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        inside--;
        if (fail) throw new Error(`${name} failed`);
        return name;
      });
    const results = await Promise.allSettled([op('a', 30), op('b', 5, true), op('c', 10)]);
    expect(maxInside).toBe(1);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(lock.queued).toBe(0);
  });
});
