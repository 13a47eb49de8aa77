import { describe, expect, it } from 'vitest';
import type { Move } from '../../coordinator/control/policy';
import type { Snapshot } from '../../coordinator/control/snapshot';
import { simulate, type Controller } from '../../coordinator/sim/engine';
import { EventQueue } from '../../coordinator/sim/heap';
import { BED_MIGRATION, type SimContainer, type SimNode, type SimSpec } from '../../coordinator/sim/model';
import { POWER_MODELS } from '../../coordinator/sim/power';
import { noMigration } from '../../coordinator/sim/controllers';
import { makeController } from '../../coordinator/sim/runner';

const MB = 1024 * 1024;
const node = (id: string, cores: number): SimNode => ({ id, pes: cores, peUnits: 1000, memoryBytes: 4096 * MB, diskIops: 0, arch: 'x64', power: POWER_MODELS.generic, labels: {} });
const box = (id: string, at: string, cores: number, memMb = 100): SimContainer => ({
  id, name: id, memoryBytes: memMb * MB, upperDirBytes: 10 * MB, threads: 1, limitUnits: 0,
  cpu: { stepMs: 1e12, values: [cores * 1000], interpolate: 'step' }, ops: { kind: 'per-core', opsPerCore: 100 }, labels: {}, node: at,
});
const spec = (over: Partial<SimSpec> = {}): SimSpec => ({
  nodes: [node('a', 1), node('b', 1)],
  containers: [box('x', 'a', 1), box('y', 'a', 1)],
  durationMs: 600_000, sampleMs: 10_000, periodMs: 60_000, firstEvalMs: 60_000, windowSteps: 3,
  contention: 'fair', migration: { ...BED_MIGRATION }, placement: 'given', observe: 'usage',
  overThreshold: 0.9, pingPongMs: 3_600_000, zeroAfterEnd: false, seed: 1, ...over,
});
/** Moves `moves[k]` at its k-th evaluation (a scripted controller, for the engine alone). */
const scripted = (moves: Move[][]): Controller & { seen: Snapshot[] } => {
  const seen: Snapshot[] = [];
  return { name: 'scripted', seen, evaluate: (s) => (seen.push(s), moves[seen.length - 1] ?? []) };
};
const mv = (herdId: string, from: string, to: string): Move => ({ herdId, from, to, score: 1, policy: 'test', reason: '', figures: {} });

describe('a container started late (startMs)', () => {
  it('asks nothing before it runs, and has no sample until a sample period after (a rate needs two readings)', () => {
    const late = { ...box('y', 'a', 1), startMs: 25_000 };
    const c = scripted([]);
    const r = simulate(spec({ containers: [box('x', 'a', 0.5), late] }), c);
    const y = c.seen[0].containers.find((v) => v.herdId === 'y')!;
    // Window of 3 at 60 s: samples at 40, 50, 60 s, all after 25 + 10 s.
    expect(y.cpu).toEqual([0.5, 0.5, 0.5]);
    // Node a: x alone (0.5 of 1 core) until 25 s, then both share the core.
    expect(r.series.nodeUtil.slice(0, 4).map((u) => u[0])).toEqual([0.5, 0.5, 0.5, 1]);
    const early = scripted([]);
    simulate(spec({ containers: [box('x', 'a', 0.5), late], firstEvalMs: 30_000, periodMs: 30_000 }), early);
    // At 30 s: samples at 10 and 20 s none (not started), 30 s none (its first rate comes at 35 s, on the 40 s tick).
    expect(early.seen[0].containers.find((v) => v.herdId === 'y')!.cpu.every(Number.isNaN)).toBe(true);
  });
});

describe('event queue', () => {
  it('pops in time order, ties in insertion order', () => {
    const q = new EventQueue<string>();
    q.push(5, 'c');
    q.push(1, 'a');
    q.push(5, 'd');
    q.push(2, 'b');
    expect([q.pop()!.v, q.pop()!.v, q.pop()!.v, q.pop()!.v]).toEqual(['a', 'b', 'c', 'd']);
    expect(q.pop()).toBeUndefined();
  });
});

