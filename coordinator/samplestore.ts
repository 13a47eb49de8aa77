/**
 * The coordinator's copy of the cluster's samples: keys [entity, metric, ts] so that a
 * series' time range is one ordered scan; a series index; and per node the highest
 * batch sequence number stored, written in the same commit as the batch's samples so
 * that an acknowledgement never runs ahead of the data.
 */
import type { Database } from 'lmdb';
import type { Env } from '../common/db';
import type { SeriesPoints } from '../common/samples';
import type { StorageGuard } from '../common/storage';

export interface SeriesInfo {
  entity: string;
  metric: string;
  nodeId: string;
  firstMs: number;
  lastMs: number;
}

export interface NodeLogState {
  logId: string;
  ackedSeq: number;
}

export interface Point {
  ts_ms: number;
  value: number;
  min: number;
  max: number;
  count: number;
}

type SampleKey = [string, string, number];

export class SampleStore {
  private readonly samples: Database<number, SampleKey>;
  private readonly seriesDb: Database<SeriesInfo, [string, string]>;
  private readonly logs: Database<NodeLogState, string>;
  private readonly series = new Map<string, SeriesInfo>();

  constructor(env: Env, private readonly guard?: StorageGuard) {
    this.samples = env.openDB({ name: 'coord.samples' });
    this.seriesDb = env.openDB({ name: 'coord.series' });
    this.logs = env.openDB({ name: 'coord.logs' });
    for (const { value } of this.seriesDb.getRange()) {
      this.boundsFromSamples(value);
      this.series.set(seriesKey(value.entity, value.metric), value);
    }
  }

  /** What the coordinator holds of a node's log; a new log id (wiped agent) starts from zero. */
  logState(nodeId: string, logId: string): NodeLogState {
    const s = this.logs.get(nodeId);
    return s && s.logId === logId ? s : { logId, ackedSeq: 0 };
  }

  /** Highest batch seq stored for a node's current log (0 when none). */
  ackedSeq(nodeId: string): number {
    return this.logs.get(nodeId)?.ackedSeq ?? 0;
  }

  /**
   * Stores a batch's samples and the node's new acked seq in one commit; resolves when
   * durable. Calls are committed in call order, so acks sent in resolution order are
   * cumulative and correct.
   */
  ingest(nodeId: string, logId: string, seq: number, baseMs: number, series: SeriesPoints[]): Promise<unknown> {
    try {
      this.guard?.check(); // below the reserve: not stored, so not acknowledged; the agent keeps it
    } catch (err) {
      return Promise.reject(err);
    }
    for (const sp of series) {
      const n = sp.offsets_ms.length;
      if (n === 0) continue;
      for (let i = 0; i < n; i++) this.samples.put([sp.entity, sp.metric, baseMs + sp.offsets_ms[i]], sp.values[i]);
      let lo = baseMs + sp.offsets_ms[0];
      let hi = lo;
      for (let i = 1; i < n; i++) {
        const t = baseMs + sp.offsets_ms[i];
        if (t < lo) lo = t;
        if (t > hi) hi = t;
      }
      this.noteSeries(sp.entity, sp.metric, nodeId, lo, hi);
    }
    const done = this.logs.put(nodeId, { logId, ackedSeq: seq });
    if (!this.guard) return done;
    return done.then(
      (r) => {
        this.guard!.succeeded();
        return r;
      },
      (err) => {
        this.guard!.writeFailedWith(err);
        throw err;
      },
    );
  }

