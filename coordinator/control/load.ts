/**
 * What policies and the decision step compute from a snapshot's windows: means that ignore
 * missing steps, the host demand model (how much CPU a host's containers want, not only what
 * they get), the weighted imbalance of host load, and a move applied to a snapshot so the
 * next move of the same round is judged on the cluster as it will be.
 *
 * Everything here returns finite numbers for any input: an empty or all-NaN window has mean
 * NaN only through `meanOf`, and every caller that adds or divides goes through `finite`.
 */
import type { ContainerView, NodeView, Snapshot, Window } from './snapshot';

/** Slack for threshold comparisons: a gain of 5% computed as 0.04999999 still clears a 5% threshold. */
export const EPS = 1e-9;

/** x when it is a finite number, else d: no NaN leaves a policy. */
export const finite = (x: number, d = 0): number => (Number.isFinite(x) ? x : d);

/** Mean of the steps that have a sample; NaN when none does. */
export function meanOf(w: Window): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    if (v - v === 0) (sum += v), n++; // finite: NaN and ±Infinity give NaN
  }
  return n ? sum / n : NaN;
}

/** Fraction of steps without a sample; an empty window misses everything. */
export function missingFraction(w: Window): number {
  if (w.length === 0) return 1;
  let miss = 0;
  for (const v of w) if (!Number.isFinite(v)) miss++;
  return miss / w.length;
}

/** Newest step with a sample; NaN when none. */
export function lastOf(w: Window): number {
  for (let i = w.length - 1; i >= 0; i--) if (Number.isFinite(w[i])) return w[i];
  return NaN;
}

/** Short number for sentences: 0.734, 12.3, 8000. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return String(Math.round(x));
  return String(Number(x.toPrecision(digits)));
}
export const pct = (x: number) => `${fmt(100 * x, 3)}%`;
export const mib = (bytes: number) => `${fmt(bytes / 1048576, 3)} MiB`;

/** A container's means over the window (0 where it has no sample). */
export interface ContainerLoad {
  view: ContainerView;
  /** Cores it used, mean. */
  cpu: number;
  diskOps: number;
  /** Threads (pids), mean; 0 when unknown. */
  threads: number;
}

/** A node's means over the window, with its containers. */
export interface NodeLoad {
  view: NodeView;
  /** CPU use, fraction of its cores. */
  cpu: number;
  diskOps: number;
  diskActive: number;
  /**
   * Disk load, fraction of the node's own disk: its ops over its `diskIops` when known, else
   * the measured active fraction. Like `cpu` (cores used over its cores), so a disk-bound node
   * counts as loaded whatever its disk's speed.
   */
  disk: number;
  /** Memory in use now (newest sample), bytes. */
  memUsed: number;
  containers: ContainerLoad[];
  /** The most CPU (cores) and disk ops/s any of its containers gets: the fair-share level of a saturated host. */
  topCpu: number;
  topDiskOps: number;
}

/** Snapshots are immutable: their loads are computed once (several policies and the record read them). */
const loadCache = new WeakMap<Snapshot, Map<string, NodeLoad>>();

/** Means of every node and container, containers grouped by node (unknown nodes dropped). Read-only: shared. */
export function loadsOf(snapshot: Snapshot): Map<string, NodeLoad> {
  const cached = loadCache.get(snapshot);
  if (cached) return cached;
  const nodes = new Map<string, NodeLoad>();
  for (const n of snapshot.nodes) {
    const diskOps = finite(meanOf(n.diskOps));
    const diskActive = finite(meanOf(n.diskActive));
    nodes.set(n.id, {
      view: n,
      cpu: finite(meanOf(n.cpu)),
      diskOps,
      diskActive,
      disk: n.diskIops > 0 ? diskOps / n.diskIops : diskActive,
      memUsed: finite(lastOf(n.memUsedBytes)),
      containers: [],
      topCpu: 0,
      topDiskOps: 0,
    });
  }
  for (const c of snapshot.containers) {
    const n = nodes.get(c.node);
    if (!n) continue;
    const load = { view: c, cpu: finite(meanOf(c.cpu)), diskOps: finite(meanOf(c.diskOps)), threads: finite(meanOf(c.threads)) };
    n.containers.push(load);
    n.topCpu = Math.max(n.topCpu, load.cpu);
    n.topDiskOps = Math.max(n.topDiskOps, load.diskOps);
  }
  loadCache.set(snapshot, nodes);
  return nodes;
}

/** Hosts that can send or take containers: connected, with samples (the filters judge freshness). */
export const liveHosts = (loads: Map<string, NodeLoad>): NodeLoad[] => [...loads.values()].filter((n) => n.view.connected && n.view.lastSampleMs > 0);

