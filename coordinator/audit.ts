/**
 * The audit trail: every state-changing Admin call (who, what, how it ended). The node
 * that served a call puts the event in its own sample log (agent/security/authorize.ts),
 * so it reaches the coordinator like a sample does and is replayed to a new coordinator:
 * the trail survives failover. Stored by time; a replayed event lands on its own key.
 */
import type { Database } from 'lmdb';
import { createHash } from 'node:crypto';
import type { Env } from '../common/db';
import { truncate } from '../common/validate';
import type { AuditEvent } from '../common/audit-event';

export class AuditTrail {
  private readonly db: Database<AuditEvent, string>;

  constructor(env: Env) {
    this.db = env.openDB({ name: 'coord.audit' });
  }

  /** Stores events from a batch; anything that is not an event is skipped. */
  record(events: unknown): void {
    if (!Array.isArray(events)) return;
    for (const e of events as AuditEvent[]) {
      const at = Number(e?.at_ms);
      if (!Number.isSafeInteger(at) || at <= 0 || typeof e.method !== 'string' || typeof e.who !== 'string') continue;
      const event: AuditEvent = {
        at_ms: at,
        who: truncate(e.who, 200),
        method: truncate(e.method, 200),
        request_json: String(e.request_json ?? '').slice(0, 4100),
        code: Number(e.code) || 0,
        details: truncate(String(e.details ?? ''), 1000),
        node_id: truncate(String(e.node_id ?? ''), 128),
      };
      // Deterministic, so that a replayed event lands on its own key; the digest keeps two
      // different calls of one caller to one method in the same millisecond apart.
      const digest = createHash('sha256').update(`${event.code}\n${event.request_json}\n${event.details}`).digest('hex').slice(0, 16);
      void this.db.put(`${String(at).padStart(15, '0')}/${event.node_id}/${event.who}/${event.method}/${digest}`, event);
    }
  }

  /** Newest first. */
  list(limit: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const { value } of this.db.getRange({ reverse: true, limit })) out.push(value);
    return out;
  }
}
