import { describe, expect, it } from 'vitest';
import { seededRandom, thresholdsOf } from '../../coordinator/control/decide';
import { makeFilters } from '../../coordinator/control/filters';
import { POLICIES } from '../../coordinator/control/policies';
import type { Move } from '../../coordinator/control/policy';
import { DEFAULT_SETTINGS, POLICY_NAMES, validateSettings, type ControlSettings, type PolicyName } from '../../coordinator/control/settings';
import type { Snapshot } from '../../coordinator/control/snapshot';
import { container, GiB, node, snap, syntheticSnapshot, w } from '../fixtures/control-snapshot';

function run(name: PolicyName, s: Snapshot, patch: unknown = {}, relievable: (id: string) => boolean = () => true) {
  const v = validateSettings(patch);
  if (!v.ok) throw new Error(v.error);
  const settings: ControlSettings = v.settings;
  const filters = makeFilters(s, settings);
  const notes: string[] = [];
  const moves = POLICIES[name].propose({ snapshot: s, settings: thresholdsOf(settings, name), allowed: filters.allowed, movable: filters.movable, relievable, random: seededRandom(7), note: (x) => notes.push(x) });
  return { moves, notes: notes.join(' | '), refusals: filters.refusals() };
}
const only = (moves: Move[]) => {
  expect(moves.length).toBeGreaterThan(0);
  return moves[0];
};
const allFinite = (x: unknown): boolean =>
  typeof x === 'number' ? Number.isFinite(x) : Array.isArray(x) ? x.every(allFinite) : x !== null && typeof x === 'object' ? Object.values(x).every(allFinite) : true;