/**
 * A saturated host shares its capacity fairly among its containers (CFS gives each container's
 * cgroup the same weight; the disk's scheduler alike): the ones held back all get about the
 * most any gets, and one that gets less than this fraction of it is taking what it wants
 * (an idle container is not short of CPU, whatever its thread count).
 */
export const HELD_BACK_FRACTION = 0.5;

/**
 * Cores a container wants. On a host below saturation it gets what it wants, so its use is
 * its demand; on a saturated host, a container held back (near the fair-share level) may want
 * more: up to its threads (each runnable thread can keep a core busy) and its CPU limit. Not
 * capped by its host's cores: a single-threaded container on a quarter-core node wants a
 * whole core, which a bigger node would give it (`served` caps what any node gives at its
 * cores). This is how the multi-threaded policy weighs thread counts, and how the balance
 * policy estimates recovered work.
 */
export function cpuDemand(c: ContainerLoad, host: NodeLoad, saturation: number): number {
  return threadDemand(c, host.cpu >= saturation && c.cpu > 0 && c.cpu >= HELD_BACK_FRACTION * host.topCpu);
}

/** Cores a container wants given whether it is held back: its threads and CPU limit bound it, its host's cores do not. */
export function threadDemand(c: ContainerLoad, heldBack: boolean): number {
  if (!heldBack || c.threads <= 0) return c.cpu;
  const cap = Math.min(c.threads, c.view.limits.cpus > 0 ? c.view.limits.cpus : Infinity);
  return Math.max(c.cpu, finite(cap, c.cpu));
}

/** Cores a host's containers want, in all: what it uses plus what its containers want beyond what they get. */
export function hostCpuDemand(n: NodeLoad, saturation: number): number {
  let extra = 0;
  if (n.cpu >= saturation) for (const c of n.containers) extra += cpuDemand(c, n, saturation) - c.cpu;
  return n.cpu * n.view.cores + extra;
}

/**
 * A container that does this share or more of its host's use of a resource is alone with it:
 * no neighbour would take what it frees, so moving it to an equal node only moves the load.
 */
export const ALONE_SHARE = 0.9;
export const aloneWith = (use: number, hostUse: number) => use > 0 && use + EPS >= ALONE_SHARE * hostUse;

/** Cores of work served on a host given its demand (processor sharing: never above its cores). */
export const served = (cores: number, demand: number) => Math.max(0, Math.min(cores, demand));

/**
 * Work a move recovers (cores, or disk ops/s): what source and target serve after the move,
 * minus before, each serving at most its capacity. A lone container moved to an equal idle
 * node recovers nothing (it only moves the load); to a bigger one, the difference.
 */
export function recoveredWork(srcCapacity: number, srcDemand: number, dstCapacity: number, dstDemand: number, moved: number): number {
  const before = served(srcCapacity, srcDemand) + served(dstCapacity, dstDemand);
  const after = served(srcCapacity, srcDemand - moved) + served(dstCapacity, dstDemand + moved);
  return finite(after - before);
}

/** Below this active fraction a disk's speed cannot be read from its ops (ops / active is noise). */
export const MIN_ACTIVE_TO_ESTIMATE = 0.05;

/**
 * Disk ops/s a node can serve: its `diskIops` when declared, else its measured ops over its
 * active fraction when its disk is busy enough to tell, else `otherwise` (a caller comparing
 * two hosts passes the other's: nothing says they differ).
 */
export function diskCapacity(n: NodeLoad, otherwise = 0): number {
  if (n.view.diskIops > 0) return n.view.diskIops;
  if (n.diskActive >= MIN_ACTIVE_TO_ESTIMATE && n.diskOps > 0) return n.diskOps / n.diskActive;
  return otherwise;
}

/**
 * Disk ops/s a container wants. Below saturation, what it does; on a saturated disk a
 * container held back (near the fair-share level) waits for the disk, and nothing bounds what
 * it would do on a faster one but that disk: it is taken to want `mostAnyDiskServes` (the
 * largest disk of the cluster).
 */
export function diskDemand(c: ContainerLoad, host: NodeLoad, saturation: number, mostAnyDiskServes: number): number {
  if (host.disk < saturation || !(c.diskOps > 0 && c.diskOps >= HELD_BACK_FRACTION * host.topDiskOps)) return c.diskOps;
  return Math.max(c.diskOps, mostAnyDiskServes);
}

/** Disk ops/s a host's containers want, in all (as hostCpuDemand). */
export function hostDiskDemand(n: NodeLoad, saturation: number, mostAnyDiskServes: number): number {
  if (n.disk < saturation) return n.diskOps;
  let extra = 0;
  for (const c of n.containers) extra += diskDemand(c, n, saturation, mostAnyDiskServes) - c.diskOps;
  return n.diskOps + extra;
}

