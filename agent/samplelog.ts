/**
 * The agent's durable log of sample batches: every collection round becomes one batch
 * with the next sequence number, written to LMDB before anything is sent (invariant 1).
 * The uplink reads batches back by sequence number, so a reconnect - to the same or a
 * new coordinator - replays exactly what the coordinator lacks, and a slow coordinator
 * only makes this log longer, never the agent's memory.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from 'lmdb';
import type { Env } from '../common/db';
import { dbBytes } from '../common/db';
import { logger } from '../common/log';
import { meshCodec } from '../common/proto';
import type { Sample } from '../common/types';
import type { StorageGuard } from '../common/storage';
import type { SeriesPoints } from '../common/samples';

const log = logger('samplelog');


/** A stored batch: its seq, when it was made, and the encoded herd.v1.AgentMessage that carries it. */
export interface StoredBatch {
  seq: number;
  created_ms: number;
  message: Buffer;
}

/** Offsets are sint32 on the wire: a sample further than this from its batch's time is bogus. */
const MAX_OFFSET_MS = 2 ** 31 - 1;

export interface RetentionOptions {
  /** Batches older than this are dropped once the coordinator has acknowledged them. */
  maxAgeMs: number;
  /** Above this size the oldest batches are dropped even if unacknowledged (a loud loss). */
  maxBytes: number;
}

/** The metric that records every batch's sequence number, so continuity can be checked end to end. */
export const BATCH_SEQ_METRIC = 'herd.batch.seq';

export class SampleLog {
  // value: 8 bytes of created_ms (float64 LE), then the encoded AgentMessage, so a
  // replay sends stored bytes as they are: no decode, no re-encode.
  private readonly batches: Database<Buffer, number>;
  private readonly encode = meshCodec().encodeAgent;
  private readonly meta: Database<any, string>;
  readonly logId: string;
  private nextSeq: number;
  private lastCommitted = 0;
  private lastSeqTs = 0;
  private readonly listeners = new Set<(seq: number) => void>();
  private readonly appendListeners = new Set<(samples: readonly Sample[]) => void>();

  constructor(
    env: Env,
    private readonly nodeId: string,
    private readonly clock: () => number = Date.now,
    /** Refuses sample rounds on a full file system (migration records and audit events still go: the reserve is theirs). */
    private readonly guard?: StorageGuard,
  ) {
    this.batches = env.openDB({ name: 'agent.batches', keyEncoding: 'uint32', encoding: 'binary' });
    this.meta = env.openDB({ name: 'agent.meta' });
    let id = this.meta.get('log_id') as string | undefined;
    if (!id) {
      id = randomUUID();
      this.meta.putSync('log_id', id);
    }
    this.logId = id;
    const last = this.lastSeq();
    this.nextSeq = last + 1;
    this.lastCommitted = last;
  }

  /** Highest sequence number written (0 when empty). */
  lastSeq(): number {
    for (const key of this.batches.getKeys({ reverse: true, limit: 1 })) return key as number;
    return 0;
  }

  /** Lowest sequence number still retained (0 when empty). */
  firstSeq(): number {
    for (const key of this.batches.getKeys({ limit: 1 })) return key as number;
    return 0;
  }

  /** Highest sequence number durably committed: the uplink never sends past it. */
  committedSeq(): number {
    return this.lastCommitted;
  }

  /** Told the samples of every batch once it is on disk (the node's /metrics keeps the newest). */
  onAppend(fn: (samples: readonly Sample[]) => void): () => void {
    this.appendListeners.add(fn);
    return () => this.appendListeners.delete(fn);
  }