describe('cpu-greedy', () => {
  const cluster = (o: { pin?: boolean } = {}) =>
    snap(
      [node('a', { cpu: 1.0 }), node('b', { cpu: 0.1 }), node('c', { cpu: 0.5 })],
      [container('x', 'a', { cpu: 1.2, labels: o.pin ? { 'herd.pin': 'true' } : {} }), container('y', 'a', { cpu: 0.8 }), container('z', 'c', { cpu: 1 })],
    );

  it('moves the busiest container of the most loaded host to the least loaded one', () => {
    const m = only(run('cpu-greedy', cluster()).moves);
    expect(m).toMatchObject({ herdId: 'x', from: 'a', to: 'b', policy: 'cpu-greedy' });
    // a: 100% -> 40%, b: 10% -> 70%: the hotter after is 70%, gain 30%.
    expect(m.score).toBeCloseTo(0.3, 6);
    expect(m.reason).toBe(
      'x is the busiest movable container (1.2 cores) on a, the most loaded host (CPU 100% of 2 cores, 2 containers); on b (CPU 10% of 2 cores) the hotter of the two would be at 70%: gain 30% >= reward threshold 10%',
    );
  });

  it('takes the next busiest when the busiest may not move', () => {
    const r = run('cpu-greedy', cluster({ pin: true }));
    expect(only(r.moves)).toMatchObject({ herdId: 'y', to: 'b' });
    expect(r.refusals.map((x) => x.filter)).toEqual(['pinned']);
  });

  it('moves nothing under the reward threshold, and says by how much', () => {
    const s = snap([node('a', { cpu: 0.6 }), node('b', { cpu: 0.5 })], [container('x', 'a', { cpu: 0.1 }), container('y', 'a', { cpu: 1 })]);
    const r = run('cpu-greedy', s, { thresholds: { 'cpu-greedy': { hostActiveThreshold: 0.5, rewardThreshold: 0.06 } } });
    expect(r.moves).toEqual([]);
    // y (1 core) would overload b (100%); x (0.1 core): 60% -> 55% on both.
    expect(r.notes).toBe('cpu-greedy: the best move, x (0.1 cores) from a to b, would gain 5%, under the 6% reward threshold');
    // At exactly the threshold it moves (5% computed as 0.0499999... still clears 5%).
    expect(only(run('cpu-greedy', s, { thresholds: { 'cpu-greedy': { rewardThreshold: 0.05 } } }).moves).herdId).toBe('x');
  });

  it('leaves a host with a lone container, and hosts hysteresis holds back', () => {
    const lone = snap([node('a', { cpu: 1 }), node('b')], [container('x', 'a', { cpu: 2 })]);
    expect(run('cpu-greedy', lone).moves).toEqual([]);
    expect(run('cpu-greedy', lone, { thresholds: { 'cpu-greedy': { minContainersOnSource: 1 } } }).moves).toHaveLength(0); // 100% -> the target at 100%: no gain
    const r = run('cpu-greedy', cluster(), {}, () => false);
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/cpu-greedy: a over the threshold but held back/);
  });

  // A single-threaded container saturating a quarter-core node, an equal idle node and a half-core idle one.
  const small = (o: { cpu?: number; bigCpu?: number } = {}) =>
    snap([node('n1', { cores: 0.25, cpu: o.cpu ?? 1 }), node('n2', { cores: 0.25 }), node('n3', { cores: 0.5, cpu: o.bigCpu ?? 0 })], [container('x', 'n1', { cpu: 0.25 * (o.cpu ?? 1) })]);

  it('moves a lone container off a saturated small node to a bigger idle one, never to an equal one', () => {
    const m = only(run('cpu-greedy', small()).moves);
    expect(m).toMatchObject({ herdId: 'x', from: 'n1', to: 'n3' });
    expect(m.reason).toContain('alone using a saturated host, it gets 0.25 cores there and n3 has 0.5 free');
    // The big node half busy has 0.25 cores free: no more than x gets now (either target would end as full as n1 is).
    const r = run('cpu-greedy', small({ bigCpu: 0.5 }));
    expect(r.moves).toEqual([]);
    expect(r.notes).toContain('would gain 0%, under the 10% reward threshold');
    // Not saturated: it gets what it wants where it is, and n1 is not a source at all.
    const calm = run('cpu-greedy', small({ cpu: 0.8 }));
    expect(calm.moves).toEqual([]);
    expect(calm.notes).toContain('(one whose CPU a lone container uses: saturated, 90%)');
  });

  it("weighs the target's cores: a big node a little busy takes load better than a small idle one", () => {
    const s = snap(
      [node('a', { cpu: 1 }), node('tiny', { cores: 0.5 }), node('big', { cores: 8, cpu: 0.1 })],
      [container('x', 'a', { cpu: 1.2 }), container('y', 'a', { cpu: 0.8 })],
    );
    // On tiny, x's 1.2 cores would be 240% of it; on big, 10% + 15%.
    expect(only(run('cpu-greedy', s).moves)).toMatchObject({ herdId: 'x', to: 'big' });
  });
});

