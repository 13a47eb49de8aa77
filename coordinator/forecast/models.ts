/**
 * The coordinator's forecast models (design.md, Storage: "models"): every version stored
 * in LMDB with what it is (herd.v1.ModelInfo) and its ONNX bytes; the highest version is
 * the model in force. Models reach the next coordinator as the controller's records do:
 * cut into pieces (herd.v1.ModelChunk, at most CHUNK_BYTES each, so no gRPC message
 * passes the default 4 MiB) that every node keeps in its sample log and replays; a piece
 * set is stored once complete and its bytes match the SHA-256 the info names.
 */
import { createHash } from 'node:crypto';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { logger } from '../../common/log';

const log = logger('models');

export const CHUNK_BYTES = 512 * 1024;
/** Largest model kept: a bound on what one replayed record can make a coordinator hold. */
export const MAX_MODEL_BYTES = 32 * 1024 * 1024;
/** Incomplete piece sets held at once (a replay interleaves at most a few). */
const MAX_PENDING = 8;
/** Versions the coordinator keeps (the newest; the nodes' logs keep older ones for their retention). */
export const MAX_VERSIONS_KEPT = 50;

/** herd.v1.ModelInfo as the wire (proto-loader, keepCase) carries it. */
export interface ModelInfo {
  version: number;
  created_ms: number;
  term: number;
  created_by: string;
  source: 'trained' | 'loaded';
  from_ms: number;
  to_ms: number;
  step_ms: number;
  features: string[];
  target: string;
  hyperparameters_json: string;
  train_rows: number;
  valid_rows: number;
  trees: number;
  train_rmse: number;
  valid_rmse: number;
  importance: { feature: string; gain: number; splits: number }[];
  onnx_bytes: number;
  onnx_sha256: string;
  max_abs_diff: number;
  train_ms: number;
  note: string;
}

export interface StoredModel {
  info: ModelInfo;
  onnx: Uint8Array;
}

export interface ModelChunk {
  info: ModelInfo;
  index: number;
  count: number;
  data: Uint8Array;
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A model as the pieces that travel (one per sample batch, one per command). */
export function toChunks(m: StoredModel): ModelChunk[] {
  const count = Math.max(1, Math.ceil(m.onnx.length / CHUNK_BYTES));
  return Array.from({ length: count }, (_, index) => ({ info: m.info, index, count, data: m.onnx.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES) }));
}

const str = (v: unknown, n = 2000) => String(v ?? '').slice(0, n);
const num = (v: unknown) => (Number.isFinite(Number(v)) ? Number(v) : 0);

/** A ModelInfo from a log, bounded (it passed through every agent's log). */
export function infoFromWire(w: any): ModelInfo {
  return {
    version: Math.trunc(num(w?.version)),
    created_ms: num(w?.created_ms),
    term: num(w?.term),
    created_by: str(w?.created_by, 200),
    source: w?.source === 'loaded' ? 'loaded' : 'trained',
    from_ms: num(w?.from_ms),
    to_ms: num(w?.to_ms),
    step_ms: num(w?.step_ms),
    features: (Array.isArray(w?.features) ? w.features : []).slice(0, 10_000).map((f: unknown) => str(f, 200)),
    target: str(w?.target, 200),
    hyperparameters_json: str(w?.hyperparameters_json, 4000),
    train_rows: num(w?.train_rows),
    valid_rows: num(w?.valid_rows),
    trees: num(w?.trees),
    train_rmse: num(w?.train_rmse),
    valid_rmse: num(w?.valid_rmse),
    importance: (Array.isArray(w?.importance) ? w.importance : []).slice(0, 10_000).map((i: any) => ({ feature: str(i?.feature, 200), gain: num(i?.gain), splits: num(i?.splits) })),
    onnx_bytes: num(w?.onnx_bytes),
    onnx_sha256: str(w?.onnx_sha256, 64),
    max_abs_diff: num(w?.max_abs_diff),
    train_ms: num(w?.train_ms),
    note: str(w?.note),
  };
}

/** Which of two records of one version is kept: the later one (two coordinators, one version number). */
const newer = (a: ModelInfo, b: ModelInfo) => a.created_ms > b.created_ms || (a.created_ms === b.created_ms && a.onnx_sha256 > b.onnx_sha256);

