/**
 * What the simulator runs: nodes, containers with demand over time, and the rules of the
 * world (contention, migration cost, failure rate). Scenario files (scenario.ts) and the
 * trace loader (planetlab.ts) both produce a SimSpec; the engine (engine.ts) runs it.
 *
 * Units: CPU in MIPS-like units where 1000 = one reference core (CloudSim's MIPS, so its
 * setup runs on the same doubles); time in ms; memory in bytes.
 */
import type { PowerModel } from './power';

/** A value over time: `values[i]` holds at i * stepMs; 'linear' interpolates between samples. */
export interface Series {
  stepMs: number;
  values: ArrayLike<number>;
  interpolate: 'linear' | 'step';
}

/** Value of a series at t (ms): past the end, the last value (CloudSim's PlanetLab model too: its 289th slot repeats the 288th), or 0 with `zeroAfterEnd`. */
export function seriesAt(s: Series, tMs: number, zeroAfterEnd = false): number {
  const n = s.values.length;
  if (n === 0) return 0;
  const x = tMs / s.stepMs;
  const i = Math.floor(x);
  if (i >= n) return zeroAfterEnd ? 0 : s.values[n - 1];
  if (s.interpolate === 'step' || x === i) return s.values[i];
  const a = s.values[i];
  const b = i + 1 < n ? s.values[i + 1] : zeroAfterEnd ? 0 : a;
  return a + (b - a) * (x - i);
}

export const CORE = 1000;

export interface SimNode {
  id: string;
  /** Processing elements (cores) and the speed of one, in units (1000 = a reference core). */
  pes: number;
  peUnits: number;
  memoryBytes: number;
  /** Disk operations per second the node serves; 0 = unlimited (no disk model). */
  diskIops: number;
  arch: string;
  power: PowerModel;
  labels: Record<string, string>;
}

/** How a container turns resources into application operations. */
export type OpsModel =
  | { kind: 'per-core'; opsPerCore: number }
  /** Own curve: ops per second at CPU received (cores), linear between points. */
  | { kind: 'curve'; points: ReadonlyArray<readonly [number, number]> };

export interface SimContainer {
  id: string;
  name: string;
  /** Memory (what a migration moves) and upper-dir size, bytes. */
  memoryBytes: number;
  upperDirBytes: number;
  /** Threads: it can use at most this many PEs of its node. */
  threads: number;
  /** CPU limit in units (0 = none). */
  limitUnits: number;
  /** CPU demand in units over time. */
  cpu: Series;
  /** Disk operations per second demanded (absent: none). */
  iops?: Series;
  ops: OpsModel;
  labels: Record<string, string>;
  /** Node it starts on ('' = the placement rule chooses). */
  node: string;
  /**
   * When it runs from, ms (absent: from the start, observed from the first sample). Before it,
   * it does not exist: it asks nothing and the monitor has no sample of it; its first sample
   * comes a sample period after it (a rate needs two readings of its cgroup counters).
   */
  startMs?: number;
}

export interface HerdMigrationModel {
  kind: 'herd';
  /** Downtime = baseMs + msPerMemMb * memory MB + msPerUpperMb * upper-dir MB (stop-and-copy: the container is frozen throughout). */
  baseMs: number;
  msPerMemMb: number;
  msPerUpperMb: number;
  /** Steps outside the freeze (prepare, report), ms. */
  overheadMs: number;
  /** CPU a migration takes on the source and on the target while it runs, units. */
  cpuUnits: number;
  /** Probability a migration fails and rolls back (the container resumes on its source). */
  failureRate: number;
}

export interface CloudSimMigrationModel {
  kind: 'cloudsim';
  /** Link bandwidth, Mbit/s; half of it carries the migration (CloudSim: RAM / (bw / 2)). */
  linkMbps: number;
  failureRate: number;
}

export type MigrationModel = HerdMigrationModel | CloudSimMigrationModel;

/**
 * The bed's figures (docs/migration.md, `bench/migration.ts`): a small container's diff-layer
 * migration 573 ms of downtime, 608 ms in all; 200 MB of memory 10.8 s; a 202 MB upper dir
 * moved whole costs 3392 ms more than the diff layer (1 Gbit/s: 4028 ms). Fitted lines:
 * 0.56 s + 51 ms per MB of memory + 17 ms per MB of upper dir.
 */
export const BED_MIGRATION: HerdMigrationModel = {
  kind: 'herd', baseMs: 560, msPerMemMb: 51, msPerUpperMb: 17, overheadMs: 35, cpuUnits: 500, failureRate: 0,
};

export interface SimSpec {
  nodes: SimNode[];
  containers: SimContainer[];
  durationMs: number;
  /** Monitor grid: demand is re-read and windows get a value every sampleMs. */
  sampleMs: number;
  /** Evaluation period (a multiple of sampleMs); the first evaluation at firstEvalMs. */
  periodMs: number;
  firstEvalMs: number;
  /** Window length the policies see, in samples. */
  windowSteps: number;
  /**
   * 'fair': a node's CPU shared max-min fairly among its containers (CFS with equal shares),
   * each capped by its threads and limit; disk IOPS the same. 'cloudsim': CloudSim's
   * time-shared over-subscription scheduler (proportional scaling, migrating VMs at 90% on
   * the source and 10% reserved on the target).
   */
  contention: 'fair' | 'cloudsim';
  migration: MigrationModel;
  /** Initial placement: 'cloudsim' (power-aware best fit as CloudSim's examples), 'spread' (least loaded), or 'given' (each container's node). */
  placement: 'cloudsim' | 'spread' | 'given';
  /** What the container CPU window shows: 'usage' (what it got, as the real monitor) or 'demand' (CloudSim's VMs report requested MIPS). */
  observe: 'usage' | 'demand';
  /** Host utilization above this counts as time over threshold. */
  overThreshold: number;
  /** A move back to a node the container left less than this long ago is a ping-pong. */
  pingPongMs: number;
  /** Demand past a trace's last sample: CloudSim's loader reads zero there. */
  zeroAfterEnd: boolean;
  /**
   * CloudSim 4.0's clock and bookkeeping (PowerDatacenter, PowerVm, HostDynamicWorkload), on
   * for its PlanetLab setup: its VMs are acknowledged 0.1 s in, so every update falls at
   * k x sampleMs + 100 ms (k >= 1) and a VM's history gets no value at t = 0; energy and SLA
   * count from the first update to the last one before durationMs (CloudSim integrates
   * between updates and stops at its limit); a container whose demand is 0 at an update and
   * is not migrating is removed for good (getCompletedVms: half of a PlanetLab day's VMs,
   * those with two zero samples in a row); a VM CloudSim's round moves twice (to a host that
   * its under-utilized pass then empties) counts two migrations, holds 10% on both targets
   * and ends on the second.
   */
  cloudSimClock?: boolean;
  seed: number;
}
