/**
 * The target side of a migration (Peer.PrepareMigration, CompleteMigration,
 * AbortMigration, GetTargetMigration): create the stopped container, pull and verify the
 * artifacts from the source, write the filesystem artifact into the new container's
 * upper dir, restore. What it has made is recorded in LMDB so an abort, even after a
 * restart of this agent, removes exactly that.
 */
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { logger } from '../../common/log';
import { checkId, RpcError } from '../../common/validate';
import { TermFence } from '../../coordinator/election/fencing';
import type { ContainerRuntime, CreateSpec } from '../runtime/runtime';
import { scanTar } from '../runtime/fsdiff';
import { fetchArtifact, type FetchOptions } from '../transfer/client';
import type { MigrationFaults } from './faults';

const log = logger('migration-target');
const run = promisify(execFile);

interface TargetRecord {
  migrationId: string;
  herdId: string;
  sourceAddress: string;
  sourceNodeId: string;
  fsMode: string;
  dockerId: string;
  state: 'prepared' | 'restoring' | 'running' | 'failed' | 'aborted';
  reason?: string;
}

export interface TargetDeps {
  nodeId: string;
  env: Env;
  runtime: ContainerRuntime;
  dataDir: string;
  fence: TermFence;
  faults?: MigrationFaults;
  fetchOptions?: Partial<FetchOptions>;
}

type Timing = { step: string; ms: number };

export class MigrationTarget {
  private readonly db: Database<TargetRecord, string>;
  private failRestoreLeft: boolean;

  constructor(private readonly deps: TargetDeps) {
    this.db = deps.env.openDB({ name: 'migration.target' });
    this.failRestoreLeft = Boolean(deps.faults?.failRestore);
  }

