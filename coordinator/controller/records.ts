/**
 * The controller's memory on the coordinator: its settings (the highest version wins) and
 * its decisions (the highest revision of each wins). Both arrive like audit events, in
 * sample batches (SampleBatch.policy, SampleBatch.decisions): the coordinator's node puts
 * them in its own log and hands them to every agent to keep in theirs, so a new
 * coordinator - even after the old one's node is gone - rebuilds both from the replays.
 */
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import type { DecisionRecord } from '../../common/decision';
import { ID_PATTERN, truncate } from '../../common/validate';
import { decisionFromWire, type WireDecision } from './wire';

/** One version of the settings, as stored and carried (herd.v1.PolicySettings). */
export interface SettingsVersion {
  settings_json: string;
  version: number;
  set_ms: number;
  set_by: string;
  term: number;
}

export interface StoredDecision {
  record: DecisionRecord;
  revision: number;
}

const SETTINGS_KEY = 'current';

export class ControlRecords {
  private readonly decisionsDb: Database<StoredDecision, string>;
  private readonly settingsDb: Database<SettingsVersion, string>;
  private readonly listeners = new Set<(s: SettingsVersion) => void>();
  // Writes not yet committed: LMDB reads see a put only once it commits, and a decision is
  // often revised (a migration ends) right after it is stored.
  private readonly pending = new Map<string, StoredDecision>();
  private pendingSettings: SettingsVersion | undefined;

  /** @param accept checks a settings JSON text; replayed settings that fail it are skipped. */
  constructor(
    env: Env,
    private readonly accept: (settingsJson: string) => boolean,
  ) {
    this.decisionsDb = env.openDB({ name: 'coord.decisions' });
    this.settingsDb = env.openDB({ name: 'coord.policy' });
  }

  /** The settings in force; undefined before any were set (the defaults then apply). */
  settings(): SettingsVersion | undefined {
    return this.pendingSettings ?? this.settingsDb.get(SETTINGS_KEY);
  }

  /** Keeps a version of the settings if it is newer than the one held; true if it was. */
  putSettings(s: SettingsVersion): boolean {
    const cur = this.settings();
    if (cur && (cur.version > s.version || (cur.version === s.version && cur.set_ms >= s.set_ms))) return false;
    this.pendingSettings = s;
    void this.settingsDb.put(SETTINGS_KEY, s).finally(() => {
      if (this.pendingSettings === s) this.pendingSettings = undefined;
    });
    for (const fn of this.listeners) fn(s);
    return true;
  }

  /** Called with every settings version that takes over (SetPolicy here, or a replay). */
  onSettings(fn: (s: SettingsVersion) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Keeps a decision unless an equal or higher revision of it is held; true if it was kept. */
  putDecision(record: DecisionRecord, revision: number): boolean {
    const cur = this.decision(record.id);
    if (cur && cur.revision >= revision) return false;
    const stored = { record, revision };
    this.pending.set(record.id, stored);
    void this.decisionsDb.put(record.id, stored).finally(() => {
      if (this.pending.get(record.id) === stored) this.pending.delete(record.id);
    });
    return true;
  }

  decision(id: string): StoredDecision | undefined {
    return this.pending.get(id) ?? this.decisionsDb.get(id);
  }

  /** Newest first (ids sort by time). */
  decisions(limit: number): StoredDecision[] {
    const byId = new Map<string, StoredDecision>();
    for (const { key, value } of this.decisionsDb.getRange({ reverse: true, limit })) byId.set(key as string, value);
    for (const [id, d] of this.pending) byId.set(id, d);
    return [...byId.entries()]
      .sort((a, b) => (a[1].record.atMs === b[1].record.atMs ? (a[0] < b[0] ? 1 : -1) : b[1].record.atMs - a[1].record.atMs))
      .slice(0, limit)
      .map(([, d]) => d);
  }

  /** Keeps the newest `keep` decisions (at the thesis's 150 s period, 10,000 is 17 days). */
  trim(keep: number): number {
    let n = 0;
    let removed = 0;
    for (const key of this.decisionsDb.getKeys({ reverse: true })) {
      if (++n <= keep) continue;
      void this.decisionsDb.remove(key);
      removed++;
    }
    return removed;
  }

  /** What a batch carries (SampleBatch.decisions, .policy); anything malformed is skipped. */
  recordBatch(decisions: unknown, policy: unknown): void {
    if (Array.isArray(decisions)) {
      for (const d of decisions as WireDecision[]) {
        if (typeof d?.id !== 'string' || !ID_PATTERN.test(d.id) || !(Number(d.at_ms) > 0)) continue;
        const { record, revision } = decisionFromWire(d);
        this.putDecision(record, revision);
      }
    }
    if (Array.isArray(policy)) {
      for (const p of policy as SettingsVersion[]) {
        const version = Number(p?.version);
        if (!Number.isSafeInteger(version) || version <= 0 || typeof p.settings_json !== 'string' || !this.accept(p.settings_json)) continue;
        this.putSettings({ settings_json: p.settings_json, version, set_ms: Number(p.set_ms) || 0, set_by: truncate(String(p.set_by ?? ''), 200), term: Number(p.term) || 0 });
      }
    }
  }
}
