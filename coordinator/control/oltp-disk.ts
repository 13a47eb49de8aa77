/**
 * The thesis's OLTP policy, its six conditions and published thresholds: the candidate is
 * the container with the highest disk ops; it moves to the host with the least disk ops if
 *   1. the candidate has enough samples (missing fraction <= 0.02),
 *   2. (max host disk ops - min) / max >= the disk ops reward threshold 0.35,
 *   3. the busiest host's disk active fraction >= the disk active threshold 0.15,
 *   4. busiest host's disk active - the least busy host's >= the disk active reward threshold 0.15,
 *   5. the candidate's disk ops >= baseline 8000 x baseline threshold 0.005 (40 ops/s),
 *   6. the target is not the candidate's own host.
 * Otherwise the next candidate; with none left the decision step tries the fallback policy
 * (CPU greedy for multi-threaded containers by default). Hosts are those the filters judge.
 * The target is the host the filters allow with the most free disk ops (its IOPS, declared
 * or read from its measured activity, minus its ops): on equal disks that is the thesis's
 * host with the least disk ops; with disks of different speeds, the one with the most room.
 * A candidate alone using its host's disk (90% of its ops or more: no neighbour would take
 * what it frees) moves only when the target's free ops exceed what it does by the disk ops
 * reward threshold (it would do more there); else it would only move the load.
 */
import { aloneWith, diskCapacity, EPS, fmt, liveHosts, loadsOf, missingFraction, type NodeLoad, pct } from './load';
import { overButWaiting } from './cpu-greedy';
import type { Move, Policy, PolicyInput } from './policy';
import { OltpDiskSchema, type OltpDiskSettings, validatorFor } from './settings';
import type { Snapshot } from './snapshot';

/** Candidates examined before giving up (the busiest first). */
const MAX_CANDIDATES = 64;

interface HostFigures {
  maxOps: NodeLoad;
  minOps: NodeLoad;
  maxActive: NodeLoad;
  minActive: NodeLoad;
  opsGap: number;
  activeGap: number;
}


function hostFigures(hosts: NodeLoad[]): HostFigures | null {
  if (hosts.length < 2) return null;
  let maxOps = hosts[0], minOps = hosts[0], maxActive = hosts[0], minActive = hosts[0];
  for (const n of hosts) {
    if (n.diskOps > maxOps.diskOps) maxOps = n;
    if (n.diskOps < minOps.diskOps) minOps = n;
    if (n.diskActive > maxActive.diskActive) maxActive = n;
    if (n.diskActive < minActive.diskActive) minActive = n;
  }
  const opsGap = maxOps.diskOps > 0 ? (maxOps.diskOps - minOps.diskOps) / maxOps.diskOps : 0;
  return { maxOps, minOps, maxActive, minActive, opsGap, activeGap: maxActive.diskActive - minActive.diskActive };
}

/** Conditions 2-4 (they hold for the cluster, whichever the candidate), or the failed one as a sentence. */
function clusterFails(f: HostFigures, s: OltpDiskSettings): string | null {
  if (f.opsGap + EPS < s.opsRewardThreshold)
    return `disk ops gap (${fmt(f.maxOps.diskOps)} on ${f.maxOps.view.id} vs ${fmt(f.minOps.diskOps)} on ${f.minOps.view.id}) is ${pct(f.opsGap)}, under the disk ops reward threshold ${pct(s.opsRewardThreshold)}`;
  if (f.maxActive.diskActive + EPS < s.activeThreshold) return `the busiest disk (${f.maxActive.view.id}) is active ${pct(f.maxActive.diskActive)}, under the disk active threshold ${pct(s.activeThreshold)}`;
  if (f.activeGap + EPS < s.activeRewardThreshold)
    return `disk activity gap (${pct(f.maxActive.diskActive)} on ${f.maxActive.view.id} vs ${pct(f.minActive.diskActive)} on ${f.minActive.view.id}) is ${pct(f.activeGap)}, under the disk active reward threshold ${pct(s.activeRewardThreshold)}`;
  return null;
}

function over(loads: Map<string, NodeLoad>, s: OltpDiskSettings): Set<string> {
  const hosts = liveHosts(loads);
  const f = hostFigures(hosts);
  const out = new Set<string>();
  if (!f || clusterFails(f, s)) return out;
  for (const n of hosts) if (n.diskOps > 0 && (n.diskOps - f.minOps.diskOps) / n.diskOps + EPS >= s.opsRewardThreshold && n.diskActive + EPS >= s.activeThreshold) out.add(n.view.id);
  return out;
}

