import { isLmdbWriteFailure, type StorageGuard } from '../common/storage';

const lmdbWatchers = new Set<StorageGuard>();
/**
 * lmdb-js rejects a failed commit's `commitError`, and every write of that commit nobody
 * awaited, with no handler: by default that ends the process. Those are recorded as a
 * storage failure instead; any other unhandled rejection still ends it.
 */
export function watchLmdbWriteFailures(guard: StorageGuard): void {
  if (lmdbWatchers.size === 0) {
    process.on('unhandledRejection', (reason) => {
      if (!isLmdbWriteFailure(reason)) throw reason;
      for (const g of lmdbWatchers) g.writeFailedWith(reason);
    });
  }
  lmdbWatchers.add(guard);
}
