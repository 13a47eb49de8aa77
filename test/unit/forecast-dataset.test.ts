import { describe, expect, it } from 'vitest';
import { afterMigration, DATASET_COLUMNS, datasetRows, nodeAt, SETTLE_MS, type ContainerSeries, type NodeSeries } from '../../coordinator/forecast/dataset-rows';
import { BLOCK_STEPS, checkRange, datasetCsv, type DatasetSources } from '../../coordinator/forecast/dataset-export';
import { featureVector, FEATURES, forecastRows } from '../../coordinator/forecast/features';
import { columnsAsRead, matrixOf, parseCsv, toCsv } from '../../coordinator/forecast/table';
import { RpcError } from '../../common/validate';
import { container, node, snap } from '../fixtures/control-snapshot';

const T0 = 1_700_000_000_000;
const STEP = 5000;
const col = (name: string) => DATASET_COLUMNS.indexOf(name as never);
const ctr = (o: Partial<ContainerSeries> & { herdId: string }, steps: number): ContainerSeries => ({
  cpuLimit: 0,
  cpu: Array(steps).fill(1),
  threads: Array(steps).fill(4),
  memBytes: Array(steps).fill(100),
  diskOps: Array(steps).fill(10),
  ops: Array(steps).fill(50),
  visits: [{ node_id: 'a', since_ms: T0 - 1, until_ms: 0, migration_id: '' }],
  ...o,
});

