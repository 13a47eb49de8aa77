/**
 * Cluster balance with cost-benefit (beyond the thesis). Imbalance is the weighted spread of
 * host load, OpenStack Watcher's workload_stabilization measure: (wc x SD of host CPU use +
 * wd x SD of host disk activity) / (wc + wd). Among all single moves off hosts over the mean
 * by more than `band` to hosts under it, the ones that most lower it are examined best first
 * (each in O(1) from running sums, so 5,000 containers x 500 hosts stay cheap); a move is
 * taken only when, as in VMware DRS's cost-benefit, the work it recovers over the next
 * evaluation period outweighs what it costs:
 *   gain (core-s) = period x (cores of work recovered + diskCoreEquivalent x disk time recovered)
 *   cost (core-s) = downtime x the container's cores + CPU spent copying its bytes (cost.ts)
 * Work recovered follows the demand model of load.ts: on a saturated host containers want
 * up to their threads; moving one frees what it took and serves what it wanted elsewhere.
 * A balanced-looking move that recovers nothing (no host short of CPU) is not worth a freeze.
 */
import { recoveredCores } from './cpu-greedy-mt';
import { overButWaiting } from './cpu-greedy';
import { fitCost, moveCost } from './cost';
import { cpuDemand, diskActiveShare, fmt, hostCpuDemand, liveHosts, loadsOf, type NodeLoad, pct, served } from './load';
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

function weighted(sum: Sums, s: BalanceSettings): number {
  const w = s.cpuWeight + s.diskWeight;
  return w > 0 ? (s.cpuWeight * sdOf(sum.n, sum.sx, sum.sxx) + s.diskWeight * sdOf(sum.n, sum.sy, sum.syy)) / w : 0;
}

const loadOf = (n: NodeLoad, s: BalanceSettings) => {
  const w = s.cpuWeight + s.diskWeight;
  return w > 0 ? (s.cpuWeight * n.cpu + s.diskWeight * n.diskActive) / w : 0;
};

function over(hosts: NodeLoad[], s: BalanceSettings): Set<string> {
  const out = new Set<string>();
  if (hosts.length < 2) return out;
  const mean = hosts.reduce((a, n) => a + loadOf(n, s), 0) / hosts.length;
  for (const n of hosts) if (n.containers.length > 0 && loadOf(n, s) > mean + s.band) out.add(n.view.id);
  return out;
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
    for (const n of hosts) (sums.sx += n.cpu), (sums.sxx += n.cpu * n.cpu), (sums.sy += n.diskActive), (sums.syy += n.diskActive * n.diskActive);
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

    // Top moves by imbalance drop, from running sums (only the two hosts change).
    const top: Candidate[] = [];
    const wTotal = s.cpuWeight + s.diskWeight;
    for (const src of sources) {
      for (const c of src.containers) {
        if (movable(c.view.herdId)) continue; // may not move at all: recorded once
        const dxs = c.cpu / Math.max(src.view.cores, 1e-9);
        const dys = diskActiveShare(c, src);
        const xs = src.cpu - dxs;
        const ys = src.diskActive - dys;
        for (const dst of targets) {
          const dxt = c.cpu / Math.max(dst.view.cores, 1e-9);
          const dyt = src.view.diskIops > 0 && dst.view.diskIops > 0 ? (dys * src.view.diskIops) / dst.view.diskIops : dys;
          const xt = dst.cpu + dxt;
          const yt = dst.diskActive + dyt;
          const sx = sums.sx - src.cpu - dst.cpu + xs + xt;
          const sxx = sums.sxx - src.cpu * src.cpu - dst.cpu * dst.cpu + xs * xs + xt * xt;
          const sy = sums.sy - src.diskActive - dst.diskActive + ys + yt;
          const syy = sums.syy - src.diskActive * src.diskActive - dst.diskActive * dst.diskActive + ys * ys + yt * yt;
          const after = wTotal > 0 ? (s.cpuWeight * sdOf(sums.n, sx, sxx) + s.diskWeight * sdOf(sums.n, sy, syy)) / wTotal : 0;
          const drop = before - after;
          if (drop < s.minImprovement || (top.length === EXAMINED_MOVES && drop <= top[top.length - 1].drop)) continue;
          let i = top.length;
          while (i > 0 && top[i - 1].drop < drop) i--;
          top.splice(i, 0, { drop, after, src, dst, c });
          if (top.length > EXAMINED_MOVES) top.pop();
        }
      }
    }
    if (top.length === 0) {
      note?.(`balance: no single move lowers the imbalance (${fmt(before)}) by ${fmt(s.minImprovement)} or more`);
      return [];
    }

    const model = fitCost(snapshot.migrations);
    const periodS = s.periodMs / 1000;
    let nearMiss: string | undefined;
    for (const { drop, after, src, dst, c } of top) {
      if (allowed(c.view.herdId, dst.view.id) !== null) continue;
      const d = cpuDemand(c, src.view.cores, src.cpu >= s.saturation);
      const cores = recoveredCores(src.view.cores, hostCpuDemand(src, s.saturation), dst.view.cores, hostCpuDemand(dst, s.saturation), d);
      const share = diskActiveShare(c, src);
      const disk = served(1, src.diskActive - share) + served(1, dst.diskActive + share) - served(1, src.diskActive) - served(1, dst.diskActive);
      const gain = periodS * (cores + s.diskCoreEquivalent * disk);
      const cost = moveCost(model, c.view, d);
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
