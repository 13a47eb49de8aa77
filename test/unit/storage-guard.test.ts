/**
 * StorageGuard's verdicts with an injected free-space probe (the real file system fills up
 * in test/integration/storage.test.ts), its place in the sample log (a refused round takes
 * no sequence number), and herd doctor's data-space check.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEnv } from '../../common/db';
import { StorageFullError, StorageGuard, isLmdbWriteFailure } from '../../common/storage';
import { SampleLog } from '../../agent/samplelog';
import { parseSettings } from '../../agent/config';
import { checkDataSpace, type Probes } from '../../cli/doctor';
import { tempDir } from '../helpers/tmp';

const MiB = 1024 * 1024;
const t = tempDir('herd-guard-');
afterAll(() => t.cleanup());

describe('StorageGuard', () => {
  it('refuses below the reserve, says so once, and lets writes through again when space returns', async () => {
    let free = 100 * MiB;
    let now = 0;
    const changes: boolean[] = [];
    const g = new StorageGuard('/data', { minFreeBytes: 16 * MiB, freeBytes: () => free, now: () => now, recheckMs: 1000 });
    g.onChange((s) => changes.push(s.ok));
    expect(await g.write(async () => 'stored')).toBe('stored');
    free = 8 * MiB;
    now += 500;
    g.check(); // looked at less than a second ago: not yet seen
    now += 600;
    expect(() => g.check()).toThrow(StorageFullError);
    expect(() => g.check()).toThrow(/8\.0 MiB free, below the 16\.0 MiB reserve \(\/data\)/);
    expect(g.status()).toMatchObject({ ok: false, freeBytes: 8 * MiB, refused: 2 });
    await expect(g.write(async () => 'x')).rejects.toThrow(StorageFullError);
    free = 40 * MiB; // while failing, every write looks again
    expect(await g.write(async () => 'again')).toBe('again');
    expect(g.status()).toEqual({ ok: true, reason: undefined, freeBytes: 40 * MiB, refused: 0 });
    expect(changes).toEqual([false, true]);
    expect(g.sawWriteFailure).toBe(false);
  });

  it("records a failed LMDB commit and handles its commitError, so it cannot end the process", async () => {
    const g = new StorageGuard('/data', { minFreeBytes: 0, freeBytes: () => 1 });
    const commitError = Promise.reject(new Error('No space left on device: Attempting to write page at position 2093056'));
    const err = Object.assign(new Error('Commit failed (see commitError for details)'), { commitError });
    await expect(g.write(() => Promise.reject(err))).rejects.toBe(err);
    await new Promise((r) => setTimeout(r, 10)); // an unhandled commitError would fail this test
    expect(g.status()).toMatchObject({ ok: false, reason: expect.stringMatching(/a write failed: Commit failed/) });
    expect(g.sawWriteFailure).toBe(true);
    expect(isLmdbWriteFailure(err)).toBe(true);
    expect(isLmdbWriteFailure(new Error('something else'))).toBe(false);
  });

  it('a sample round refused on a full disk takes no sequence number; migration records still use the reserve', async () => {
    let free = 100 * MiB;
    const g = new StorageGuard(t.dir, { minFreeBytes: 16 * MiB, freeBytes: () => free, recheckMs: 0 });
    const env = openEnv(path.join(t.dir, 'log'), { mapSizeBytes: 32 * MiB });
    const sampleLog = new SampleLog(env, 'n1', Date.now, g);
    expect(await sampleLog.append([{ entity: 'n1', metric: 'x', ts: Date.now(), value: 1 }])).toBe(1);
    free = MiB;
    await expect(sampleLog.append([{ entity: 'n1', metric: 'x', ts: Date.now(), value: 2 }])).rejects.toThrow(StorageFullError);
    expect(await sampleLog.append([], [{ migration_id: 'm1' }])).toBe(2); // a migration record is small and must not be lost
    free = 100 * MiB;
    expect(await sampleLog.append([{ entity: 'n1', metric: 'x', ts: Date.now(), value: 3 }])).toBe(3);
    expect(sampleLog.read(0, 10).map((b) => b.seq)).toEqual([1, 2, 3]);
    await env.close();
  });
});

describe('herd doctor: data-space', () => {
  const probes = (free: number | undefined) => ({ freeBytes: () => free }) as unknown as Probes;
  const s = parseSettings({ nodeId: 'n1', dataDir: t.dir, listen: '127.0.0.1:0', retention: { minFreeBytes: 16 * MiB } });
  it('fails below the reserve, warns near it, says how to fix it', () => {
    expect(checkDataSpace(s, probes(8 * MiB))[0]).toMatchObject({ status: 'fail', summary: expect.stringMatching(/8\.0 MiB free, below the 16\.0 MiB reserve: the node stores no samples/), fix: expect.stringMatching(/df -h .*--min-free-bytes/) });
    expect(checkDataSpace(s, probes(40 * MiB))[0]).toMatchObject({ status: 'warn' });
    expect(checkDataSpace(s, probes(1024 * MiB))[0]).toMatchObject({ status: 'ok', summary: expect.stringMatching(/1024\.0 MiB free/) });
    expect(checkDataSpace(s, probes(undefined))[0]).toMatchObject({ status: 'warn' });
  });
});
