/**
 * Storage faults on real file systems: a herd node (agent and coordinator in one process)
 * whose data dir is on a small tmpfs that fills up keeps what it stored, says so (log,
 * health service `herd.storage`, `herd doctor`), and resumes when space returns, with no
 * gap in its batch sequence; LMDB driven into ENOSPC itself does not end the process and
 * writes again once there is room; kill -9 during heavy writes leaves a store that opens
 * and holds everything that was acknowledged.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEnv } from '../../common/db';
import { meshCodec } from '../../common/proto';
import { SampleLog } from '../../agent/samplelog';
import { SampleStore } from '../../coordinator/samplestore';
import { adminClient } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { HERD, ROOT, runCmd, startHerd } from '../helpers/herd';
import { tempDir, waitFor } from '../helpers/tmp';

const MiB = 1024 * 1024;
let tmp: ReturnType<typeof tempDir>;
let mnt = '';

beforeAll(() => {
  tmp = tempDir('herd-storage-');
  mnt = join(tmp.dir, 'fs');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt]);
});

afterAll(() => {
  if (mnt) execFileSync('umount', ['-l', mnt]);
  tmp?.cleanup();
});

const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
};
/** Leaves about `leave` bytes free on the tmpfs. */
function fill(file: string, leave: number): void {
  const size = Math.max(0, freeBytes(mnt) - leave);
  execFileSync('fallocate', ['-l', String(size), file]);
}

/** grpc.health.v1.Health/Check for one service: 1 SERVING, 2 NOT_SERVING. */
async function health(address: string, service: string): Promise<number> {
  const Client = grpc.makeGenericClientConstructor({}, 'Health');
  const c = new Client(address, grpc.credentials.createInsecure());
  const name = Buffer.from(service);
  try {
    const res = await new Promise<Buffer>((resolve, reject) =>
      c.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.concat([Buffer.from([0x0a, name.length]), name]), { deadline: Date.now() + 2000 }, (e, r) => (e || !r ? reject(e) : resolve(r))),
    );
    return res.length >= 2 && res[0] === 0x08 ? res[1] : 0;
  } finally {
    c.close();
  }
}

