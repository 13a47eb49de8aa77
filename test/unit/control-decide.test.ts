import { describe, expect, it } from 'vitest';
import { checkMove, type ControlState, decide, initialState, MAX_REFUSALS_RECORDED, policyChain } from '../../coordinator/control/decide';
import { applyMove, cpuDemand, diskCapacity, loadsOf, recoveredWork } from '../../coordinator/control/load';
import { validateSettings, type ControlSettings } from '../../coordinator/control/settings';
import type { Snapshot } from '../../coordinator/control/snapshot';
import { container, migration, node, NOW, snap, syntheticSnapshot } from '../fixtures/control-snapshot';

const settings = (x: unknown = {}): ControlSettings => {
  const r = validateSettings({ mode: 'auto', policies: ['cpu-greedy'], hysteresisRounds: 1, ...(x as object) });
  if (!r.ok) throw new Error(r.error);
  return r.settings;
};
let n = 0;
const ctx = () => ({ term: 3, trigger: 'schedule', id: `d-${NOW}-${n++}` });
const allFinite = (x: unknown): boolean =>
  typeof x === 'number' ? Number.isFinite(x) : Array.isArray(x) ? x.every(allFinite) : x !== null && typeof x === 'object' ? Object.values(x).every(allFinite) : true;

/** Two hot 2-core nodes (two containers each) and two idle ones. */
const hot = (o: { cpuA?: number } = {}) =>
  snap(
    [node('a', { cpu: o.cpuA ?? 1 }), node('b', { cpu: 0.95 }), node('c', { cpu: 0 }), node('d', { cpu: 0.05 })],
    [container('a1', 'a', { cpu: 1.1 }), container('a2', 'a', { cpu: 0.9 }), container('b1', 'b', { cpu: 1 }), container('b2', 'b', { cpu: 0.9 })],
  );

