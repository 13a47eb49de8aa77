/**
 * Whether a container may move now, and to where: the filters, kept apart from the policies
 * (as descheduler keeps its Evictor apart from its Balance plugins) so every refusal names
 * its rule and its numbers. Container rules come first (it may not move at all: the refusal's
 * `to` is ''), then target rules.
 *
 * Rules: pinned (label herd.pin), already migrating, cooldown since its last move, back-off
 * after a failed migration (doubling), stale data (newest sample older than the limit, for
 * the container, its node and the target), too few samples (more of the window missing than
 * the thesis's 0.02), source or target without CRIU, another architecture, target not
 * connected or draining, no move back to a node it left within the ping-pong window, and no
 * room (its memory limit, or what it uses when larger, against the target's free memory).
 * Pacing (migrations a node takes part in at once, cluster-wide) is also a rule here, fed by
 * the running migrations the snapshot lists.
 */
import { PIN_LABEL } from '../../common/labels';
import { fmt, lastOf, mib, missingFraction } from './load';
import type { Refusal } from './policy';
import type { ControlSettings } from './settings';
import type { ContainerView, MigrationView, NodeView, Snapshot } from './snapshot';

/** A container is pinned by herd.pin with any value but '' and 'false'. */
export const isPinned = (labels: Readonly<Record<string, string>>) => PIN_LABEL in labels && labels[PIN_LABEL] !== '' && labels[PIN_LABEL] !== 'false';

export interface Filters {
  /** May this container move to this node now? null = yes; otherwise the refusal (recorded). */
  allowed(herdId: string, to: string): Refusal | null;
  /** May this container move at all (container rules only)? */
  movable(herdId: string): Refusal | null;
  /** The node is fresh, connected and has enough samples: policies judge only these. */
  judged(nodeId: string): boolean;
  /** Why a node is not judged (a sentence), or null. */
  nodeProblem(nodeId: string): string | null;
  /** Every refusal seen so far, each (container, target, rule) once. */
  refusals(): Refusal[];
}

const secs = (ms: number) => `${fmt(ms / 1000)} s`;

/** Migrations of a container, newest first. */
function historyOf(migrations: readonly MigrationView[]): Map<string, MigrationView[]> {
  const by = new Map<string, MigrationView[]>();
  for (const m of migrations) {
    const l = by.get(m.herdId);
    if (l) l.push(m);
    else by.set(m.herdId, [m]);
  }
  for (const l of by.values()) l.sort((a, b) => (b.endedMs || b.startedMs) - (a.endedMs || a.startedMs));
  return by;
}

/** Migrations running per node (as source or target). */
export function runningPerNode(migrations: readonly MigrationView[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const m of migrations) {
    if (m.outcome !== 'RUNNING') continue;
    n.set(m.from, (n.get(m.from) ?? 0) + 1);
    n.set(m.to, (n.get(m.to) ?? 0) + 1);
  }
  return n;
}

