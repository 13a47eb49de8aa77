/**
 * The thesis's CPU greedy policy for multi-threaded containers: as CPU greedy, with each
 * container's thread (pid) count telling how many cores it could use when its host is
 * saturated, weighed against the target's free cores. The move taken is the one that
 * recovers the most work: cores served after the move (source and target, processor
 * sharing, each at most its cores) minus before, over the source's cores, must reach the
 * reward threshold. So a lone container leaves a saturated small node for a bigger one that
 * is idle (it gets more cores there), never for one of the same size (it only moves the load).
 * Values ours (the thesis published none for this policy).
 */
import { byLoadDesc, coolest, overButWaiting } from './cpu-greedy';
import { cpuDemand, EPS, fmt, hostCpuDemand, loadsOf, type NodeLoad, pct, recoveredWork } from './load';
import type { Move, Policy, PolicyInput } from './policy';
import { CpuGreedyMtSchema, type CpuGreedyMtSettings, validatorFor } from './settings';
import type { Snapshot } from './snapshot';

/** Containers tried per source host (the most wanting first). */
const CANDIDATES_PER_HOST = 8;

function over(loads: Map<string, NodeLoad>, s: CpuGreedyMtSettings): Set<string> {
  const min = coolest(loads.values());
  const out = new Set<string>();
  for (const n of loads.values()) {
    if (n.containers.length < s.minContainersOnSource || n.cpu < s.hostActiveThreshold) continue;
    const wanted = hostCpuDemand(n, s.saturation) / Math.max(n.view.cores, 1e-9);
    if (wanted - min >= s.rewardThreshold && (n.cpu >= s.saturation || n.cpu - min >= s.rewardThreshold)) out.add(n.view.id);
  }
  return out;
}

export const cpuGreedyMt: Policy<CpuGreedyMtSettings> = {
  name: 'cpu-greedy-mt',
  summary: "Thesis: CPU greedy weighing each container's threads against the target's free cores; moves the container whose move recovers the most work.",
  defaults: CpuGreedyMtSchema.parse({}),
  validate: validatorFor(CpuGreedyMtSchema),
  overThreshold: (snapshot: Snapshot, s) => over(loadsOf(snapshot), s),
  propose({ snapshot, settings: s, allowed, relievable, note }: PolicyInput<CpuGreedyMtSettings>): Move[] {
    const loads = loadsOf(snapshot);
    const hot = over(loads, s);
    const sources = [...loads.values()].filter((n) => hot.has(n.view.id)).sort(byLoadDesc);
    if (sources.length === 0) note?.(`cpu-greedy-mt: no host at or over ${pct(s.hostActiveThreshold)} CPU whose containers want ${pct(s.rewardThreshold)} more than the least loaded host has in use`);
    const demand = new Map<string, number>();
    const demandOf = (n: NodeLoad) => {
      let d = demand.get(n.view.id);
      if (d === undefined) demand.set(n.view.id, (d = hostCpuDemand(n, s.saturation)));
      return d;
    };
    const free = (n: NodeLoad) => n.view.cores - demandOf(n);
    const targets = [...loads.values()].sort((a, b) => free(b) - free(a) || (a.view.id < b.view.id ? -1 : 1));
    const moves: Move[] = [];
    const waiting: string[] = [];
    let nearMiss: { ratio: number; text: string } | undefined;
    for (const src of sources) {
      if (!relievable(src.view.id)) {
        waiting.push(src.view.id);
        continue;
      }
      const wants = (c: (typeof src.containers)[number]) => cpuDemand(c, src, s.saturation);
      const candidates = [...src.containers].sort((a, b) => wants(b) - wants(a) || (a.view.herdId < b.view.herdId ? -1 : 1)).slice(0, CANDIDATES_PER_HOST);
      let best: Move | undefined;
      for (const c of candidates) {
        const dst = targets.find((t) => t.view.id !== src.view.id && allowed(c.view.herdId, t.view.id) === null);
        if (!dst) continue;
        const d = wants(c);
        const gain = recoveredWork(src.view.cores, demandOf(src), dst.view.cores, demandOf(dst), d);
        const ratio = gain / Math.max(src.view.cores, 1e-9);
        if (ratio + EPS < s.rewardThreshold) {
          if (!nearMiss || ratio > nearMiss.ratio) nearMiss = { ratio, text: `${c.view.name} (wants ${fmt(d)} cores, ${fmt(c.threads)} threads) from ${src.view.id} to ${dst.view.id} (${fmt(Math.max(0, free(dst)))} cores free)` };
          continue;
        }
        if (best && best.score >= ratio) continue;
        best = {
          herdId: c.view.herdId,
          from: src.view.id,
          to: dst.view.id,
          score: ratio,
          policy: 'cpu-greedy-mt',
          reason:
            `${c.view.name} on ${src.view.id} (CPU ${pct(src.cpu)} of ${fmt(src.view.cores)} cores, its containers want ${fmt(demandOf(src))} cores) uses ${fmt(c.cpu)} cores with ${fmt(c.threads)} threads and could use ${fmt(d)}; ` +
            `${dst.view.id} has ${fmt(Math.max(0, free(dst)))} of ${fmt(dst.view.cores)} cores free: the move recovers ${fmt(gain)} cores of work, ${pct(ratio)} of the source's cores >= reward threshold ${pct(s.rewardThreshold)}`,
          figures: { containerCores: c.cpu, containerThreads: c.threads, containerDemand: d, sourceCpu: src.cpu, sourceDemand: demandOf(src), targetFreeCores: free(dst), recoveredCores: gain, gain: ratio },
        };
      }
      if (best) moves.push(best);
    }
    if (waiting.length) note?.(overButWaiting('cpu-greedy-mt', waiting));
    if (!moves.length && nearMiss) note?.(`cpu-greedy-mt: the best move, ${nearMiss.text}, would recover ${pct(nearMiss.ratio)} of the source's cores, under the ${pct(s.rewardThreshold)} reward threshold`);
    return moves.sort((a, b) => b.score - a.score);
  },
};
