/**
 * The node's one LMDB environment (<data dir>/herd.lmdb). Every part of the node opens
 * its own named databases in it, so a single write transaction can span them.
 */
import { open, type RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Env = RootDatabase;

export function openEnv(dataDir: string, opts: { mapSizeBytes?: number } = {}): Env {
  mkdirSync(dataDir, { recursive: true });
  return open({
    path: join(dataDir, 'herd.lmdb'),
    // Room to grow; LMDB maps lazily, so this costs address space, not memory.
    mapSize: opts.mapSizeBytes ?? 8 * 1024 ** 3,
    maxDbs: 32,
    compression: false,
  });
}

/** Bytes used by one named database (pages x page size). */
export function dbBytes(db: { getStats(): unknown }): number {
  const s = db.getStats() as {
    pageSize: number;
    treeBranchPageCount: number;
    treeLeafPageCount: number;
    overflowPages: number;
  };
  return s.pageSize * (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages);
}
