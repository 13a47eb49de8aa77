/**
 * What a policy sees: the cluster at one instant, with each series resampled onto one time
 * grid (the monitor is asynchronous; the thesis resampled too). The controller builds it
 * from the coordinator's sample store, the simulator from its virtual cluster: the policies,
 * filters and decision step cannot tell the two apart, which is the point.
 *
 * Windows are plain arrays, oldest first, one value per grid step of `stepMs`, NaN where no
 * sample fell in a step. Units are fixed here so every policy reads them the same way.
 */

/** A resampled window: oldest first, NaN for a step without a sample. */
export type Window = readonly number[];

export interface NodeView {
  id: string;
  /** 'x64' | 'arm64' ...: CRIU cannot move a process between architectures. */
  arch: string;
  /** Cores the node offers containers (a capped bed node: its quota in cores). */
  cores: number;
  memoryBytes: number;
  /** Disk operations per second the node can serve; 0 when unknown. */
  diskIops: number;
  labels: Readonly<Record<string, string>>;
  /** The node can checkpoint and restore (CRIU present and working). */
  criu: boolean;
  draining: boolean;
  /** Connected to the coordinator now: a disconnected node is neither source nor target. */
  connected: boolean;
  /** Time of the node's newest sample (ms); 0 if none. Older than the stale limit: not judged. */
  lastSampleMs: number;
  /** Host CPU busy, fraction of all cores, 0..1 (host.cpu.total / 100). */
  cpu: Window;
  /** Host disk operations per second (read + write). */
  diskOps: Window;
  /** Fraction of time the busiest disk was active, 0..1 (host.disk.active_pct / 100). */
  diskActive: Window;
  /** Memory in use, bytes. */
  memUsedBytes: Window;
}

export interface ContainerView {
  herdId: string;
  name: string;
  /** The node it runs on now. */
  node: string;
  labels: Readonly<Record<string, string>>;
  /** Limits as created (0 = none). */
  limits: { cpus: number; memoryBytes: number };
  /** Memory it uses now, bytes: what a migration must move. */
  memoryBytes: number;
  /** Size of its overlay upper dir (the diff layer a migration moves); 0 when unknown. */
  upperDirBytes: number;
  /** Time of its newest sample (ms); 0 if none. */
  lastSampleMs: number;
  /** CPU used, in cores (1.5 = one and a half cores busy). */
  cpu: Window;
  /** Disk operations per second (blkio read + write ops). */
  diskOps: Window;
  /** Threads (cgroup pids count): how many cores it could use. */
  threads: Window;
  /** Application operations per second (from its log or scrape); all NaN when it reports none. */
  ops: Window;
  /** A migration of it is under way. */
  migrating: boolean;
}

export type MigrationOutcome = 'RUNNING' | 'SUCCEEDED' | 'ROLLED_BACK' | 'FAILED';

/** A recent migration and what it cost, as measured: the cost model learns from these. */
export interface MigrationView {
  migrationId: string;
  herdId: string;
  from: string;
  to: string;
  startedMs: number;
  /** 0 while running. */
  endedMs: number;
  outcome: MigrationOutcome;
  /** The container was frozen this long (ms). */
  downtimeMs: number;
  /** Bytes moved (checkpoint + file system). */
  bytes: number;
  /** The container's memory when it moved, bytes (to fit downtime against size). */
  memoryBytes: number;
}

export interface Snapshot {
  /** The instant the snapshot describes (ms since the epoch, or the simulator's virtual time). */
  nowMs: number;
  /** Grid step of every window (ms); a window's last value is the step ending at nowMs. */
  stepMs: number;
  nodes: readonly NodeView[];
  containers: readonly ContainerView[];
  /** Migrations of the recent past (the longest of the filters' windows) and those running. */
  migrations: readonly MigrationView[];
  /**
   * What the model in force predicts (coordinator/forecast): absent when no model is in
   * force. The controller fills it with one batched onnxruntime call per container, the
   * simulator with its own model; the forecast policy reads only this, so it stays pure.
   */
  forecast?: ForecastView;
}

/** Predicted application ops/s of each container on each node, by one model version. */
export interface ForecastView {
  /** The model's version (shown in every decision that used it). */
  modelVersion: string;
  /** herdId -> node id -> predicted ops/s; a missing pair means "no forecast": never a move. */
  opsByNode: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /**
   * The model's error on later rows it did not learn from (validation RMSE, ops/s); absent or
   * NaN when unknown (a loaded model). A predicted gain under it cannot be told from that error.
   */
  errorOps?: number;
}