export const oltpDisk: Policy<OltpDiskSettings> = {
  name: 'oltp-disk',
  summary: "Thesis: the container with the most disk ops goes to the host with the least, under the thesis's six conditions; next candidate, then the fallback policy.",
  defaults: OltpDiskSchema.parse({}),
  validate: validatorFor(OltpDiskSchema),
  overThreshold: (snapshot: Snapshot, s) => over(loadsOf(snapshot), s),
  propose({ snapshot, settings: s, allowed, movable, relievable, note }: PolicyInput<OltpDiskSettings>): Move[] {
    const loads = loadsOf(snapshot);
    const hosts = liveHosts(loads);
    const f = hostFigures(hosts);
    if (!f) {
      note?.('oltp-disk: fewer than two connected hosts with samples');
      return [];
    }
    const failed = clusterFails(f, s);
    if (failed) {
      note?.(`oltp-disk: ${failed}`);
      return [];
    }
    const floor = s.baselineOps * s.baselineThreshold;
    // Targets by free disk ops, most first; a host of unknown speed is taken as fast as the candidate's (nothing says they differ).
    const orders = new Map<number, { host: NodeLoad; free: number }[]>();
    const targetsFor = (srcDisk: number) => {
      let o = orders.get(srcDisk);
      if (!o) {
        o = hosts.map((h) => ({ host: h, free: diskCapacity(h, srcDisk) - h.diskOps })).sort((a, b) => b.free - a.free || a.host.diskOps - b.host.diskOps || (a.host.view.id < b.host.view.id ? -1 : 1));
        orders.set(srcDisk, o);
      }
      return o;
    };
    const candidates = hosts.flatMap((n) => n.containers.map((c) => ({ c, host: n }))).sort((a, b) => b.c.diskOps - a.c.diskOps || (a.c.view.herdId < b.c.view.herdId ? -1 : 1));
    const failures: string[] = [];
    const waiting: string[] = [];
    for (const { c, host } of candidates.slice(0, MAX_CANDIDATES)) {
      const miss = missingFraction(c.view.diskOps);
      if (miss > s.missingSamples) {
        failures.push(`${c.view.name}: misses ${pct(miss)} of its disk samples (most ${pct(s.missingSamples)})`);
        continue;
      }
      if (c.diskOps + EPS < floor) {
        // Candidates are sorted: no later one reaches the baseline either.
        failures.push(`${c.view.name}: ${fmt(c.diskOps)} disk ops/s, under the baseline ${fmt(s.baselineOps)} x ${fmt(s.baselineThreshold)} = ${fmt(floor)}`);
        break;
      }
      if (!relievable(host.view.id)) {
        if (!waiting.includes(host.view.id)) waiting.push(host.view.id);
        continue;
      }
      const own = movable(c.view.herdId);
      if (own) {
        failures.push(`${c.view.name}: may not move (${own.filter})`);
        continue;
      }
      const choice = targetsFor(diskCapacity(host)).find((t) => t.host === host || allowed(c.view.herdId, t.host.view.id) === null);
      const dst = choice?.host;
      if (!choice || !dst || dst === host) {
        failures.push(`${c.view.name}: ${dst ? `its own host ${host.view.id} has the most free disk ops of the hosts it may go to` : 'no host may take it (see refusals)'}`);
        continue;
      }
      if (aloneWith(c.diskOps, host.diskOps) && choice.free + EPS < c.diskOps * (1 + s.opsRewardThreshold)) {
        failures.push(`${c.view.name}: alone using ${host.view.id}'s disk, and ${dst.view.id} has ${fmt(Math.max(0, choice.free))} ops/s free, not ${pct(s.opsRewardThreshold)} more than its ${fmt(c.diskOps)}: it would only move the load`);
        continue;
      }
      const gap = host.diskOps > 0 ? (host.diskOps - dst.diskOps) / host.diskOps : 0;
      if (gap + EPS < s.opsRewardThreshold) {
        failures.push(`${c.view.name}: its host ${host.view.id} (${fmt(host.diskOps)} ops/s) vs ${dst.view.id} (${fmt(dst.diskOps)}) is a ${pct(gap)} gap, under ${pct(s.opsRewardThreshold)}`);
        continue;
      }
      if (failures.length) note?.(`oltp-disk: candidates passed over: ${failures.slice(0, 5).join('; ')}`);
      return [
        {
          herdId: c.view.herdId,
          from: host.view.id,
          to: dst.view.id,
          score: c.diskOps,
          policy: 'oltp-disk',
          reason:
            `${c.view.name} has the most disk ops of the movable containers (${fmt(c.diskOps)}/s >= baseline ${fmt(floor)}, ${pct(1 - miss)} of its samples); ${dst.view.id} has the most free disk ops (${fmt(Math.max(0, choice.free))}/s; ${fmt(dst.diskOps)}/s done vs ${fmt(host.diskOps)} on ${host.view.id}, a ${pct(gap)} gap >= ${pct(s.opsRewardThreshold)}); ` +
            `busiest disk ${f.maxActive.view.id} active ${pct(f.maxActive.diskActive)} >= ${pct(s.activeThreshold)}, activity gap ${pct(f.activeGap)} >= ${pct(s.activeRewardThreshold)}`,
          figures: { containerDiskOps: c.diskOps, sourceDiskOps: host.diskOps, targetDiskOps: dst.diskOps, targetFreeOps: Math.max(0, choice.free), opsGap: gap, maxDiskActive: f.maxActive.diskActive, activeGap: f.activeGap, missing: miss },
        },
      ];
    }
    if (waiting.length) note?.(overButWaiting('oltp-disk', waiting));
    note?.(`oltp-disk: no candidate left${failures.length ? `: ${failures.slice(0, 5).join('; ')}` : ''}`);
    return [];
  },
};