describe('decide', () => {
  it('moves in auto mode and records the evaluation', () => {
    const r = decide(initialState(), hot(), settings(), { term: 3, trigger: 'schedule', id: 'd-1' });
    expect(r.moves.map((m) => [m.herdId, m.from, m.to])).toEqual([
      ['a1', 'a', 'c'],
      ['b1', 'b', 'd'],
    ]);
    const d = r.decision;
    expect(d).toMatchObject({ id: 'd-1', atMs: NOW, term: 3, mode: 'auto', policies: ['cpu-greedy'], trigger: 'schedule', evalMs: 0 });
    expect(d.summary).toEqual({ nodes: 4, containers: 4, judgedNodes: 4, judgedContainers: 4, meanCpu: 0.5, meanDiskActive: 0 });
    expect(d.actions.map((a) => a.status)).toEqual(['started', 'started']);
    expect(d.actions[0].reason).toBe(r.moves[0].reason);
    expect(d.proposals.length).toBeGreaterThanOrEqual(2);
    expect(d.efficacy.imbalanceAfter).toBeLessThan(d.efficacy.imbalanceBefore);
    expect(d.efficacy.movedFraction).toBe(0.5);
    expect(d.note).toMatch(/^2 move\(s\) started by cpu-greedy; imbalance 0.\d+ -> 0.\d+/);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    expect(allFinite(d)).toBe(true);
  });

  it('judges the second move of a round on the cluster as the first leaves it', () => {
    // One hot node, one idle: once a1 is on c the two are level, so a2 stays (even with pacing allowing more).
    const s = snap([node('a', { cpu: 1 }), node('c', { cpu: 0 })], [container('a1', 'a', { cpu: 1 }), container('a2', 'a', { cpu: 1 })]);
    const r = decide(initialState(), s, settings({ pacing: { maxPerNode: 4 } }), ctx());
    expect(r.moves.map((m) => m.herdId)).toEqual(['a1']);
    expect(r.decision.note).toBe('1 move(s) started by cpu-greedy; imbalance 0.35 -> 0. cpu-greedy: no host at or over 50% CPU and 10% above the least loaded host (one whose CPU a lone container uses: saturated, 90%)');
  });

  it('recommends without moving in recommend mode', () => {
    const r = decide(initialState(), hot(), settings({ mode: 'recommend' }), ctx());
    expect(r.moves).toHaveLength(2);
    expect(r.decision.actions.map((a) => [a.status, a.detail])).toEqual([
      ['recommended', 'waits for approval (recommend mode)'],
      ['recommended', 'waits for approval (recommend mode)'],
    ]);
    expect(r.decision.note).toMatch(/^2 move\(s\) recommended/);
  });

  it('evaluates nothing when off', () => {
    const r = decide(initialState(), hot(), settings({ mode: 'off' }), ctx());
    expect(r.moves).toEqual([]);
    expect(r.decision.proposals).toEqual([]);
    expect(r.decision.note).toBe('off. mode is off: nothing evaluated');
  });

  it('relieves a node only after N evaluations over its threshold in a row (hysteresis)', () => {
    const st = settings({ hysteresisRounds: 3, pacing: { maxMovesPerRound: 1 } });
    let state: ControlState = initialState();
    const notes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = decide(state, hot(), st, ctx());
      expect(r.moves).toEqual([]);
      notes.push(r.decision.note);
      state = r.state;
    }
    expect(state.over['cpu-greedy']).toEqual({ a: 2, b: 2 });
    expect(notes[1]).toMatch(/no move \(cpu-greedy\). cpu-greedy: a, b over the threshold but held back/);
    // A round where a is no longer over starts its count again; b keeps counting and is relieved.
    const calm = decide(state, hot({ cpuA: 0.3 }), st, ctx());
    expect(calm.state.over['cpu-greedy']).toEqual({ b: 3 });
    expect(calm.moves.map((m) => m.from)).toEqual(['b']);
    expect(calm.state.rounds).toBe(3);
  });

  it('starts the count again for a node whose data went stale', () => {
    const st = settings({ hysteresisRounds: 2 });
    const first = decide(initialState(), hot(), st, ctx());
    const staleA = snap(hot().nodes.map((x) => (x.id === 'a' ? { ...x, lastSampleMs: NOW - 600_000 } : x)), hot().containers);
    const second = decide(first.state, staleA, st, ctx());
    expect(second.state.over['cpu-greedy']).toEqual({ b: 2 });
    expect(second.moves.map((m) => m.from)).toEqual(['b']);
  });

  it('paces: moves per round, and none while the cluster-wide limit is taken by running migrations', () => {
    expect(decide(initialState(), hot(), settings({ pacing: { maxMovesPerRound: 1 } }), ctx()).moves).toHaveLength(1);
    const busy = { ...hot(), migrations: [migration('zz', 'x', 'y', { outcome: 'RUNNING', endedMs: 0 }), migration('zy', 'x2', 'y2', { outcome: 'RUNNING', endedMs: 0 })] };
    const r = decide(initialState(), busy, settings(), ctx());
    expect(r.moves).toEqual([]);
    expect(r.decision.note).toBe('no move (cpu-greedy). 2 migration(s) running, the most at once is 2: no move this round');
    // One running: one more allowed this round.
    const one = { ...hot(), migrations: [migration('zz', 'x', 'y', { outcome: 'RUNNING', endedMs: 0 })] };
    expect(decide(initialState(), one, settings(), ctx()).moves).toHaveLength(1);
  });

  it('falls back from the OLTP policy to the multi-threaded CPU policy, unless told not to', () => {
    const s = snap([node('a', { cpu: 1 }), node('b', { cpu: 0 })], [container('x', 'a', { cpu: 1, threads: 4 }), container('y', 'a', { cpu: 1, threads: 4 })]);
    const st = settings({ policies: ['oltp-disk'] });
    expect(policyChain(st)).toEqual(['oltp-disk', 'cpu-greedy-mt']);
    const r = decide(initialState(), s, st, ctx());
    expect(r.moves.map((m) => m.policy)).toEqual(['cpu-greedy-mt']);
    expect(r.decision.note).toMatch(/oltp-disk: disk ops gap \(0 on a vs 0 on a\) is 0%, under the disk ops reward threshold 35%/);
    const none = settings({ policies: ['oltp-disk'], thresholds: { 'oltp-disk': { fallback: 'none' } } });
    expect(policyChain(none)).toEqual(['oltp-disk']);
    expect(decide(initialState(), s, none, ctx()).moves).toEqual([]);
    expect(policyChain(settings({ policies: ['cpu-greedy-mt', 'oltp-disk'] }))).toEqual(['cpu-greedy-mt', 'oltp-disk']);
  });

  it('needs two judged nodes: a one-node cluster, an empty one, all stale', () => {
    const one = decide(initialState(), snap([node('a', { cpu: 1 })], [container('x', 'a', { cpu: 2 })]), settings(), ctx());
    expect(one.moves).toEqual([]);
    expect(one.decision.note).toBe('no move (cpu-greedy). 1 node(s) judged (fresh, connected, enough samples) of 1: a move needs two');
    const empty = decide(initialState(), snap([], []), settings(), ctx());
    expect(empty.decision.summary).toEqual({ nodes: 0, containers: 0, judgedNodes: 0, judgedContainers: 0, meanCpu: 0, meanDiskActive: 0 });
    expect(allFinite(empty.decision)).toBe(true);
    const stale = snap(hot().nodes.map((x) => ({ ...x, lastSampleMs: NOW - 10 * 60_000 })), hot().containers);
    expect(decide(initialState(), stale, settings(), ctx()).moves).toEqual([]);
  });

  it('never moves on stale container data', () => {
    const s = snap(hot().nodes, hot().containers.map((c) => ({ ...c, lastSampleMs: NOW - 200_000 })));
    const r = decide(initialState(), s, settings({ policies: ['cpu-greedy', 'cpu-greedy-mt', 'balance', 'low-node-utilization', 'random'] }), ctx());
    expect(r.moves).toEqual([]);
    expect(new Set(r.decision.refusals.map((x) => x.filter))).toEqual(new Set(['stale']));
  });

  it('is deterministic and plain JSON, NaN-free on a large synthetic cluster with every policy', () => {
    const s = syntheticSnapshot(100, 1000, 5);
    for (const p of ['cpu-greedy', 'cpu-greedy-mt', 'oltp-disk', 'balance', 'random', 'low-node-utilization']) {
      const st = settings({ policies: [p], pacing: { maxMovesPerRound: 2 } });
      const a = decide(initialState(), s, st, { term: 1, trigger: 'schedule', id: 'same' });
      const b = decide(initialState(), s, st, { term: 1, trigger: 'schedule', id: 'same' });
      expect(b).toEqual(a);
      expect(allFinite(a.decision)).toBe(true);
      expect(a.decision.refusals.length).toBeLessThanOrEqual(MAX_REFUSALS_RECORDED);
      for (const m of a.moves) expect(m.reason.length).toBeGreaterThan(40);
    }
  });

  it('caps the refusals it keeps and says how many there were', () => {
    const nodes = [node('a', { cpu: 1 }), ...Array.from({ length: 5 }, (_, i) => node(`t${i}`, { draining: true }))];
    const cs = Array.from({ length: 300 }, (_, i) => container(`p${i}`, 'a', { cpu: 0.01, labels: { 'herd.pin': 'true' } }));
    const r = decide(initialState(), snap(nodes, cs), settings({ policies: ['balance'] }), ctx());
    expect(r.decision.refusals).toHaveLength(MAX_REFUSALS_RECORDED);
    expect(r.decision.note).toMatch(/30\d refusals, the first 200 kept/);
  });

  it('checks an approval against the filters of the moment', () => {
    const s = hot();
    const st = settings();
    expect(checkMove(s, st, 'a1', 'c')).toBeNull();
    const drained = snap(s.nodes.map((x) => (x.id === 'c' ? { ...x, draining: true } : x)), s.containers);
    expect(checkMove(drained, st, 'a1', 'c')).toMatchObject({ filter: 'draining' });
  });
});

