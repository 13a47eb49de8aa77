/**
 * The training table of `herd dataset export` (Admin ExportDataset): one row per container
 * per grid step in which it reported ops, its features (features.ts) computed from its own
 * resampled windows and those of the node it ran on during that step, the target (its
 * ops/s), time and ids kept for splitting by time, and the steps right after a migration
 * marked (a restored container's ops read low while its counters and caches warm up).
 *
 * Pure: the driver (dataset-export.ts) resamples the stored series onto the grid with the
 * snapshot builder's `resample` and hands them here with each container's node visits.
 */
import type { NodeVisit } from '../../common/migration-record';
import { featureVector, FEATURES, type HostFigures, type OwnHost } from './features';

/** Columns before the features: the step's start (ms since the epoch), the container, the node it ran on. */
export const ID_COLUMNS = ['time_ms', 'herd_id', 'node_id'] as const;
/** The target: the container's application operations per second (container.ops). */
export const TARGET = 'ops';
/** 1 in the steps that overlap the first SETTLE_MS after a migration restored the container there. */
export const AFTER_MIGRATION = 'after_migration';
/** Cores the container got (container.cpu.usage): an outcome of its host, kept for study but not a feature. */
export const MEASURED_CPU = 'ctr_cpu';
/** Disk ops/s the container did (container.blkio): an outcome of its host's disk, kept for study but not a feature. */
export const MEASURED_DISK = 'ctr_disk_ops';
export const DATASET_COLUMNS = [...ID_COLUMNS, ...FEATURES, MEASURED_CPU, MEASURED_DISK, TARGET, AFTER_MIGRATION] as const;

/** How long after a migration a container's samples are marked. */
export const SETTLE_MS = 30_000;

export interface DatasetGrid {
  fromMs: number;
  stepMs: number;
  steps: number;
}

/** A container's windows over the whole grid (NaN where a step had no sample), and where it ran. */
export interface ContainerSeries {
  herdId: string;
  /** CPU limit in cores, 0 = none. */
  cpuLimit: number;
  cpu: readonly number[];
  threads: readonly number[];
  memBytes: readonly number[];
  diskOps: readonly number[];
  ops: readonly number[];
  /** Its visits to nodes (coordinator/migrations.ts), oldest first; one with a migration id began with that migration. */
  visits: readonly Pick<NodeVisit, 'node_id' | 'since_ms' | 'until_ms' | 'migration_id'>[];
}

/** A node's windows over the whole grid. `cpu`/`diskOps` absent: a slice node, loaded by its containers (snapshot-builder.ts). */
export interface NodeSeries {
  id: string;
  cores: number;
  memBytes: number;
  /** Host CPU busy, fraction of its cores; absent for a node labelled herd.cores. */
  cpu?: readonly number[];
  /** Host disk ops/s; absent for a node labelled herd.disk_iops. */
  diskOps?: readonly number[];
  /** Disk ops/s it serves (its herd.disk_iops label); absent when not declared. */
  diskIops?: number;
}

export type DatasetRow = (string | number)[];

/** The node a container ran on at time t ('' when unknown): the visit covering t. */
export function nodeAt(visits: ContainerSeries['visits'], t: number): string {
  for (let i = visits.length - 1; i >= 0; i--) {
    const v = visits[i];
    if (v.since_ms <= t && (v.until_ms === 0 || t < v.until_ms)) return v.node_id;
  }
  // before its first visit was recorded (the coordinator saw it late): where it was first seen
  return visits.length && t < visits[0].since_ms ? visits[0].node_id : '';
}

/** Whether [start, end) overlaps the first SETTLE_MS of a visit that a migration began. */
export function afterMigration(visits: ContainerSeries['visits'], start: number, end: number): boolean {
  return visits.some((v) => v.migration_id !== '' && v.since_ms < end && v.since_ms + SETTLE_MS > start);
}

const at = (w: readonly number[], i: number) => (i < w.length ? w[i] : NaN);
const present = (c: ContainerSeries, i: number) => !Number.isNaN(at(c.cpu, i)) || !Number.isNaN(at(c.ops, i));

/** The rows, ordered by time then herd id; columns as DATASET_COLUMNS. */
export function datasetRows(grid: DatasetGrid, nodes: readonly NodeSeries[], containers: readonly ContainerSeries[]): DatasetRow[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const sorted = [...containers].sort((a, b) => (a.herdId < b.herdId ? -1 : a.herdId > b.herdId ? 1 : 0));
  const rows: DatasetRow[] = [];
  for (let i = 0; i < grid.steps; i++) {
    const start = grid.fromMs + i * grid.stepMs;
    const mid = start + grid.stepMs / 2;
    // who ran where during this step (a container counts on a host only when it reported)
    const where = new Map<string, string>();
    const onNode = new Map<string, ContainerSeries[]>();
    for (const c of sorted) {
      const n = nodeAt(c.visits, mid);
      if (!n || !present(c, i)) continue;
      where.set(c.herdId, n);
      const list = onNode.get(n);
      if (list) list.push(c);
      else onNode.set(n, [c]);
    }
    const hosts = new Map<string, HostFigures & OwnHost>();
    for (const [id, mine] of onNode) {
      const n = byId.get(id);
      if (!n) continue;
      const sum = (pick: (c: ContainerSeries) => readonly number[]) => mine.reduce((s, c) => s + (Number.isNaN(at(pick(c), i)) ? 0 : at(pick(c), i)), 0);
      const top = (pick: (c: ContainerSeries) => readonly number[]) => Math.max(0, ...mine.map((c) => at(pick(c), i)).filter((v) => !Number.isNaN(v)));
      const diskOps = n.diskOps ? at(n.diskOps, i) : sum((c) => c.diskOps);
      hosts.set(id, {
        cores: n.cores,
        memBytes: n.memBytes,
        cpu: n.cpu ? at(n.cpu, i) : n.cores > 0 ? sum((c) => c.cpu) / n.cores : NaN,
        diskOps,
        containers: mine.length,
        level: top((c) => c.cpu),
        ...(n.diskIops ? { diskIops: n.diskIops, disk: diskOps / n.diskIops, diskLevel: top((c) => c.diskOps) } : {}),
      });
    }
    for (const c of sorted) {
      const ops = at(c.ops, i);
      const node = where.get(c.herdId);
      const host = node === undefined ? undefined : hosts.get(node);
      if (Number.isNaN(ops) || !host || node === undefined) continue;
      const figures = { cpu: at(c.cpu, i), threads: at(c.threads, i), memBytes: at(c.memBytes, i), diskOps: at(c.diskOps, i), cpuLimit: c.cpuLimit };
      rows.push([start, c.herdId, node, ...featureVector(figures, host, host, true), figures.cpu, figures.diskOps, ops, afterMigration(c.visits, start, start + grid.stepMs) ? 1 : 0]);
    }
  }
  return rows;
}

const cell = (v: string | number) => (typeof v === 'string' ? (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v) : Number.isFinite(v) ? String(Number.isInteger(v) ? v : Number(v.toPrecision(6))) : '');

/** CSV lines (no trailing newline each) of rows; a missing value is an empty cell. */
export const csvLines = (rows: readonly DatasetRow[]): string[] => rows.map((r) => r.map(cell).join(','));
export const CSV_HEADER = DATASET_COLUMNS.join(',');