describe('cpu-greedy-mt', () => {
  // a: 2 cores saturated by two 4-thread containers that each get 1 core; b: 2 idle cores; c: 4 idle cores.
  const cluster = (cpuA = 1.0) =>
    snap(
      [node('a', { cpu: cpuA }), node('b', { cpu: 0 }), node('c', { cores: 4, cpu: 0 })],
      [container('x', 'a', { cpu: cpuA, threads: 4 }), container('y', 'a', { cpu: cpuA * 0.9, threads: 4 })],
    );

  it("weighs threads against the target's free cores and recovers the most work", () => {
    const m = only(run('cpu-greedy-mt', cluster()).moves);
    // x wants its 4 threads' cores (more than a has: c would give them); on c (4 free cores) it gets them and y keeps a's 2: 2 -> 6 cores served.
    expect(m).toMatchObject({ herdId: 'x', from: 'a', to: 'c', policy: 'cpu-greedy-mt' });
    expect(m.figures.recoveredCores).toBeCloseTo(4, 6);
    expect(m.score).toBeCloseTo(2, 6);
    expect(m.reason).toContain('uses 1 cores with 4 threads and could use 4');
    expect(m.reason).toContain('c has 4 of 4 cores free: the move recovers 4 cores of work, 200% of the source');
  });

  it('moves a lone 4-thread container off a saturated quarter-core node to the half-core idle one, not the equal one', () => {
    const s = snap([node('n1', { cores: 0.25, cpu: 1 }), node('n2', { cores: 0.25 }), node('n3', { cores: 0.5 })], [container('x', 'n1', { cpu: 0.25, threads: 4 })]);
    const m = only(run('cpu-greedy-mt', s).moves);
    expect(m).toMatchObject({ herdId: 'x', to: 'n3' });
    expect(m.figures.recoveredCores).toBeCloseTo(0.25, 6);
    const equal = snap([node('n1', { cores: 0.25, cpu: 1 }), node('n2', { cores: 0.25 })], [container('x', 'n1', { cpu: 0.25, threads: 4 })]);
    expect(run('cpu-greedy-mt', equal).moves).toEqual([]);
  });

  it('does not count an idle container as short of CPU on a saturated host, whatever its threads', () => {
    // a: busy gets 2 cores (2 threads), idle has 16 pids and uses nothing; moving idle recovers nothing.
    const s = snap([node('a', { cpu: 1 }), node('b')], [container('busy', 'a', { cpu: 1.99, threads: 2 }), container('idle', 'a', { cpu: 0.01, threads: 16 })]);
    const r = run('cpu-greedy-mt', s);
    expect(r.moves).toEqual([]);
  });

  it('recovers nothing, and moves nothing, when no host is short of CPU', () => {
    const r = run('cpu-greedy-mt', cluster(0.6));
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/cpu-greedy-mt: the best move, .* would recover 0% of the source's cores, under the 10% reward threshold/);
  });
});

