/**
 * The thesis's CPU greedy policy: the busiest container on the most loaded host moves to the
 * host where the hotter of the two after the move is lowest (the least loaded host, its cores
 * weighed: a container's cores load a small node more than a big one) when that is lower
 * than the source before by at least the reward threshold. Uses host and container CPU, the
 * host's container count and reward thresholds, as the thesis lists; the values are ours (it
 * published none). A container alone using its host's CPU (90% of it or more: no neighbour
 * would take what it frees) moves only when the host is saturated and the target's free cores
 * exceed what it uses by the reward threshold (it would get more CPU there); otherwise moving
 * it would only move the load.
 * Next candidates: the next busiest container when one may not move, the next hottest host.
 */
import { aloneWith, EPS, fmt, loadsOf, type NodeLoad, pct } from './load';
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

/** Cores a node has free (never below 0). */
export const freeCores = (n: NodeLoad) => Math.max(0, n.view.cores * (1 - n.cpu));

/**
 * The allowed target where `cores` more would leave the lowest CPU use, from targets sorted
 * least loaded first: a node already as loaded as the best found cannot beat it, so the
 * search stops there and the filters are asked only of a target that would be better.
 */
export function lowestAfter(targets: readonly NodeLoad[], src: NodeLoad, herdId: string, cores: number, allowed: (herdId: string, to: string) => unknown): { dst: NodeLoad; after: number } | undefined {
  let best: { dst: NodeLoad; after: number } | undefined;
  for (const t of targets) {
    if (best && t.cpu >= best.after) break;
    if (t === src) continue;
    const after = t.cpu + cores / Math.max(t.view.cores, 1e-9);
    if (best && after >= best.after) continue;
    if (allowed(herdId, t.view.id) !== null) continue;
    best = { dst: t, after };
  }
  return best;
}

/** The note for hosts over a policy's threshold that hysteresis still holds back. */
export function overButWaiting(policy: string, nodes: string[]): string {
  const shown = nodes.slice(0, 5).join(', ') + (nodes.length > 5 ? ` and ${nodes.length - 5} more` : '');
  return `${policy}: ${shown} over the threshold but held back: not yet over for enough evaluations in a row, or not judged (stale data)`;
}

function over(loads: Map<string, NodeLoad>, s: CpuGreedySettings): Set<string> {
  const min = coolest(loads.values());
  const out = new Set<string>();
  for (const n of loads.values()) {
    const enough = n.containers.length >= s.minContainersOnSource && (!aloneWith(n.topCpu, n.cpu * n.view.cores) || n.cpu + EPS >= s.saturation);
    if (enough && n.cpu + EPS >= s.hostActiveThreshold && n.cpu - min + EPS >= s.rewardThreshold) out.add(n.view.id);
  }
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
    if (sources.length === 0) note?.(`cpu-greedy: no host at or over ${pct(s.hostActiveThreshold)} CPU${s.minContainersOnSource > 1 ? ` with ${s.minContainersOnSource}+ containers` : ''} and ${pct(s.rewardThreshold)} above the least loaded host (one whose CPU a lone container uses: saturated, ${pct(s.saturation)})`);
    const moves: Move[] = [];
    const waiting: string[] = [];
    let nearMiss: { gain: number; text: string } | undefined;
    let loneHeld: string | undefined;
    for (const src of sources) {
      if (!relievable(src.view.id)) {
        waiting.push(src.view.id);
        continue;
      }
      const candidates = [...src.containers].sort((a, b) => b.cpu - a.cpu || (a.view.herdId < b.view.herdId ? -1 : 1)).slice(0, CANDIDATES_PER_HOST);
      for (const c of candidates) {
        const lone = aloneWith(c.cpu, src.cpu * src.view.cores);
        const best = lowestAfter(targets, src, c.view.herdId, c.cpu, allowed);
        if (!best) continue;
        const { dst, after: dstAfter } = best;
        const srcAfter = src.cpu - c.cpu / Math.max(src.view.cores, 1e-9);
        const gain = src.cpu - Math.max(srcAfter, dstAfter);
        if (gain + EPS < s.rewardThreshold) {
          if (!nearMiss || gain > nearMiss.gain) nearMiss = { gain, text: `${c.view.name} (${fmt(c.cpu)} cores) from ${src.view.id} to ${dst.view.id}` };
          continue;
        }
        if (lone && (src.cpu + EPS < s.saturation || freeCores(dst) + EPS < c.cpu * (1 + s.rewardThreshold))) {
          loneHeld = `cpu-greedy: ${c.view.name} is alone using ${src.view.id}'s CPU (CPU ${pct(src.cpu)} of ${fmt(src.view.cores)} cores)${src.cpu + EPS < s.saturation ? `, under saturation ${pct(s.saturation)}: it gets what it wants` : `; ${dst.view.id} has ${fmt(freeCores(dst))} cores free, not ${pct(s.rewardThreshold)} more than the ${fmt(c.cpu)} it uses`}: moving it would only move the load`;
          continue;
        }
        moves.push({
          herdId: c.view.herdId,
          from: src.view.id,
          to: dst.view.id,
          score: gain,
          policy: 'cpu-greedy',
          reason:
            `${c.view.name} is the busiest movable container (${fmt(c.cpu)} cores) on ${src.view.id}, the most loaded host (CPU ${pct(src.cpu)} of ${fmt(src.view.cores)} cores, ${src.containers.length} container${lone ? '' : 's'}); ` +
            `on ${dst.view.id} (CPU ${pct(dst.cpu)} of ${fmt(dst.view.cores)} cores) the hotter of the two would be at ${pct(Math.max(srcAfter, dstAfter))}: gain ${pct(gain)} >= reward threshold ${pct(s.rewardThreshold)}` +
            (lone ? `; alone using a saturated host, it gets ${fmt(c.cpu)} cores there and ${dst.view.id} has ${fmt(freeCores(dst))} free` : ''),
          figures: { containerCores: c.cpu, sourceCpu: src.cpu, targetCpu: dst.cpu, sourceCpuAfter: srcAfter, targetCpuAfter: dstAfter, gain },
        });
        break;
      }
    }
    if (waiting.length) note?.(overButWaiting('cpu-greedy', waiting));
    if (!moves.length && loneHeld) note?.(loneHeld);
    if (!moves.length && nearMiss) note?.(`cpu-greedy: the best move, ${nearMiss.text}, would gain ${pct(nearMiss.gain)}, under the ${pct(s.rewardThreshold)} reward threshold`);
    return moves.sort((a, b) => b.score - a.score);
  },
};
