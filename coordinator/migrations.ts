/**
 * The coordinator's record of migrations and of where each container has lived.
 * Records arrive in the source agents' sample batches (so a new coordinator rebuilds
 * them from the agents' logs like samples); the newest version of a record wins.
 */
import type { Database } from 'lmdb';
import type { Env } from '../common/db';
import { FINAL_STATES, type MigrationRecord, type NodeVisit } from '../common/migration-record';

export class Migrations {
  private readonly db: Database<MigrationRecord, string>;
  private readonly history: Database<NodeVisit[], string>;
  private readonly watchers = new Map<string, Set<(m: MigrationRecord) => void>>();

  constructor(env: Env) {
    this.db = env.openDB({ name: 'coord.migrations' });
    this.history = env.openDB({ name: 'coord.history' });
  }

  get(id: string): MigrationRecord | undefined {
    return this.db.get(id);
  }

  /** Stores a record unless an equal or newer version is already there; tells watchers. */
  update(m: MigrationRecord): void {
    const cur = this.db.get(m.migration_id);
    if (cur && cur.version >= m.version) return;
    void this.db.put(m.migration_id, m);
    if (m.state === 'SUCCEEDED' && (!cur || cur.state !== 'SUCCEEDED')) this.moved(m);
    for (const fn of this.watchers.get(m.migration_id) ?? []) fn(m);
  }

  watch(id: string, fn: (m: MigrationRecord) => void): () => void {
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (set!.size === 0) this.watchers.delete(id);
    };
  }

  /** Newest first. */
  list(herdId = '', limit = 100): MigrationRecord[] {
    const out: MigrationRecord[] = [];
    for (const { value } of this.db.getRange()) if (!herdId || value.herd_id === herdId) out.push(value);
    out.sort((a, b) => b.started_ms - a.started_ms);
    return out.slice(0, limit);
  }

  /** A migration of this container that has not finished, if any. */
  active(herdId: string): MigrationRecord | undefined {
    for (const { value } of this.db.getRange()) if (value.herd_id === herdId && !FINAL_STATES.has(value.state)) return value;
    return undefined;
  }

  /** A container seen in a node's inventory: opens its first visit if it has none. */
  seen(herdId: string, nodeId: string, dockerId: string, sinceMs: number): void {
    const visits = this.history.get(herdId) ?? [];
    const last = visits[visits.length - 1];
    if (last && last.node_id === nodeId && last.until_ms === 0) {
      if (last.docker_id !== dockerId && !last.migration_id) {
        last.docker_id = dockerId;
        void this.history.put(herdId, visits);
      }
      return;
    }
    if (last && last.until_ms === 0) return; // still on another node: a migration record will move it
    visits.push({ node_id: nodeId, docker_id: dockerId, since_ms: sinceMs, until_ms: 0, migration_id: '' });
    void this.history.put(herdId, visits);
  }

  visits(herdId: string): NodeVisit[] {
    return this.history.get(herdId) ?? [];
  }

  private moved(m: MigrationRecord): void {
    const visits = this.history.get(m.herd_id) ?? [];
    const when = m.ended_ms || Date.now();
    const last = visits[visits.length - 1];
    if (last && last.until_ms === 0) last.until_ms = when;
    visits.push({ node_id: m.target_node_id, docker_id: m.target_docker_id, since_ms: when, until_ms: 0, migration_id: m.migration_id });
    void this.history.put(m.herd_id, visits);
  }
}