describe('oltp-disk', () => {
  const disk = (o: { pinTop?: boolean; missing?: boolean; aActive?: number; bOps?: number; bActive?: number; topOps?: number } = {}) =>
    snap(
      [node('a', { diskOps: 1000, diskActive: o.aActive ?? 0.6 }), node('b', { diskOps: o.bOps ?? 100, diskActive: o.bActive ?? 0.05 })],
      [
        container('d1', 'a', { diskOps: o.missing ? [700, NaN, 700, 700, 700, 700] : (o.topOps ?? 700), labels: o.pinTop ? { 'herd.pin': '1' } : {} }),
        container('d2', 'a', { diskOps: 300 }),
        container('e', 'b', { diskOps: 100 }),
      ],
    );

  it('moves the container with the most disk ops to the host with the least when all six conditions hold', () => {
    const m = only(run('oltp-disk', disk()).moves);
    expect(m).toMatchObject({ herdId: 'd1', from: 'a', to: 'b', policy: 'oltp-disk', score: 700 });
    expect(m.reason).toBe(
      'd1 has the most disk ops of the movable containers (700/s >= baseline 40, 100% of its samples); b has the most free disk ops (1567/s; 100/s done vs 1000 on a, a 90% gap >= 35%); busiest disk a active 60% >= 15%, activity gap 55% >= 15%',
    );
  });

  it('takes the next candidate when one fails its own conditions or a filter', () => {
    expect(only(run('oltp-disk', disk({ missing: true })).moves).herdId).toBe('d2');
    const pinned = run('oltp-disk', disk({ pinTop: true }));
    expect(only(pinned.moves).herdId).toBe('d2');
    expect(pinned.notes).toContain('d1: may not move (pinned)');
  });

  it('passes over a candidate whose own host has the least disk ops (condition 6)', () => {
    // b's lone container has the most ops of any container, yet b has the least ops of the hosts.
    const s = snap(
      [node('a', { diskOps: 1000, diskActive: 0.6 }), node('b', { diskOps: 500, diskActive: 0.1 })],
      [...Array.from({ length: 10 }, (_, i) => container(`a${i}`, 'a', { diskOps: 100 - i })), container('big', 'b', { diskOps: 500 })],
    );
    const r = run('oltp-disk', s);
    expect(only(r.moves)).toMatchObject({ herdId: 'a0', to: 'b' });
    expect(r.notes).toContain('big: its own host b has the most free disk ops of the hosts it may go to');
  });

  it('names the failed cluster condition: ops gap, disk active, activity gap', () => {
    expect(run('oltp-disk', disk({ bOps: 900 })).notes).toBe('oltp-disk: disk ops gap (1000 on a vs 900 on b) is 10%, under the disk ops reward threshold 35%');
    expect(run('oltp-disk', disk({ aActive: 0.1 })).notes).toBe('oltp-disk: the busiest disk (a) is active 10%, under the disk active threshold 15%');
    expect(run('oltp-disk', disk({ bActive: 0.5 })).notes).toBe('oltp-disk: disk activity gap (60% on a vs 50% on b) is 10%, under the disk active reward threshold 15%');
  });

  // The bed's disk phase: one fio container alone on n1's 150 IOPS, two idle nodes of 150 and 300 IOPS.
  const bedDisk = (bigOps = 0) =>
    snap(
      [node('n1', { diskIops: 150, diskOps: 150, diskActive: 1 }), node('n2', { diskIops: 150 }), node('n3', { diskIops: 300, diskOps: bigOps, diskActive: bigOps / 300 })],
      [container('f', 'n1', { diskOps: 150 }), ...(bigOps ? [container('g', 'n3', { diskOps: bigOps })] : [])],
    );

  it('sends the candidate to the host with the most free IOPS; a lone one only where it would do more', () => {
    const m = only(run('oltp-disk', bedDisk()).moves);
    expect(m).toMatchObject({ herdId: 'f', to: 'n3' }); // n2 and n3 both do 0 ops: n3 has 300 free
    expect(m.figures.targetFreeOps).toBe(300);
    // n3 busy with 200 of its 300: 150 free on n2 or 100 on n3, not 35% more than f's 150.
    const r = run('oltp-disk', bedDisk(200));
    expect(r.moves).toEqual([]);
    expect(r.notes).toContain("f: alone using n1's disk, and n2 has 150 ops/s free, not 35% more than its 150: it would only move the load");
  });

  it('stops at the baseline: no candidate under 8000 x 0.005 ops/s', () => {
    const r = run('oltp-disk', snap([node('a', { diskOps: 100, diskActive: 0.6 }), node('b', { diskOps: 0 })], [container('d', 'a', { diskOps: 30 })]));
    expect(r.moves).toEqual([]);
    expect(r.notes).toBe('oltp-disk: no candidate left: d: 30 disk ops/s, under the baseline 8000 x 0.005 = 40');
  });
});

