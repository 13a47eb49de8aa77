import { describe, expect, it } from 'vitest';
import { COPY_BYTES_PER_CORE_SECOND, fitCost, moveCost, PRIOR_DOWNTIME_BASE_MS, PRIOR_DOWNTIME_MS_PER_BYTE } from '../../coordinator/control/cost';
import { container, migration, MiB } from '../fixtures/control-snapshot';

const ok = (mem: number, downtimeMs: number, bytes = mem * 1.2) => migration(`m${mem}-${downtimeMs}`, 'a', 'b', { memoryBytes: mem, downtimeMs, bytes });

describe('cost model', () => {
  it('uses the prior with no history, and says so', () => {
    const m = fitCost([]);
    expect(m).toEqual({ baseMs: PRIOR_DOWNTIME_BASE_MS, msPerByte: PRIOR_DOWNTIME_MS_PER_BYTE, bytesPerMemoryByte: 1, samples: 0, basis: 'prior' });
    const c = moveCost(m, container('x', 'a', { memoryBytes: 100 * MiB, upperDirBytes: 10 * MiB }), 2);
    expect(c.downtimeMs).toBeCloseTo(300 + 800, 9);
    expect(c.bytes).toBe(110 * MiB);
    expect(c.coreSeconds).toBeCloseTo(1.1 * 2 + (110 * MiB) / COPY_BYTES_PER_CORE_SECOND, 9);
    expect(c.reason).toBe('expected downtime 1100 ms and 110 MiB moved (100 MiB memory, 10 MiB upper dir; prior, no migration measured yet), 2.75 core-s');
  });

  it("fits downtime against memory on this cluster's successful migrations", () => {
    // downtime = 200 ms + 5 ms per MiB, exactly.
    const hist = [ok(100 * MiB, 700), ok(200 * MiB, 1200), ok(400 * MiB, 2200), migration('f', 'a', 'b', { outcome: 'FAILED', memoryBytes: 100 * MiB, downtimeMs: 99_999 })];
    const m = fitCost(hist);
    expect(m.basis).toBe('history');
    expect(m.samples).toBe(3);
    expect(m.baseMs).toBeCloseTo(200, 6);
    expect(m.msPerByte * MiB).toBeCloseTo(5, 9);
    expect(m.bytesPerMemoryByte).toBeCloseTo(1.2, 9);
    expect(moveCost(m, container('x', 'a', { memoryBytes: 300 * MiB }), 1).reason).toMatch(/^expected downtime 1700 ms and 360 MiB moved .*fitted on 3 migration\(s\) of this cluster/);
  });

  it('scales the prior to one or two migrations, or to a fit that makes no sense', () => {
    const one = fitCost([ok(100 * MiB, 2200)]);
    expect(one.basis).toBe('scaled');
    // The prior predicts 1100 ms for 100 MiB: this cluster is twice as slow.
    expect(one.baseMs).toBeCloseTo(600, 6);
    const negative = fitCost([ok(100 * MiB, 3000), ok(200 * MiB, 2000), ok(300 * MiB, 1000)]);
    expect(negative.basis).toBe('scaled');
    const sameSize = fitCost([ok(100 * MiB, 1000), ok(100 * MiB, 1200), ok(100 * MiB, 1100)]);
    expect(sameSize.basis).toBe('scaled');
  });

  it('ignores nonsense in history and in the container', () => {
    const m = fitCost([ok(NaN, 100), ok(100 * MiB, NaN), ok(0, 100), ok(100 * MiB, -5)]);
    expect(m.basis).toBe('prior');
    const c = moveCost(m, container('x', 'a', { memoryBytes: NaN, upperDirBytes: -1 }), NaN);
    expect([c.downtimeMs, c.bytes, c.coreSeconds].every(Number.isFinite)).toBe(true);
    expect(c.reason).not.toMatch(/NaN/);
  });
});
