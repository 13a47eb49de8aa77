/**
 * The forecast's features: one list of names, in the order of a model's input columns, and
 * the one function that computes them. The dataset export (a row per container per grid
 * step), `herd model train --csv` on such a dataset, and the forecast driver (a row per
 * candidate node) all go through here, so a model always reads what it was trained on.
 *
 * A row describes a container and a host: the container's own metrics and the host's, the
 * host's counted WITHOUT the container ("what else runs there"), so the container's current
 * host and a candidate host are described alike and a model can learn "same container,
 * bigger or quieter host". The CPU a container gets is not a feature: it is an outcome of
 * its host, like its ops (fed to the model it would predict today's ops everywhere). What it
 * wants is one: its CPU demand, read as load.ts's demand model does (on a saturated host, up
 * to its threads and its limit; not capped by its host's cores, which are a feature of
 * their own: on a bigger host it may get more), but only for the containers at the host's
 * water level: CFS shares a saturated host max-min fairly, so a container that gets less
 * than the busiest one there (under HELD_BACK of it) is not held back, it wants what it
 * gets (an idle container on a busy host is idle, not short of a core per thread). The disk
 * alike: the disk ops/s a container did are an outcome of its host's disk (on a saturated one,
 * its share: fed to a model they gave today's ops on every node), so what it would get on a
 * host (ctr_expected_disk_ops) is the feature, its own disk ops/s a column kept for study.
 * Pure: numbers in, numbers out.
 */
import { loadsOf, threadDemand, type ContainerLoad, type NodeLoad } from '../control/load';
import type { ContainerView, Snapshot } from '../control/snapshot';

export const FEATURES = [
  /** Cores the container wants: what it uses, or, when it is among the busiest of a saturated host (held back by the sharing), up to its threads and CPU limit (not its host's cores: it may go to a bigger one). */
  'ctr_cpu_demand',
  /** Its threads (cgroup pids). */
  'ctr_threads',
  /** Its memory in use, bytes. */
  'ctr_mem_bytes',
  /** Its CPU limit in cores; 0 = none. */
  'ctr_cpu_limit',
  /** The host's cores (a capped node: its quota). */
  'host_cores',
  /** The host's memory, bytes. */
  'host_mem_bytes',
  /** Cores busy on the host with everything but this container. */
  'host_other_cpu',
  /** Disk operations per second on the host, this container's excepted. */
  'host_other_disk_ops',
  /** Containers on the host besides this one. */
  'host_other_containers',
  /**
   * Cores it would get there, as CFS shares a host max-min fairly: its demand, up to what the
   * others leave free or an equal share, whichever is more. Trees cannot derive a min or a
   * ratio of columns, and without it a model has only the hosts and neighbours it has seen.
   */
  'ctr_expected_cpu',
  /** The host's disk operations per second (its `herd.disk_iops` label); missing when not declared. */
  'host_disk_iops',
  /**
   * Disk ops/s it would get there, ctr_expected_cpu's disk counterpart: what it does, or, held
   * back on a saturated disk (at the disk's water level), whatever the host's disk gives it;
   * up to what the others leave free or an equal share. Missing when the host's disk is not declared.
   */
  'ctr_expected_disk_ops',
] as const;

export type FeatureName = (typeof FEATURES)[number];

/** A host at or over this CPU use (fraction of its cores) is saturated: its containers may want more than they get (balance's default). */
export const SATURATION = 0.9;
/** On a saturated host, a container getting at least this share of the busiest container's CPU is held back by the sharing. */
export const HELD_BACK = 0.9;

/** A container's figures at one grid step (or a window's means). NaN = not measured. */
export interface ContainerFigures {
  /** Cores used. */
  cpu: number;
  threads: number;
  memBytes: number;
  diskOps: number;
  /** CPU limit in cores, 0 = none. */
  cpuLimit: number;
}

/** The container's own host: how busy, and the most CPU one of its containers got (the water level of the sharing). */
export interface OwnHost {
  /** CPU busy, fraction of its cores. */
  cpu: number;
  /** Cores used by its busiest container (NaN: unknown, every container counts as held back). */
  level: number;
  /** Disk busy, fraction of its declared disk ops/s (NaN or absent: not declared, never saturated). */
  disk?: number;
  /** Disk ops/s of its busiest container on disk (the disk's water level). */
  diskLevel?: number;
}

