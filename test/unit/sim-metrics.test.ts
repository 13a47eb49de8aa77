import { describe, expect, it } from 'vitest';
import { Accounting } from '../../coordinator/sim/metrics';
import { exactIdealOps, idealOpsRate } from '../../coordinator/sim/ideal';
import { POWER_MODELS } from '../../coordinator/sim/power';

describe('metrics (CloudSim definitions)', () => {
  it('SLATAH: share of active host time under-allocated; idle hosts do not count', () => {
    const a = new Accounting();
    a.host(100, 1000, 1000, 0.5, 0.9);
    a.host(100, 900, 1000, 1, 0.9);
    a.host(100, 0, 0, 0, 0.9);
    const m = a.finish('p', 3, 1, 0, 300);
    expect(m.slatahPct).toBeCloseTo(50, 9);
    expect(m.overThresholdPct).toBeCloseTo(100 / 3, 9);
    expect(m.meanActiveHosts).toBeCloseTo(200 / 300, 9);
  });
  it('PDM and SLAV: demand lost to migrations over all demand, times SLATAH', () => {
    const a = new Accounting();
    a.host(1000, 900, 1000, 0.9, 0.95);
    a.host(1000, 1000, 1000, 0.9, 0.95);
    a.demand = 1000;
    a.migrationLoss = 2;
    const m = a.finish('p', 2, 1, 0, 1000);
    expect(m.pdmPct).toBeCloseTo(0.2, 9);
    expect(m.slavPct).toBeCloseTo(0.5 * 0.002 * 100, 9);
  });
  it('energy: trapezoid between the powers at both ends, nothing from a host that was idle', () => {
    const a = new Accounting();
    a.energy(POWER_MODELS.ml110g4, 0, 1, 3_600_000);
    expect(a.energyJ).toBe(0);
    a.energy(POWER_MODELS.ml110g4, 1, 0, 3_600_000);
    expect(a.finish('p', 1, 1, 0, 1).energyKWh).toBeCloseTo((117 + 86) / 2 / 1000, 9);
  });
  it('spread: SD and CV of host utilization, over hosts in use in a power-off world', () => {
    const a = new Accounting();
    a.spread([0.2, 0.6, 0], true);
    let m = a.finish('p', 3, 1, 0, 1);
    expect(m.hostUtilSd).toBeCloseTo(0.2, 9);
    expect(m.hostUtilCv).toBeCloseTo(0.5, 9);
    const b = new Accounting();
    b.spread([0.3, 0.3, 0], false);
    m = b.finish('p', 3, 1, 0, 1);
    expect(m.hostUtilSd).toBeCloseTo(Math.sqrt(0.02), 9);
  });
  it('has no NaN on an empty run', () => {
    const m = new Accounting().finish('p', 0, 0, 0, 0);
    for (const v of Object.values(m)) if (typeof v === 'number') expect(Number.isNaN(v)).toBe(false);
  });
});

describe('the ideal bound', () => {
  const item = (want: number, opsPerUnit: number, iopsWant = 0) => ({ want, opsAtWant: want * opsPerUnit, opsPerUnit, iopsWant });
  it('serves all demand when the cluster has room', () => {
    expect(idealOpsRate([item(500, 1), item(500, 2)], 2000, Infinity)).toBe(1500);
  });
  it('fills the best ops per unit first when it has not (fractional knapsack)', () => {
    expect(idealOpsRate([item(1000, 1), item(1000, 3)], 1500, Infinity)).toBe(3000 + 500);
  });
  it('disk bounds on its own; the smaller bound holds', () => {
    expect(idealOpsRate([item(100, 10, 1000), item(100, 10, 1000)], 10_000, 500)).toBe(1000 * 0.5);
  });
  it('a curve counts at its full-demand ops', () => {
    expect(idealOpsRate([{ want: 1000, opsAtWant: 42, opsPerUnit: NaN, iopsWant: 0 }], 1, Infinity)).toBe(42);
  });
  it('exact at small scale: the best placement, which the LP relaxation only bounds', () => {
    const nodes = [{ pes: 1, peUnits: 250, diskIops: 0 }, { pes: 1, peUnits: 500, diskIops: 0 }];
    const ops = { kind: 'per-core' as const, opsPerCore: 1000 };
    const two = [{ ops, threads: 1, want: 1000, iopsWant: 0 }, { ops, threads: 1, want: 1000, iopsWant: 0 }];
    expect(exactIdealOps(two, nodes)).toBe(750);
    expect(idealOpsRate([item(500, 1), item(500, 1)], 750, Infinity)).toBe(750);
    expect(exactIdealOps([...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two, ...two], nodes)).toBeUndefined();
  });
});