describe('balance', () => {
  const sat = (memoryBytes = 64 * 1024 ** 2) =>
    snap([node('a', { cpu: 1.0 }), node('b', { cpu: 0 })], [container('x', 'a', { cpu: 1, threads: 2, memoryBytes }), container('y', 'a', { cpu: 0.9, threads: 2, memoryBytes })]);

  it('takes the move that most lowers the imbalance when its gain outweighs its cost', () => {
    const m = only(run('balance', sat()).moves);
    expect(m).toMatchObject({ herdId: 'x', from: 'a', to: 'b', policy: 'balance' });
    expect(m.figures.imbalanceBefore).toBeGreaterThan(m.figures.imbalanceAfter);
    // Both want 2 cores (2 threads each) on a's 2: serving 2 before, 2 + 2 after; over 150 s.
    expect(m.figures.recoveredCores).toBeCloseTo(2, 6);
    expect(m.figures.gainCoreSeconds).toBeCloseTo(300, 6);
    expect(m.figures.costCoreSeconds).toBeLessThan(m.figures.gainCoreSeconds);
    // The cost: x loses the 1 core it gets while frozen (812 ms) plus the CPU that copies 64 MiB.
    expect(m.reason).toMatch(/^moving x \(1 cores, wants 2; disk 0%\) from a \(load 100%, mean 50%\) to b \(load 0%\) lowers the imbalance 0.35 -> 0, the most of any allowed single move; it recovers 300 core-s over the 150 s period \(2 cores, 0% disk\) against 1.13 core-s of cost: expected downtime 812 ms and 64 MiB moved/);
  });

  it('does not move for balance alone: nothing recovered is not worth a freeze', () => {
    const s = snap([node('a', { cpu: 0.6 }), node('b', { cpu: 0 })], [container('x', 'a', { cpu: 0.6 }), container('y', 'a', { cpu: 0.6 })]);
    const r = run('balance', s);
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/^balance: the best allowed move, x from a to b \(imbalance 0.21 -> 0\), would recover 0 core-s over the 150 s period against a cost of .* core-s x ratio 1: expected downtime/);
  });

  it('refuses a move that costs more than it recovers over the period', () => {
    const r = run('balance', sat(6 * GiB), { schedule: { periodMs: 1000 } });
    expect(r.moves).toEqual([]);
    expect(r.notes).toMatch(/would recover 2 core-s over the 1 s period against a cost of 80.2 core-s/);
  });

  it('sees a disk-bound node as loaded and moves its I/O-bound container to the faster idle disk', () => {
    // The bed's disk phase: fio uses 1% of a core, n1's disk is saturated, n3's is twice as fast.
    const s = snap(
      [node('n1', { cores: 0.25, cpu: 0.04, diskIops: 150, diskOps: 150, diskActive: 1 }), node('n2', { cores: 0.25, diskIops: 150 }), node('n3', { cores: 0.5, diskIops: 300 })],
      [container('f', 'n1', { cpu: 0.01, diskOps: 150, memoryBytes: 8 * 1024 ** 2 })],
    );
    const m = only(run('balance', s).moves);
    expect(m).toMatchObject({ herdId: 'f', from: 'n1', to: 'n3' });
    // 150 more ops/s on n3 = one disk of n1's size, over the 150 s period.
    expect(m.figures.recoveredDisk).toBeCloseTo(1, 6);
    expect(m.figures.gainCoreSeconds).toBeCloseTo(150, 6);
    expect(m.reason).toContain('from n1 (load 100%, mean 33.3%) to n3 (load 0%)');
    // To the equal n2 it would recover nothing: n3 it is, and with n3 busy there is no move at all.
    const busy = snap(s.nodes.map((n) => (n.id === 'n3' ? { ...n, diskOps: [300, 300, 300, 300, 300, 300], diskActive: [1, 1, 1, 1, 1, 1] } : n)), [...s.containers, container('g', 'n3', { diskOps: 300 })]);
    expect(run('balance', busy).moves).toEqual([]);
  });

  it('holds when no host is over the mean by the band', () => {
    const s = snap([node('a', { cpu: 0.5 }), node('b', { cpu: 0.45 })], [container('x', 'a', { cpu: 1 })]);
    expect(run('balance', s).notes).toBe("balance: no host's load is more than 10% above the mean 47.5% (imbalance 0.0175)");
  });
});

describe('random', () => {
  const s = snap([node('a'), node('b'), node('c')], [container('x', 'a'), container('y', 'b', { labels: { 'herd.pin': 'true' } })]);
  it('draws an allowed move, the same for the same seed', () => {
    const a = run('random', s).moves;
    expect(a).toHaveLength(1);
    expect(a[0].herdId).toBe('x');
    expect(run('random', s).moves).toEqual(a);
  });
  it('moves nothing with probability 0', () => {
    expect(run('random', s, { thresholds: { random: { moveProbability: 0 } } }).moves).toEqual([]);
  });
});

