/**
 * AbortMigration with keep_running, the target's half of "never discard a running target":
 * it keeps a container that runs and says so, removes anything else and fences the
 * migration (no late prepare, complete or restore), and answers a record left `restoring`
 * by a restart of its agent from the container. The runtime is a fake here (it only says
 * whether the container runs); test/integration/migration-faults.test.ts runs the same on
 * dockerd with real agents killed -9.
 */
import * as grpc from '@grpc/grpc-js';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { TermFence } from '../../common/fencing';
import { MigrationTarget } from '../../agent/migration/target';
import type { ContainerRuntime } from '../../agent/runtime/runtime';
import { tempDir } from '../helpers/tmp';

const DOCKER_ID = 'beef'.padEnd(64, '0');

/** Containers that exist, and whether each runs. */
class FakeRuntime {
  containers = new Map<string, 'running' | 'created'>();
  labels: Record<string, string> = {};
  async imageLayers() { return ['sha256:x']; }
  async create(spec: { Labels?: Record<string, string> }) { this.containers.set(DOCKER_ID, 'created'); this.labels = spec.Labels ?? {}; return DOCKER_ID; }
  async inspect(idOrName: string) {
    const id = idOrName === 'ctr' ? DOCKER_ID : idOrName;
    const s = this.containers.get(id);
    if (!s) throw Object.assign(new Error(`no container ${id}`), { code: 'NOT_FOUND' });
    return { dockerId: id, state: s, upperDir: '/nonexistent', labels: this.labels };
  }
  async remove(id: string) { this.containers.delete(id); }
}

describe('AbortMigration with keep_running', () => {
  let t: { dir: string; cleanup: () => void };
  let env: Env;
  let rt: FakeRuntime;
  let n = 0;
  const newTarget = () => new MigrationTarget({ nodeId: 'b', env, runtime: rt as unknown as ContainerRuntime, dataDir: path.join(t.dir, 'data'), fence: new TermFence() });
  const prepare = async (target: MigrationTarget) => {
    const id = `m${++n}`;
    await target.prepare({ migration_id: id, herd_id: 'h1', source_node_id: 'a', source_address: '127.0.0.1:1', fs_mode: 'FS_MODE_NONE', name: 'ctr', create_json: '{"Image":"busybox"}', term: 1 });
    return id;
  };
  /** What a kill -9 of the target's agent in the middle of its restore leaves: the record says restoring. */
  const cutDuringRestore = async (id: string) => {
    const db = env.openDB<any, string>({ name: 'migration.target' });
    await db.put(id, { ...db.get(id), state: 'restoring' });
  };

  beforeAll(() => {
    t = tempDir('herd-target-abort-');
    env = openEnv(path.join(t.dir, 'data'), { mapSizeBytes: 32 << 20 });
  });
  afterAll(async () => {
    await env.close();
    t.cleanup();
  });

  it('keeps a container that runs after a restart cut the restore short, and says it runs', async () => {
    rt = new FakeRuntime();
    const id = await prepare(newTarget());
    await cutDuringRestore(id);
    rt.containers.set(DOCKER_ID, 'running'); // dockerd finished the restore on its own
    const restarted = newTarget();
    expect((await restarted.status({ migration_id: id })).state).toBe('running');
    expect(await restarted.abort({ migration_id: id, keep_running: true, reason: 'complete dropped' })).toEqual({ removed: false, running: true });
    expect(rt.containers.get(DOCKER_ID)).toBe('running');
    // asked again (its answer was lost): the same answer
    expect(await restarted.abort({ migration_id: id, keep_running: true })).toEqual({ removed: false, running: true });
    // an abort without keep_running (an older source) still removes it
    expect(await restarted.abort({ migration_id: id })).toEqual({ removed: true, running: false });
    expect(rt.containers.size).toBe(0);
  });

  it('a restore that did not land is reported failed; the abort removes it and fences the migration', async () => {
    rt = new FakeRuntime();
    const id = await prepare(newTarget());
    await cutDuringRestore(id);
    const restarted = newTarget();
    expect((await restarted.status({ migration_id: id })).state).toBe('failed');
    expect(await restarted.abort({ migration_id: id, keep_running: true })).toEqual({ removed: true, running: false });
    expect(rt.containers.size).toBe(0);
    expect((await restarted.status({ migration_id: id })).state).toBe('aborted');
    const late = await restarted.complete({ migration_id: id, artifacts: [{ name: 'checkpoint.tar', size: 1, sha256: 'a'.repeat(64) }] }, () => {}).catch((e: { code: number; message: string }) => e);
    expect(late).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, message: expect.stringMatching(/is aborted here, not prepared/) });
    expect(await restarted.abort({ migration_id: id, keep_running: true })).toEqual({ removed: false, running: false });
  });

  it('a kill between recording the prepare and recording the container: the abort finds the container by name and label', async () => {
    rt = new FakeRuntime();
    const id = await prepare(newTarget());
    expect(rt.labels['herd.migration']).toBe(id);
    const db = env.openDB<any, string>({ name: 'migration.target' });
    await db.put(id, { ...db.get(id), dockerId: '', state: 'creating' }); // as a kill -9 right after docker create leaves it
    expect(await newTarget().abort({ migration_id: id, keep_running: true })).toEqual({ removed: true, running: false });
    expect(rt.containers.size).toBe(0);
  });

  it('an abort of a migration it never heard of leaves a mark: a prepare arriving late makes nothing', async () => {
    rt = new FakeRuntime();
    const target = newTarget();
    const id = `m${++n}`;
    expect(await target.abort({ migration_id: id, keep_running: true })).toEqual({ removed: false, running: false });
    const late = await target.prepare({ migration_id: id, herd_id: 'h1', source_node_id: 'a', source_address: '127.0.0.1:1', fs_mode: 'FS_MODE_NONE', name: 'ctr', create_json: '{"Image":"busybox"}', term: 1 }).catch((e: { code: number }) => e);
    expect(late).toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    expect(rt.containers.size).toBe(0);
  });
});
