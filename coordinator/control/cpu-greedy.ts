/**
 * The thesis's CPU greedy policy: the busiest container on the most loaded host moves to the
 * least loaded host when the hotter of the two after the move is lower than the source before
 * by at least the reward threshold. Uses host and container CPU, the host's container count
 * and reward thresholds, as the thesis lists; the values are ours (it published none).
 * Next candidates: the next busiest container when one may not move, the next hottest host.
 */
import { EPS, fmt, loadsOf, type NodeLoad, pct } from './load';
import type { Move, Policy, PolicyInput } from './policy';
import { CpuGreedySchema, type CpuGreedySettings, validatorFor } from './settings';
import type { Snapshot } from './snapshot';

/** Containers tried per source host before the next host (the busiest first). */
export const CANDIDATES_PER_HOST = 8;

/** The least loaded node that could take containers (connected, not draining, able to restore). */
export function coolest(loads: Iterable<NodeLoad>): number {
  let min = Infinity;
  for (const n of loads) if (n.view.connected && !n.view.draining && n.view.criu && n.view.lastSampleMs > 0) min = Math.min(min, n.cpu);
  return Number.isFinite(min) ? min : 0;
}

export const byLoadDesc = (a: NodeLoad, b: NodeLoad) => b.cpu - a.cpu || (a.view.id < b.view.id ? -1 : 1);
export const byLoadAsc = (a: NodeLoad, b: NodeLoad) => a.cpu - b.cpu || (a.view.id < b.view.id ? -1 : 1);

/** The note for hosts over a policy's threshold that hysteresis still holds back. */
export function overButWaiting(policy: string, nodes: string[]): string {
  const shown = nodes.slice(0, 5).join(', ') + (nodes.length > 5 ? ` and ${nodes.length - 5} more` : '');
  return `${policy}: ${shown} over the threshold but held back: not yet over for enough evaluations in a row, or not judged (stale data)`;
}

function over(loads: Map<string, NodeLoad>, s: CpuGreedySettings): Set<string> {
  const min = coolest(loads.values());
  const out = new Set<string>();
  for (const n of loads.values()) if (n.cpu + EPS >= s.hostActiveThreshold && n.cpu - min + EPS >= s.rewardThreshold && n.containers.length >= s.minContainersOnSource) out.add(n.view.id);
  return out;
}

export const cpuGreedy: Policy<CpuGreedySettings> = {
  name: 'cpu-greedy',
  summary: 'Thesis: the busiest container of the most loaded host goes to the least loaded host when the gain clears the reward threshold.',
  defaults: CpuGreedySchema.parse({}),
  validate: validatorFor(CpuGreedySchema),
  overThreshold: (snapshot: Snapshot, s) => over(loadsOf(snapshot), s),
  propose({ snapshot, settings: s, allowed, relievable, note }: PolicyInput<CpuGreedySettings>): Move[] {
    const loads = loadsOf(snapshot);
    const hot = over(loads, s);
    const sources = [...loads.values()].filter((n) => hot.has(n.view.id)).sort(byLoadDesc);
    const targets = [...loads.values()].sort(byLoadAsc);
    if (sources.length === 0) note?.(`cpu-greedy: no host at or over ${pct(s.hostActiveThreshold)} CPU with ${s.minContainersOnSource}+ containers and ${pct(s.rewardThreshold)} above the least loaded host`);
    const moves: Move[] = [];
    const waiting: string[] = [];
    let nearMiss: { gain: number; text: string } | undefined;
    for (const src of sources) {
      if (!relievable(src.view.id)) {
        waiting.push(src.view.id);
        continue;
      }
      const candidates = [...src.containers].sort((a, b) => b.cpu - a.cpu || (a.view.herdId < b.view.herdId ? -1 : 1)).slice(0, CANDIDATES_PER_HOST);
      for (const c of candidates) {
        const dst = targets.find((t) => t.view.id !== src.view.id && allowed(c.view.herdId, t.view.id) === null);
        if (!dst) continue;
        const srcAfter = src.cpu - c.cpu / Math.max(src.view.cores, 1e-9);
        const dstAfter = dst.cpu + c.cpu / Math.max(dst.view.cores, 1e-9);
        const gain = src.cpu - Math.max(srcAfter, dstAfter);
        if (gain + EPS < s.rewardThreshold) {
          if (!nearMiss || gain > nearMiss.gain) nearMiss = { gain, text: `${c.view.name} (${fmt(c.cpu)} cores) from ${src.view.id} to ${dst.view.id}` };
          continue;
        }
        moves.push({
          herdId: c.view.herdId,
          from: src.view.id,
          to: dst.view.id,
          score: gain,
          policy: 'cpu-greedy',
          reason:
            `${c.view.name} is the busiest movable container (${fmt(c.cpu)} cores) on ${src.view.id}, the most loaded host (CPU ${pct(src.cpu)} of ${fmt(src.view.cores)} cores, ${src.containers.length} containers); ` +
            `on ${dst.view.id} (CPU ${pct(dst.cpu)} of ${fmt(dst.view.cores)} cores) the hotter of the two would be at ${pct(Math.max(srcAfter, dstAfter))}: gain ${pct(gain)} >= reward threshold ${pct(s.rewardThreshold)}`,
          figures: { containerCores: c.cpu, sourceCpu: src.cpu, targetCpu: dst.cpu, sourceCpuAfter: srcAfter, targetCpuAfter: dstAfter, gain },
        });
        break;
      }
    }
    if (waiting.length) note?.(overButWaiting('cpu-greedy', waiting));
    if (!moves.length && nearMiss) note?.(`cpu-greedy: the best move, ${nearMiss.text}, would gain ${pct(nearMiss.gain)}, under the ${pct(s.rewardThreshold)} reward threshold`);
    return moves.sort((a, b) => b.score - a.score);
  },
};