/** Population SD of values; 0 for fewer than two. */
export function sd(values: readonly number[]): number {
  if (values.length < 2) return 0;
  let s = 0;
  let s2 = 0;
  for (const v of values) (s += v), (s2 += v * v);
  const m = s / values.length;
  return Math.sqrt(Math.max(0, s2 / values.length - m * m));
}

export interface ImbalanceWeights {
  cpuWeight: number;
  diskWeight: number;
}

/**
 * Weighted spread of host load (OpenStack Watcher's workload_stabilization: SD per metric,
 * weighted sum; DRS's imbalance is the SD of host load): CPU use and disk load, each over the
 * node's own capacity (`NodeLoad.disk`), of the nodes in `judged` (all when omitted).
 */
export function imbalance(loads: Map<string, NodeLoad>, w: ImbalanceWeights, judged?: (id: string) => boolean): number {
  const cpu: number[] = [];
  const disk: number[] = [];
  for (const [id, n] of loads) {
    if (judged && !judged(id)) continue;
    cpu.push(n.cpu);
    disk.push(n.disk);
  }
  const total = w.cpuWeight + w.diskWeight;
  if (total <= 0) return 0;
  return finite((w.cpuWeight * sd(cpu) + w.diskWeight * sd(disk)) / total);
}

/** Disk load a container brings to its host (fraction of the host's disk): its share of the host's ops. */
export function diskShare(c: ContainerLoad, host: NodeLoad): number {
  if (host.diskOps <= 0) return 0;
  return Math.min(host.disk, host.disk * (c.diskOps / host.diskOps));
}

const mapWindow = (w: Window, f: (v: number, i: number) => number): number[] => w.map((v, i) => (Number.isFinite(v) ? f(v, i) : v));
/** Aligns a container's window to a node's (same grid, both end at nowMs). */
const at = (w: Window, i: number, len: number) => finite(w[w.length - len + i]);

/**
 * The snapshot as it will be once `herdId` runs on `to`: its CPU, disk and memory leave its
 * node's windows and join the target's (CPU rescaled by the cores of each, disk activity by
 * the IOPS of each where declared), it is marked
 * migrating and a running migration is added, so filters and pacing see it.
 */
export function applyMove(snapshot: Snapshot, herdId: string, to: string): Snapshot {
  const c = snapshot.containers.find((x) => x.herdId === herdId);
  const src = c && snapshot.nodes.find((n) => n.id === c.node);
  const dst = snapshot.nodes.find((n) => n.id === to);
  if (!c || !src || !dst || src.id === dst.id) return snapshot;
  // Disk activity per op: 1 / its IOPS where declared; else the source's measured ratio (nothing says the disks differ).
  const srcOpsMean = finite(meanOf(src.diskOps));
  const measuredPerOp = srcOpsMean > 0 ? finite(meanOf(src.diskActive)) / srcOpsMean : src.diskIops > 0 ? 1 / src.diskIops : 0;
  const perOp = (n: NodeView) => (n.diskIops > 0 ? 1 / n.diskIops : measuredPerOp);
  const shift = (n: NodeView, sign: number): NodeView => ({
    ...n,
    cpu: mapWindow(n.cpu, (v, i) => Math.min(1, Math.max(0, v + (sign * at(c.cpu, i, n.cpu.length)) / Math.max(n.cores, 1e-9)))),
    diskOps: mapWindow(n.diskOps, (v, i) => Math.max(0, v + sign * at(c.diskOps, i, n.diskOps.length))),
    diskActive: mapWindow(n.diskActive, (v, i) => Math.min(1, Math.max(0, v + sign * perOp(n) * at(c.diskOps, i, n.diskActive.length)))),
    memUsedBytes: mapWindow(n.memUsedBytes, (v) => Math.max(0, v + sign * c.memoryBytes)),
  });
  return {
    ...snapshot,
    nodes: snapshot.nodes.map((n) => (n.id === src.id ? shift(n, -1) : n.id === dst.id ? shift(n, 1) : n)),
    containers: snapshot.containers.map((x) => (x.herdId === herdId ? { ...x, node: to, migrating: true } : x)),
    migrations: [
      ...snapshot.migrations,
      { migrationId: `planned-${herdId}`, herdId, from: src.id, to, startedMs: snapshot.nowMs, endedMs: 0, outcome: 'RUNNING', downtimeMs: 0, bytes: 0, memoryBytes: c.memoryBytes },
    ],
  };
}