/** A host's figures at one grid step (or a window's means), everything on it counted. NaN = not measured. */
export interface HostFigures {
  cores: number;
  memBytes: number;
  /** CPU busy, fraction of its cores (0..1). */
  cpu: number;
  diskOps: number;
  /** Containers running on it. */
  containers: number;
  /** Disk operations per second it serves (declared); 0, NaN or absent: unknown. */
  diskIops?: number;
}

const nonNegative = (x: number) => (Number.isNaN(x) ? NaN : Math.max(0, x));

/**
 * The feature vector, in FEATURES' order, of container `c` seen on `own` (its host now: its
 * demand is read there) placed on `host`. `onHost`: whether `host`'s figures include `c`
 * (its own host) or not (a candidate): `c`'s share is taken out of the former.
 */
export function featureVector(c: ContainerFigures, own: OwnHost, host: HostFigures, onHost: boolean): number[] {
  const load = { view: { limits: { cpus: c.cpuLimit } } as ContainerView, cpu: c.cpu, threads: Number.isFinite(c.threads) ? c.threads : 0, diskOps: c.diskOps } satisfies ContainerLoad;
  const heldBack = own.cpu >= SATURATION && !(c.cpu < HELD_BACK * own.level);
  const demand = Number.isNaN(c.cpu) ? NaN : threadDemand(load, heldBack);
  const mine = onHost ? 1 : 0;
  const share = (x: number) => (onHost ? (Number.isNaN(x) ? 0 : x) : 0);
  const otherCpu = nonNegative(host.cpu * host.cores - share(c.cpu));
  const others = nonNegative(host.containers - mine);
  const expected = Math.min(demand, Math.max(host.cores - otherCpu, host.cores / (others + 1)));
  const iops = host.diskIops !== undefined && host.diskIops > 0 ? host.diskIops : NaN;
  const otherDisk = nonNegative(host.diskOps - share(c.diskOps));
  // held back on its own saturated disk: nothing bounds what it would do on another but that disk
  const diskHeld = (own.disk ?? NaN) >= SATURATION && c.diskOps > 0 && !(c.diskOps < HELD_BACK * (own.diskLevel ?? NaN));
  const diskDemand = diskHeld ? Infinity : c.diskOps;
  const expectedDisk = Math.min(diskDemand, Math.max(iops - (Number.isNaN(otherDisk) ? 0 : otherDisk), iops / (others + 1)));
  return [
    demand,
    c.threads,
    c.memBytes,
    c.cpuLimit,
    host.cores,
    host.memBytes,
    otherCpu,
    nonNegative(host.diskOps - share(c.diskOps)),
    others,
    nonNegative(expected),
    iops,
    nonNegative(expectedDisk),
  ];
}

/**
 * The loads of a snapshot, computed once per snapshot object: the controller asks for every
 * container's rows against one snapshot (5,000 containers x a whole-snapshot pass was 24 s
 * per evaluation at 500 nodes). Snapshots are not changed after they are built.
 */
const loadsCache = new WeakMap<Snapshot, Map<string, NodeLoad>>();
function loadsOnce(snapshot: Snapshot): Map<string, NodeLoad> {
  let loads = loadsCache.get(snapshot);
  if (!loads) loadsCache.set(snapshot, (loads = loadsOf(snapshot)));
  return loads;
}

/** A host as its own containers see it: how busy, and its water levels of CPU and disk. */
export function ownHostOf(n: NodeLoad): OwnHost {
  let level = 0;
  let diskLevel = 0;
  for (const x of n.containers) {
    if (x.cpu > level) level = x.cpu;
    if (x.diskOps > diskLevel) diskLevel = x.diskOps;
  }
  return { cpu: n.cpu, level, disk: n.view.diskIops > 0 ? n.diskOps / n.view.diskIops : NaN, diskLevel };
}

const hostOf = (n: NodeLoad): HostFigures => ({ cores: n.view.cores, memBytes: n.view.memoryBytes, cpu: n.cpu, diskOps: n.diskOps, containers: n.containers.length, diskIops: n.view.diskIops });