export class ModelStore {
  private readonly db: Database<{ info: ModelInfo; onnx: Buffer }, number>;
  // Writes not yet committed (LMDB reads see a put once it commits).
  private readonly pending = new Map<number, StoredModel>();
  private readonly pieces = new Map<string, { info: ModelInfo; parts: (Uint8Array | undefined)[] }>();
  private readonly listeners = new Set<(m: ModelInfo) => void>();

  constructor(env: Env) {
    this.db = env.openDB({ name: 'coord.models', keyEncoding: 'uint32' });
  }

  /** The highest version stored (0: none). */
  latestVersion(): number {
    let v = 0;
    for (const key of this.db.getKeys({ reverse: true, limit: 1 })) v = key as number;
    for (const k of this.pending.keys()) v = Math.max(v, k);
    return v;
  }

  get(version: number): StoredModel | undefined {
    const p = this.pending.get(version);
    if (p) return p;
    const r = this.db.get(version);
    return r && { info: r.info, onnx: new Uint8Array(r.onnx) };
  }

  /** The model in force: the highest version; undefined before any. */
  inForce(): StoredModel | undefined {
    const v = this.latestVersion();
    return v ? this.get(v) : undefined;
  }

  /** Every version's info, newest first. */
  history(limit = 100): ModelInfo[] {
    const byVersion = new Map<number, ModelInfo>();
    for (const { key, value } of this.db.getRange({ reverse: true, limit })) byVersion.set(key as number, value.info);
    for (const [v, m] of this.pending) byVersion.set(v, m.info);
    return [...byVersion.values()].sort((a, b) => b.version - a.version).slice(0, limit);
  }

  /** Called with every model that comes into force (stored here or replayed). */
  onInForce(fn: (m: ModelInfo) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Keeps a model unless a newer record of its version is held; true if it was kept. */
  put(m: StoredModel): boolean {
    const v = m.info.version;
    if (!(v > 0)) return false;
    const cur = this.get(v);
    if (cur && !newer(m.info, cur.info)) return false;
    const wasInForce = v >= this.latestVersion();
    this.pending.set(v, m);
    void this.db.put(v, { info: m.info, onnx: Buffer.from(m.onnx) }).finally(() => {
      if (this.pending.get(v) === m) this.pending.delete(v);
    });
    if (wasInForce) for (const fn of this.listeners) fn(m.info);
    this.trim(MAX_VERSIONS_KEPT);
    return true;
  }

  /** Keeps the newest `keep` versions; returns how many were removed. */
  trim(keep: number): number {
    const oldest = this.latestVersion() - keep;
    let removed = 0;
    for (const key of this.db.getKeys({ end: oldest + 1 })) {
      void this.db.remove(key as number);
      removed++;
    }
    return removed;
  }

  /** What a batch carries (SampleBatch.models): pieces, assembled; anything malformed is skipped. */
  recordBatch(chunks: unknown): void {
    if (!Array.isArray(chunks)) return;
    for (const c of chunks as any[]) {
      const info = infoFromWire(c?.info);
      const count = Math.trunc(num(c?.count));
      const index = Math.trunc(num(c?.index));
      const data: Uint8Array | undefined = c?.data instanceof Uint8Array ? c.data : undefined;
      if (info.version <= 0 || !/^[0-9a-f]{64}$/.test(info.onnx_sha256) || !(info.onnx_bytes > 0 && info.onnx_bytes <= MAX_MODEL_BYTES)) continue;
      if (count !== Math.ceil(info.onnx_bytes / CHUNK_BYTES) || index < 0 || index >= count || !data || data.length > CHUNK_BYTES) continue;
      const held = this.get(info.version);
      if (held && !newer(info, held.info)) continue; // this record, or a newer one, is stored
      const key = `${info.version}:${info.onnx_sha256}`;
      let set = this.pieces.get(key);
      if (!set) {
        if (this.pieces.size >= MAX_PENDING) this.pieces.delete(this.pieces.keys().next().value!);
        set = { info, parts: new Array(count).fill(undefined) };
        this.pieces.set(key, set);
      }
      set.parts[index] = data;
      if (set.parts.some((p) => !p)) continue;
      this.pieces.delete(key);
      const onnx = Buffer.concat(set.parts as Uint8Array[]);
      if (onnx.length !== info.onnx_bytes || sha256(onnx) !== info.onnx_sha256) {
        log.warn('a replayed model does not match its checksum: not kept', { version: info.version });
        continue;
      }
      if (this.put({ info: set.info, onnx })) log.info('forecast model rebuilt from the nodes\' logs', { version: info.version, created_ms: info.created_ms });
    }
  }
}
