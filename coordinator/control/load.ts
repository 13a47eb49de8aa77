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
  /** Memory in use now (newest sample), bytes. */
  memUsed: number;
  containers: ContainerLoad[];
}

/** Snapshots are immutable: their loads are computed once (several policies and the record read them). */
const loadCache = new WeakMap<Snapshot, Map<string, NodeLoad>>();

/** Means of every node and container, containers grouped by node (unknown nodes dropped). Read-only: shared. */
export function loadsOf(snapshot: Snapshot): Map<string, NodeLoad> {
  const cached = loadCache.get(snapshot);
  if (cached) return cached;
  const nodes = new Map<string, NodeLoad>();
  for (const n of snapshot.nodes) {
    nodes.set(n.id, {
      view: n,
      cpu: finite(meanOf(n.cpu)),
      diskOps: finite(meanOf(n.diskOps)),
      diskActive: finite(meanOf(n.diskActive)),
      memUsed: finite(lastOf(n.memUsedBytes)),
      containers: [],
    });
  }
  for (const c of snapshot.containers) {
    nodes.get(c.node)?.containers.push({ view: c, cpu: finite(meanOf(c.cpu)), diskOps: finite(meanOf(c.diskOps)), threads: finite(meanOf(c.threads)) });
  }
  loadCache.set(snapshot, nodes);
  return nodes;
}

/** Hosts that can send or take containers: connected, with samples (the filters judge freshness). */
export const liveHosts = (loads: Map<string, NodeLoad>): NodeLoad[] => [...loads.values()].filter((n) => n.view.connected && n.view.lastSampleMs > 0);

/**
 * Cores a container wants. On a host below saturation it gets what it wants, so its use is
 * its demand; on a saturated host it may want more: up to its threads (each runnable thread
 * can keep a core busy), its CPU limit and the host's cores. This is how the multi-threaded
 * policy weighs thread counts, and how the balance policy estimates recovered work.
 */
export function cpuDemand(c: ContainerLoad, hostCores: number, hostSaturated: boolean): number {
  if (!hostSaturated || c.threads <= 0) return c.cpu;
  const cap = Math.min(c.threads, c.view.limits.cpus > 0 ? c.view.limits.cpus : Infinity, Math.max(hostCores, 0));
  return Math.max(c.cpu, cap);
}

/** Cores a host's containers want, in all: what it uses plus what its containers want beyond what they get. */
export function hostCpuDemand(n: NodeLoad, saturation: number): number {
  const saturated = n.cpu >= saturation;
  let extra = 0;
  if (saturated) for (const c of n.containers) extra += cpuDemand(c, n.view.cores, true) - c.cpu;
  return n.cpu * n.view.cores + extra;
}

/** Cores of work served on a host given its demand (processor sharing: never above its cores). */
export const served = (cores: number, demand: number) => Math.max(0, Math.min(cores, demand));

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
 * weighted sum; DRS's imbalance is the SD of host load): CPU use and disk activity of the
 * nodes in `judged` (all when omitted).
 */
export function imbalance(loads: Map<string, NodeLoad>, w: ImbalanceWeights, judged?: (id: string) => boolean): number {
  const cpu: number[] = [];
  const disk: number[] = [];
  for (const [id, n] of loads) {
    if (judged && !judged(id)) continue;
    cpu.push(n.cpu);
    disk.push(n.diskActive);
  }
  const total = w.cpuWeight + w.diskWeight;
  if (total <= 0) return 0;
  return finite((w.cpuWeight * sd(cpu) + w.diskWeight * sd(disk)) / total);
}

/** Disk activity a container brings: its share of its host's disk ops times the host's activity. */
export function diskActiveShare(c: ContainerLoad, host: NodeLoad): number {
  if (host.diskOps <= 0) return 0;
  return Math.min(host.diskActive, host.diskActive * (c.diskOps / host.diskOps));
}

const mapWindow = (w: Window, f: (v: number, i: number) => number): number[] => w.map((v, i) => (Number.isFinite(v) ? f(v, i) : v));
/** Aligns a container's window to a node's (same grid, both end at nowMs). */
const at = (w: Window, i: number, len: number) => finite(w[w.length - len + i]);

/**
 * The snapshot as it will be once `herdId` runs on `to`: its CPU, disk and memory leave its
 * node's windows and join the target's (CPU rescaled by the cores of each), it is marked
 * migrating and a running migration is added, so filters and pacing see it.
 */
export function applyMove(snapshot: Snapshot, herdId: string, to: string): Snapshot {
  const c = snapshot.containers.find((x) => x.herdId === herdId);
  const src = c && snapshot.nodes.find((n) => n.id === c.node);
  const dst = snapshot.nodes.find((n) => n.id === to);
  if (!c || !src || !dst || src.id === dst.id) return snapshot;
  const srcOpsMean = finite(meanOf(src.diskOps));
  const activePerOp = srcOpsMean > 0 ? finite(meanOf(src.diskActive)) / srcOpsMean : 0;
  const shift = (n: NodeView, sign: number): NodeView => ({
    ...n,
    cpu: mapWindow(n.cpu, (v, i) => Math.min(1, Math.max(0, v + (sign * at(c.cpu, i, n.cpu.length)) / Math.max(n.cores, 1e-9)))),
    diskOps: mapWindow(n.diskOps, (v, i) => Math.max(0, v + sign * at(c.diskOps, i, n.diskOps.length))),
    diskActive: mapWindow(n.diskActive, (v, i) => Math.min(1, Math.max(0, v + sign * activePerOp * at(c.diskOps, i, n.diskActive.length)))),
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
