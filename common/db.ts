/**
 * The node's one LMDB environment (<data dir>/herd.lmdb). Every part of the node opens
 * its own named databases in it, so a single write transaction can span them.
 */
import { open, type RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Env = RootDatabase;

/** The process 'exit' listeners lmdb-js added at its first open (its native onExit). */
const lmdbExitHooks: NodeJS.ExitListener[] = [];

export function openEnv(dataDir: string, opts: { mapSizeBytes?: number } = {}): Env {
  mkdirSync(dataDir, { recursive: true });
  const before = new Set(process.listeners('exit'));
  const env = open({
    path: join(dataDir, 'herd.lmdb'),
    // Room to grow; LMDB maps lazily, so this costs address space, not memory.
    mapSize: opts.mapSizeBytes ?? 8 * 1024 ** 3,
    maxDbs: 32,
    compression: false,
  });
  lmdbExitHooks.push(...process.listeners('exit').filter((l) => !before.has(l)));
  return env;
}

/**
 * After a failed commit (ENOSPC) an LMDB environment must not be closed: lmdb-js 3.5's close
 * then corrupts the heap ("corrupted size vs. prev_size", SIGABRT). Not calling env.close() is
 * not enough: with overlappingSync (its default on Linux) lmdb-js closes every environment
 * itself in a process 'exit' listener. This removes that listener, so a process that exits
 * with process.exit() leaves the store as committed (every commit is already durable). A
 * natural exit (empty event loop) would still close it in N-API's teardown: exit explicitly.
 */
export function leaveStoresToExit(): void {
  for (const l of lmdbExitHooks.splice(0)) process.removeListener('exit', l);
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