export function makeFilters(snapshot: Snapshot, settings: ControlSettings): Filters {
  const f = settings.filters;
  const now = snapshot.nowMs;
  const nodes = new Map<string, NodeView>(snapshot.nodes.map((n) => [n.id, n]));
  const containers = new Map<string, ContainerView>(snapshot.containers.map((c) => [c.herdId, c]));
  const history = historyOf(snapshot.migrations);
  const running = runningPerNode(snapshot.migrations);
  let runningTotal = 0;
  for (const m of snapshot.migrations) if (m.outcome === 'RUNNING') runningTotal++;
  const recorded = new Map<string, Refusal>();
  const nodeProblems = new Map<string, string | null>();

  const refuse = (herdId: string, to: string, filter: string, reason: string): Refusal => {
    const key = `${herdId}\u0000${to}\u0000${filter}`;
    let r = recorded.get(key);
    if (!r) recorded.set(key, (r = { herdId, to, filter, reason }));
    return r;
  };

  const staleness = (lastMs: number) => (lastMs > 0 ? now - lastMs : Infinity);

  function nodeProblem(id: string): string | null {
    if (nodeProblems.has(id)) return nodeProblems.get(id)!;
    const n = nodes.get(id);
    let p: string | null = null;
    if (!n) p = `node ${id} is not in the cluster`;
    else if (!n.connected) p = `node ${id} is not connected to the coordinator`;
    else if (staleness(n.lastSampleMs) > f.staleAfterMs)
      p = n.lastSampleMs > 0 ? `node ${id}'s newest sample is ${secs(now - n.lastSampleMs)} old, over the ${secs(f.staleAfterMs)} stale limit` : `node ${id} has sent no sample yet`;
    else if (missingFraction(n.cpu) > f.maxMissingFraction) p = `node ${id}'s CPU window misses ${fmt(missingFraction(n.cpu) * 100)}% of its steps, over the ${fmt(f.maxMissingFraction * 100)}% allowed`;
    nodeProblems.set(id, p);
    return p;
  }
  const nodeRule = (p: string) => (/not connected|not in the cluster/.test(p) ? 'disconnected' : /stale|no sample/.test(p) ? 'stale' : 'too-few-samples');

  /** Rules of the target alone (any container): recorded once per node, with herdId ''. */
  const targetRefusals = new Map<string, Refusal | null>();
  function targetProblem(to: string): Refusal | null {
    if (targetRefusals.has(to)) return targetRefusals.get(to)!;
    let r: Refusal | null = null;
    const problem = nodeProblem(to);
    const t = nodes.get(to);
    if (problem) r = refuse('', to, nodeRule(problem), `target ${problem}`);
    else if (t!.draining) r = refuse('', to, 'draining', `target ${to} is draining`);
    else if (!t!.criu) r = refuse('', to, 'no-criu', `target ${to} cannot restore (no working CRIU)`);
    targetRefusals.set(to, r);
    return r;
  }

  // A snapshot is immutable, so a container's own verdict is too: judged once, not once per target tried.
  const movableMemo = new Map<string, Refusal | null>();
  function movable(herdId: string): Refusal | null {
    let r = movableMemo.get(herdId);
    if (r === undefined) movableMemo.set(herdId, (r = judgeMovable(herdId)));
    return r;
  }

  function judgeMovable(herdId: string): Refusal | null {
    const c = containers.get(herdId);
    if (!c) return refuse(herdId, '', 'unknown', `container ${herdId} is not in the snapshot`);
    if (isPinned(c.labels)) return refuse(herdId, '', 'pinned', `${c.name} is pinned (label ${PIN_LABEL}=${c.labels[PIN_LABEL]})`);
    const hist = history.get(herdId) ?? [];
    if (c.migrating || hist.some((m) => m.outcome === 'RUNNING')) return refuse(herdId, '', 'migrating', `${c.name} is already migrating`);
    const lastOk = hist.find((m) => m.outcome === 'SUCCEEDED');
    if (lastOk && now - lastOk.endedMs < f.cooldownMs)
      return refuse(herdId, '', 'cooldown', `${c.name} moved ${secs(now - lastOk.endedMs)} ago (${lastOk.from} to ${lastOk.to}), within its ${secs(f.cooldownMs)} cooldown`);
    let failures = 0;
    for (const m of hist) {
      if (m.outcome === 'SUCCEEDED') break;
      if (m.outcome === 'FAILED' || m.outcome === 'ROLLED_BACK') failures++;
    }
    if (failures > 0) {
      const lastFail = hist.find((m) => m.outcome === 'FAILED' || m.outcome === 'ROLLED_BACK')!;
      const wait = Math.min(f.backoffMaxMs, f.backoffMs * 2 ** Math.min(failures - 1, 30));
      const since = now - (lastFail.endedMs || lastFail.startedMs);
      if (since < wait)
        return refuse(herdId, '', 'backoff', `${c.name}'s last migration ${lastFail.outcome === 'FAILED' ? 'failed' : 'was rolled back'} ${secs(since)} ago (${failures} failure(s) in a row): back-off ${secs(wait)}`);
    }
    if (staleness(c.lastSampleMs) > f.staleAfterMs)
      return refuse(herdId, '', 'stale', c.lastSampleMs > 0 ? `${c.name}'s newest sample is ${secs(now - c.lastSampleMs)} old, over the ${secs(f.staleAfterMs)} stale limit` : `${c.name} has no sample yet`);
    const miss = missingFraction(c.cpu);
    if (miss > f.maxMissingFraction)
      return refuse(herdId, '', 'too-few-samples', `${c.name}'s CPU window misses ${fmt(miss * 100)}% of its ${c.cpu.length} steps, over the ${fmt(f.maxMissingFraction * 100)}% allowed (thesis's missing-samples threshold)`);
    const src = nodeProblem(c.node);
    if (src) return refuse(herdId, '', nodeRule(src), `${c.name} is not judged: ${src}`);
    const n = nodes.get(c.node)!;
    if (!n.criu) return refuse(herdId, '', 'no-criu', `${c.name}'s node ${n.id} cannot checkpoint (no working CRIU)`);
    return null;
  }

  function allowed(herdId: string, to: string): Refusal | null {
    const own = movable(herdId);
    if (own) return own;
    const c = containers.get(herdId)!;
    const src = nodes.get(c.node)!;
    if (to === c.node) return refuse(herdId, to, 'same-node', `${c.name} already runs on ${to}`);
    const targetRefusal = targetProblem(to);
    if (targetRefusal) return targetRefusal;
    const t = nodes.get(to)!;
    if (t.arch !== src.arch) return refuse(herdId, to, 'arch', `target ${to} is ${t.arch}, ${c.name} runs on ${src.arch}: CRIU cannot cross architectures`);
    const back = (history.get(herdId) ?? []).find((m) => m.outcome === 'SUCCEEDED' && m.from === to && now - m.endedMs < f.pingPongWindowMs);
    if (back) return refuse(herdId, to, 'ping-pong', `${c.name} left ${to} ${secs(now - back.endedMs)} ago, within the ${secs(f.pingPongWindowMs)} anti-ping-pong window`);
    const need = Math.max(c.limits.memoryBytes, c.memoryBytes);
    const free = t.memoryBytes - Math.max(0, lastOf(t.memUsedBytes) || 0);
    if (need > free) return refuse(herdId, to, 'no-room', `${c.name} needs ${mib(need)} (${c.limits.memoryBytes >= c.memoryBytes ? 'its memory limit' : 'what it uses'}), target ${to} has ${mib(Math.max(0, free))} free of ${mib(t.memoryBytes)}`);
    const p = settings.pacing;
    if (runningTotal >= p.maxClusterWide) return refuse('', '', 'pacing', `${runningTotal} migration(s) already run in the cluster, the most at once is ${p.maxClusterWide}`);
    const srcBusy = running.get(src.id) ?? 0;
    if (srcBusy >= p.maxPerNode) return refuse(herdId, '', 'pacing', `its node ${src.id} already takes part in ${srcBusy} migration(s), the most at once is ${p.maxPerNode}`);
    const dstBusy = running.get(to) ?? 0;
    if (dstBusy >= p.maxPerNode) return refuse('', to, 'pacing', `target ${to} already takes part in ${dstBusy} migration(s), the most at once is ${p.maxPerNode}`);
    return null;
  }

  return {
    allowed,
    movable,
    judged: (id) => nodeProblem(id) === null,
    nodeProblem,
    refusals: () => [...recorded.values()],
  };
}