describe('a full file system under the data dir', () => {
  it('keeps what it stored, says so (log, health, doctor), resumes when space returns, with no gap in its batches', async () => {
    const dataDir = join(mnt, 'node');
    const addr = '127.0.0.1:7459';
    const herd = startHerd(['agent', '--insecure', '--node-id', 'st1', '--data-dir', dataDir, '--listen', addr, '--pmproxy-url', '', '--docker-socket', '/nonexistent.sock', '--host-interval', '200', '--min-free-bytes', String(16 * MiB)]);
    const admin = adminClient(addr, { insecure: true });
    const filler = join(mnt, 'filler');
    const seqs = async () => ((await call(admin, 'QuerySamples', { entity: 'st1', metric: 'herd.batch.seq' })).points as any[]).map((p) => p.value as number);
    try {
      await waitFor('batches stored', async () => (await seqs().catch((): number[] => [])).length >= 5, 30_000, 200);
      expect(await health(addr, 'herd.storage')).toBe(1);

      fill(filler, 8 * MiB);
      await waitFor('herd.storage NOT_SERVING', async () => (await health(addr, 'herd.storage')) === 2, 10_000, 100);
      expect(herd.output()).toMatch(/storage full: keeping what is stored, not writing more until space returns.*below the 16\.0 MiB reserve/);
      const whileFull = await seqs();
      await new Promise((r) => setTimeout(r, 1500));
      expect(herd.child.exitCode).toBeNull();
      expect((await seqs()).length).toBe(whileFull.length); // nothing more stored, nothing lost
      expect(herd.output().match(/storage full/g)).toHaveLength(1); // said once, not every round

      // herd doctor on the node's own settings says what is wrong and how to fix it
      const config = join(tmp.dir, 'st1.json');
      writeFileSync(config, JSON.stringify({ nodeId: 'st1', dataDir, listen: addr, retention: { minFreeBytes: 16 * MiB } }));
      const doctor = await runCmd(process.execPath, [HERD, 'doctor', '-c', config], 60_000);
      expect(doctor.stdout).toMatch(/data-space.*below the 16\.0 MiB reserve: the node stores no samples until there is more/);
      expect(doctor.stdout).toMatch(/df -h/);

      rmSync(filler);
      await waitFor('herd.storage SERVING again', async () => (await health(addr, 'herd.storage')) === 1, 10_000, 100);
      expect(herd.output()).toMatch(/storage writes work again/);
      await waitFor('batches stored again', async () => (await seqs()).length >= whileFull.length + 5, 10_000, 200);
      const all = await seqs();
      expect(all[0]).toBe(1);
      expect(all.every((v, i) => i === 0 || v === all[i - 1] + 1), `batch seqs with a gap: ${all.join(',')}`).toBe(true);
      expect(herd.output()).not.toMatch(/uncaught|unhandled|corrupted|Aborted/i);
    } finally {
      admin.close();
      rmSync(filler, { force: true });
      herd.child.kill('SIGTERM');
      await new Promise((r) => herd.child.once('exit', r));
    }
  });

  it('LMDB driven into ENOSPC itself (no reserve left to protect it): the process lives, the store keeps its batches and writes again once there is room', async () => {
    const dir = join(mnt, 'enospc');
    const filler = join(mnt, 'filler2');
    fill(filler, 3 * MiB);
    const child = spawn(join(ROOT, 'node_modules', '.bin', 'vite-node'), [join(ROOT, 'test', 'tools', 'enospc-writer.ts'), dir], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const full = JSON.parse(await waitFor('the writer filled the file system', async () => out.split('\n').find((l) => l.includes('"phase":"full"')), 60_000, 100));
      expect(full.failure).toMatch(/Commit failed|No space left/);
      expect(full.status).toMatchObject({ ok: false, reason: expect.stringMatching(/a write failed/) });
      expect(full.stored).toBe(full.lastSeq); // every batch it stored is there, in order
      expect(full.stored).toBeGreaterThan(10);
      rmSync(filler);
      child.stdin.write('go\n');
      const after = JSON.parse(await waitFor('the writer wrote again', async () => out.split('\n').find((l) => l.includes('"phase":"after"')), 30_000, 100));
      expect(after).toMatchObject({ seq: full.lastSeq + 1, lastSeq: full.lastSeq + 1, stored: full.lastSeq + 1, status: { ok: true } });
      // A clean exit: after a failed write the writer leaves the store to the exit, as a node
      // does (common/db.ts leaveStoresToExit: lmdb-js's own 'exit' listener would close it,
      // and its close after a failed commit aborted with "corrupted size vs. prev_size" in 2 of
      // 20 runs; 0 of 30 without it). Then nothing stored is lost: reopen and read every batch.
      // A second lmdb-js defect is not worked around: mdb_page_flush notes a write error with
      // sprintf of six numbers into malloc(100) (node_modules/lmdb/dependencies/lmdb/libraries/
      // liblmdb/mdb.c, "Attempting to write page at position"), which overflows when they are
      // long; it aborted at the failed write itself in 1 of 30 runs. A node's storage guard
      // keeps LMDB from ENOSPC (its reserve), so only a disk filled between check and commit meets it.
      const code = await exited;
      expect(code, `the writer did not exit cleanly: ${err.slice(-600)}`).toBe(0);
      expect(err).not.toMatch(/corrupted|free\(\)|double free|Aborted/);
      const env = openEnv(dir);
      try {
        const reopened = new SampleLog(env, 'full');
        expect(reopened.lastSeq()).toBe(full.lastSeq + 1);
        expect([...reopened.read(0, 1_000_000)].map((b) => b.seq)).toEqual(Array.from({ length: full.lastSeq + 1 }, (_, i) => i + 1));
      } finally {
        await env.close();
      }
    } finally {
      child.kill('SIGKILL');
      rmSync(filler, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('kill -9 during heavy writes', () => {
  it('leaves a store that opens and holds every batch and sample that was acknowledged', async () => {
    const dir = join(tmp.dir, 'heavy'); // a disk, not the tmpfs: what a node's data dir is
    for (let round = 0; round < 3; round++) {
      const child = spawn(join(ROOT, 'node_modules', '.bin', 'vite-node'), [join(ROOT, 'test', 'tools', 'heavy-writer.ts'), dir], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const exited = new Promise((r) => child.once('exit', r));
      await waitFor('writing', async () => /store \d+/.test(out), 60_000, 50);
      await new Promise((r) => setTimeout(r, 300 + round * 400));
      child.kill('SIGKILL');
      await exited;
      const acked = (kind: string) => Math.max(0, ...[...out.matchAll(new RegExp(`^${kind} (\\d+)$`, 'gm'))].map((m) => Number(m[1])));
      const logAcked = acked('log');
      const storeAcked = acked('store');
      const env = openEnv(dir, { mapSizeBytes: 1 << 30 });
      try {
        const sampleLog = new SampleLog(env, 'writer');
        const store = new SampleStore(env);
        // the log: every acknowledged batch, contiguous, each one decodes
        expect(sampleLog.lastSeq()).toBeGreaterThanOrEqual(logAcked);
        const batches = sampleLog.read(0, 1_000_000);
        expect(batches.map((b) => b.seq)).toEqual(Array.from({ length: batches.length }, (_, i) => i + 1));
        for (const b of batches) expect((meshCodec().decodeAgent(b.message) as any).batch.seq).toBe(b.seq);
        // the store: the node's acked seq and each acknowledged batch's 2000 samples
        expect(store.ackedSeq('writer')).toBeGreaterThanOrEqual(storeAcked);
        const seqSeries = [...store.range('writer', 'herd.batch.seq', 0, Number.MAX_SAFE_INTEGER)].map(([, v]) => v);
        for (let s = 1; s <= storeAcked; s++) expect(seqSeries).toContain(s);
        console.log(`kill -9 round ${round + 1}: ${logAcked} batches acknowledged by the log, ${storeAcked} by the store (2000 samples each); all there after reopening`);
        expect(logAcked).toBeGreaterThan(round); // it wrote more each round (the log continues)
      } finally {
        await env.close();
      }
    }
  }, 120_000);
});