describe('applyMove', () => {
  it("moves a container's load between the nodes' windows, rescaled by cores, and marks it migrating", () => {
    const s: Snapshot = snap([node('a', { cpu: 0.8, diskOps: 100, diskActive: 0.5 }), node('b', { cores: 4, cpu: 0.1 })], [container('x', 'a', { cpu: 1, diskOps: 50, memoryBytes: 1024 })]);
    const t = applyMove(s, 'x', 'b');
    const l = loadsOf(t);
    expect(l.get('a')!.cpu).toBeCloseTo(0.3, 9);
    expect(l.get('b')!.cpu).toBeCloseTo(0.35, 9);
    expect(l.get('a')!.diskOps).toBe(50);
    expect(l.get('a')!.diskActive).toBeCloseTo(0.25, 9);
    expect(l.get('b')!.diskActive).toBeCloseTo(0.25, 9);
    expect(t.containers[0]).toMatchObject({ node: 'b', migrating: true });
    expect(t.migrations.at(-1)).toMatchObject({ herdId: 'x', from: 'a', to: 'b', outcome: 'RUNNING' });
    expect(s.containers[0].node).toBe('a'); // the original is untouched
    expect(applyMove(s, 'nope', 'b')).toBe(s);
  });

  it("rescales disk activity by each node's declared IOPS, and counts disk load over the node's own disk", () => {
    const s: Snapshot = snap([node('a', { diskIops: 150, diskOps: 150, diskActive: 1 }), node('b', { diskIops: 300 })], [container('f', 'a', { diskOps: 150 })]);
    const l = loadsOf(applyMove(s, 'f', 'b'));
    expect(l.get('b')!.diskActive).toBeCloseTo(0.5, 9); // 150 ops on a 300-IOPS disk
    expect(l.get('b')!.disk).toBeCloseTo(0.5, 9);
    expect(l.get('a')!.disk).toBe(0);
    // Without declared IOPS the disk load is the measured active fraction.
    expect(loadsOf(snap([node('c', { diskOps: 40, diskActive: 0.8 })], [])).get('c')!.disk).toBeCloseTo(0.8, 9);
    expect(applyMove(s, 'x', 'a')).toBe(s);
  });
});