describe('low-node-utilization', () => {
  it('moves from a node over a high threshold to one under every low threshold, staying under high', () => {
    const s = snap(
      [node('a', { cpu: 0.9 }), node('b', { cpu: 0.1 }), node('c', { cpu: 0.3 })],
      [container('big', 'a', { cpu: 1.2 }), container('mid', 'a', { cpu: 0.5 })],
    );
    const m = only(run('low-node-utilization', s).moves);
    // big would put b at 70% (> 50%): mid goes, b at 35%.
    expect(m).toMatchObject({ herdId: 'mid', from: 'a', to: 'b' });
    expect(m.reason).toBe(
      'a (CPU 90%, disk 0%, memory 12.5%) is over a high threshold (CPU 50%, disk 50%, memory 50%); its largest movable container mid (0.5 cores) goes to underutilized b (CPU 10%, disk 0%, memory 12.5%), which stays under the high thresholds (CPU 35%)',
    );
  });
  it('moves nothing without an underutilized node', () => {
    const s = snap([node('a', { cpu: 0.9 }), node('c', { cpu: 0.3 })], [container('x', 'a', { cpu: 0.5 })]);
    expect(run('low-node-utilization', s).notes).toMatch(/1 node\(s\) overutilized but none under every low threshold/);
  });
});

describe('every policy', () => {
  const odd: Array<[string, Snapshot]> = [
    ['no node', snap([], [])],
    ['one node', snap([node('a', { cpu: 1 })], [container('x', 'a', { cpu: 2 }), container('y', 'a', { cpu: 2 })])],
    ['empty nodes', snap([node('a'), node('b')], [])],
    ['all-NaN windows', snap([node('a', { cpu: w(NaN), diskOps: w(NaN), diskActive: w(NaN), memUsed: NaN }), node('b', { cpu: [] })], [container('x', 'a', { cpu: w(NaN), diskOps: [], threads: w(NaN) })])],
    ['zero cores and memory', snap([node('a', { cores: 0, memoryBytes: 0, cpu: 1 }), node('b', { cores: 0, memoryBytes: 0 })], [container('x', 'a', { cpu: 1 }), container('y', 'a', { cpu: 1 })])],
    ['containers without ops on an unknown node', snap([node('a'), node('b')], [container('x', 'ghost', { cpu: 1 })])],
    ['infinite figures', snap([node('a', { cpu: Infinity, diskOps: Infinity }), node('b')], [container('x', 'a', { cpu: Infinity, diskOps: 1e308, threads: Infinity })])],
  ];
  for (const name of POLICY_NAMES) {
    it(`${name}: no crash, no NaN, on odd clusters`, () => {
      for (const [, s] of odd) {
        const r = run(name, s, { thresholds: { 'low-node-utilization': { lowCpu: 1, lowMemory: 1, lowDiskActive: 1 } } });
        for (const m of r.moves) {
          expect(allFinite(m.figures) && Number.isFinite(m.score)).toBe(true);
          expect(m.reason).not.toMatch(/NaN|Infinity|undefined/);
        }
      }
    });
    it(`${name}: is deterministic on a large synthetic cluster`, () => {
      const s = syntheticSnapshot(60, 600, 3);
      const a = run(name, s, { thresholds: { balance: { minImprovement: 0 } } });
      const b = run(name, s, { thresholds: { balance: { minImprovement: 0 } } });
      expect(b.moves).toEqual(a.moves);
      for (const m of a.moves) expect(allFinite(m.figures)).toBe(true);
    });
  }
  it('uses the defaults of settings.ts as the policies declare them', () => {
    for (const name of POLICY_NAMES) expect(POLICIES[name].defaults).toEqual(expect.objectContaining(DEFAULT_SETTINGS.thresholds[name]));
  });
});
