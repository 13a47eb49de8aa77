/**
 * The simulator's state between events, shared by the engine's parts: the cluster (nodes and
 * the containers on them, in arrival order), running migrations, the event queue, and what a
 * run accumulates. The engine (engine.ts) owns the loop; node-share.ts, migrate.ts and
 * observe.ts act on this state. Pure data: no I/O, no clock.
 */
import type { Move } from '../control/policy';
import type { MigrationView, Snapshot } from '../control/snapshot';
import type { CloudSimVm } from './contention';
import { EventQueue } from './heap';
import type { Accounting, RunMetrics } from './metrics';
import type { SimContainer, SimSpec } from './model';

export interface Controller {
  readonly name: string;
  /** Window the controller judges on (ms); default: the scenario's windowSteps. */
  readonly windowMs?: number;
  /** The controller's own schedule (Herd's settings carry one); default: the scenario's. */
  readonly periodMs?: number;
  readonly firstAfterMs?: number;
  /** Moves to make now, in order; the engine skips one whose container is already moving or is not on `from`. */
  evaluate(snapshot: Snapshot): readonly Move[];
}

export interface MigrationEvent {
  atMs: number;
  endMs: number;
  container: string;
  from: string;
  to: string;
  ok: boolean;
  downtimeMs: number;
}

export interface SimResult {
  metrics: RunMetrics;
  /** Per sample tick: time, each node's utilization, ops rate and the ideal's. */
  series: { tMs: number[]; nodeUtil: Float32Array[]; ops: number[]; ideal: number[] };
  migrations: MigrationEvent[];
  nodeIds: string[];
}

export interface Mig {
  id: string;
  c: number;
  from: number;
  to: number;
  startMs: number;
  freezeMs: number;
  endMs: number;
  fails: boolean;
  /** Targets of CloudSim's earlier move of this container in the same round: each holds 10% until the end. */
  via: number[];
}

/** Whether node n is a target of migration m (its last or an earlier one of the same round). */
export const incoming = (m: Mig | null, n: number) => !!m && (m.to === n || m.via.includes(n));

export interface CState {
  spec: SimContainer;
  node: number;
  demand: number;
  want: number;
  iopsWant: number;
  got: number;
  iopsGot: number;
  ops: number;
  mig: Mig | null;
  frozen: boolean;
  leftAt: Map<number, number>;
  cpuWin: Float64Array;
  diskWin: Float64Array;
  opsWin: Float64Array;
}

export interface NState {
  cap: number;
  /** Containers on the node in arrival order (with CloudSim contention, also those migrating in). */
  list: number[];
  util: number;
  allocated: number;
  requested: number;
  diskOps: number;
  migCpu: number;
  utilWin: Float64Array;
  diskWin: Float64Array;
  activeWin: Float64Array;
  memWin: Float64Array;
}

export type Ev = { kind: 'freeze' | 'end'; m: Mig };

export interface World {
  spec: SimSpec;
  /** CloudSim's contention model (its scheduler, migrating VMs listed on both hosts). */
  cloudsim: boolean;
  nodes: NState[];
  cs: CState[];
  acc: Accounting;
  queue: EventQueue<Ev>;
  /** Migrations the controller sees (running, and ended within its horizon). */
  recent: MigrationView[];
  /** Every migration that ended, for the result. */
  migrations: MigrationEvent[];
  rnd: () => number;
  byId: Map<string, number>;
  nodeIndex: Map<string, number>;
  migSeq: number;
  /** Sample slots the windows hold (W) and the controller is shown. */
  windowSlots: number;
  shown: number;
  /** Samples recorded so far. */
  samples: number;
  /** The largest PE of the cluster: a thread's most. */
  maxPe: number;
  vmBuf: CloudSimVm[];
}

export function nanWin(w: number): Float64Array {
  return new Float64Array(w).fill(NaN);
}
