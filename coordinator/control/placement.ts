/**
 * Where `herd run` creates a new container: the nodes the filters allow (connected, fresh
 * data, not draining, room for its memory and its CPU limit), ranked by a load-aware score
 * in the manner of Koordinator's LoadAwareScheduling: for CPU and memory (weights 1 and 1),
 * the fraction of the node still free after the placement, averaged. What the node is
 * expected to carry is its measured use, plus the new container's expected use (its limits,
 * or the settings' defaults), plus what was placed on it since its newest samples (they do
 * not show yet: without this term a burst of runs all lands on the node that looked idle).
 * `--node` forces a node, still refused when it is disconnected, draining or has no room.
 */
import { makeFilters } from './filters';
import { fmt, loadsOf, mib, pct } from './load';
import type { ControlSettings } from './settings';
import type { Snapshot } from './snapshot';

export interface PlacementRequest {
  /** CPU limit in cores (0 = none: the settings' defaultCpus is expected). */
  cpus: number;
  /** Memory limit in bytes (0 = none: the settings' defaultMemoryBytes is expected). */
  memoryBytes: number;
  /** Forced node ('' = choose). */
  node?: string;
}

/** A container the coordinator placed recently (the driver keeps these for a few sample periods). */
export interface RecentPlacement {
  node: string;
  atMs: number;
  cpus: number;
  memoryBytes: number;
}

export interface RankedNode {
  node: string;
  /** 0..1, higher is better: the mean free fraction of CPU and memory after the placement. */
  score: number;
  reason: string;
}

export type Placement =
  | { ok: true; node: string; reason: string; ranked: RankedNode[]; refused: Array<{ node: string; reason: string }> }
  | { ok: false; /** 'unknown-node' (INVALID_ARGUMENT) or 'no-room' (FAILED_PRECONDITION). */ code: 'unknown-node' | 'no-room'; error: string; refused: Array<{ node: string; reason: string }> };

export function place(snapshot: Snapshot, settings: ControlSettings, req: PlacementRequest, recent: readonly RecentPlacement[]): Placement {
  const filters = makeFilters(snapshot, settings);
  const loads = loadsOf(snapshot);
  const cpus = req.cpus > 0 && Number.isFinite(req.cpus) ? req.cpus : settings.placement.defaultCpus;
  const mem = req.memoryBytes > 0 && Number.isFinite(req.memoryBytes) ? req.memoryBytes : settings.placement.defaultMemoryBytes;
  const forced = req.node ?? '';
  if (forced && !loads.has(forced))
    return { ok: false, code: 'unknown-node', error: `node: unknown node "${forced}" (nodes: ${[...loads.keys()].sort().join(', ') || 'none'})`, refused: [] };

  const ranked: RankedNode[] = [];
  const refused: Array<{ node: string; reason: string }> = [];
  for (const n of [...loads.values()].sort((a, b) => (a.view.id < b.view.id ? -1 : 1))) {
    const id = n.view.id;
    if (forced && id !== forced) continue;
    // Placed since its newest samples: not in its figures yet.
    let pCpu = 0;
    let pMem = 0;
    let pCount = 0;
    for (const r of recent) if (r.node === id && r.atMs >= n.view.lastSampleMs) (pCpu += r.cpus), (pMem += r.memoryBytes), pCount++;
    const problem = filters.nodeProblem(id);
    const staleOnly = problem !== null && forced === id && n.view.connected; // a person forcing a node may use stale figures
    if (problem && !staleOnly) {
      refused.push({ node: id, reason: problem });
      continue;
    }
    if (n.view.draining) {
      refused.push({ node: id, reason: `${id} is draining` });
      continue;
    }
    if (req.cpus > n.view.cores) {
      refused.push({ node: id, reason: `its CPU limit ${fmt(req.cpus)} cores is more than ${id}'s ${fmt(n.view.cores)} cores` });
      continue;
    }
    const freeMem = n.view.memoryBytes - n.memUsed - pMem;
    if (mem > freeMem) {
      refused.push({ node: id, reason: `it needs ${mib(mem)}, ${id} has ${mib(Math.max(0, freeMem))} free of ${mib(n.view.memoryBytes)}${pMem ? ` (${mib(pMem)} placed since its last samples)` : ''}` });
      continue;
    }
    const cores = Math.max(n.view.cores, 1e-9);
    const cpuAfter = Math.min(1, (n.cpu * cores + pCpu + cpus) / cores);
    const memAfter = n.view.memoryBytes > 0 ? Math.min(1, (n.memUsed + pMem + mem) / n.view.memoryBytes) : 1;
    const score = (1 - cpuAfter + (1 - memAfter)) / 2;
    ranked.push({
      node: id,
      score,
      reason: `${id}: CPU ${pct(n.cpu)} of ${fmt(n.view.cores)} cores measured${pCount ? ` + ${fmt(pCpu)} cores for ${pCount} container(s) placed since its last samples` : ''} + ${fmt(cpus)} expected = ${pct(cpuAfter)}; memory ${pct(memAfter)} after; score ${fmt(score)}`,
    });
  }
  ranked.sort((a, b) => b.score - a.score || (a.node < b.node ? -1 : 1));
  if (ranked.length === 0) {
    const list = refused.map((r) => `${r.node}: ${r.reason}`).join('; ');
    return { ok: false, code: 'no-room', error: forced ? `node ${forced} cannot take it: ${list}` : `no node can take it (${fmt(cpus)} cores, ${mib(mem)}): ${list || 'the cluster has no node'}`, refused };
  }
  const best = ranked[0];
  const reason = forced ? `forced to ${forced} (--node); ${best.reason}` : `best of ${ranked.length} node(s) by measured plus expected load: ${best.reason}${ranked[1] ? `; next ${ranked[1].reason}` : ''}`;
  return { ok: true, node: best.node, reason, ranked, refused };
}
