/**
 * Admin.ExportDataset (`herd dataset export`): the coordinator's samples over a time range
 * as the forecast's training table (dataset-rows.ts), streamed as CSV chunks. The driver
 * reads the sample store, the registry and the containers' node visits, resamples each
 * series onto the grid with the snapshot builder's `resample` (the controller's own grid),
 * and builds the rows a block of steps at a time, so memory stays bounded on a long range
 * and a slow reader holds the coordinator back by at most one block (back-pressure).
 */
import * as grpc from '@grpc/grpc-js';
import { logger } from '../../common/log';
import { RpcError, invalid } from '../../common/validate';
import { addWindows, CORES_LABEL, DISK_IOPS_LABEL, labelsOf, positive, resample } from '../controller/snapshot-builder';
import type { Migrations } from '../migrations';
import type { Registry } from '../registry';
import type { SampleStore } from '../samplestore';
import { CSV_HEADER, csvLines, DATASET_COLUMNS, datasetRows, type ContainerSeries, type DatasetGrid, type DatasetRow, type NodeSeries } from './dataset-rows';

const log = logger('dataset');

export const DEFAULT_STEP_MS = 5000;
export const MIN_STEP_MS = 1000;
export const MAX_STEP_MS = 3_600_000;
/** Most grid steps one export may span (a week at 5 s is 120,960). */
export const MAX_STEPS = 250_000;
/** Steps resampled and turned into rows at once (an hour at 5 s). */
export const BLOCK_STEPS = 720;
/** Rows per streamed chunk. */
export const ROWS_PER_CHUNK = 2000;

export interface DatasetSources {
  registry: Pick<Registry, 'list'>;
  store: Pick<SampleStore, 'range' | 'listSeries'>;
  migrations: Pick<Migrations, 'visits'>;
}

