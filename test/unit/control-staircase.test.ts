/**
 * The control experiment's staircase in miniature, through the real decide(): three nodes of
 * 0.25 / 0.25 / 0.5 cores and 150 / 150 / 300 IOPS (bench/control-experiment.ts), three
 * containers started on n1 one per phase, then the oldest stops. Each container's measured use
 * is what the node gives it (its cores or IOPS shared equally: every workload alone saturates
 * any node, as on the bed). Each phase is evaluated several times, moves land at once, and the
 * filters see them (cooldown, ping-pong). Every policy must reach the placement a person would
 * pick in each phase - a lone container off the small node to the big idle one, a crowded node
 * relieved onto the idle small one - and then hold still: no move back, no move that only
 * moves the load.
 */
import { describe, expect, it } from 'vitest';
import { decide, initialState, type ControlState } from '../../coordinator/control/decide';
import { validateSettings, type PolicyName } from '../../coordinator/control/settings';
import type { MigrationView } from '../../coordinator/control/snapshot';
import { container, MiB, migration, node, NOW, snap } from '../fixtures/control-snapshot';

const CORES = [0.25, 0.25, 0.5];
const IOPS = [150, 150, 300];
const NODES = ['n1', 'n2', 'n3'];
const PHASES = [[0], [0, 1], [0, 1, 2], [1, 2]];
const ROUNDS_PER_PHASE = 5;
const PERIOD_MS = 6000;

type Kind = 'cpu' | 'mt' | 'disk';

/** What each running container measures on its node: the node's capacity shared equally. */
function cluster(kind: Kind, placement: number[], running: number[], nowMs: number, migrations: MigrationView[]) {
  const on = (n: number) => running.filter((c) => placement[c] === n);
  const threads = kind === 'mt' ? 4 : 1;
  const nodes = NODES.map((id, n) => {
    const k = on(n).length;
    return node(id, {
      cores: CORES[n],
      diskIops: IOPS[n],
      cpu: k && kind !== 'disk' ? 1 : k * 0.04,
      diskOps: k && kind === 'disk' ? IOPS[n] : 0,
      diskActive: k && kind === 'disk' ? 1 : 0,
      lastSampleMs: nowMs - 1000,
    });
  });
  const containers = running.map((c) => {
    const n = placement[c];
    const k = on(n).length;
    return container(`c${c + 1}`, NODES[n], {
      cpu: kind === 'disk' ? (0.04 * CORES[n]) / k : CORES[n] / k,
      diskOps: kind === 'disk' ? IOPS[n] / k : 0,
      threads,
      memoryBytes: 8 * MiB,
      lastSampleMs: nowMs - 1000,
    });
  });
  return { ...snap(nodes, containers, migrations), nowMs };
}

/** Ops the placement serves in a phase: every node with a container serves its capacity. */
const served = (kind: Kind, placement: number[], running: number[]) =>
  [...new Set(running.map((c) => placement[c]))].reduce((s, n) => s + (kind === 'disk' ? IOPS[n] : CORES[n]), 0);

function staircase(kind: Kind, policy: PolicyName) {
  const v = validateSettings({
    mode: 'auto',
    policies: [policy],
    schedule: { windowMs: PERIOD_MS, periodMs: PERIOD_MS, firstAfterMs: PERIOD_MS },
    hysteresisRounds: 1,
    filters: { cooldownMs: 4 * PERIOD_MS, backoffMs: 2 * PERIOD_MS },
  });
  if (!v.ok) throw new Error(v.error);
  const placement = [0, 0, 0];
  const migrations: MigrationView[] = [];
  const moves: string[][] = [];
  const servedPerPhase: number[] = [];
  let state: ControlState = initialState();
  let t = NOW;
  for (const [p, running] of PHASES.entries()) {
    for (let round = 0; round < ROUNDS_PER_PHASE; round++, t += PERIOD_MS) {
      const r = decide(state, cluster(kind, placement, running, t, migrations), v.settings, { term: 1, trigger: 'schedule', id: `d-${t}` });
      state = r.state;
      for (const m of r.moves) {
        const c = Number(m.herdId.slice(1)) - 1;
        placement[c] = NODES.indexOf(m.to);
        migrations.push(migration(m.herdId, m.from, m.to, { migrationId: `m-${t}-${m.herdId}`, startedMs: t, endedMs: t + 1000, memoryBytes: 8 * MiB }));
        moves.push([String(p + 1), m.herdId, m.from, m.to]);
      }
    }
    servedPerPhase.push(served(kind, placement, running));
  }
  return { moves, servedPerPhase };
}

/** Back to a node the container left earlier. */
function pingPongs(moves: string[][]): number {
  const left = new Map<string, Set<string>>();
  let n = 0;
  for (const [, c, from, to] of moves) {
    if (left.get(c)?.has(to)) n++;
    left.set(c, (left.get(c) ?? new Set()).add(from));
  }
  return n;
}

describe('the staircase of the control experiment, in miniature', () => {
  const best = { cpu: [0.5, 0.75, 1, 0.75], mt: [0.5, 0.75, 1, 0.75], disk: [300, 450, 600, 450] };
  it.each([
    ['cpu', 'cpu-greedy'],
    ['cpu', 'balance'],
    ['mt', 'cpu-greedy-mt'],
    ['mt', 'balance'],
    ['disk', 'oltp-disk'],
    ['disk', 'balance'],
  ] as const)('%s / %s: the lone container to the big node, the crowd spread, then still', (kind, policy) => {
    const { moves, servedPerPhase } = staircase(kind, policy);
    // Every phase ends on a placement that serves all the cluster can with its containers.
    expect(servedPerPhase).toEqual(best[kind]);
    // Phase 1: c1 leaves the quarter-core (150-IOPS) n1 for the idle n3, not the equal n2.
    expect(moves[0]).toEqual(['1', 'c1', 'n1', 'n3']);
    // Phase 2: c2 starts alone on n1: nothing to do. Phase 3: one of the two on n1 goes to n2.
    expect(moves.filter((m) => m[0] === '2')).toEqual([]);
    expect(moves.filter((m) => m[0] === '3')).toEqual([[expect.any(String), expect.stringMatching(/^c[23]$/), 'n1', 'n2']].map(([, c, f, t]) => ['3', c, f, t]));
    // Phase 4: c1 stopped: one of the two lone containers takes the idle big node.
    expect(moves.filter((m) => m[0] === '4')).toHaveLength(1);
    expect(moves.find((m) => m[0] === '4')?.[3]).toBe('n3');
    expect(moves).toHaveLength(3);
    expect(pingPongs(moves)).toBe(0);
  });
});
