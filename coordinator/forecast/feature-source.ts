/**
 * What the model service needs of the dataset side, as one small interface: the feature
 * list, the rows a model forecasts from, and the training table. `datasetFeatures` is it
 * over the dataset export's own code, so a model trained on the cluster learns from exactly
 * the rows `herd dataset export` writes (features.ts, dataset-rows.ts: same grid, same
 * resampling, each container on the node it ran on) and forecasts from rows built by the
 * same feature function (forecastRows).
 */
import type { Snapshot, Window } from '../control/snapshot';
import { datasetBlocks, type DatasetSources } from './dataset-export';
import { AFTER_MIGRATION, DATASET_COLUMNS, TARGET, type DatasetGrid } from './dataset-rows';
import { FEATURES, forecastMatrix, forecastRows } from './features';
import type { Table } from './table';

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
  /**
   * The rows of many containers at once, columns `names` (a model's inputs): for each of
   * `herdIds` the snapshot holds (`herdIds` of the answer, in order), one row per node of
   * `nodeIds`; `into` is reused when big enough (one buffer for every batch of a round).
   */
  matrix(s: Snapshot, herdIds: readonly string[], nodeIds: readonly string[], names: readonly string[], into?: Float32Array): { x: Float32Array; herdIds: string[] };
  /**
   * The coordinator's samples over a grid as a table of numbers: the features, target and
   * time columns. Built a block of steps at a time, yielding between blocks, so the
   * coordinator keeps serving while a long range is read.
   */
  table(src: DatasetSources, grid: DatasetGrid): Promise<{ table: Table; settling: number }>;
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

const TIME = 'time_ms';

export const datasetFeatures: FeatureSource = {
  names: FEATURES,
  target: TARGET,
  time: TIME,
  rows: (s, herdId, nodeIds) => forecastRows(s, herdId, nodeIds),
  matrix: (s, herdIds, nodeIds, names, into) => forecastMatrix(s, herdIds, nodeIds, names, into),
  /** The export's rows but those just after a migration (its ops read low while it warms up: `settling` counts them). */
  async table(src, grid) {
    const names = [...FEATURES, TARGET, TIME];
    const at = names.map((n) => (DATASET_COLUMNS as readonly string[]).indexOf(n));
    const settlingAt = (DATASET_COLUMNS as readonly string[]).indexOf(AFTER_MIGRATION);
    const cols: number[][] = names.map(() => []);
    let settling = 0;
    for (const block of datasetBlocks(src, grid)) {
      for (const row of block) {
        if (row[settlingAt] === 1) {
          settling++;
          continue;
        }
        at.forEach((j, i) => cols[i].push(Number(row[j])));
      }
      await new Promise((r) => setImmediate(r));
    }
    const rows = cols[0].length;
    return { table: { columns: names, values: cols.map((c) => Float64Array.from(c)), rows, lines: Uint32Array.from({ length: rows }, (_, i) => i + 1) }, settling };
  },
};
