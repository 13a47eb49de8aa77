import { afterEach, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { BATCH_SEQ_METRIC, SampleLog, group } from '../../agent/samplelog';
import { SampleStore } from '../../coordinator/samplestore';
import { tempDir } from '../helpers/tmp';
import { meshCodec } from '../../common/proto';

const decode = (m: Buffer) => meshCodec().decodeAgent(m).batch;

const cleanups: Array<() => void> = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
});

function env(): { env: Env; dir: string } {
  const t = tempDir();
  const e = openEnv(t.dir, { mapSizeBytes: 256 * 1024 ** 2 });
  cleanups.push(() => {
    void e.close();
    t.cleanup();
  });
  return { env: e, dir: t.dir };
}

describe('SampleLog (agent)', () => {
  it('assigns consecutive sequence numbers and survives a reopen with the same log id', async () => {
    const { env: e, dir } = env();
    let now = 1_000;
    const log = new SampleLog(e, 'n1', () => now);
    expect(await log.append([{ entity: 'n1', metric: 'm', ts: 1, value: 1 }])).toBe(1);
    expect(await log.append([])).toBe(2);
    now = 1_000; // same ms: the seq series must still get distinct times
    expect(await log.append([])).toBe(3);
    const batches = log.read(0, 10);
    expect(batches.map((b) => b.seq)).toEqual([1, 2, 3]);
    const decoded = batches.map((b) => decode(b.message));
    const seqTimes = decoded.map((b: any) => b.created_ms + b.series.find((s: any) => s.metric === BATCH_SEQ_METRIC).offsets_ms[0]);
    expect(new Set(seqTimes).size).toBe(3);
    expect(decoded.map((b: any) => b.seq)).toEqual([1, 2, 3]);
    expect(decoded[0].series.find((s: any) => s.metric === 'm')).toEqual({ entity: 'n1', metric: 'm', offsets_ms: [1 - 1000], values: [1] });
    const id = log.logId;
    await e.close();
    const e2 = openEnv(dir);
    cleanups.push(() => void e2.close());
    const again = new SampleLog(e2, 'n1');
    expect(again.logId).toBe(id);
    expect(again.lastSeq()).toBe(3);
    expect(await again.append([])).toBe(4);
  });

  it('reads in bounded pages after a given seq', async () => {
    const { env: e } = env();
    const log = new SampleLog(e, 'n1');
    for (let i = 0; i < 10; i++) await log.append([]);
    expect(log.read(3, 4).map((b) => b.seq)).toEqual([4, 5, 6, 7]);
    expect(log.read(10, 4)).toEqual([]);
  });

  it('prunes by age only what was acknowledged, and by size even unacknowledged batches', async () => {
    const { env: e } = env();
    let now = 0;
    const log = new SampleLog(e, 'n1', () => now);
    const big = Array.from({ length: 500 }, (_, i) => ({ entity: 'n1', metric: `m${i}`, ts: 1, value: i }));
    for (let i = 0; i < 40; i++) {
      now = i * 1000;
      await log.append(big);
    }
    now = 100_000;
    // acked up to 10, all older than the cutoff: only 1..10 go
    const r1 = await log.prune(10, { maxAgeMs: 50_000, maxBytes: 1 << 30 });
    expect(r1).toEqual({ dropped: 10, lostUnacked: 0 });
    expect(log.firstSeq()).toBe(11);
    // size cap far below the log: oldest dropped, the newest kept, losses counted
    const r2 = await log.prune(10, { maxAgeMs: 50_000, maxBytes: 64 * 1024 });
    expect(r2.lostUnacked).toBeGreaterThan(0);
    expect(log.bytes()).toBeLessThanOrEqual(64 * 1024 + 4096 * 4);
    expect(log.lastSeq()).toBe(40);
  });

  it('groups samples into columnar series with offsets from the batch time, dropping absurd times', () => {
    let dropped = 0;
    expect(
      group([
        { entity: 'a', metric: 'x', ts: 1, value: 10 },
        { entity: 'b', metric: 'x', ts: 1, value: 20 },
        { entity: 'a', metric: 'x', ts: 2, value: 11 },
        { entity: 'a', metric: 'x', ts: 2 + 2 ** 31, value: 12 },
      ], 2, (n) => (dropped = n)),
    ).toEqual([
      { entity: 'a', metric: 'x', offsets_ms: [-1, 0], values: [10, 11] },
      { entity: 'b', metric: 'x', offsets_ms: [-1], values: [20] },
    ]);
    expect(dropped).toBe(1);
  });
});

describe('SampleStore (coordinator)', () => {
  it('stores batches, tracks acked seq per log id, and scans (series, time) ranges in order', async () => {
    const { env: e } = env();
    const store = new SampleStore(e);
    await store.ingest('n1', 'log-a', 1, 0, [
      { entity: 'n1', metric: 'cpu', offsets_ms: [30, 10, 20], values: [3, 1, 2] },
      { entity: 'n1', metric: 'cpz', offsets_ms: [15], values: [9] },
      { entity: 'c1', metric: 'cpu', offsets_ms: [5], values: [7] },
    ]);
    expect(store.logState('n1', 'log-a').ackedSeq).toBe(1);
    expect(store.logState('n1', 'log-b').ackedSeq).toBe(0); // a wiped agent starts over
    expect([...store.range('n1', 'cpu', 0, 100)]).toEqual([[10, 1], [20, 2], [30, 3]]);
    expect([...store.range('n1', 'cpu', 10, 30)]).toEqual([[10, 1], [20, 2]]);
    expect(store.getSeries('n1', 'cpu')).toMatchObject({ firstMs: 10, lastMs: 30, nodeId: 'n1' });
    expect(store.listSeries('n1').map((s) => s.metric)).toEqual(['cpu', 'cpz']);
    expect(store.listSeries('', 'cp').length).toBe(3);
    expect(store.count('n1', 'cpu', 0, 100, 2)).toBe(2);
  });

  it('downsamples into steps with mean, min, max and count', async () => {
    const { env: e } = env();
    const store = new SampleStore(e);
    await store.ingest('n1', 'l', 1, 0, [{ entity: 'n1', metric: 'm', offsets_ms: [0, 5, 10, 19, 25], values: [1, 3, 10, 20, 7] }]);
    expect(store.downsample('n1', 'm', 0, 30, 10)).toEqual([
      { ts_ms: 0, value: 2, min: 1, max: 3, count: 2 },
      { ts_ms: 10, value: 15, min: 10, max: 20, count: 2 },
      { ts_ms: 20, value: 7, min: 7, max: 7, count: 1 },
    ]);
  });

  it('keeps the series index across a reopen and prunes by age', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    let e = openEnv(t.dir);
    let store = new SampleStore(e);
    await store.ingest('n1', 'l', 1, 0, [{ entity: 'n1', metric: 'm', offsets_ms: [1, 2, 3, 4], values: [1, 2, 3, 4] }]);
    await e.close();
    e = openEnv(t.dir);
    store = new SampleStore(e);
    expect(store.getSeries('n1', 'm')).toMatchObject({ firstMs: 1, lastMs: 4 });
    expect(await store.pruneOlderThan(3)).toBe(2);
    expect([...store.range('n1', 'm', 0, 10)].map(([t]) => t)).toEqual([3, 4]);
    await e.close();
  });
});