describe('features', () => {
  const c = { cpu: 1, threads: 4, memBytes: 100, diskOps: 10, cpuLimit: 0 };
  const host = { cores: 4, memBytes: 1000, cpu: 0.5, diskOps: 30, containers: 3, level: 1 };

  it('counts the host without the container: its own host has its share taken out, a candidate not', () => {
    expect(FEATURES).toHaveLength(12);
    const own = featureVector(c, host, host, true);
    expect(Object.fromEntries(FEATURES.map((f, i) => [f, own[i]]))).toEqual({
      ctr_cpu_demand: 1, ctr_threads: 4, ctr_mem_bytes: 100, ctr_cpu_limit: 0,
      host_cores: 4, host_mem_bytes: 1000, host_other_cpu: 1, host_other_disk_ops: 20, host_other_containers: 2,
      ctr_expected_cpu: 1, // wants 1, 3 cores free
      host_disk_iops: NaN, ctr_expected_disk_ops: NaN, // its disk not declared
    });
    const other = featureVector(c, host, host, false);
    expect(other.slice(6)).toEqual([2, 30, 3, 1, NaN, NaN]);
    // a busy host: 3.8 of 4 cores taken by 3 others, an equal share is 1 core
    expect(featureVector({ ...c, cpu: 2 }, { cpu: 0.5, level: 2 }, { ...host, cpu: 0.95 }, false)[9]).toBe(1);
    expect(featureVector({ ...c, cpu: 2 }, { cpu: 0.5, level: 2 }, { ...host, cpu: 0.25, containers: 1 }, false)[9]).toBe(2);
  });

  it('reads demand as the load model does: held back on a saturated host, up to its threads and its limit, not its host cores', () => {
    const hot = { ...host, cpu: 0.95 };
    expect(featureVector(c, hot, host, true)[0]).toBe(4); // 4 threads, at the host's water level
    expect(featureVector({ ...c, cpuLimit: 2 }, hot, host, true)[0]).toBe(2);
    expect(featureVector(c, { cpu: 1, level: 1 }, { ...host, cores: 2 }, true)[0]).toBe(4); // a bigger host could give it 4
    expect(featureVector(c, { cpu: 0.5, level: 1 }, host, true)[0]).toBe(1); // not saturated: what it uses
    // under the water level of a saturated host (another container gets far more): not held back, idle is idle
    expect(featureVector({ ...c, cpu: 0.1 }, { cpu: 1, level: 1 }, host, true)[0]).toBe(0.1);
    expect(featureVector({ ...c, cpu: 0.95 }, { cpu: 1, level: 1 }, host, true)[0]).toBe(4);
    expect(featureVector({ ...c, cpu: 0.1 }, { cpu: 1, level: NaN }, host, true)[0]).toBe(4); // level unknown: held back
  });

  it('gives the disk what it gives the CPU: a declared disk, and what the container would get of it there', () => {
    const f = (v: number[], name: string) => v[FEATURES.indexOf(name as (typeof FEATURES)[number])];
    const d = { ...c, diskOps: 150 };
    // alone on a saturated 150-op disk: held back, so on a 300-op disk it would get all 300
    const sat = { cpu: 0.2, level: 1, disk: 1, diskLevel: 150 };
    expect(f(featureVector(d, sat, { ...host, diskOps: 150, containers: 1, diskIops: 150 }, true), 'ctr_expected_disk_ops')).toBe(150);
    expect(f(featureVector(d, sat, { ...host, diskOps: 0, containers: 0, diskIops: 300 }, false), 'ctr_expected_disk_ops')).toBe(300);
    expect(f(featureVector(d, sat, { ...host, diskOps: 0, containers: 0, diskIops: 300 }, false), 'host_disk_iops')).toBe(300);
    // the other 300-op disk busy with one container: an equal share, 150
    expect(f(featureVector(d, sat, { ...host, diskOps: 300, containers: 1, diskIops: 300 }, false), 'ctr_expected_disk_ops')).toBe(150);
    // not held back (its disk not saturated): it wants what it does
    expect(f(featureVector(d, { ...sat, disk: 0.5 }, { ...host, diskOps: 0, containers: 0, diskIops: 300 }, false), 'ctr_expected_disk_ops')).toBe(150);
    // a disk not declared: unknown, not zero
    expect(f(featureVector(d, sat, host, false), 'ctr_expected_disk_ops')).toBeNaN();
    expect(FEATURES).not.toContain('ctr_disk_ops'); // what it did is an outcome of its disk: a column, not a feature
  });

  it('keeps a missing figure missing (NaN: the trees route it), never below zero', () => {
    const v = featureVector({ ...c, cpu: NaN, threads: NaN }, host, { ...host, cpu: NaN }, true);
    expect(v[0]).toBeNaN();
    expect(v[1]).toBeNaN();
    expect(v[6]).toBeNaN();
    expect(featureVector({ ...c, cpu: 9 }, host, host, true)[6]).toBe(0);
  });

  it('gives the forecast driver one row per node, from the snapshot, its own node counted without it', () => {
    const s = snap([node('a', { cpu: 0.75, cores: 4 }), node('b', { cpu: 0.25, cores: 8 })], [container('x', 'a', { cpu: 1, threads: 2, diskOps: 5 }), container('y', 'a', { cpu: 2 })]);
    const m = forecastRows(s, 'x', ['a', 'b', 'ghost'])!;
    const F = FEATURES.length;
    expect(Array.from(m.subarray(0, F))).toEqual([1, 2, 64 * 1024 * 1024, 0, 4, 8 * 1024 ** 3, 2, 0, 1, 1, NaN, NaN]);
    expect(Array.from(m.subarray(F, 2 * F))).toEqual([1, 2, 64 * 1024 * 1024, 0, 8, 8 * 1024 ** 3, 2, 0, 0, 1, NaN, NaN]);
    expect(Array.from(m.subarray(2 * F)).every(Number.isNaN)).toBe(true);
    expect(forecastRows(s, 'nope', ['a'])).toBeNull();
    expect(Array.from(forecastRows(s, 'x', ['a', 'b'], ['host_cores', 'ctr_threads'])!)).toEqual([4, 2, 8, 2]);
    expect(() => forecastRows(s, 'x', ['a'], ['ctr_cpu'])).toThrow(/no such feature: ctr_cpu/);
  });
});

