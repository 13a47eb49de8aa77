import { describe, expect, it } from 'vitest';
import { isPinned, makeFilters } from '../../coordinator/control/filters';
import { DEFAULT_SETTINGS, validateSettings, type ControlSettings } from '../../coordinator/control/settings';
import { container, GiB, migration, MiB, node, NOW, snap, w } from '../fixtures/control-snapshot';

const settings = (x: unknown = {}): ControlSettings => {
  const r = validateSettings(x);
  if (!r.ok) throw new Error(r.error);
  return r.settings;
};
const two = (o: { a?: Parameters<typeof node>[1]; b?: Parameters<typeof node>[1]; c?: Parameters<typeof container>[2] } = {}, migrations: ReturnType<typeof migration>[] = []) =>
  snap([node('a', o.a), node('b', o.b)], [container('c', 'a', { cpu: 0.5, ...o.c })], migrations);
const refusal = (s: ReturnType<typeof snap>, to = 'b', st = DEFAULT_SETTINGS) => makeFilters(s, st).allowed('c', to);

describe('filters', () => {
  it('allow a plain move', () => {
    expect(refusal(two())).toBeNull();
  });

  it('refuse a pinned container, whatever the target', () => {
    const r = refusal(two({ c: { labels: { 'herd.pin': 'true' } } }));
    expect(r).toEqual({ herdId: 'c', to: '', filter: 'pinned', reason: 'c is pinned (label herd.pin=true)' });
    expect(isPinned({ 'herd.pin': 'false' })).toBe(false);
    expect(isPinned({ 'herd.pin': '' })).toBe(false);
    expect(isPinned({ 'herd.pin': 'a' })).toBe(true);
    expect(isPinned({})).toBe(false);
  });

  it('refuse a container already migrating, by its flag or a running migration', () => {
    expect(refusal(two({ c: { migrating: true } }))?.filter).toBe('migrating');
    expect(refusal(two({}, [migration('c', 'a', 'b', { outcome: 'RUNNING', endedMs: 0 })]))?.filter).toBe('migrating');
  });

  it('refuse within the cooldown since its last move, and allow after it', () => {
    const recent = two({}, [migration('c', 'x', 'a', { endedMs: NOW - 60_000 })]);
    expect(refusal(recent)).toMatchObject({ filter: 'cooldown', reason: 'c moved 60 s ago (x to a), within its 600 s cooldown' });
    expect(refusal(two({}, [migration('c', 'x', 'a', { endedMs: NOW - 700_000 })]))).toBeNull();
  });

  it("judge a container's own rules once per snapshot: the same refusal for every target, recorded once", () => {
    const s = snap([node('a'), node('b'), node('c')], [container('c', 'a', { cpu: 0.5 })], [migration('c', 'x', 'a', { endedMs: NOW - 60_000 })]);
    const f = makeFilters(s, DEFAULT_SETTINGS);
    const first = f.allowed('c', 'b');
    expect(first?.filter).toBe('cooldown');
    expect(f.allowed('c', 'c')).toBe(first);
    expect(f.movable('c')).toBe(first);
    expect(f.refusals().filter((r) => r.filter === 'cooldown')).toHaveLength(1);
  });

  it('refuse a move back to a node it left within the ping-pong window', () => {
    const s = two({}, [migration('c', 'b', 'a', { endedMs: NOW - 900_000 })]);
    expect(refusal(s)).toMatchObject({ filter: 'ping-pong', to: 'b', reason: 'c left b 900 s ago, within the 1800 s anti-ping-pong window' });
    // Another target is fine, and after the window so is b.
    const three = snap([node('a'), node('b'), node('d')], [container('c', 'a', { cpu: 0.5 })], [migration('c', 'b', 'a', { endedMs: NOW - 900_000 })]);
    expect(makeFilters(three, DEFAULT_SETTINGS).allowed('c', 'd')).toBeNull();
    expect(refusal(two({}, [migration('c', 'b', 'a', { endedMs: NOW - 2_000_000 })]))).toBeNull();
  });

  it('back off after failures, doubling per failure in a row, up to the maximum', () => {
    const fail = (ago: number, outcome: 'FAILED' | 'ROLLED_BACK' = 'FAILED') => migration('c', 'a', 'b', { outcome, startedMs: NOW - ago - 1000, endedMs: NOW - ago });
    expect(refusal(two({}, [fail(200_000)]))).toMatchObject({ filter: 'backoff', reason: "c's last migration failed 200 s ago (1 failure(s) in a row): back-off 300 s" });
    expect(refusal(two({}, [fail(400_000)]))).toBeNull();
    // Two failures in a row: 600 s.
    expect(refusal(two({}, [fail(400_000, 'ROLLED_BACK'), fail(2_000_000)]))).toMatchObject({ filter: 'backoff', reason: expect.stringContaining('was rolled back 400 s ago (2 failure(s) in a row): back-off 600 s') });
    // Twenty failures: capped at backoffMaxMs.
    const many = Array.from({ length: 20 }, (_, i) => fail(3_000_000 + i * 1000));
    expect(refusal(two({}, many))).toMatchObject({ reason: expect.stringContaining('back-off 3600 s') });
    // A success since resets the count (and its cooldown is over).
    expect(refusal(two({}, [migration('c', 'x', 'a', { endedMs: NOW - 700_000 }), fail(800_000)]))).toBeNull();
  });

  it("refuse stale data: the container's, its node's, the target's", () => {
    expect(refusal(two({ c: { lastSampleMs: NOW - 200_000 } }))).toMatchObject({ filter: 'stale', reason: "c's newest sample is 200 s old, over the 180 s stale limit" });
    expect(refusal(two({ c: { lastSampleMs: 0 } }))).toMatchObject({ filter: 'stale', reason: 'c has no sample yet' });
    expect(refusal(two({ a: { lastSampleMs: NOW - 181_000 } }))).toMatchObject({ filter: 'stale', to: '', reason: "c is not judged: node a's newest sample is 181 s old, over the 180 s stale limit" });
    expect(refusal(two({ b: { lastSampleMs: 0 } }))).toMatchObject({ filter: 'stale', herdId: '', to: 'b', reason: 'target node b has sent no sample yet' });
  });

  it("refuse too few samples: more of the window missing than the thesis's 0.02", () => {
    expect(refusal(two({ c: { cpu: [0.5, NaN, 0.5, 0.5, 0.5, 0.5] } }))).toMatchObject({ filter: 'too-few-samples', reason: expect.stringContaining('misses 16.7% of its 6 steps, over the 2% allowed') });
    expect(refusal(two({ c: { cpu: [] } }))?.filter).toBe('too-few-samples');
    expect(refusal(two({ b: { cpu: [NaN, NaN, NaN, NaN, NaN, NaN] } }))).toMatchObject({ filter: 'too-few-samples', to: 'b' });
    // A looser threshold lets one missing step in six through.
    expect(refusal(two({ c: { cpu: [0.5, NaN, 0.5, 0.5, 0.5, 0.5] } }), 'b', settings({ filters: { maxMissingFraction: 0.2 } }))).toBeNull();
  });

  it('refuse nodes without CRIU, of another architecture, disconnected or draining', () => {
    expect(refusal(two({ a: { criu: false } }))).toMatchObject({ filter: 'no-criu', to: '', reason: "c's node a cannot checkpoint (no working CRIU)" });
    expect(refusal(two({ b: { criu: false } }))).toMatchObject({ filter: 'no-criu', to: 'b' });
    expect(refusal(two({ b: { arch: 'arm64' } }))).toMatchObject({ filter: 'arch', reason: 'target b is arm64, c runs on x64: CRIU cannot cross architectures' });
    expect(refusal(two({ b: { connected: false } }))).toMatchObject({ filter: 'disconnected', to: 'b' });
    expect(refusal(two({ b: { draining: true } }))).toMatchObject({ filter: 'draining', herdId: '', to: 'b', reason: 'target b is draining' });
  });

  it('refuse a target without room for the memory limit or, when larger, what it uses', () => {
    const full = { memoryBytes: 2 * GiB, memUsed: 1.9 * GiB };
    expect(refusal(two({ b: full, c: { limits: { cpus: 0, memoryBytes: 512 * MiB } } }))).toMatchObject({
      filter: 'no-room',
      reason: 'c needs 512 MiB (its memory limit), target b has 102 MiB free of 2048 MiB',
    });
    expect(refusal(two({ b: full, c: { memoryBytes: 300 * MiB } }))).toMatchObject({ filter: 'no-room', reason: expect.stringContaining('needs 300 MiB (what it uses)') });
    expect(refusal(two({ b: full, c: { memoryBytes: 50 * MiB } }))).toBeNull();
  });

  it('refuse unknown containers and targets, and the node it is on', () => {
    expect(makeFilters(two(), DEFAULT_SETTINGS).allowed('nope', 'b')?.filter).toBe('unknown');
    expect(refusal(two(), 'zz')).toMatchObject({ filter: 'disconnected', reason: 'target node zz is not in the cluster' });
    expect(refusal(two(), 'a')?.filter).toBe('same-node');
  });

  it('pace: migrations per node at once and cluster-wide, counting running ones', () => {
    const busy = (from: string, to: string) => migration(`other-${from}${to}`, from, to, { outcome: 'RUNNING', endedMs: 0 });
    const s = (ms: ReturnType<typeof migration>[]) => snap([node('a'), node('b'), node('x'), node('y')], [container('c', 'a', { cpu: 0.5 })], ms);
    expect(refusal(s([busy('b', 'x')]))).toMatchObject({ filter: 'pacing', herdId: '', to: 'b', reason: 'target b already takes part in 1 migration(s), the most at once is 1' });
    expect(refusal(s([busy('x', 'a')]))).toMatchObject({ filter: 'pacing', herdId: 'c', to: '', reason: 'its node a already takes part in 1 migration(s), the most at once is 1' });
    expect(refusal(s([busy('x', 'y')]))).toBeNull();
    expect(refusal(s([busy('x', 'y')]), 'b', settings({ pacing: { maxClusterWide: 1, maxMovesPerRound: 1 } }))).toMatchObject({ filter: 'pacing', reason: '1 migration(s) already run in the cluster, the most at once is 1' });
    expect(refusal(s([busy('b', 'x')]), 'b', settings({ pacing: { maxPerNode: 2 } }))).toBeNull();
  });

  it('record each refusal once, and say which nodes are judged', () => {
    const s = snap([node('a'), node('b', { draining: true }), node('z', { lastSampleMs: 0 })], [container('c', 'a', { cpu: 0.5 }), container('d', 'a', { cpu: 0.5 })]);
    const f = makeFilters(s, DEFAULT_SETTINGS);
    for (let i = 0; i < 3; i++) f.allowed('c', 'b'), f.allowed('d', 'b'), f.allowed('c', 'z');
    expect(f.refusals().map((r) => [r.herdId, r.to, r.filter])).toEqual([
      ['', 'b', 'draining'],
      ['', 'z', 'stale'],
    ]);
    expect(['a', 'b', 'z'].filter(f.judged)).toEqual(['a', 'b']);
    expect(f.nodeProblem('z')).toBe('node z has sent no sample yet');
  });

  it('tolerate NaN and missing figures without a crash', () => {
    const s = snap([node('a', { memUsed: NaN }), node('b', { memUsed: NaN, cpu: w(NaN) })], [container('c', 'a', { cpu: 0.5, memoryBytes: NaN })]);
    expect(() => makeFilters(s, DEFAULT_SETTINGS).allowed('c', 'b')).not.toThrow();
  });
});
