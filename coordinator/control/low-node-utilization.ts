/**
 * kubernetes-sigs/descheduler's LowNodeUtilization, on measured use as Koordinator's
 * LowNodeLoad does (descheduler reads requests): a node under every `low` threshold (CPU,
 * disk activity, memory) is underutilized, a node over any `high` threshold overutilized.
 * With at least one underutilized node, containers leave an overutilized node, the largest
 * CPU user first (descheduler orders by priority and QoS, which containers here do not
 * have), for the underutilized node with the most CPU headroom, as long as the move keeps
 * that node under every `high` threshold. Nothing moves when no node is underutilized.
 */
import { fmt, liveHosts, loadsOf, type NodeLoad, pct } from './load';
import { overButWaiting } from './cpu-greedy';
import type { Move, Policy, PolicyInput } from './policy';
import { LowNodeUtilizationSchema, type LowNodeUtilizationSettings, validatorFor } from './settings';
import type { Snapshot } from './snapshot';

const memFraction = (n: NodeLoad) => (n.view.memoryBytes > 0 ? n.memUsed / n.view.memoryBytes : 0);
const isOver = (n: NodeLoad, s: LowNodeUtilizationSettings) => n.cpu > s.highCpu || n.diskActive > s.highDiskActive || memFraction(n) > s.highMemory;
const isUnder = (n: NodeLoad, s: LowNodeUtilizationSettings) => n.cpu < s.lowCpu && n.diskActive < s.lowDiskActive && memFraction(n) < s.lowMemory;
const describe = (n: NodeLoad) => `${n.view.id} (CPU ${pct(n.cpu)}, disk ${pct(n.diskActive)}, memory ${pct(memFraction(n))})`;

function over(hosts: NodeLoad[], s: LowNodeUtilizationSettings): Set<string> {
  return new Set(hosts.filter((n) => n.containers.length > 0 && isOver(n, s)).map((n) => n.view.id));
}

export const lowNodeUtilization: Policy<LowNodeUtilizationSettings> = {
  name: 'low-node-utilization',
  summary: "Baseline: descheduler's LowNodeUtilization on measured use: containers leave nodes over the high thresholds for nodes under all low thresholds.",
  defaults: LowNodeUtilizationSchema.parse({}),
  validate: validatorFor(LowNodeUtilizationSchema),
  overThreshold: (snapshot: Snapshot, s) => over(liveHosts(loadsOf(snapshot)), s),
  propose({ snapshot, settings: s, allowed, relievable, note }: PolicyInput<LowNodeUtilizationSettings>): Move[] {
    const hosts = liveHosts(loadsOf(snapshot));
    const under = hosts.filter((n) => isUnder(n, s) && !n.view.draining).sort((a, b) => (1 - b.cpu) * b.view.cores - (1 - a.cpu) * a.view.cores || (a.view.id < b.view.id ? -1 : 1));
    const overIds = over(hosts, s);
    const hot = hosts.filter((n) => overIds.has(n.view.id)).sort((a, b) => b.cpu - a.cpu || (a.view.id < b.view.id ? -1 : 1));
    if (hot.length === 0) {
      note?.(`low-node-utilization: no node over the high thresholds (CPU ${pct(s.highCpu)}, disk ${pct(s.highDiskActive)}, memory ${pct(s.highMemory)})`);
      return [];
    }
    if (under.length === 0) {
      note?.(`low-node-utilization: ${hot.length} node(s) overutilized but none under every low threshold (CPU ${pct(s.lowCpu)}, disk ${pct(s.lowDiskActive)}, memory ${pct(s.lowMemory)})`);
      return [];
    }
    const waiting: string[] = [];
    for (const src of hot) {
      if (!relievable(src.view.id)) {
        waiting.push(src.view.id);
        continue;
      }
      const candidates = [...src.containers].sort((a, b) => b.cpu - a.cpu || (a.view.herdId < b.view.herdId ? -1 : 1));
      for (const c of candidates) {
        for (const dst of under) {
          const cpuAfter = dst.cpu + c.cpu / Math.max(dst.view.cores, 1e-9);
          const memAfter = dst.view.memoryBytes > 0 ? (dst.memUsed + c.view.memoryBytes) / dst.view.memoryBytes : 1;
          if (cpuAfter > s.highCpu || memAfter > s.highMemory) continue;
          if (allowed(c.view.herdId, dst.view.id) !== null) continue;
          if (waiting.length) note?.(overButWaiting('low-node-utilization', waiting));
          return [
            {
              herdId: c.view.herdId,
              from: src.view.id,
              to: dst.view.id,
              score: src.cpu - s.highCpu,
              policy: 'low-node-utilization',
              reason: `${describe(src)} is over a high threshold (CPU ${pct(s.highCpu)}, disk ${pct(s.highDiskActive)}, memory ${pct(s.highMemory)}); its largest movable container ${c.view.name} (${fmt(c.cpu)} cores) goes to underutilized ${describe(dst)}, which stays under the high thresholds (CPU ${pct(cpuAfter)})`,
              figures: { sourceCpu: src.cpu, targetCpu: dst.cpu, targetCpuAfter: cpuAfter, containerCores: c.cpu },
            },
          ];
        }
      }
    }
    if (waiting.length) note?.(overButWaiting('low-node-utilization', waiting));
    note?.(`low-node-utilization: no container of an overutilized node fits an underutilized one under the high thresholds`);
    return [];
  },
};
