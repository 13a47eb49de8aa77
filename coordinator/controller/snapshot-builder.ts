/**
 * Builds the Snapshot a policy sees from what the coordinator holds: nodes and their
 * containers (Registry), samples (SampleStore) resampled onto one grid, and migrations.
 *
 * The grid: `steps = ceil(windowMs / stepMs)` steps ending at nowMs; a step's value is the
 * mean of the samples in it, NaN when none fell there (the monitor is asynchronous).
 *
 * A node labelled `herd.cores=N` is a slice of a machine (a capped bed node, a VM sized by
 * quota): /proc there describes the whole machine, so its CPU load is its containers' CPU
 * over its N cores instead of host.cpu.total. `herd.disk_iops=N` gives its disk capacity; the
 * machine's disk counters describe the whole machine too, so such a node's disk ops are its
 * containers' (blkio) and its disk activity those ops over its N.
 */
import { isDraining } from '../../common/labels';
import { FINAL_STATES, type MigrationRecord } from '../../common/migration-record';
import type { ContainerView, MigrationView, NodeView, Snapshot, Window } from '../control/snapshot';
import type { Migrations } from '../migrations';
import type { ContainerRecord, LabelKV, Registry } from '../registry';
import type { SampleStore } from '../samplestore';

export const CORES_LABEL = 'herd.cores';
export const DISK_IOPS_LABEL = 'herd.disk_iops';

export interface SnapshotSources {
  registry: Pick<Registry, 'list' | 'isConnected'>;
  store: Pick<SampleStore, 'range' | 'getSeries'>;
  migrations: Pick<Migrations, 'list'>;
}

export interface Grid {
  nowMs: number;
  windowMs: number;
  stepMs: number;
  /** Migrations that ended longer ago than this are left out (the filters' longest window). */
  historyMs: number;
}

/** Mean of the samples in each grid step, oldest first, NaN where a step had none. */
export function resample(samples: Iterable<[number, number]>, nowMs: number, steps: number, stepMs: number): number[] {
  const sum = new Array<number>(steps).fill(0);
  const n = new Array<number>(steps).fill(0);
  const start = nowMs - steps * stepMs;
  for (const [ts, v] of samples) {
    const i = Math.floor((ts - start) / stepMs);
    if (i < 0 || i >= steps || !Number.isFinite(v)) continue;
    sum[i] += v;
    n[i]++;
  }
  return sum.map((s, i) => (n[i] ? s / n[i] : NaN));
}

/** a + b step by step; NaN only where both are NaN (a missing read or write count is 0). */
export function addWindows(a: Window, b: Window): number[] {
  return a.map((x, i) => (Number.isNaN(x) && Number.isNaN(b[i]) ? NaN : (Number.isNaN(x) ? 0 : x) + (Number.isNaN(b[i]) ? 0 : b[i])));
}

export const labelsOf = (l: LabelKV[] | undefined) => Object.fromEntries((l ?? []).map((x) => [x.key, x.value]));
export const positive = (v: string | undefined) => (v !== undefined && Number(v) > 0 && Number.isFinite(Number(v)) ? Number(v) : undefined);