describe('dataset rows', () => {
  it('finds the node of each moment from the visits, and marks the first SETTLE_MS after a migration', () => {
    const visits = [
      { node_id: 'a', since_ms: 1000, until_ms: 5000, migration_id: '' },
      { node_id: 'b', since_ms: 5000, until_ms: 0, migration_id: 'm1' },
    ];
    expect([nodeAt(visits, 0), nodeAt(visits, 1000), nodeAt(visits, 4999), nodeAt(visits, 5000), nodeAt(visits, 1e12)]).toEqual(['a', 'a', 'a', 'b', 'b']);
    expect(nodeAt([], 5)).toBe('');
    expect(nodeAt([{ node_id: 'a', since_ms: 0, until_ms: 10, migration_id: '' }], 20)).toBe('');
    expect(afterMigration(visits, 0, 5000)).toBe(false);
    expect(afterMigration(visits, 0, 5001)).toBe(true);
    expect(afterMigration(visits, 5000 + SETTLE_MS - 1, 1e12)).toBe(true);
    expect(afterMigration(visits, 5000 + SETTLE_MS, 1e12)).toBe(false);
  });

  it('writes a row per container per step with ops, on the node it ran on, with its host figures and the marks', () => {
    const steps = 12;
    const grid = { fromMs: T0, stepMs: STEP, steps };
    const movedAt = T0 + 4 * STEP;
    const nodes: NodeSeries[] = [
      { id: 'a', cores: 2, memBytes: 1e9, cpu: Array(steps).fill(0.8), diskOps: Array(steps).fill(40) },
      { id: 'b', cores: 4, memBytes: 2e9 }, // a slice node (herd.cores): loaded by its containers
    ];
    const ops = Array(steps).fill(50);
    ops[1] = NaN; // no ops in step 1: no row
    const x = ctr({ herdId: 'x', ops, visits: [{ node_id: 'a', since_ms: T0, until_ms: movedAt, migration_id: '' }, { node_id: 'b', since_ms: movedAt, until_ms: 0, migration_id: 'm1' }] }, steps);
    const y = ctr({ herdId: 'y', cpu: Array(steps).fill(0.5) }, steps);
    const z = ctr({ herdId: 'z', ops: Array(steps).fill(NaN), cpu: Array(steps).fill(3), visits: [{ node_id: 'b', since_ms: T0, until_ms: 0, migration_id: '' }] }, steps); // reports no ops: loads b, has no rows
    const rows = datasetRows(grid, nodes, [y, z, x]);
    expect(rows.every((r) => r.length === DATASET_COLUMNS.length)).toBe(true);
    const xs = rows.filter((r) => r[1] === 'x');
    expect(xs.map((r) => r[0])).toEqual([0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((i) => T0 + i * STEP));
    expect(rows.filter((r) => r[1] === 'z')).toEqual([]);
    expect(rows.filter((r) => r[1] === 'y')).toHaveLength(steps);
    const at = (i: number) => xs.find((r) => r[0] === T0 + i * STEP)!;
    // on a (2 cores at 80%): everything but x is 1.6 - 1 = 0.6 cores, 40 - 10 disk ops, y beside it
    expect([at(3)[2], at(3)[col('host_cores')], at(3)[col('host_other_cpu')], at(3)[col('host_other_disk_ops')], at(3)[col('host_other_containers')]]).toEqual(['a', 2, expect.closeTo(0.6, 9), 30, 1]);
    // on b (a slice of 4 cores): its load is x's 1 + z's 3 cores; without x, z's 3; b is saturated but z gets
    // three times what x gets, so x is not held back there: its demand is what it uses
    expect([at(4)[2], at(4)[col('host_cores')], at(4)[col('host_other_cpu')], at(4)[col('host_other_disk_ops')], at(4)[col('host_other_containers')], at(4)[col('ctr_cpu_demand')]]).toEqual(['b', 4, 3, 10, 1, 1]);
    // marked while the first 30 s after the move overlap the step: steps 4..9
    expect(xs.map((r) => r[col('after_migration')])).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect([at(0)[col('ops')], at(0)[col('ctr_cpu')]]).toEqual([50, 1]);
    expect(rows.map((r) => r[0])).toEqual([...rows.map((r) => r[0])].sort((p, q) => Number(p) - Number(q)));
  });

  it('skips a container on a node it does not know, and gives an empty grid no row', () => {
    const x = ctr({ herdId: 'x', visits: [{ node_id: 'gone', since_ms: 0, until_ms: 0, migration_id: '' }] }, 3);
    expect(datasetRows({ fromMs: T0, stepMs: STEP, steps: 3 }, [{ id: 'a', cores: 1, memBytes: 1 }], [x])).toEqual([]);
    expect(datasetRows({ fromMs: T0, stepMs: STEP, steps: 0 }, [], [])).toEqual([]);
  });
});

describe('the export driver', () => {
  it('checks the range, naming the field to fix', () => {
    const err = (req: object) => {
      try {
        checkRange(req, T0);
      } catch (e) {
        return (e as RpcError).message;
      }
      return 'accepted';
    };
    expect(err({})).toMatch(/^from_ms is required/);
    expect(err({ from_ms: -5 })).toMatch(/^from_ms must be a non-negative integer of ms since the epoch, got -5/);
    expect(err({ from_ms: T0, to_ms: T0 - 1 })).toMatch(/^to_ms \d+ must be after from_ms \d+/);
    expect(err({ from_ms: T0 + 1 })).toMatch(/^to_ms .* must be after from_ms/); // to 0 = now = T0
    expect(err({ from_ms: T0 - 60_000, step_ms: 10 })).toBe('step_ms must be from 1000 to 3600000 ms (0 = 5000), got 10');
    expect(err({ from_ms: T0 - 86_400_000 * 30, step_ms: 1000 })).toMatch(/spans 2592000 steps of 1000 ms, more than 250000: narrow the range or raise step_ms to at least 10368/);
    expect(err({ from_ms: 1.5 })).toMatch(/^from_ms must be a non-negative integer/);
    expect(checkRange({ from_ms: String(T0 - 60_000) }, T0)).toEqual({ fromMs: T0 - 60_000, stepMs: 5000, steps: 12 });
  });

  it('resamples the stored series block by block into the same rows as one pass', () => {
    const steps = BLOCK_STEPS + 5;
    const series = new Map<string, [number, number][]>();
    const put = (entity: string, metric: string, f: (i: number) => number) => series.set(`${entity}/${metric}`, Array.from({ length: steps }, (_, i) => [T0 + i * STEP + 1234, f(i)]));
    put('a', 'host.cpu.total', () => 50);
    put('x', 'container.cpu.usage', (i) => (i % 3) / 2);
    put('x', 'container.ops', (i) => i);
    const src: DatasetSources = {
      registry: { list: () => [{ node_id: 'a', cores: 2, memory_bytes: 1e9, labels: [], containers: [{ herd_id: 'x', state: 'running', cpu_limit: 1.5 }] }] as never },
      store: {
        listSeries: (_e = '', prefix = '') => [...series.keys()].filter((k) => k.split('/')[1].startsWith(prefix)).map((k) => ({ entity: k.split('/')[0], metric: k.split('/')[1], nodeId: 'a', firstMs: 0, lastMs: 0 })),
        *range(entity: string, metric: string, from: number, to: number) {
          for (const p of series.get(`${entity}/${metric}`) ?? []) if (p[0] >= from && p[0] < to) yield p;
        },
      },
      migrations: { visits: () => [] },
    };
    const text = [...datasetCsv(src, { fromMs: T0, stepMs: STEP, steps })].flat().join('\n') + '\n';
    const t = parseCsv(text);
    expect(t.rows).toBe(steps);
    expect(t.columns).toEqual([...DATASET_COLUMNS]);
    expect(Array.from(t.values[t.columns.indexOf('ops')])).toEqual(Array.from({ length: steps }, (_, i) => i));
    expect(t.values[t.columns.indexOf('ctr_cpu_limit')].every((v) => v === 1.5)).toBe(true);
    expect(Array.from(t.values[t.columns.indexOf('host_other_cpu')].slice(0, 3))).toEqual([1, 0.5, 0]);
    // the ids stay text: readable as written, refused as numbers, and the features are a numeric matrix
    expect(columnsAsRead(t)[1].slice(0, 2)).toEqual(['x', 'x']);
    expect(() => matrixOf(t, ['herd_id'])).toThrow(/line 2, column "herd_id": "x" is not a number/);
    expect(matrixOf(t, [...FEATURES]).length).toBe(steps * FEATURES.length);
    expect(toCsv(['herd_id', 'ops'], [['a,b', 'c'], [1, NaN]])).toBe('herd_id,ops\n"a,b",1\nc,\n');
  });
});