/** The grid of a request, or the RpcError naming the field to fix. `now` fills to_ms 0. */
export function checkRange(req: { from_ms?: unknown; to_ms?: unknown; step_ms?: unknown }, now: number): DatasetGrid {
  const int = (name: string, v: unknown) => {
    const n = Number(v ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${name} must be a non-negative integer of ms${name === 'step_ms' ? '' : ' since the epoch'}, got ${String(v)}`);
    return n;
  };
  const from = int('from_ms', req.from_ms);
  const toAsked = int('to_ms', req.to_ms);
  const stepAsked = int('step_ms', req.step_ms);
  if (from === 0) throw invalid('from_ms is required: the start of the time range, ms since the epoch (herd dataset export --from 1h takes the last hour)');
  const to = toAsked === 0 ? now : toAsked;
  if (to <= from) throw invalid(`to_ms ${to} must be after from_ms ${from}: the time range is empty or inverted`);
  const step = stepAsked === 0 ? DEFAULT_STEP_MS : stepAsked;
  if (step < MIN_STEP_MS || step > MAX_STEP_MS) throw invalid(`step_ms must be from ${MIN_STEP_MS} to ${MAX_STEP_MS} ms (0 = ${DEFAULT_STEP_MS}), got ${step}`);
  const steps = Math.ceil((to - from) / step);
  if (steps > MAX_STEPS) throw invalid(`from_ms..to_ms spans ${steps} steps of ${step} ms, more than ${MAX_STEPS}: narrow the range or raise step_ms to at least ${Math.ceil((to - from) / MAX_STEPS)}`);
  return { fromMs: from, stepMs: step, steps };
}

/** Herd ids that have container series, with the node each series was last reported by. */
function containerIds(store: DatasetSources['store']): Map<string, string> {
  const ids = new Map<string, string>();
  for (const s of [...store.listSeries('', 'container.cpu.usage'), ...store.listSeries('', 'container.ops')]) if (s.metric === 'container.cpu.usage' || s.metric === 'container.ops') ids.set(s.entity, s.nodeId);
  return ids;
}

/** The rows of one block of the grid. */
function blockRows(src: DatasetSources, grid: DatasetGrid, ids: Map<string, string>): DatasetRow[] {
  const end = grid.fromMs + grid.steps * grid.stepMs;
  const win = (entity: string, metric: string, scale = 1) => resample(scaledRange(src.store, entity, metric, grid.fromMs, end, scale), end, grid.steps, grid.stepMs);
  const limits = new Map<string, number>();
  const nodes: NodeSeries[] = src.registry.list().map((n) => {
    for (const c of n.containers) if (c.state === 'running' || !limits.has(c.herd_id)) limits.set(c.herd_id, Number(c.cpu_limit) || 0);
    const labels = labelsOf(n.labels);
    const slice = positive(labels[CORES_LABEL]);
    const iops = positive(labels[DISK_IOPS_LABEL]);
    return {
      id: n.node_id,
      cores: slice ?? n.cores,
      memBytes: n.memory_bytes,
      ...(iops ? { diskIops: iops } : {}),
      cpu: slice ? undefined : win(n.node_id, 'host.cpu.total', 1 / 100),
      diskOps: iops ? undefined : addWindows(win(n.node_id, 'host.disk.read_ops'), win(n.node_id, 'host.disk.write_ops')),
    };
  });
  const containers: ContainerSeries[] = [...ids].map(([herdId, lastNode]) => {
    const visits = src.migrations.visits(herdId);
    return {
      herdId,
      cpuLimit: limits.get(herdId) ?? 0,
      cpu: win(herdId, 'container.cpu.usage'),
      threads: win(herdId, 'container.pids'),
      memBytes: win(herdId, 'container.mem.usage_bytes'),
      diskOps: addWindows(win(herdId, 'container.blkio.read_ops'), win(herdId, 'container.blkio.write_ops')),
      ops: win(herdId, 'container.ops'),
      visits: visits.length ? visits : [{ node_id: lastNode, since_ms: 0, until_ms: 0, migration_id: '' }],
    };
  });
  return datasetRows(grid, nodes, containers);
}

function* scaledRange(store: DatasetSources['store'], entity: string, metric: string, from: number, to: number, k: number): Generator<[number, number]> {
  for (const [ts, v] of store.range(entity, metric, from, to)) yield [ts, v * k];
}

/** The dataset's rows (DATASET_COLUMNS), a block of the grid at a time (TrainModel reads them too). */
export function* datasetBlocks(src: DatasetSources, grid: DatasetGrid): Generator<DatasetRow[]> {
  const ids = containerIds(src.store);
  for (let first = 0; first < grid.steps; first += BLOCK_STEPS) {
    const steps = Math.min(BLOCK_STEPS, grid.steps - first);
    yield blockRows(src, { fromMs: grid.fromMs + first * grid.stepMs, stepMs: grid.stepMs, steps }, ids);
  }
}

/** The dataset as CSV lines, header first, a block of the grid at a time. */
export function* datasetCsv(src: DatasetSources, grid: DatasetGrid): Generator<string[]> {
  yield [CSV_HEADER];
  for (const rows of datasetBlocks(src, grid)) yield csvLines(rows);
}

/** The Admin handler: validated range, then CSV chunks of at most ROWS_PER_CHUNK rows; waits on a slow reader. */
export function datasetHandlers(deps: DatasetSources & { clock?: () => number }): grpc.UntypedServiceImplementation {
  const clock = deps.clock ?? Date.now;
  return {
    ExportDataset: (call: grpc.ServerWritableStream<any, any>) => {
      let grid: DatasetGrid;
      try {
        grid = checkRange(call.request ?? {}, clock());
      } catch (err) {
        const e = err instanceof RpcError ? err : new RpcError(grpc.status.INTERNAL, String(err));
        call.emit('error', { code: e.code, details: e.message });
        return;
      }
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      const send = (msg: unknown) => (call.write(msg) ? Promise.resolve() : new Promise<void>((r) => call.once('drain', () => r())));
      void (async () => {
        let rows = 0;
        let first = true;
        for (const lines of datasetCsv(deps, grid)) {
          for (let i = 0; i < lines.length && !cancelled; i += ROWS_PER_CHUNK) {
            const part = lines.slice(i, i + ROWS_PER_CHUNK);
            const header = first;
            rows += header ? 0 : part.length;
            first = false;
            await send({ csv: part.join('\n') + '\n', rows: header ? 0 : part.length, columns: header ? [...DATASET_COLUMNS] : [] });
          }
          if (cancelled) return;
          await new Promise((r) => setImmediate(r)); // let the coordinator serve between blocks
        }
        log.debug('dataset exported', { from: grid.fromMs, steps: grid.steps, rows });
        call.end();
      })().catch((err) => {
        log.error('ExportDataset failed', { error: err });
        call.emit('error', { code: grpc.status.INTERNAL, details: `ExportDataset failed: ${(err as Error).message}` });
      });
    },
  };
}
