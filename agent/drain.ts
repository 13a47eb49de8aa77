/**
 * Whether this node is draining (no migrations to it). The node keeps the mark itself, in
 * its LMDB, so it survives restarts and coordinator changes without any coordinator having
 * to remember it: every coordinator learns it from the node's labels (hello, NodeUpdate).
 * Set by Admin.DrainNode through a DrainCommand; a `herd.draining` label in the config is the
 * starting value until the first command.
 */
import type { Database } from 'lmdb';
import type { Env } from '../common/db';
import { DRAINING_LABEL } from '../common/labels';

interface DrainMark {
  draining: boolean;
  by: string;
  at_ms: number;
}

export class DrainState {
  private readonly db: Database<DrainMark, string>;

  constructor(
    env: Env,
    private readonly configLabels: Record<string, string>,
  ) {
    this.db = env.openDB({ name: 'node.drain' });
  }

  get draining(): boolean {
    const mark = this.db.get('mark');
    return mark ? mark.draining : this.configLabels[DRAINING_LABEL] === 'true';
  }

  /** Durable before it resolves: the node answers the command only with what it will keep. */
  async set(draining: boolean, by: string): Promise<void> {
    await this.db.put('mark', { draining, by, at_ms: Date.now() });
  }

  /** The config's labels with herd.draining as it is now (absent when not draining). */
  labels(): Array<{ key: string; value: string }> {
    const out = Object.entries(this.configLabels)
      .filter(([key]) => key !== DRAINING_LABEL)
      .map(([key, value]) => ({ key, value }));
    if (this.draining) out.push({ key: DRAINING_LABEL, value: 'true' });
    return out;
  }
}