export function buildSnapshot(src: SnapshotSources, grid: Grid): Snapshot {
  const steps = Math.max(1, Math.ceil(grid.windowMs / grid.stepMs));
  const from = grid.nowMs - steps * grid.stepMs;
  const win = (entity: string, metric: string, scale = 1) => resample(scaled(src.store.range(entity, metric, from, grid.nowMs + 1), scale), grid.nowMs, steps, grid.stepMs);
  const lastMs = (entity: string, ...metrics: string[]) => Math.max(0, ...metrics.map((m) => src.store.getSeries(entity, m)?.lastMs ?? 0));

  const records = src.migrations.list('', 10_000).filter((m) => !FINAL_STATES.has(m.state) || (m.ended_ms || m.started_ms) >= grid.nowMs - grid.historyMs);
  const migrating = new Set(records.filter((m) => !FINAL_STATES.has(m.state)).map((m) => m.herd_id));

  // A container reported by two nodes (mid-migration): the running copy is the one.
  const byId = new Map<string, ContainerRecord>();
  for (const n of src.registry.list()) {
    for (const c of n.containers) {
      const prev = byId.get(c.herd_id);
      if (!prev || (prev.state !== 'running' && c.state === 'running')) byId.set(c.herd_id, c);
    }
  }
  const containers: ContainerView[] = [...byId.values()]
    .filter((c) => c.state === 'running')
    .map((c) => {
      const mem = win(c.herd_id, 'container.mem.usage_bytes');
      return {
        herdId: c.herd_id,
        name: c.name,
        node: c.node_id,
        labels: labelsOf(c.labels),
        limits: { cpus: Number(c.cpu_limit) || 0, memoryBytes: Number(c.memory_limit_bytes) || 0 },
        memoryBytes: lastFinite(mem),
        upperDirBytes: 0,
        lastSampleMs: lastMs(c.herd_id, 'container.cpu.usage'),
        cpu: win(c.herd_id, 'container.cpu.usage'),
        diskOps: addWindows(win(c.herd_id, 'container.blkio.read_ops'), win(c.herd_id, 'container.blkio.write_ops')),
        threads: win(c.herd_id, 'container.pids'),
        ops: win(c.herd_id, 'container.ops'),
        migrating: migrating.has(c.herd_id),
      };
    });

  const nodes: NodeView[] = src.registry.list().map((n) => {
    const labels = labelsOf(n.labels);
    const slice = positive(labels[CORES_LABEL]);
    const mine = containers.filter((c) => c.node === n.node_id);
    const cpu = slice ? sliceSum(mine, steps, (c) => c.cpu).map((v) => v / slice) : win(n.node_id, 'host.cpu.total', 1 / 100);
    const iops = positive(labels[DISK_IOPS_LABEL]);
    const diskOps = iops ? sliceSum(mine, steps, (c) => c.diskOps) : addWindows(win(n.node_id, 'host.disk.read_ops'), win(n.node_id, 'host.disk.write_ops'));
    return {
      id: n.node_id,
      arch: n.arch,
      cores: slice ?? n.cores,
      memoryBytes: n.memory_bytes,
      diskIops: iops ?? 0,
      labels,
      criu: n.capabilities.includes('criu') && n.docker_reachable,
      draining: isDraining(n.labels),
      connected: src.registry.isConnected(n.node_id),
      lastSampleMs: lastMs(n.node_id, 'host.cpu.total', 'host.mem.used_bytes'),
      cpu,
      diskOps,
      diskActive: iops ? diskOps.map((v) => Math.min(1, v / iops)) : win(n.node_id, 'host.disk.active_pct', 1 / 100),
      memUsedBytes: win(n.node_id, 'host.mem.used_bytes'),
    };
  });

  return { nowMs: grid.nowMs, stepMs: grid.stepMs, nodes, containers, migrations: records.map(migrationView) };
}

function* scaled(samples: Iterable<[number, number]>, k: number): Generator<[number, number]> {
  for (const [ts, v] of samples) yield [ts, v * k];
}

/** A slice node's load: the sum of its containers' windows, step by step (NaN where none reported). */
function sliceSum(containers: ContainerView[], steps: number, pick: (c: ContainerView) => Window): number[] {
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    let sum = 0;
    let seen = containers.length === 0; // an empty node is idle, not unknown
    for (const c of containers) {
      const v = pick(c)[i];
      if (Number.isNaN(v)) continue;
      sum += v;
      seen = true;
    }
    out.push(seen ? sum : NaN);
  }
  return out;
}

function lastFinite(w: Window): number {
  for (let i = w.length - 1; i >= 0; i--) if (Number.isFinite(w[i])) return w[i];
  return 0;
}

function migrationView(m: MigrationRecord): MigrationView {
  return {
    migrationId: m.migration_id,
    herdId: m.herd_id,
    from: m.source_node_id,
    to: m.target_node_id,
    startedMs: m.started_ms,
    endedMs: FINAL_STATES.has(m.state) ? m.ended_ms || m.started_ms : 0,
    outcome: (FINAL_STATES.has(m.state) ? m.state : 'RUNNING') as MigrationView['outcome'],
    downtimeMs: m.downtime_ms,
    bytes: m.bytes_total,
    memoryBytes: 0,
  };
}
