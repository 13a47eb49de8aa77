/**
 * Cluster balance with cost-benefit (beyond the thesis). Imbalance is the weighted spread of
 * host load, OpenStack Watcher's workload_stabilization measure: (wc x SD of host CPU use +
 * wd x SD of host disk load) / (wc + wd), each resource over the node's own capacity (CPU
 * over its cores, disk ops over its IOPS or its measured active fraction), so a disk-bound
 * node counts as loaded however fast its disk. A host's load, to tell sources (over the mean
 * by more than `band`) from targets (under it), is its busiest resource (the dominant share).
 * Among all single moves off sources to targets, the ones that most lower the imbalance are
 * examined best first (each in O(1) from running sums, so 5,000 containers x 500 hosts stay
 * cheap); a move is taken only when, as in VMware DRS's cost-benefit, the work it recovers
 * over the next evaluation period outweighs what it costs:
 *   gain (core-s) = period x (cores of work recovered + diskCoreEquivalent x disk work recovered)
 *   cost (core-s) = downtime x the cores the container gets now + CPU spent copying its bytes (cost.ts)
 * Work recovered follows the demand model of load.ts: on a saturated host containers want
 * up to their threads (CPU) or the largest disk (I/O); moving one frees what it took and
 * serves what it wanted elsewhere, each node serving at most its capacity. Disk work is
 * counted in disks of the source's size (150 ops/s more from a 150-IOPS node = 1 disk).
 * A balanced-looking move that recovers nothing (no host short of CPU or disk) is not worth a freeze.
 */
import { overButWaiting } from './cpu-greedy';
import { fitCost, moveCost } from './cost';
import { cpuDemand, diskCapacity, diskDemand, diskShare, fmt, hostCpuDemand, hostDiskDemand, liveHosts, loadsOf, type NodeLoad, pct, recoveredWork } from './load';
import type { Move, Policy, PolicyInput } from './policy';
import { BalanceSchema, type BalanceSettings, validatorWithPeriod } from './settings';
import type { Snapshot } from './snapshot';

/** The balance policy also needs the evaluation period (the horizon of its gain); the decision step adds it. */
export type BalancePolicySettings = BalanceSettings & { periodMs: number };

/** Best moves by imbalance drop examined against filters and cost, per evaluation. */
export const EXAMINED_MOVES = 32;

interface Sums {
  n: number;
  sx: number;
  sxx: number;
  sy: number;
  syy: number;
}

const sdOf = (n: number, s: number, ss: number) => (n < 2 ? 0 : Math.sqrt(Math.max(0, ss / n - (s / n) * (s / n))));
/** sdOf with the sum at its largest and the sum of squares at its least: a lower bound (the sum is >= 0 here). */
const sdOfAtLeast = (n: number, sMax: number, ssMin: number) => (Number.isFinite(ssMin) ? sdOf(n, sMax, ssMin) * (1 - 1e-12) : 0);

function weighted(sum: Sums, s: BalanceSettings): number {
  const w = s.cpuWeight + s.diskWeight;
  return w > 0 ? (s.cpuWeight * sdOf(sum.n, sum.sx, sum.sxx) + s.diskWeight * sdOf(sum.n, sum.sy, sum.syy)) / w : 0;
}

/** A host's load: its busiest resource of those weighed (a disk-bound node is loaded, whatever its CPU). */
const loadOf = (n: NodeLoad, s: BalanceSettings) => Math.max(s.cpuWeight > 0 ? n.cpu : 0, s.diskWeight > 0 ? n.disk : 0);

function over(hosts: NodeLoad[], s: BalanceSettings): Set<string> {
  const out = new Set<string>();
  if (hosts.length < 2) return out;
  const mean = hosts.reduce((a, n) => a + loadOf(n, s), 0) / hosts.length;
  for (const n of hosts) if (n.containers.length > 0 && loadOf(n, s) > mean + s.band) out.add(n.view.id);
  return out;
}

/**
 * Disk work a move recovers, in disks of the source's size: ops/s served after minus before
 * over the source's IOPS (0 when the source's speed is unknown: an idle disk tells nothing).
 */
function recoveredDisk(src: NodeLoad, dst: NodeLoad, c: NodeLoad['containers'][number], saturation: number, largestDisk: number): number {
  const srcDisk = diskCapacity(src);
  if (srcDisk <= 0 || c.diskOps <= 0) return 0;
  const dstDisk = diskCapacity(dst, srcDisk);
  const most = Math.max(largestDisk, srcDisk, dstDisk);
  const ops = recoveredWork(srcDisk, hostDiskDemand(src, saturation, most), dstDisk, hostDiskDemand(dst, saturation, most), diskDemand(c, src, saturation, most));
  return ops / srcDisk;
}

