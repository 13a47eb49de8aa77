/**
 * CloudSim 4.0's clock and bookkeeping in the engine (SimSpec.cloudSimClock) and its
 * allocation-based placement in the LR-MMT/MAD-MMT baselines and the initial placement:
 * the semantics that bring our LR-MMT and MAD-MMT within CloudSim's own figures.
 */
import { describe, expect, it } from 'vitest';
import type { Move } from '../../coordinator/control/policy';
import type { ContainerView, NodeView, Snapshot } from '../../coordinator/control/snapshot';
import { simulate, type Controller } from '../../coordinator/sim/engine';
import { initialPlacement } from '../../coordinator/sim/initial-placement';
import { lrMmt } from '../../coordinator/sim/baselines/lr-mmt';
import type { SimContainer, SimSpec } from '../../coordinator/sim/model';
import { cloudSimHosts } from '../../coordinator/sim/planetlab';
import { watts, POWER_MODELS } from '../../coordinator/sim/power';

const MB = 1024 * 1024;
const STEP = 300_000;
const vmOf = (id: string, node: string, mips: number, ramMb: number, values: number[]): SimContainer => ({
  id, name: id, memoryBytes: ramMb * MB, upperDirBytes: 0, threads: 1, limitUnits: mips,
  cpu: { stepMs: STEP, values: values.map((v) => v * mips), interpolate: 'linear' }, ops: { kind: 'per-core', opsPerCore: 1000 }, labels: {}, node,
});
const world = (over: Partial<SimSpec>): SimSpec => ({
  nodes: cloudSimHosts(3), containers: [], durationMs: 4 * STEP, sampleMs: STEP, periodMs: STEP, firstEvalMs: STEP, windowSteps: 30,
  contention: 'cloudsim', migration: { kind: 'cloudsim', linkMbps: 1000, failureRate: 0 }, placement: 'given', observe: 'demand',
  overThreshold: 0.9, pingPongMs: 3_600_000, zeroAfterEnd: true, cloudSimClock: true, seed: 1, ...over,
});
const scripted = (moves: Move[][]): Controller & { seen: Snapshot[] } => {
  const seen: Snapshot[] = [];
  return { name: 'scripted', seen, evaluate: (s) => (seen.push(s), moves[seen.length - 1] ?? []) };
};
const mv = (herdId: string, from: string, to: string): Move => ({ herdId, from, to, score: 1, policy: 'test', reason: '', figures: {} });

describe("CloudSim's clock (cloudSimClock)", () => {
  it('updates at k x 300 s + 0.1 s, the first history value at the first update, none at 0', () => {
    const c = scripted([]);
    simulate(world({ containers: [vmOf('a', 'host-1', 1000, 870, [0.5, 0.5, 0.5, 0.5, 0.5])] }), c);
    expect(c.seen.map((s) => s.nowMs)).toEqual([STEP + 100, 2 * STEP + 100, 3 * STEP + 100]);
    const w = c.seen[0].containers[0].cpu;
    expect(w.filter((x) => !Number.isNaN(x))).toEqual([0.5]);
  });

  it('counts energy and SLA from the first update to the last one before the limit', () => {
    const r = simulate(world({ containers: [vmOf('a', 'host-1', 2660, 870, [1, 1, 1, 1, 1])] }), scripted([]));
    // One VM at 2660 of a G5's 5320 MIPS, constant: 50% from 300.1 s to 900.1 s.
    expect(r.metrics.energyKWh).toBeCloseTo((watts(POWER_MODELS.ml110g5, 0.5) * 600) / 3.6e6, 9);
    expect(r.metrics.meanActiveHosts).toBeCloseTo(1, 9);
  });

  it('counts a migration started at the last update to its end, which updates every host before the limit', () => {
    // Limit 1200 s: updates at 300.1, 600.1, 900.1 s; a move at 900.1 s of an 870 MB VM ends at
    // 913.92 s (RAM / 62.5 MB/s), CloudSim's last update: its 10% loss is PDM, its target in violation.
    const c = scripted([[], [], [mv('a', 'host-1', 'host-3')]]);
    const r = simulate(world({ nodes: cloudSimHosts(4), containers: [vmOf('a', 'host-1', 1000, 870, [0.5, 0.5, 0.5, 0.5, 0.5])] }), c);
    const end = 900.1 + 870 / 62.5;
    expect(r.migrations[0].endMs / 1000).toBeCloseTo(end, 9);
    expect(r.metrics.hours * 3600).toBeCloseTo(end - 300.1, 6);
    expect(r.metrics.pdmPct).toBeCloseTo((100 * 0.1 * 500 * (end - 900.1)) / (500 * (end - 300.1)), 6);
    expect(r.metrics.slatahPct).toBeGreaterThanOrEqual((100 * (end - 900.1)) / (end - 300.1 + end - 900.1) - 1e-9);
  });

  it('removes for good a VM that asks 0 MIPS at an update (getCompletedVms), not one that is only passing through 0', () => {
    // 'gone' has two zero samples in a row from sample 1: at 300.1 s it asks 0 and is removed;
    // 'dip' touches 0 at sample 1 only, so at 300.1 s it asks a little and stays.
    const c = scripted([]);
    const r = simulate(world({ containers: [vmOf('gone', 'host-1', 1000, 870, [0.5, 0, 0, 0.9, 0.9]), vmOf('dip', 'host-1', 1000, 870, [0.5, 0, 0.6, 0.6, 0.6])] }), c);
    expect(c.seen[0].containers.map((x) => x.herdId)).toEqual(['dip']);
    expect(c.seen[2].containers.map((x) => x.herdId)).toEqual(['dip']);
    expect(r.metrics.containers).toBe(2);
  });

  it('a VM moved twice in one round counts two migrations, holds 10% on both targets, and ends on the second', () => {
    const c = scripted([[mv('a', 'host-0', 'host-1'), mv('a', 'host-0', 'host-2')]]);
    const r = simulate(world({ containers: [vmOf('a', 'host-0', 1000, 1740, [0.5, 0.5, 0.5, 0.5, 0.5])] }), c);
    expect(r.metrics.migrations).toBe(2);
    expect(r.metrics.skippedMoves).toBe(0);
    expect(r.migrations).toHaveLength(1);
    expect(r.migrations[0]).toMatchObject({ from: 'host-0', to: 'host-2' });
    expect(r.migrations[0].endMs - r.migrations[0].atMs).toBeCloseTo((1740 / 62.5) * 1000, 6);
    expect(c.seen[1].containers[0].node).toBe('host-2');
    // Both targets are in violation while the VM migrates in (10% allocated of a full request): 2 x 27.84 s of 3 hosts' active time.
    const active = 600 + 2 * 27.84;
    expect(r.metrics.slatahPct).toBeCloseTo((100 * 2 * 27.84) / active, 6);
  });
});