describe('engine', () => {
  it('without migrations, two one-core containers on one core share it: half the ideal ops', () => {
    const r = simulate(spec(), noMigration);
    expect(r.metrics.ops).toBeCloseTo(100 * 600, 6);
    expect(r.metrics.idealOps).toBeCloseTo(200 * 600, 6);
    expect(r.metrics.slatahPct).toBeCloseTo(100, 6);
    expect(r.metrics.overThresholdPct).toBeCloseTo(50, 6);
  });

  it('a migration costs the bed-calibrated downtime, then both containers run at full speed', () => {
    const c = scripted([[mv('y', 'a', 'b')]]);
    const r = simulate(spec(), c);
    const downtime = BED_MIGRATION.baseMs + BED_MIGRATION.msPerMemMb * 100 + BED_MIGRATION.msPerUpperMb * 10;
    expect(r.migrations).toHaveLength(1);
    expect(r.migrations[0].downtimeMs).toBeCloseTo(downtime, 6);
    expect(r.metrics.downtimeS).toBeCloseTo(downtime / 1000, 6);
    expect(r.metrics.pdmPct).toBeGreaterThan(0);
    expect(c.seen).toHaveLength(9);
    expect(c.seen[0].nowMs).toBe(60_000);
    expect(c.seen[1].containers.find((x) => x.herdId === 'y')!.node).toBe('b');
    // Before: 100 ops/s for 60 s; after: 200 ops/s, less y's frozen time and the migration's CPU on both nodes.
    expect(r.metrics.ops).toBeGreaterThan(100 * 60 + 200 * 530);
    expect(r.metrics.ops).toBeLessThan(100 * 60 + 200 * 540);
  });

  it('windows are oldest first, one value per sample, NaN before the first', () => {
    const c = scripted([]);
    simulate(spec({ windowSteps: 10 }), c);
    const w = c.seen[0].containers[0].cpu;
    expect(w).toHaveLength(10);
    expect(w.slice(0, 3).every(Number.isNaN)).toBe(true);
    expect(w.slice(3)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  });

  it('a failed migration rolls back: the container stays and the failure is counted', () => {
    const r = simulate(spec({ migration: { ...BED_MIGRATION, failureRate: 1 } }), scripted([[mv('y', 'a', 'b')]]));
    expect(r.metrics.failedMigrations).toBe(1);
    expect(r.migrations[0].ok).toBe(false);
    expect(r.metrics.ops).toBeLessThan(100 * 600);
  });

  it('counts a move back within the window as ping-pong, and skips moves that do not apply', () => {
    const c = scripted([[mv('y', 'a', 'b')], [mv('y', 'b', 'a')], [mv('y', 'b', 'a'), mv('nope', 'a', 'b'), mv('x', 'a', 'a')]]);
    const r = simulate(spec(), c);
    expect(r.metrics.migrations).toBe(2);
    expect(r.metrics.pingPong).toBe(1);
    expect(r.metrics.skippedMoves).toBe(3);
  });

  it('a container that fits nowhere is rejected and counted, not dropped silently', () => {
    const r = simulate(spec({ placement: 'spread', containers: [box('x', '', 1), box('huge', '', 1, 10_000)] }), noMigration);
    expect(r.metrics.rejected).toBe(1);
    expect(r.metrics.containers).toBe(2);
  });

  it("CloudSim's migration model: RAM / (half of 1 Gbit/s), 90% on the source meanwhile", () => {
    const s = spec({ contention: 'cloudsim', migration: { kind: 'cloudsim', linkMbps: 1000, failureRate: 0 }, containers: [box('x', 'a', 0.5, 870), box('y', 'a', 0.5, 870)] });
    const r = simulate(s, scripted([[mv('y', 'a', 'b')]]));
    expect(r.migrations[0].endMs - r.migrations[0].atMs).toBeCloseTo((870 / 62.5) * 1000, 6);
    // PDM: 10% of y's 500 MIPS for 13.92 s over all demand (1000 MIPS for 600 s).
    expect(r.metrics.pdmPct).toBeCloseTo((100 * (0.1 * 500 * 13.92)) / (1000 * 600), 6);
  });

  it('is deterministic for a seed (Herd controller, random policy)', () => {
    const s = spec({ nodes: [node('a', 2), node('b', 2), node('c', 2)], containers: ['p', 'q', 'r', 's'].map((id) => box(id, 'a', 0.8)), migration: { ...BED_MIGRATION, failureRate: 0.3 } });
    const settings = { schedule: { windowMs: 30_000, periodMs: 60_000, firstAfterMs: 60_000 }, hysteresisRounds: 1, filters: { cooldownMs: 0 } };
    const one = simulate(s, makeController('random', settings, 7));
    const two = simulate(s, makeController('random', settings, 7));
    expect(one.migrations).toEqual(two.migrations);
    expect(one.metrics).toEqual(two.metrics);
    expect(one.metrics.migrations).toBeGreaterThan(0);
  });
});