  onCommit(fn: (seq: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Appends one batch. Resolves with its sequence number once it is on disk. An empty
   * list of samples still makes a batch: its herd.batch.seq sample proves the round ran.
   * Migration records (herd.v1.Migration) ride along, so they are durable and replayed
   * to every new coordinator like samples; so do audit events and the controller's
   * records (herd.v1.ControlRecords: decisions, settings, forecast model pieces).
   */
  async append(samples: Sample[], migrations: unknown[] = [], audit: unknown[] = [], control: { decisions?: unknown[]; policy?: unknown[]; models?: unknown[] } = {}): Promise<number> {
    // Refused before a seq is taken: a skipped round leaves no gap in the sequence.
    if (migrations.length === 0 && audit.length === 0 && !control.decisions?.length && !control.policy?.length && !control.models?.length) this.guard?.check();
    const seq = this.nextSeq++;
    // Strictly increasing times for the seq series: two rounds in the same ms must not collide.
    const now = Math.max(this.clock(), this.lastSeqTs + 1);
    this.lastSeqTs = now;
    const series = group(samples, now, (dropped) => log.warn('dropping samples timestamped more than 24 days from now', { count: dropped }));
    series.push({ entity: this.nodeId, metric: BATCH_SEQ_METRIC, offsets_ms: [0], values: [seq] });
    const message = this.encode({ batch: { seq, created_ms: now, series, migrations, audit, decisions: control.decisions ?? [], policy: control.policy ?? [], models: control.models ?? [] } });
    const value = Buffer.allocUnsafe(8 + message.length);
    value.writeDoubleLE(now, 0);
    message.copy(value, 8);
    try {
      await this.batches.put(seq, value);
    } catch (err) {
      if (this.nextSeq === seq + 1) this.nextSeq = seq; // not stored: the seq is taken again
      this.guard?.writeFailedWith(err);
      throw err;
    }
    this.guard?.succeeded();
    // Commits resolve in order, so every lower seq is durable too.
    if (seq > this.lastCommitted) this.lastCommitted = seq;
    for (const fn of this.listeners) fn(seq);
    for (const fn of this.appendListeners) fn(samples);
    return seq;
  }

  /** Up to `limit` batches with seq > after, in order. */
  read(after: number, limit: number): StoredBatch[] {
    const out: StoredBatch[] = [];
    const end = this.lastCommitted + 1;
    for (const { key, value } of this.batches.getRange({ start: after + 1, end, limit })) {
      out.push({ seq: key as number, created_ms: value.readDoubleLE(0), message: value.subarray(8) });
    }
    return out;
  }

  bytes(): number {
    return dbBytes(this.batches);
  }

  /**
   * Drops acknowledged batches older than maxAgeMs, then - only if the log is still
   * above maxBytes - the oldest batches whether acknowledged or not, and says how many
   * unacknowledged ones were lost.
   */
  async prune(ackedSeq: number, opts: RetentionOptions): Promise<{ dropped: number; lostUnacked: number }> {
    const cutoff = this.clock() - opts.maxAgeMs;
    let dropped = 0;
    let lostUnacked = 0;
    const doomed: number[] = [];
    for (const { key, value } of this.batches.getRange({ end: ackedSeq + 1 })) {
      if (value.readDoubleLE(0) >= cutoff) break;
      doomed.push(key as number);
    }
    for (const k of doomed) this.batches.remove(k);
    dropped += doomed.length;
    if (doomed.length) await this.batches.committed;

    // Size: LMDB pages are only reused, not returned, so measure the tree and drop in chunks.
    for (let round = 0; round < 1000 && this.bytes() > opts.maxBytes; round++) {
      const total = this.lastSeq() - this.firstSeq() + 1;
      const chunk = Math.max(1, Math.ceil(total / 10));
      const keys = [...this.batches.getKeys({ limit: chunk })] as number[];
      if (keys.length <= 1 && keys[0] === this.lastSeq()) break; // never drop the newest batch
      for (const k of keys) {
        this.batches.remove(k);
        if (k > ackedSeq) lostUnacked++;
      }
      dropped += keys.length;
      await this.batches.committed;
    }
    if (lostUnacked > 0) {
      log.warn('sample log over its size limit: dropped batches the coordinator never acknowledged', {
        lost_batches: lostUnacked,
        max_bytes: opts.maxBytes,
      });
    }
    return { dropped, lostUnacked };
  }
}

/** Groups samples into columnar series (first-seen order), times as offsets from baseMs. */
export function group(samples: Sample[], baseMs: number, onDropped?: (n: number) => void): SeriesPoints[] {
  const byKey = new Map<string, SeriesPoints>();
  let dropped = 0;
  for (const s of samples) {
    const offset = s.ts - baseMs;
    if (offset > MAX_OFFSET_MS || offset < -MAX_OFFSET_MS) {
      dropped++;
      continue;
    }
    const key = `${s.entity}\u0000${s.metric}`;
    let sp = byKey.get(key);
    if (!sp) {
      sp = { entity: s.entity, metric: s.metric, offsets_ms: [], values: [] };
      byKey.set(key, sp);
    }
    sp.offsets_ms.push(offset);
    sp.values.push(s.value);
  }
  if (dropped) onDropped?.(dropped);
  return [...byKey.values()];
}