  private dir(id: string): string {
    return join(this.deps.dataDir, 'migrations', 'in', id);
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      PrepareMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        this.prepare(call.request).then((r) => cb(null, r), (e) => cb(toStatus(e)));
      },
      CompleteMigration: (call: grpc.ServerWritableStream<any, any>) => {
        void this.complete(call.request, (p) => call.write(p)).then(
          () => call.end(),
          (e) => call.emit('error', toStatus(e)),
        );
      },
      AbortMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        this.abort(call.request).then((r) => cb(null, r), (e) => cb(toStatus(e)));
      },
      GetTargetMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        const bad = checkId('migration_id', call.request.migration_id);
        if (bad) return cb({ code: grpc.status.INVALID_ARGUMENT, details: bad });
        const r = this.db.get(call.request.migration_id);
        cb(null, { state: r?.state ?? 'unknown', target_docker_id: r?.dockerId ?? '' });
      },
    };
  }

  async prepare(req: any): Promise<{ target_docker_id: string }> {
    const bad = checkId('migration_id', req.migration_id) ?? checkId('herd_id', req.herd_id) ?? checkId('source_node_id', req.source_node_id);
    if (bad) throw new RpcError(grpc.status.INVALID_ARGUMENT, bad);
    const fenced = this.deps.fence.check(Number(req.term));
    if (!fenced.ok) throw new RpcError(grpc.status.FAILED_PRECONDITION, `refusing a migration commanded in an older term: ${fenced.reason}`);
    if (this.db.get(req.migration_id)) throw new RpcError(grpc.status.ALREADY_EXISTS, `migration ${req.migration_id} was already prepared here`);
    let spec: CreateSpec;
    try {
      spec = JSON.parse(req.create_json);
      if (typeof spec?.Image !== 'string') throw new Error('no Image');
    } catch (err) {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `create_json is not a Docker ContainerCreate body: ${(err as Error).message}`);
    }
    if (!(await this.deps.runtime.imageLayers(spec.Image))) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `image ${spec.Image} is not on node ${this.deps.nodeId}; load it there first`);
    }
    const name = typeof req.name === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(req.name) ? req.name : '';
    const dockerId = await this.deps.runtime.create(spec, name);
    await this.db.put(req.migration_id, {
      migrationId: req.migration_id,
      herdId: req.herd_id,
      sourceAddress: req.source_address,
      sourceNodeId: req.source_node_id,
      fsMode: req.fs_mode,
      dockerId,
      state: 'prepared',
    });
    log.info('prepared a migration target', { migration: req.migration_id, herd_id: req.herd_id, docker_id: dockerId.slice(0, 12) });
    return { target_docker_id: dockerId };
  }

  async complete(req: any, progress: (p: unknown) => void): Promise<void> {
    const bad = checkId('migration_id', req.migration_id);
    if (bad) throw new RpcError(grpc.status.INVALID_ARGUMENT, bad);
    const rec = this.db.get(req.migration_id);
    if (!rec) throw new RpcError(grpc.status.NOT_FOUND, `migration ${req.migration_id} was never prepared here`);
    if (rec.state !== 'prepared') throw new RpcError(grpc.status.FAILED_PRECONDITION, `migration ${req.migration_id} is ${rec.state} here, not prepared`);
    const artifacts = (req.artifacts ?? []) as Array<{ name: string; size: number; sha256: string }>;
    const total = artifacts.reduce((a, x) => a + Number(x.size), 0);
    const timings: Timing[] = [];
    let done = 0;
    let stepName = 'TRANSFER';
    const send = (extra: Record<string, unknown> = {}) => progress({ step: stepName, bytes_done: done, bytes_total: total, timings, ...extra });
    const dir = this.dir(req.migration_id);
    try {
      await this.db.put(req.migration_id, { ...rec, state: 'restoring' });
      await mkdir(dir, { recursive: true });
      let t0 = performance.now();
      let lastSent = 0;
      // All artifacts at once: their transfers overlap, and every byte is still verified.
      // No fsync: a crash of this node mid-migration aborts it anyway (the source undoes it).
      const got = new Map<string, number>();
      await Promise.all(
        artifacts.map((a) =>
          fetchArtifact(rec.sourceAddress, { migration_id: req.migration_id, artifact: a.name, requester_node_id: this.deps.nodeId } as any, join(dir, a.name), {
            fsync: false,
            ...this.deps.fetchOptions,
            expectedSize: Number(a.size),
            expectedSha256: a.sha256,
            onProgress: (v: number) => {
              got.set(a.name, v);
              done = [...got.values()].reduce((x, y) => x + y, 0);
              if (performance.now() - lastSent > 200) {
                lastSent = performance.now();
                send();
              }
            },
          } as FetchOptions),
        ),
      );
      done = total;
      timings.push({ step: 'TRANSFER', ms: Math.round(performance.now() - t0) });
      stepName = 'APPLY_FS';
      send();
      t0 = performance.now();
      const info = await this.deps.runtime.inspect(rec.dockerId);
      const root = await this.deps.runtime.dockerRootDir();
      if (artifacts.some((a) => a.name === 'fs.tar')) {
        if (rec.fsMode === 'FS_MODE_FULL') await this.deps.runtime.importFull(join(dir, 'fs.tar'), info.upperDir);
        else await this.deps.runtime.importUpperDir(join(dir, 'fs.tar'), info.upperDir);
      }
      if (artifacts.some((a) => a.name === 'log.json')) {
        // Docker's json-file driver appends to this file: the history comes first.
        await copyFile(join(dir, 'log.json'), join(root, 'containers', rec.dockerId, `${rec.dockerId}-json.log`));
      }
      // The checkpoint tar comes from a peer: check its entries like any archive before extracting.
      await scanTar(join(dir, 'checkpoint.tar'));
      // Unpacked inside Docker's root dir, the restore can rename it into place instead of
      // copying it (dockerd bind-mounts its root onto itself: a rename from outside is EXDEV).
      const staged = join(root, 'containers', rec.dockerId, 'herd-incoming-checkpoint');
      await rm(staged, { recursive: true, force: true });
      await mkdir(staged, { recursive: true });
      await run('tar', ['-C', staged, '--no-same-owner', '-xf', join(dir, 'checkpoint.tar')]);
      timings.push({ step: 'APPLY_FS', ms: Math.round(performance.now() - t0) });
      stepName = 'RESTORE';
      send();
      t0 = performance.now();
      if (this.failRestoreLeft) {
        this.failRestoreLeft = false;
        throw new Error('restore failed (fault injected: migration.fail_restore)');
      }
      const name = String(req.checkpoint_name || 'cp');
      await this.deps.runtime.restoreFromDir(rec.dockerId, staged, name);
      timings.push({ step: 'RESTORE', ms: Math.round(performance.now() - t0) });
      await this.db.put(req.migration_id, { ...rec, state: 'running' });
      await rm(dir, { recursive: true, force: true });
      log.info('restored a migrated container', { migration: req.migration_id, herd_id: rec.herdId, timings });
      send({ done: true, ok: true });
    } catch (err) {
      const reason = errorText(err);
      await this.db.put(req.migration_id, { ...rec, state: 'failed', reason });
      log.warn('could not take over a migrating container', { migration: req.migration_id, step: stepName, reason });
      send({ done: true, ok: false, reason: `${stepName.toLowerCase()} on ${this.deps.nodeId}: ${reason}` });
    }
  }

  async abort(req: any): Promise<{ removed: boolean }> {
    const bad = checkId('migration_id', req.migration_id);
    if (bad) throw new RpcError(grpc.status.INVALID_ARGUMENT, bad);
    const rec = this.db.get(req.migration_id);
    await rm(this.dir(req.migration_id), { recursive: true, force: true });
    if (!rec || rec.state === 'aborted') return { removed: false };
    try {
      await this.deps.runtime.remove(rec.dockerId, { force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
    }
    await this.db.put(req.migration_id, { ...rec, state: 'aborted', reason: String(req.reason ?? '') });
    log.info('aborted a migration target', { migration: req.migration_id, reason: req.reason });
    return { removed: true };
  }
}

export function errorText(err: unknown): string {
  const e = err as { message?: string; criuLog?: string[] };
  const criu = Array.isArray(e?.criuLog) && e.criuLog.length ? ` (CRIU: ${e.criuLog.slice(0, 6).join(' | ')})` : '';
  return `${e?.message ?? String(err)}${criu}`;
}

function toStatus(err: unknown): { code: grpc.status; details: string } {
  if (err instanceof RpcError) return { code: err.code, details: err.message };
  const code = (err as { code?: string }).code;
  const map: Record<string, grpc.status> = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9, UNAVAILABLE: 14 };
  return { code: (code && map[code]) || grpc.status.INTERNAL, details: errorText(err) };
}
