/**
 * What the model service needs of the dataset side (the feature list, a feature row, the
 * training table), as one small interface: the model service trains and forecasts with
 * whatever implements it, so the dataset export's row builder plugs in here.
 *
 * `snapshotFeatures` is the implementation: a row is read from the controller's Snapshot
 * (the same resampled windows the policies see), so the rows a model learns from and the
 * rows it forecasts from are built by one function; the training table is the snapshot at
 * every grid step of the range, each container on the node it ran on.
 */
import type { ContainerView, NodeView, Snapshot, Window } from '../control/snapshot';
import { buildSnapshot, type SnapshotSources } from '../controller/snapshot-builder';
import type { Table } from './table';

export interface TrainingRange {
  fromMs: number;
  toMs: number;
  stepMs: number;
}

export interface FeatureSource {
  /** Every feature column, in order: a model's inputs must be among them. */
  readonly names: readonly string[];
  /** The column a model forecasts (a container's application ops/s) and the time column. */
  readonly target: string;
  readonly time: string;
  /**
   * One row per node of `nodeIds` (row-major, `names` order, NaN = missing): container
   * `herdId` of the snapshot were it running there. null when the snapshot lacks it.
   */
  rows(s: Snapshot, herdId: string, nodeIds: readonly string[]): Float32Array | null;
  /** The coordinator's samples over a range as a table: the features, target and time columns; rows without a target left out. */
  table(src: SnapshotSources, range: TrainingRange): Table;
}

/** Mean of a window's known steps (NaN when none is known). */
export function meanOf(w: Window): number {
  let s = 0;
  let n = 0;
  for (const v of w) if (Number.isFinite(v)) {
    s += v;
    n++;
  }
  return n ? s / n : NaN;
}

const FEATURES: ReadonlyArray<[string, (s: Snapshot, c: ContainerView, n: NodeView) => number]> = [
  ['container_cpu_cores', (_s, c) => meanOf(c.cpu)],
  ['container_disk_ops', (_s, c) => meanOf(c.diskOps)],
  ['container_threads', (_s, c) => meanOf(c.threads)],
  ['container_mem_bytes', (_s, c) => c.memoryBytes || NaN],
  ['node_cores', (_s, _c, n) => n.cores],
  ['node_mem_bytes', (_s, _c, n) => n.memoryBytes],
  ['node_cpu', (_s, _c, n) => meanOf(n.cpu)],
  ['node_disk_ops', (_s, _c, n) => meanOf(n.diskOps)],
  ['node_disk_active', (_s, _c, n) => meanOf(n.diskActive)],
  ['node_mem_used_fraction', (_s, _c, n) => (n.memoryBytes > 0 ? meanOf(n.memUsedBytes) / n.memoryBytes : NaN)],
  ['node_containers', (s, _c, n) => s.containers.filter((x) => x.node === n.id).length],
];

export const snapshotFeatures: FeatureSource = {
  names: FEATURES.map(([name]) => name),
  target: 'ops',
  time: 'time',
  rows(s, herdId, nodeIds) {
    const c = s.containers.find((x) => x.herdId === herdId);
    if (!c) return null;
    const out = new Float32Array(nodeIds.length * FEATURES.length).fill(NaN);
    nodeIds.forEach((id, r) => {
      const n = s.nodes.find((x) => x.id === id);
      if (n) FEATURES.forEach(([, f], i) => (out[r * FEATURES.length + i] = f(s, c, n)));
    });
    return out;
  },
  table(src, range) {
    const F = FEATURES.length;
    const cols: number[][] = Array.from({ length: F + 2 }, () => []);
    for (let t = range.fromMs + range.stepMs; t <= range.toMs; t += range.stepMs) {
      const s = buildSnapshot(src, { nowMs: t, windowMs: range.stepMs, stepMs: range.stepMs, historyMs: 0 });
      for (const c of s.containers) {
        const ops = c.ops[c.ops.length - 1];
        const r = this.rows(s, c.herdId, [c.node]);
        if (!Number.isFinite(ops) || !r) continue;
        for (let i = 0; i < F; i++) cols[i].push(r[i]);
        cols[F].push(ops);
        cols[F + 1].push(t);
      }
    }
    const rows = cols[0].length;
    return { columns: [...this.names, this.target, this.time], values: cols.map((c) => Float64Array.from(c)), rows, lines: Uint32Array.from({ length: rows }, (_, i) => i + 1) };
  },
};