/**
 * What the forecast driver feeds a model: one row per node of `nodeIds` (row-major float32)
 * for container `herdId` of the snapshot, from its window means (load.ts), with the columns
 * `names` (the model's inputs: all of FEATURES, or the subset it was trained on). Unknown
 * container: null. An unknown node gets a row of NaN (a caller should not ask).
 */
export function forecastRows(snapshot: Snapshot, herdId: string, nodeIds: readonly string[], names: readonly string[] = FEATURES): Float32Array | null {
  const m = forecastMatrix(snapshot, [herdId], nodeIds, names);
  return m.herdIds.length ? m.x : null;
}

/** Rows per batch when a whole snapshot is forecast (a few MB of float32, one buffer reused): the driver's onnxruntime calls, the simulator's predict. */
export const FORECAST_BATCH_ROWS = 1 << 16;

/** Per snapshot: each container's view, its host's load and its own load, and each node's figures, computed once. */
interface Prepared {
  byId: Map<string, { view: ContainerView; own: NodeLoad; load: ContainerLoad; ownHost: OwnHost }>;
  hosts: Map<string, HostFigures>;
}
const preparedCache = new WeakMap<Snapshot, Prepared>();
function prepared(snapshot: Snapshot): Prepared {
  let p = preparedCache.get(snapshot);
  if (p) return p;
  const loads = loadsOnce(snapshot);
  const ownHosts = new Map<string, OwnHost>();
  const hosts = new Map<string, HostFigures>();
  const byId: Prepared['byId'] = new Map();
  for (const [id, n] of loads) {
    ownHosts.set(id, ownHostOf(n));
    hosts.set(id, hostOf(n));
    for (const load of n.containers) byId.set(load.view.herdId, { view: load.view, own: n, load, ownHost: ownHosts.get(id)! });
  }
  preparedCache.set(snapshot, (p = { byId, hosts }));
  return p;
}

/** Column indices of `names` in FEATURES; an unknown name is an error naming it. */
function columnsOf(names: readonly string[]): Int32Array {
  const pick = names.map((n) => (FEATURES as readonly string[]).indexOf(n));
  const unknown = names.filter((_, i) => pick[i] < 0);
  if (unknown.length) throw new Error(`no such feature: ${unknown.join(', ')} (the features are ${FEATURES.join(', ')})`);
  return Int32Array.from(pick);
}

/**
 * forecastRows for many containers at once, into one row-major matrix (`into` reused when big
 * enough): for each container of `herdIds` found in the snapshot (`herdIds` of the answer, in
 * order), one row per node of `nodeIds`. The snapshot's loads, each host's figures and each
 * container's own host are computed once, not once per row: the driver asks for every
 * container of a 500-node cluster on every node each round.
 */
export function forecastMatrix(snapshot: Snapshot, herdIds: readonly string[], nodeIds: readonly string[], names: readonly string[] = FEATURES, into?: Float32Array): { x: Float32Array; herdIds: string[] } {
  const { byId, hosts } = prepared(snapshot);
  const pick = columnsOf(names);
  const F = names.length;
  const found = herdIds.filter((id) => byId.has(id));
  const size = found.length * nodeIds.length * F;
  const x = into && into.length >= size ? into.subarray(0, size) : new Float32Array(size);
  const nodeHosts = nodeIds.map((id) => hosts.get(id));
  let o = 0;
  for (const herdId of found) {
    const { view, own, load, ownHost } = byId.get(herdId)!;
    const figures: ContainerFigures = { cpu: load.cpu, threads: load.threads, memBytes: view.memoryBytes, diskOps: load.diskOps, cpuLimit: view.limits.cpus };
    for (let r = 0; r < nodeIds.length; r++, o += F) {
      const host = nodeHosts[r];
      if (!host) {
        x.fill(NaN, o, o + F);
        continue;
      }
      const v = featureVector(figures, ownHost, host, nodeIds[r] === own.view.id);
      for (let j = 0; j < F; j++) x[o + j] = v[pick[j]];
    }
  }
  return { x, herdIds: found };
}
