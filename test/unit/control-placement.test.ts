import { describe, expect, it } from 'vitest';
import { place, type RecentPlacement } from '../../coordinator/control/placement';
import { DEFAULT_SETTINGS } from '../../coordinator/control/settings';
import { GiB, MiB, node, NOW, snap } from '../fixtures/control-snapshot';

const cluster = () => snap([node('a', { cores: 2, cpu: 0.5 }), node('b', { cores: 4, cpu: 0.5 }), node('c', { cores: 2, cpu: 0.1 })], []);
const req = (o: Partial<{ cpus: number; memoryBytes: number; node: string }> = {}) => ({ cpus: 0, memoryBytes: 0, ...o });

describe('initial placement', () => {
  it('picks the node with the most room after the placement, and says why', () => {
    const p = place(cluster(), DEFAULT_SETTINGS, req({ cpus: 1 }), []);
    if (!p.ok) throw new Error(p.error);
    // c: (0.2 + 1) / 2 = 60% CPU; b: (2 + 1) / 4 = 75%; a: (1 + 1) / 2 = 100%.
    expect(p.ranked.map((r) => r.node)).toEqual(['c', 'b', 'a']);
    expect(p.node).toBe('c');
    expect(p.reason).toMatch(/^best of 3 node\(s\) by measured plus expected load: c: CPU 10% of 2 cores measured \+ 1 expected = 60%; memory 15.6% after; score 0.\d+; next b: /);
  });

  it('expects the default use of a container without limits', () => {
    const p = place(cluster(), DEFAULT_SETTINGS, req(), []);
    expect(p.ok && p.ranked.find((r) => r.node === 'c')!.reason).toContain('+ 0.5 expected = 35%');
  });

  it('counts what was placed since the last samples, so a burst spreads', () => {
    const s = snap([node('a', { cores: 4, cpu: 0 }), node('b', { cores: 4, cpu: 0 }), node('c', { cores: 2, cpu: 0 })], []);
    const recent: RecentPlacement[] = [];
    const chosen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = place(s, DEFAULT_SETTINGS, req({ cpus: 1, memoryBytes: 512 * MiB }), recent);
      if (!p.ok) throw new Error(p.error);
      chosen.push(p.node);
      recent.push({ node: p.node, atMs: NOW, cpus: 1, memoryBytes: 512 * MiB });
    }
    // By capacity: a, b (25% each), then the 2-core c (50%, as a and b would be, with less memory), then a.
    expect(chosen).toEqual(['a', 'b', 'c', 'a']);
    // A placement older than the node's newest sample is already in its figures.
    const old: RecentPlacement[] = [{ node: 'a', atMs: NOW - 60_000, cpus: 4, memoryBytes: 0 }];
    const p = place(s, DEFAULT_SETTINGS, req({ cpus: 1 }), old);
    expect(p.ok && p.node).toBe('a');
  });

  it('refuses nodes that are draining, stale, disconnected, too small or full, with reasons', () => {
    const s = snap(
      [
        node('dr', { draining: true }),
        node('st', { lastSampleMs: NOW - 600_000 }),
        node('dc', { connected: false }),
        node('small', { cores: 1 }),
        node('full', { memoryBytes: 1 * GiB, memUsed: 0.9 * GiB }),
      ],
      [],
    );
    const p = place(s, DEFAULT_SETTINGS, req({ cpus: 2, memoryBytes: 512 * MiB }), []);
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.code).toBe('no-room');
    expect(p.refused).toEqual([
      { node: 'dc', reason: 'node dc is not connected to the coordinator' },
      { node: 'dr', reason: 'dr is draining' },
      { node: 'full', reason: 'it needs 512 MiB, full has 102 MiB free of 1024 MiB' },
      { node: 'small', reason: "its CPU limit 2 cores is more than small's 1 cores" },
      { node: 'st', reason: "node st's newest sample is 600 s old, over the 180 s stale limit" },
    ]);
    expect(p.error).toMatch(/^no node can take it \(2 cores, 512 MiB\): dc: node dc is not connected/);
  });

  it('forces a node with --node, still refusing one that cannot take it; an unknown node is an argument error', () => {
    const p = place(cluster(), DEFAULT_SETTINGS, req({ node: 'a' }), []);
    expect(p.ok && p.node).toBe('a');
    expect(p.ok && p.reason).toMatch(/^forced to a \(--node\); a: CPU 50%/);
    const unknown = place(cluster(), DEFAULT_SETTINGS, req({ node: 'zz' }), []);
    expect(unknown).toMatchObject({ ok: false, code: 'unknown-node', error: 'node: unknown node "zz" (nodes: a, b, c)' });
    const s = snap([node('a', { draining: true }), node('b')], []);
    expect(place(s, DEFAULT_SETTINGS, req({ node: 'a' }), [])).toMatchObject({ ok: false, code: 'no-room', error: 'node a cannot take it: a: a is draining' });
    // A forced node with stale figures is still usable: the person chose it.
    const st = snap([node('a', { lastSampleMs: NOW - 600_000 }), node('b')], []);
    expect(place(st, DEFAULT_SETTINGS, req({ node: 'a' }), []).ok).toBe(true);
  });

  it('tolerates an empty cluster and NaN figures', () => {
    expect(place(snap([], []), DEFAULT_SETTINGS, req(), [])).toMatchObject({ ok: false, code: 'no-room', error: expect.stringContaining('the cluster has no node') });
    const p = place(snap([node('a', { cpu: NaN, memUsed: NaN }), node('b', { cores: 0 })], []), DEFAULT_SETTINGS, req({ cpus: NaN, memoryBytes: NaN }), []);
    expect(p.ok).toBe(true);
    if (p.ok) for (const r of p.ranked) expect(Number.isFinite(r.score) && !/NaN/.test(r.reason)).toBe(true);
  });
});
