/**
 * What the source side journals about a migration (LMDB, one entry per migration id): the
 * command, the machine's state and what the runner learned on the way. Written before each
 * action is taken, so a restarted agent resumes from it (recovery.ts).
 */
import { join } from 'node:path';
import type { MigrationRecord } from '../../common/migration-record';
import type { MigrationState } from './machine';

/** The name of the checkpoint a migration takes of its source container. */
export const CHECKPOINT_NAME = 'cp';

export interface JournalEntry {
  cmd: { migration_id: string; herd_id: string; target_node_id: string; target_address: string; fs_mode: string; term: number; tcp_established?: boolean };
  sourceDockerId: string;
  state: MigrationState;
  record: MigrationRecord;
  artifacts: Array<{ name: string; size: number; sha256: string }>;
  freezeMs?: number;
  /** The source container's overlay upper dir, from the inspect at prepare. */
  upperDir?: string;
  /** Where the checkpoint's images are (on the image tmpfs on the fast path); the checkpoint tar goes beside it. */
  checkpointDir?: string;
  /** The dump sent the pages to the target's page server (then a local dump of the stopped processes ended the task). */
  leftStopped?: boolean;
  /** page-server: the first dump's images (pages on the target already), what is packed for the target. */
  sentDir?: string;
}

/** Where a migration's outgoing files live under the agent's data dir. */
export function outDirOf(dataDir: string, migrationId: string): string {
  return join(dataDir, 'migrations', 'out', migrationId);
}

/** The checkpoint's images: where the runtime put them (journaled), else the old place under the data dir. */
export function checkpointDirOf(entry: JournalEntry, outDir: string): string {
  return entry.checkpointDir ?? join(outDir, CHECKPOINT_NAME);
}