interface Candidate {
  drop: number;
  after: number;
  src: NodeLoad;
  dst: NodeLoad;
  c: NodeLoad['containers'][number];
}

export const balance: Policy<BalancePolicySettings> = {
  name: 'balance',
  summary: 'Beyond the thesis: the single move that most lowers the weighted spread of host CPU and disk load, taken when the work it recovers over the next period outweighs its downtime and copy cost.',
  defaults: { ...BalanceSchema.parse({}), periodMs: 150_000 },
  validate: validatorWithPeriod(BalanceSchema),
  overThreshold: (snapshot: Snapshot, s) => over(liveHosts(loadsOf(snapshot)), s),
  propose({ snapshot, settings: s, allowed, movable, relievable, note }: PolicyInput<BalancePolicySettings>): Move[] {
    const hosts = liveHosts(loadsOf(snapshot));
    if (hosts.length < 2) {
      note?.('balance: fewer than two connected hosts with samples');
      return [];
    }
    const sums: Sums = { n: hosts.length, sx: 0, sxx: 0, sy: 0, syy: 0 };
    for (const n of hosts) (sums.sx += n.cpu), (sums.sxx += n.cpu * n.cpu), (sums.sy += n.disk), (sums.syy += n.disk * n.disk);
    const before = weighted(sums, s);
    const mean = hosts.reduce((a, n) => a + loadOf(n, s), 0) / hosts.length;
    const hot = over(hosts, s);
    const waiting: string[] = [];
    const sources = hosts.filter((n) => {
      if (!hot.has(n.view.id)) return false;
      if (!relievable(n.view.id)) waiting.push(n.view.id);
      return relievable(n.view.id);
    });
    if (waiting.length) note?.(overButWaiting('balance', waiting));
    if (sources.length === 0) {
      if (!waiting.length) note?.(`balance: no host's load is more than ${pct(s.band)} above the mean ${pct(mean)} (imbalance ${fmt(before)})`);
      return [];
    }
    const targets = hosts.filter((n) => n.view.connected && !n.view.draining && n.view.criu && loadOf(n, s) < mean);

    // Top moves by imbalance drop, from running sums (only the two hosts change). This runs
    // for every (container, target) pair of a large cluster, so: the targets' figures sit in
    // flat arrays, grouped by size (cores) and within a group by CPU use, least first; the CPU
    // part of the imbalance after a move is a lower bound of the whole (the disk SD is >= 0)
    // and, within a group, grows with the target's CPU use (the sum of squares grows by
    // 2 x use x the container's share, the sum not at all), so once it leaves a move no chance
    // to make the top, no later target of the group has one: the scan of the group stops.
    // The bound is tightened by the least disk SD any target could leave (from each source's
    // minima over the targets), and the disk part is computed only where a move has a chance.
    const top: Candidate[] = [];
    const wTotal = s.cpuWeight + s.diskWeight;
    const wc = wTotal > 0 ? s.cpuWeight / wTotal : 0;
    const wd = wTotal > 0 ? s.diskWeight / wTotal : 0;
    const bySize = new Map<number, NodeLoad[]>();
    for (const t of targets) {
      const k = Math.max(t.view.cores, 1e-9);
      const g = bySize.get(k);
      if (g) g.push(t);
      else bySize.set(k, [t]);
    }
    const ordered: NodeLoad[] = [];
    const groupEnds: number[] = [];
    for (const g of bySize.values()) {
      ordered.push(...g.sort((a, b) => a.cpu - b.cpu));
      groupEnds.push(ordered.length);
    }
    const nT = ordered.length;
    const tCpu = new Float64Array(nT);
    const tDisk = new Float64Array(nT);
    const tPerCore = new Float64Array(nT);
    const tCap = new Float64Array(nT);
    for (let j = 0; j < nT; j++) {
      const t = ordered[j];
      tCpu[j] = t.cpu;
      tDisk[j] = t.disk;
      tPerCore[j] = 1 / Math.max(t.view.cores, 1e-9);
      tCap[j] = diskCapacity(t);
    }
    let kth = -Infinity; // the drop a move must beat once the top is full
    for (const src of sources) {
      const srcDisk = diskCapacity(src);
      // A disk share dy moved to target t lands as dy x r_t (r_t: the source's IOPS over t's);
      // the target's sum of squares grows by dy x 2 y_t r_t + dy^2 r_t^2 and the sum by dy r_t.
      let twoYR = Infinity;
      let r2 = Infinity;
      let rMax = 0;
      for (let j = 0; j < nT; j++) {
        const cap = tCap[j] > 0 ? tCap[j] : srcDisk;
        const r = srcDisk > 0 && cap > 0 ? srcDisk / cap : 1;
        twoYR = Math.min(twoYR, 2 * tDisk[j] * r);
        r2 = Math.min(r2, r * r);
        rMax = Math.max(rMax, r);
      }
      for (const c of src.containers) {
        if (movable(c.view.herdId)) continue; // may not move at all: recorded once
        const xs = src.cpu - c.cpu / Math.max(src.view.cores, 1e-9);
        const dys = diskShare(c, src);
        const ys = src.disk - dys;
        const sx0 = sums.sx - src.cpu + xs;
        const sxx0 = sums.sxx - src.cpu * src.cpu + xs * xs;
        const sy0 = sums.sy - src.disk + ys;
        const syy0 = sums.syy - src.disk * src.disk + ys * ys;
        const diskLeast = wd * sdOfAtLeast(sums.n, sy0 + dys * rMax, syy0 + dys * twoYR + dys * dys * r2);
        let start = 0;
        for (const end of groupEnds) {
          for (let j = start; j < end; j++) {
            const x = tCpu[j];
            const xt = x + c.cpu * tPerCore[j];
            const cpuPart = wc * sdOf(sums.n, sx0 - x + xt, sxx0 - x * x + xt * xt);
            const best = before - cpuPart - diskLeast;
            if (best < s.minImprovement || best <= kth) break;
            const y = tDisk[j];
            const dstDisk = tCap[j] > 0 ? tCap[j] : srcDisk;
            const yt = y + (srcDisk > 0 && dstDisk > 0 ? (dys * srcDisk) / dstDisk : dys);
            const after = cpuPart + wd * sdOf(sums.n, sy0 - y + yt, syy0 - y * y + yt * yt);
            const drop = before - after;
            if (drop < s.minImprovement || drop <= kth) continue;
            let i = top.length;
            while (i > 0 && top[i - 1].drop < drop) i--;
            top.splice(i, 0, { drop, after, src, dst: ordered[j], c });
            if (top.length > EXAMINED_MOVES) top.pop();
            if (top.length === EXAMINED_MOVES) kth = top[top.length - 1].drop;
          }
          start = end;
        }
      }
    }
    if (top.length === 0) {
      note?.(`balance: no single move lowers the imbalance (${fmt(before)}) by ${fmt(s.minImprovement)} or more`);
      return [];
    }

    const model = fitCost(snapshot.migrations);
    const periodS = s.periodMs / 1000;
    let largestDisk = 0;
    for (const n of hosts) largestDisk = Math.max(largestDisk, diskCapacity(n));
    let nearMiss: string | undefined;
    for (const { drop, after, src, dst, c } of top) {
      if (allowed(c.view.herdId, dst.view.id) !== null) continue;
      const d = cpuDemand(c, src, s.saturation);
      const cores = recoveredWork(src.view.cores, hostCpuDemand(src, s.saturation), dst.view.cores, hostCpuDemand(dst, s.saturation), d);
      const share = diskShare(c, src);
      const disk = recoveredDisk(src, dst, c, s.saturation, largestDisk);
      const gain = periodS * (cores + s.diskCoreEquivalent * disk);
      // While frozen the container loses the work it gets now (not what it wants).
      const cost = moveCost(model, c.view, c.cpu);
      const figures = { imbalanceBefore: before, imbalanceAfter: after, drop, recoveredCores: cores, recoveredDisk: disk, gainCoreSeconds: gain, costCoreSeconds: cost.coreSeconds, downtimeMs: cost.downtimeMs, bytes: cost.bytes };
      if (gain <= 0 || gain < s.costBenefitRatio * cost.coreSeconds) {
        nearMiss ??= `balance: the best allowed move, ${c.view.name} from ${src.view.id} to ${dst.view.id} (imbalance ${fmt(before)} -> ${fmt(after)}), would recover ${fmt(gain)} core-s over the ${fmt(periodS)} s period against a cost of ${fmt(cost.coreSeconds)} core-s x ratio ${fmt(s.costBenefitRatio)}: ${cost.reason}`;
        continue;
      }
      return [
        {
          herdId: c.view.herdId,
          from: src.view.id,
          to: dst.view.id,
          score: drop,
          policy: 'balance',
          reason:
            `moving ${c.view.name} (${fmt(c.cpu)} cores, wants ${fmt(d)}; disk ${pct(share)}) from ${src.view.id} (load ${pct(loadOf(src, s))}, mean ${pct(mean)}) to ${dst.view.id} (load ${pct(loadOf(dst, s))}) lowers the imbalance ${fmt(before)} -> ${fmt(after)}, the most of any allowed single move; ` +
            `it recovers ${fmt(gain)} core-s over the ${fmt(periodS)} s period (${fmt(cores)} cores, ${pct(disk)} disk) against ${fmt(cost.coreSeconds)} core-s of cost: ${cost.reason}`,
          figures,
        },
      ];
    }
    note?.(nearMiss ?? `balance: the ${top.length} best moves by imbalance were all refused by the filters`);
    return [];
  },
};
