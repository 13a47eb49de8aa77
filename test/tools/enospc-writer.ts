/**
 * Drives a real LMDB into ENOSPC under a StorageGuard whose reserve is 0 (the case the
 * reserve cannot prevent: something else filled the disk between the check and the commit).
 * Appends sample-log batches until one fails, prints the guard's status and what is stored,
 * waits for "go" on stdin (the test frees space), appends again and prints the result.
 * Exits without env.close() as the node does after a failed write (docs: common/storage.ts).
 * Used by test/integration/storage.test.ts.
 */
import { createInterface } from 'node:readline';
import { leaveStoresToExit, openEnv } from '../../common/db';
import { SampleLog } from '../../agent/samplelog';
import { StorageGuard, isLmdbWriteFailure } from '../../common/storage';

const dir = process.argv[2];
const guard = new StorageGuard(dir, { minFreeBytes: 0 });
// as agent/node.ts does: lmdb-js's unawaited commitError is a storage failure, not a crash
process.on('unhandledRejection', (reason) => {
  if (!isLmdbWriteFailure(reason)) throw reason;
  guard.writeFailedWith(reason);
});
const env = openEnv(dir);
const sampleLog = new SampleLog(env, 'full', Date.now, guard);
const samples = () => Array.from({ length: 500 }, (_, k) => ({ entity: 'e', metric: `m${k}`, ts: Date.now(), value: k }));
let failure = '';
for (let i = 0; i < 100_000 && !failure; i++) {
  try {
    await sampleLog.append(samples());
  } catch (err) {
    failure = (err as Error).message;
  }
}
const count = () => [...sampleLog.read(0, 1_000_000)].length;
console.log(JSON.stringify({ phase: 'full', failure, status: guard.status(), lastSeq: sampleLog.lastSeq(), stored: count() }));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'go') continue;
  const seq = await sampleLog.append(samples());
  console.log(JSON.stringify({ phase: 'after', seq, status: guard.status(), lastSeq: sampleLog.lastSeq(), stored: count() }));
  // as agent/node.ts stops: after a failed write the store is left as committed, not closed
  if (guard.sawWriteFailure) leaveStoresToExit();
  process.exit(0);
}
