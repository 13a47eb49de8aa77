/**
 * Initial placement for `herd run`, pure: which node takes a new container. Refused: a node
 * not connected, draining, without room, or - unless forced - whose data is stale (the
 * controller's limit: a load not measured lately cannot be compared). A window with gaps is
 * still used (means skip them): a placement is not a migration. Then a load-aware score,
 * lower is better (Koordinator's load-aware scheduling):
 *
 *   score = (measured CPU use + CPU placed there since its last samples + the new one's) / cores
 *
 * The new container's expected use is its limit, or the settings' default. Without the middle
 * term a burst of runs all lands on the node that looked idle: its samples have not seen
 * the first container yet when the second is placed.
 */
import { fmt, lastOf, meanOf, mib } from '../control/load';
import type { ControlSettings } from '../control/settings';
import type { Snapshot } from '../control/snapshot';

export interface PlacementRequest {
  /** Limits asked for (0 = none: the settings' defaults are expected instead). */
  cpus: number;
  memoryBytes: number;
}

/** A container placed on a node whose samples may not show it yet. */
export interface PendingPlacement {
  node: string;
  atMs: number;
  cpus: number;
  memoryBytes: number;
}

export interface NodeScore {
  nodeId: string;
  /** Expected CPU use after the placement, fraction of the node's cores (lower is better). */
  score: number;
  refused: boolean;
  reason: string;
}

/** Every node scored, best first, refused ones last. */
export function rankNodes(snapshot: Snapshot, want: PlacementRequest, pending: readonly PendingPlacement[], settings: ControlSettings, forced = ''): NodeScore[] {
  const staleAfter = settings.filters.staleAfterMs;
  const cpus = want.cpus > 0 ? want.cpus : settings.placement.defaultCpus;
  const mem = want.memoryBytes > 0 ? want.memoryBytes : settings.placement.defaultMemoryBytes;
  const out = snapshot.nodes.map((n): NodeScore => {
    const refuse = (reason: string): NodeScore => ({ nodeId: n.id, score: Infinity, refused: true, reason });
    if (!n.connected) return refuse(`node ${n.id} is not connected to the coordinator`);
    const age = snapshot.nowMs - n.lastSampleMs;
    if (n.id !== forced && (n.lastSampleMs <= 0 || age > staleAfter)) return refuse(n.lastSampleMs > 0 ? `node ${n.id}'s newest sample is ${fmt(age / 1000)} s old, over the ${fmt(staleAfter / 1000)} s stale limit` : `node ${n.id} has sent no sample yet`);
    if (n.draining) return refuse(`node ${n.id} is draining`);
    if (want.cpus > n.cores) return refuse(`a limit of ${fmt(want.cpus)} cores is more than node ${n.id}'s ${fmt(n.cores)} cores`);
    const mine = pending.filter((p) => p.node === n.id);
    const pendingCpus = mine.reduce((s, p) => s + (p.cpus > 0 ? p.cpus : settings.placement.defaultCpus), 0);
    const pendingMem = mine.reduce((s, p) => s + (p.memoryBytes > 0 ? p.memoryBytes : settings.placement.defaultMemoryBytes), 0);
    const used = lastOf(n.memUsedBytes);
    const free = n.memoryBytes - (Number.isFinite(used) ? used : 0) - pendingMem;
    if (mem > free) return refuse(`needs ${mib(mem)} of memory, node ${n.id} has ${mib(Math.max(0, free))} free${pendingMem ? ` (after ${mine.length} placement(s) not yet in its samples)` : ''}`);
    const measured = Number.isFinite(meanOf(n.cpu)) ? meanOf(n.cpu) * n.cores : 0;
    const cores = n.cores > 0 ? n.cores : 1;
    const score = (measured + pendingCpus + cpus) / cores;
    const parts = [`measured ${fmt(measured)} cores busy`];
    if (mine.length) parts.push(`${fmt(pendingCpus)} cores placed since its last samples (${mine.length})`);
    parts.push(`${fmt(cpus)} expected for this one${want.cpus > 0 ? ' (its limit)' : ' (default)'}`);
    return { nodeId: n.id, score, refused: false, reason: `${parts.join(' + ')}, of ${fmt(n.cores)} cores: ${fmt(score * 100)}% expected` };
  });
  return out.sort((a, b) => (a.refused !== b.refused ? (a.refused ? 1 : -1) : a.score - b.score || (a.nodeId < b.nodeId ? -1 : 1)));
}