describe('the demand model', () => {
  it('a held-back container wants its threads, beyond its host; an idle one wants what it uses', () => {
    const l = loadsOf(snap([node('a', { cores: 0.25, cpu: 1 })], [container('x', 'a', { cpu: 0.24, threads: 4 }), container('idle', 'a', { cpu: 0.01, threads: 9 })])).get('a')!;
    const [x, idle] = l.containers;
    expect(cpuDemand(x, l, 0.9)).toBe(4);
    expect(cpuDemand(idle, l, 0.9)).toBeCloseTo(0.01, 9);
    expect(cpuDemand({ ...x, view: { ...x.view, limits: { cpus: 0.5, memoryBytes: 0 } } }, l, 0.9)).toBe(0.5);
  });
  it('recovers work only where a node can serve more: a bigger idle node, not an equal one', () => {
    expect(recoveredWork(0.25, 1, 0.5, 0, 1)).toBeCloseTo(0.25, 9);
    expect(recoveredWork(0.25, 1, 0.25, 0, 1)).toBe(0);
    expect(recoveredWork(0.25, 2, 0.25, 0, 1)).toBeCloseTo(0.25, 9);
  });
  it("reads a disk's speed from its declared IOPS, else its measured activity, else the caller's guess", () => {
    const l = loadsOf(snap([node('d', { diskIops: 300 }), node('m', { diskOps: 100, diskActive: 0.5 }), node('idle', { diskOps: 1, diskActive: 0.01 })], []));
    expect(diskCapacity(l.get('d')!)).toBe(300);
    expect(diskCapacity(l.get('m')!)).toBeCloseTo(200, 9);
    expect(diskCapacity(l.get('idle')!)).toBe(0);
    expect(diskCapacity(l.get('idle')!, 150)).toBe(150);
  });
});