describe("CloudSim 4.0's allocation-based placement", () => {
  const MB4 = 4096 * MB;
  const node = (id: string, util: number): NodeView => ({
    id, arch: 'x64', cores: 5.32, memoryBytes: MB4, diskIops: 0, labels: { 'sim.power': 'ml110g5', 'sim.pe-mips': '2660' },
    criu: true, draining: false, connected: true, lastSampleMs: 0, cpu: [util], diskOps: [0], diskActive: [0], memUsedBytes: [0],
  });
  const vm = (id: string, at: string, ramMb: number, cores: number): ContainerView => ({
    herdId: id, name: id, node: at, labels: {}, limits: { cpus: 0, memoryBytes: 0 }, memoryBytes: ramMb * MB, upperDirBytes: 0, lastSampleMs: 0,
    cpu: [cores], diskOps: [], threads: [], ops: [], migrating: false,
  });
  it("a host that took a VM this round looks dearer for the next one, so two VMs off an overloaded host spread", () => {
    // h0 asks 4.8 of 5.32 cores, over the 0.7 fallback (short history) until a and b (least RAM)
    // are off; h1 and h2 empty and measured idle, so equal: a takes h1 (first of equals), b then
    // sees h1 with a's MIPS allocated and takes h2 (read from the measured load, both would land on h1).
    const s: Snapshot = {
      nowMs: 0, stepMs: STEP, migrations: [],
      nodes: [node('h0', 0.95), node('h1', 0), node('h2', 0)],
      containers: [vm('a', 'h0', 613, 0.6), vm('b', 'h0', 613, 0.6), vm('c', 'h0', 1740, 2.0), vm('d', 'h0', 1740, 1.6)],
    };
    const moves = lrMmt.propose({ snapshot: s, allowed: () => null, movable: () => null, relievable: () => true, random: () => 0.5, settings: lrMmt.defaults });
    const off = moves.filter((m) => m.from === 'h0');
    expect(off.map((m) => m.herdId)).toEqual(['a', 'b']);
    expect(new Set(off.map((m) => m.to))).toEqual(new Set(['h1', 'h2']));
  });

  it('the initial placement puts each VM on an empty host while one is left', () => {
    const spec = world({ placement: 'cloudsim', nodes: cloudSimHosts(4), containers: ['a', 'b', 'c', 'd'].map((id) => vmOf(id, '', 500, 613, [0.1])) });
    expect(new Set(initialPlacement(spec)).size).toBe(4);
  });
});
