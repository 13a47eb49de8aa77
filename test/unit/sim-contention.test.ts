import { describe, expect, it } from 'vitest';
import { cloudSimShare, containerOps, fairShare, opsFromCpu } from '../../coordinator/sim/contention';
import { watts, POWER_MODELS } from '../../coordinator/sim/power';

describe('fair share (CFS-like max-min)', () => {
  it('gives every container what it wants when the node has room', () => {
    const out = [0, 0, 0];
    fairShare([100, 200, 300], 1000, out);
    expect(out).toEqual([100, 200, 300]);
  });
  it('splits what the light ones leave among the heavy ones', () => {
    const out = [0, 0, 0];
    fairShare([100, 1000, 1000], 1000, out);
    expect(out).toEqual([100, 450, 450]);
  });
  it('shares equally among equal wants, and gives nothing from no capacity', () => {
    const out = [0, 0];
    fairShare([1000, 1000], 500, out);
    expect(out).toEqual([250, 250]);
    fairShare([1000, 1000], 0, out);
    expect(out).toEqual([0, 0]);
  });
});

describe("CloudSim's over-subscription scheduler", () => {
  it('caps a request at one PE and serves the rest in full', () => {
    const alloc = [0, 0];
    const r = cloudSimShare([{ req: 2500, migratingIn: false, migratingOut: false }, { req: 500, migratingIn: false, migratingOut: false }], 1860, 2, alloc);
    expect(alloc).toEqual([1860, 500]);
    expect(r.requestedMips).toBe(3000);
    expect(r.utilizationMips).toBe(2360);
  });
  it('gives a migrating VM 90% on its source (the host counts it whole) and reserves 10% on the target', () => {
    const alloc = [0];
    const out = cloudSimShare([{ req: 1000, migratingIn: false, migratingOut: true }], 2660, 2, alloc);
    expect(alloc[0]).toBe(900);
    expect(out.utilizationMips).toBeCloseTo(1000, 9);
    const inAlloc = [0];
    const target = cloudSimShare([{ req: 1000, migratingIn: true, migratingOut: false }], 2660, 2, inAlloc);
    expect(inAlloc[0]).toBe(100);
    expect(target.requestedMips).toBe(1000);
  });
  it('scales every VM down together (floored) when requests exceed the host', () => {
    const alloc = [0, 0];
    cloudSimShare([{ req: 1860, migratingIn: false, migratingOut: false }, { req: 1860, migratingIn: false, migratingOut: false }], 1860, 1, alloc);
    expect(alloc).toEqual([930, 930]);
  });
});

describe('ops models', () => {
  it('per core: proportional to the CPU received', () => {
    expect(opsFromCpu({ kind: 'per-core', opsPerCore: 1000 }, 500)).toBe(500);
  });
  it('own curve: linear between points, flat past the last, through the origin before the first', () => {
    const curve = { kind: 'curve' as const, points: [[1, 100], [2, 150]] as [number, number][] };
    expect(opsFromCpu(curve, 500)).toBe(50);
    expect(opsFromCpu(curve, 1500)).toBe(125);
    expect(opsFromCpu(curve, 5000)).toBe(150);
  });
  it('a disk-bound container makes ops in proportion to the disk share it gets', () => {
    const m = { kind: 'per-core' as const, opsPerCore: 20000 };
    expect(containerOps(m, 50, 50, 150, 1000)).toBe(150);
    expect(containerOps(m, 25, 50, 1000, 1000)).toBe(500);
  });
});

describe('power models', () => {
  it("interpolates SPECpower points as CloudSim does", () => {
    expect(watts(POWER_MODELS.ml110g4, 0)).toBe(86);
    expect(watts(POWER_MODELS.ml110g4, 1)).toBe(117);
    expect(watts(POWER_MODELS.ml110g5, 0.55)).toBeCloseTo(118.5, 9);
  });
});
