/**
 * The cluster's revocation list, as this node knows it. Entries name an identity (a node
 * or an operator) and a time: every certificate of that identity issued at or before it
 * is refused. The list only grows and merges by union (per identity the latest time
 * wins), so any node can hand its copy to a new coordinator and no revocation is lost
 * across failover, like samples (design invariant 1).
 *
 * Why identities and not serial numbers: removing a node must also refuse a certificate
 * it renewed a minute ago that no other node has seen yet.
 */
import type { Database } from 'lmdb';
import type { X509Certificate } from 'node:crypto';
import type { Env } from './db';
import { issuedAt, type PeerIdentity } from './identity';

export type RevocationKind = 'IDENTITY_KIND_NODE' | 'IDENTITY_KIND_OPERATOR';

/** As on the wire (herd.v1.Revocation, proto-loader with enums as strings, longs as numbers). */
export interface Revocation {
  kind: RevocationKind;
  name: string;
  revoked_at_ms: number;
  revoked_by: string;
  reason: string;
}

const keyOf = (kind: RevocationKind, name: string) => `${kind === 'IDENTITY_KIND_NODE' ? 'node' : 'admin'}/${name}`;

export function identityKey(id: PeerIdentity): string {
  return id.kind === 'node' ? `node/${id.nodeId}` : `admin/${id.name}`;
}

export class RevocationStore {
  private readonly db: Database<Revocation, string>;
  private readonly byKey = new Map<string, Revocation>();
  private readonly listeners = new Set<(added: Revocation[]) => void>();

  constructor(env: Env) {
    this.db = env.openDB<Revocation, string>({ name: 'revocations' });
    for (const { key, value } of this.db.getRange()) this.byKey.set(key, value);
  }

  list(): Revocation[] {
    return [...this.byKey.values()].sort((a, b) => a.revoked_at_ms - b.revoked_at_ms);
  }

  /** The entry that refuses this certificate, if any. */
  revoking(id: PeerIdentity, cert: X509Certificate): Revocation | undefined {
    const r = this.byKey.get(identityKey(id));
    return r && issuedAt(cert) <= r.revoked_at_ms ? r : undefined;
  }

  /** Adds what is new or later; returns the entries that changed (empty: nothing new). */
  async merge(entries: readonly Revocation[]): Promise<Revocation[]> {
    const changed: Revocation[] = [];
    for (const e of entries) {
      if (e.kind !== 'IDENTITY_KIND_NODE' && e.kind !== 'IDENTITY_KIND_OPERATOR') continue;
      if (typeof e.name !== 'string' || !e.name) continue;
      const at = Number(e.revoked_at_ms);
      if (!Number.isFinite(at) || at <= 0) continue;
      const k = keyOf(e.kind, e.name);
      const have = this.byKey.get(k);
      if (have && have.revoked_at_ms >= at) continue;
      const entry: Revocation = { kind: e.kind, name: e.name, revoked_at_ms: at, revoked_by: String(e.revoked_by ?? ''), reason: String(e.reason ?? '') };
      this.byKey.set(k, entry);
      changed.push(entry);
    }
    if (changed.length) {
      await this.db.transaction(() => {
        for (const e of changed) this.db.put(keyOf(e.kind, e.name), e);
      });
      for (const l of this.listeners) l(changed);
    }
    return changed;
  }

  onAdded(listener: (added: Revocation[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
