import { describe, expect, it } from 'vitest';
import type { ContainerView, NodeView, Snapshot } from '../../coordinator/control/snapshot';
import { availableMips, buildHosts } from '../../coordinator/sim/baselines/consolidation';
import { lrMmt, linearFit } from '../../coordinator/sim/baselines/lr-mmt';
import { mad, madMmt, median } from '../../coordinator/sim/baselines/mad-mmt';

const MB = 1024 * 1024;
const host = (id: string, mips: number, util: number): NodeView => ({
  id, arch: 'x64', cores: (2 * mips) / 1000, memoryBytes: 4096 * MB, diskIops: 0, labels: { 'sim.power': 'ml110g5', 'sim.pe-mips': String(mips) },
  criu: true, draining: false, connected: true, lastSampleMs: 0, cpu: [util], diskOps: [0], diskActive: [0], memUsedBytes: [0],
});
const vm = (id: string, node: string, ramMb: number, history: number[]): ContainerView => ({
  herdId: id, name: id, node, labels: {}, limits: { cpus: 0, memoryBytes: 0 }, memoryBytes: ramMb * MB, upperDirBytes: 0, lastSampleMs: 0,
  cpu: history, diskOps: [], threads: [], ops: [], migrating: false,
});
const input = (snapshot: Snapshot) => ({ snapshot, allowed: () => null, movable: () => null, relievable: () => true, random: () => 0.5 });
const snap = (nodes: NodeView[], containers: ContainerView[]): Snapshot => ({ nowMs: 0, stepMs: 300_000, nodes, containers, migrations: [] });

describe('LR-MMT and MAD-MMT helpers', () => {
  it('least squares through (1, y1) ... (n, yn)', () => {
    const [a, b] = linearFit([1, 3, 5, 7]);
    expect(a).toBeCloseTo(-1, 12);
    expect(b).toBeCloseTo(2, 12);
  });
  it('median averages the middle pair; MAD is the median of deviations', () => {
    expect(median([3, 1, 2, 10])).toBe(2.5);
    expect(mad([1, 1, 2, 2, 4, 6, 9])).toBe(1);
  });
});

describe('CloudSim consolidation on the Policy interface', () => {
  it('LR-MMT relieves a host predicted over 1 (x1.2) by its least-RAM VM, and empties an under-utilized host', () => {
    // h0 (G5, 5320 MIPS): rising history, two VMs; h1 nearly idle with one VM; h2 half busy; h3 off.
    const rising = Array.from({ length: 10 }, (_, i) => 2 + i * 0.15);
    const s = snap(
      [host('h0', 2660, 0.85), host('h1', 2660, 0.05), host('h2', 2660, 0.5), host('h3', 2660, 0)],
      [vm('big', 'h0', 1740, rising), vm('small', 'h0', 613, rising.map((x) => x / 2)), vm('lone', 'h1', 870, Array(10).fill(0.25)), vm('mid', 'h2', 1740, Array(10).fill(2.6))],
    );
    const moves = lrMmt.propose({ ...input(s), settings: lrMmt.defaults });
    expect(moves[0]).toMatchObject({ herdId: 'small', from: 'h0', policy: 'lr-mmt' });
    expect(moves[0].to).not.toBe('h0');
    expect(moves.some((m) => m.herdId === 'lone' && m.from === 'h1')).toBe(true);
  });
  it('MAD-MMT falls back to the 0.7 threshold on a short history', () => {
    const s = snap([host('h0', 2660, 0.8), host('h1', 2660, 0.1)], [vm('a', 'h0', 613, [2.2]), vm('b', 'h0', 1740, [2.1]), vm('c', 'h1', 870, [0.5])]);
    const moves = madMmt.propose({ ...input(s), settings: madMmt.defaults });
    expect(moves[0]).toMatchObject({ herdId: 'a', from: 'h0', to: 'h1' });
  });
  it("an over-subscribed host has no MIPS left for a VM (the scheduler's, not the floored shares' leftover)", () => {
    // h0: three VMs asking 2000 MIPS of 5320, scaled by 5320/6000 and floored to 1773 each (1 MIPS unallocated); h1: 1000 asked.
    const s = snap([host('h0', 2660, 1), host('h1', 2660, 0.19)], [vm('a', 'h0', 613, [2]), vm('b', 'h0', 613, [2]), vm('c', 'h0', 613, [2]), vm('d', 'h1', 613, [1])]);
    const { hosts } = buildHosts(s);
    expect(hosts[0].allocated).toBe(3 * 1773);
    expect(availableMips(hosts[0])).toBe(0);
    expect(availableMips(hosts[1])).toBeCloseTo(4320, 9);
  });
  it('validates its settings with a sentence naming the field', () => {
    expect(lrMmt.validate({ ...lrMmt.defaults, safety: -1 })).toMatch(/lr-mmt\.safety must be a number in \(0, 10\]/);
    expect(madMmt.validate({ ...madMmt.defaults, safety: 'x' })).toMatch(/mad-mmt\.safety/);
  });
});