  /**
   * The index is written only when a series appears or moves to another node: its time
   * bounds live in memory and are recomputed from the samples at start (one ordered
   * seek per series), so a batch costs no extra writes for it.
   */
  private noteSeries(entity: string, metric: string, nodeId: string, lo: number, hi: number): void {
    const key = seriesKey(entity, metric);
    const cur = this.series.get(key);
    if (!cur) {
      const next = { entity, metric, nodeId, firstMs: lo, lastMs: hi };
      this.series.set(key, next);
      this.seriesDb.put([entity, metric], next);
      return;
    }
    if (lo < cur.firstMs) cur.firstMs = lo;
    if (hi >= cur.lastMs) {
      cur.lastMs = hi;
      if (cur.nodeId !== nodeId) {
        cur.nodeId = nodeId;
        this.seriesDb.put([entity, metric], cur);
      }
    }
  }

  private boundsFromSamples(s: SeriesInfo): void {
    for (const key of this.samples.getKeys({ start: [s.entity, s.metric, 0], end: [s.entity, s.metric, Number.MAX_SAFE_INTEGER], limit: 1 })) s.firstMs = (key as SampleKey)[2];
    for (const key of this.samples.getKeys({ start: [s.entity, s.metric, Number.MAX_SAFE_INTEGER], end: [s.entity, s.metric, 0], reverse: true, limit: 1 })) s.lastMs = (key as SampleKey)[2];
  }

  getSeries(entity: string, metric: string): SeriesInfo | undefined {
    return this.series.get(seriesKey(entity, metric));
  }

  listSeries(entity = '', metricPrefix = ''): SeriesInfo[] {
    const out: SeriesInfo[] = [];
    for (const s of this.series.values()) {
      if (entity && s.entity !== entity) continue;
      if (metricPrefix && !s.metric.startsWith(metricPrefix)) continue;
      out.push(s);
    }
    return out.sort((a, b) => (a.entity === b.entity ? cmp(a.metric, b.metric) : cmp(a.entity, b.entity)));
  }

  /** Raw samples in [from, to), oldest first; stops after `limit` (the caller checks). */
  *range(entity: string, metric: string, from: number, to: number, limit?: number): Generator<[number, number]> {
    for (const { key, value } of this.samples.getRange({ start: [entity, metric, from], end: [entity, metric, to], limit })) {
      yield [(key as SampleKey)[2], value];
    }
  }

  /** Counts samples in [from, to), stopping at `cap` so a huge range costs at most `cap` steps. */
  count(entity: string, metric: string, from: number, to: number, cap: number): number {
    let n = 0;
    for (const _ of this.samples.getKeys({ start: [entity, metric, from], end: [entity, metric, to], limit: cap })) n++;
    return n;
  }

  /** One point per step: mean, min, max and count of the samples in [t, t + step). */
  downsample(entity: string, metric: string, from: number, to: number, step: number): Point[] {
    const out: Point[] = [];
    let cur: Point | undefined;
    let sum = 0;
    for (const [ts, v] of this.range(entity, metric, from, to)) {
      const bucket = from + Math.floor((ts - from) / step) * step;
      if (!cur || cur.ts_ms !== bucket) {
        if (cur) cur.value = sum / cur.count;
        cur = { ts_ms: bucket, value: 0, min: v, max: v, count: 0 };
        sum = 0;
        out.push(cur);
      }
      sum += v;
      cur.count++;
      if (v < cur.min) cur.min = v;
      if (v > cur.max) cur.max = v;
    }
    if (cur) cur.value = sum / cur.count;
    return out;
  }

  /** Deletes samples older than cutoffMs (retention by age on the coordinator's copy). */
  async pruneOlderThan(cutoffMs: number): Promise<number> {
    let removed = 0;
    for (const s of this.series.values()) {
      if (s.firstMs >= cutoffMs) continue;
      for (const key of this.samples.getKeys({ start: [s.entity, s.metric, 0], end: [s.entity, s.metric, cutoffMs] })) {
        this.samples.remove(key as SampleKey);
        removed++;
      }
    }
    await this.samples.committed;
    for (const s of this.series.values()) if (s.firstMs < cutoffMs) this.boundsFromSamples(s);
    return removed;
  }
}

function seriesKey(entity: string, metric: string): string {
  return `${entity}\u0000${metric}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
