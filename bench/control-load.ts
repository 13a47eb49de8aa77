/**
 * Host load of the capped bed nodes during a control-experiment run, sampled once a second from
 * each node's cgroups: CPU from the cpuacct of its cgroup parent (all its containers), disk from
 * the blkio.throttle.io_serviced of each container under it (v1 blkio keeps per-cgroup counts
 * only). Every node of the bed shares one machine, so /proc (herd's host metrics) cannot tell
 * them apart; the cgroups can.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed } from '../test/bed/bed';
import { nodeCpuSeconds } from '../test/bed/caps';

interface Tick { ms: number; cores: number[]; iops: number[] }

function serviced(parent: string): Map<string, number> {
  const dir = join('/sys/fs/cgroup/blkio', parent);
  const out = new Map<string, number>();
  let entries: string[] = [];
  try { entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { /* no container yet */ }
  for (const e of entries) {
    try { out.set(e, Number(/^Total (\d+)/m.exec(readFileSync(join(dir, e, 'blkio.throttle.io_serviced'), 'utf8'))?.[1] ?? 0)); } catch { /* gone */ }
  }
  return out;
}

/** Samples every second until stop(); buckets() gives the cluster's use of its capacity. */
export function nodeLoadSampler(bed: Bed, cores: readonly number[], iops: readonly number[]) {
  const ticks: Tick[] = [];
  let prev = { ms: Date.now(), cpu: bed.nodes.map((n) => nodeCpuSeconds(n.cgroupParent)), io: bed.nodes.map((n) => serviced(n.cgroupParent)) };
  const timer = setInterval(() => {
    const now = { ms: Date.now(), cpu: bed.nodes.map((n) => nodeCpuSeconds(n.cgroupParent)), io: bed.nodes.map((n) => serviced(n.cgroupParent)) };
    const dt = (now.ms - prev.ms) / 1000;
    ticks.push({
      ms: now.ms,
      cores: now.cpu.map((c, i) => Math.max(0, c - prev.cpu[i]) / dt),
      // a container that just arrived (new cgroup) counts from its second tick
      iops: now.io.map((m, i) => [...m].reduce((s, [k, v]) => s + Math.max(0, v - (prev.io[i].get(k) ?? v)), 0) / dt),
    });
    prev = now;
  }, 1000);
  const totalCores = cores.reduce((a, b) => a + b, 0);
  const totalIops = iops.reduce((a, b) => a + b, 0);
  return {
    stop: () => clearInterval(timer),
    /** Mean use of the cluster's CPU and disk capacity (0..1) in each bucket of [fromMs, toMs). */
    buckets(fromMs: number, toMs: number, bucketMs: number): { cpu: number[]; disk: number[] } {
      const n = Math.max(0, Math.floor((toMs - fromMs) / bucketMs));
      const cpu = new Array<number[]>(n).fill([]).map(() => [] as number[]);
      const disk = cpu.map(() => [] as number[]);
      for (const t of ticks) {
        const i = Math.floor((t.ms - 500 - fromMs) / bucketMs); // a tick covers the second before it
        if (i < 0 || i >= n) continue;
        cpu[i].push(t.cores.reduce((a, b) => a + b, 0) / totalCores);
        disk[i].push(t.iops.reduce((a, b) => a + b, 0) / totalIops);
      }
      const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN); // NaN: not sampled
      return { cpu: cpu.map(avg), disk: disk.map(avg) };
    },
  };
}
