/**
 * The target side of a migration (Peer.PrepareMigration, CompleteMigration,
 * AbortMigration, GetTargetMigration): create the stopped container, pull and verify the
 * artifacts from the source, write the filesystem artifact into the new container's
 * upper dir, restore. What it has made is recorded in LMDB so an abort, even after a
 * restart of this agent, removes exactly that.
 *
 * Every request comes from another node and is treated as hostile: each id and name is
 * checked before it is used (INVALID_ARGUMENT naming the field), a file path is built
 * only from checked names and verified to stay under the data dir, the archives are
 * checked entry by entry before extraction, and over mTLS the caller must be the
 * migration's source node (PERMISSION_DENIED otherwise).
 */
import * as grpc from '@grpc/grpc-js';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { peerIdentity, type PeerIdentity } from '../../common/identity';
import { logger } from '../../common/log';
import { checkDockerName, checkHostPort, checkId, invalid, notFound, pathInside, permissionDenied, RpcError, truncate } from '../../common/validate';
import { TermFence } from '../../common/fencing';
import { extractCheckpoint } from '../runtime/checkpoint-files';
import { fullDisk } from '../runtime/disk-space';
import { IMAGE_ARTIFACT } from '../runtime/fast-checkpoint';
import type { ContainerRuntime, CreateSpec } from '../runtime/runtime';
import { FETCH_WINDOW_BYTES, fetchArtifact, type FetchOptions, type TransferClient } from '../transfer/client';
import { Insecure, type Transport } from '../../common/transport';
import { loadProtos } from '../../common/proto';
import type { MigrationFaults } from './faults';
import { pageServerDone, pageServerPid, stopPageServer } from '../runtime/page-server';
import { checkArtifacts, type ArtifactSpec } from './artifact-list';
import { errorText, toStatus } from './errors';
import { startTargetPageServer } from './target-pages';

const log = logger('migration-target');

/** The label a target container carries with its migration's id (found by it if the record lacks the Docker id). */
export const MIGRATION_LABEL = 'herd.migration';
export const FS_MODES = ['FS_MODE_UNSPECIFIED', 'FS_MODE_DIFF', 'FS_MODE_FULL', 'FS_MODE_NONE'];
/** create_json larger than this is refused (a real ContainerCreate body is a few KiB). */
export const MAX_CREATE_JSON_BYTES = 1 << 20;
const DEFAULT_CHECKPOINT_NAME = 'cp';

interface TargetRecord {
  migrationId: string;
  herdId: string;
  sourceAddress: string;
  sourceNodeId: string;
  fsMode: string;
  dockerId: string;
  /** The new container's overlay upper dir, looked up at prepare (off the downtime path). */
  upperDir?: string;
  state: 'creating' | 'prepared' | 'restoring' | 'running' | 'failed' | 'aborted';
  /** The container's name, known before its Docker id: a restart between the two must not leave it unknown. */
  name?: string;
  reason?: string;
  /** The CRIU page server started for this migration (prepare with page_server), until it is done. */
  pageServerPid?: number;
}

export interface TargetDeps {
  nodeId: string;
  env: Env;
  runtime: ContainerRuntime;
  dataDir: string;
  fence: TermFence;
  faults?: MigrationFaults;
  fetchOptions?: Partial<FetchOptions>;
  /** How to dial the source (default plain text); it must present the source node's certificate. */
  transport?: Transport;
}

type Timing = { step: string; ms: number };

const INSECURE_TRANSPORT = new Insecure();

export class MigrationTarget {
  private readonly db: Database<TargetRecord, string>;
  private failRestoreLeft: boolean;
  /** Migrations whose CompleteMigration is running in this process, and its end. */
  private readonly completing = new Map<string, Promise<void>>();
  /** Migrations aborted while completing: their restore must not start. */
  private readonly fenced = new Set<string>();
  /** One Transfer channel per source node, kept between migrations (see sourceClient). */
  private readonly sources = new Map<string, { key: string; client: TransferClient }>();
  /** Channels with fetches running, by how many: a replaced one is closed when its last ends (its fetches may still resume on it). */
  private readonly inUse = new Map<TransferClient, number>();

  constructor(private readonly deps: TargetDeps) {
    this.db = deps.env.openDB({ name: 'migration.target' });
    this.failRestoreLeft = Boolean(deps.faults?.failRestore);
  }

  /**
   * The Transfer channel to a source node. PrepareMigration starts connecting it, so the
   * TLS handshake happens while the source checkpoints instead of inside the downtime;
   * later migrations from the same source reuse it. A new address or new certificates
   * (transport generation) replace it.
   */
  private sourceClient(nodeId: string, address: string): TransferClient {
    const transport = this.deps.transport ?? INSECURE_TRANSPORT;
    const key = `${address}#${transport.generation}`;
    const cached = this.sources.get(nodeId);
    if (cached?.key === key) return cached.client;
    if (cached && !this.inUse.has(cached.client)) cached.client.close();
    const client = new (loadProtos().herd.Transfer)(address, transport.credentials(nodeId), {
      ...transport.channelOptions,
      'grpc-node.flow_control_window': FETCH_WINDOW_BYTES,
    }) as TransferClient;
    this.sources.set(nodeId, { key, client });
    return client;
  }

  /** Closes the kept source channels (the node is stopping). */
  close(): void {
    for (const client of new Set([...[...this.sources.values()].map((s) => s.client), ...this.inUse.keys()])) client.close();
    this.sources.clear();
    this.inUse.clear();
  }

  private release(client: TransferClient): void {
    const n = (this.inUse.get(client) ?? 1) - 1;
    if (n > 0) return void this.inUse.set(client, n);
    this.inUse.delete(client);
    if (![...this.sources.values()].some((s) => s.client === client)) client.close(); // replaced meanwhile
  }

  /** `<dataDir>/migrations/in/<id>`; the id is checked already, pathInside checks again. */
  private dir(id: string): string {
    return pathInside(join(this.deps.dataDir, 'migrations', 'in'), id);
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      PrepareMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        this.prepare(call.request, peerIdentity(call)).then((r) => cb(null, r), (e) => cb(toStatus(e)));
      },
      CompleteMigration: (call: grpc.ServerWritableStream<any, any>) => {
        void this.complete(call.request, (p) => call.write(p), peerIdentity(call)).then(
          () => call.end(),
          (e) => call.emit('error', toStatus(e)),
        );
      },
      AbortMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        this.abort(call.request, peerIdentity(call)).then((r) => cb(null, r), (e) => cb(toStatus(e)));
      },
      GetTargetMigration: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        this.status(call.request, peerIdentity(call)).then((r) => cb(null, r), (e) => cb(toStatus(e)));
      },
    };
  }

  /**
   * Over mTLS (caller defined) only the migration's source node may act on it; on a plain-text
   * (--insecure) cluster nobody is identified and the request is taken at its word.
   * `source` undefined: the migration is unknown here, so any node may hear that, no operator.
   */
  private authorize(caller: PeerIdentity | undefined, source: string | undefined, what: string, migrationId: string): void {
    if (!caller) return;
    if (caller.kind !== 'node') {
      throw permissionDenied(`operator "${caller.name}" may not ${what} migration ${migrationId}: only its source node may (node certificates only)`);
    }
    if (source !== undefined && caller.nodeId !== source) {
      throw permissionDenied(`node "${caller.nodeId}" may not ${what} migration ${migrationId}, whose source is node "${source}"`);
    }
  }

  /** GetTargetMigration. */
  async status(req: any, caller?: PeerIdentity): Promise<{ state: string; target_docker_id: string }> {
    const bad = checkId('migration_id', req?.migration_id);
    if (bad) throw invalid(bad);
    const r = this.db.get(req.migration_id);
    this.authorize(caller, r?.sourceNodeId, 'ask about', req.migration_id);
    if (!r) return { state: 'unknown', target_docker_id: '' };
    let state: string = r.state;
    // A restore this process is not running was cut short by a restart of this agent:
    // the container says how it ended (dockerd finished or refused it meanwhile).
    if (r.state === 'restoring' && !this.completing.has(r.migrationId)) state = (await this.runsContainer(r)) ? 'running' : 'failed';
    return { state, target_docker_id: r.dockerId };
  }

  /** Whether the migration's container runs here (dockerd answers once a start under way has settled). */
  private async runsContainer(r: TargetRecord): Promise<boolean> {
    if (!r.dockerId) return false;
    try {
      return (await this.deps.runtime.inspect(r.dockerId)).state === 'running';
    } catch (err) {
      if ((err as { code?: string }).code === 'NOT_FOUND') return false;
      throw err;
    }
  }

  async prepare(req: any, caller?: PeerIdentity): Promise<{ target_docker_id: string; page_server_port?: number; page_server_refusal?: string }> {
    const bad =
      checkId('migration_id', req.migration_id) ??
      checkId('herd_id', req.herd_id) ??
      checkId('source_node_id', req.source_node_id) ??
      checkHostPort('source_address', req.source_address) ??
      (FS_MODES.includes(req.fs_mode) ? undefined : `fs_mode ${JSON.stringify(truncate(String(req.fs_mode)))} is not one of ${FS_MODES.join(', ')}`) ??
      // '' lets Docker name it; anything else must be a name Docker accepts as it is
      (req.name === '' || req.name === undefined ? undefined : checkDockerName('name', req.name)) ??
      (typeof req.create_json === 'string' && Buffer.byteLength(req.create_json) <= MAX_CREATE_JSON_BYTES ? undefined : `create_json is required and at most ${MAX_CREATE_JSON_BYTES} bytes`);
    if (bad) throw invalid(bad);
    // Who asks, before anything is recorded (the term fence included).
    this.authorize(caller, req.source_node_id, 'prepare', req.migration_id);
    let spec: CreateSpec;
    try {
      spec = JSON.parse(req.create_json);
      if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new Error('not a JSON object');
      if (typeof spec.Image !== 'string' || spec.Image === '') throw new Error('no Image');
    } catch (err) {
      throw invalid(`create_json is not a Docker ContainerCreate body: ${(err as Error).message}`);
    }
    const fenced = this.deps.fence.check(Number(req.term));
    if (!fenced.ok) throw new RpcError(grpc.status.FAILED_PRECONDITION, `refusing a migration commanded in an older term: ${fenced.reason}`);
    if (this.db.get(req.migration_id)) throw new RpcError(grpc.status.ALREADY_EXISTS, `migration ${req.migration_id} was already prepared here`);
    if (!(await this.deps.runtime.imageLayers(spec.Image))) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `image ${spec.Image} is not on node ${this.deps.nodeId}; load it there first`);
    }
    const name = typeof req.name === 'string' ? req.name : '';
    const base = { migrationId: req.migration_id, herdId: req.herd_id, sourceAddress: req.source_address, sourceNodeId: req.source_node_id, fsMode: req.fs_mode, name };
    // Recorded before the container exists, with the name and a label that mark it as this
    // migration's: a kill of this agent between create and record must not leave it unknown
    // to an abort (the nemesis found one left behind).
    await this.db.put(req.migration_id, { ...base, dockerId: '', state: 'creating' });
    const dockerId = await this.deps.runtime.create({ ...spec, Labels: { ...(spec.Labels ?? {}), [MIGRATION_LABEL]: req.migration_id } }, name);
    const record: TargetRecord = { ...base, dockerId, state: 'prepared' };
    if (this.db.get(req.migration_id)?.state === 'aborted') {
      // aborted while it was being created: it goes, and so does this prepare
      await this.deps.runtime.remove(dockerId, { force: true }).catch((err) => log.warn('could not remove a container created for an aborted migration', { docker_id: dockerId, reason: errorText(err) }));
      throw new RpcError(grpc.status.ABORTED, `migration ${req.migration_id} was aborted while its container was being created`);
    }
    await this.db.put(req.migration_id, record); // an abort must find what was made
    // Looked up now, while the source checkpoints, rather than inside the downtime. Only a
    // shortcut: if it fails here, CompleteMigration looks again and reports that failure.
    if (req.fs_mode !== 'FS_MODE_NONE') {
      const upperDir = await this.deps.runtime.inspect(dockerId).then((c) => c.upperDir, (err) => log.debug('inspect after create failed', { reason: errorText(err) }));
      if (upperDir) await this.db.put(req.migration_id, { ...record, upperDir });
    }
    const pages = req.page_server ? await startTargetPageServer(this.deps, req.migration_id) : undefined;
    if (pages && 'pid' in pages) await this.db.put(req.migration_id, { ...(this.db.get(req.migration_id) ?? record), pageServerPid: pages.pid });
    log.info('prepared a migration target', { migration: req.migration_id, herd_id: req.herd_id, docker_id: dockerId.slice(0, 12), page_server: pages });
    this.sourceClient(req.source_node_id, req.source_address).getChannel().getConnectivityState(true); // connect now
    return { target_docker_id: dockerId, page_server_port: pages && 'port' in pages ? pages.port : 0, page_server_refusal: pages && 'refusal' in pages ? pages.refusal : '' };
  }

  async complete(req: any, progress: (p: unknown) => void, caller?: PeerIdentity): Promise<void> {
    const bad = checkId('migration_id', req.migration_id);
    if (bad) throw invalid(bad);
    const artifacts = checkArtifacts(req.artifacts);
    const cpBad = req.checkpoint_name === '' || req.checkpoint_name === undefined ? undefined : checkDockerName('checkpoint_name', req.checkpoint_name);
    if (cpBad) throw invalid(cpBad);
    const checkpointName: string = req.checkpoint_name || DEFAULT_CHECKPOINT_NAME;
    const rec = this.db.get(req.migration_id);
    this.authorize(caller, rec?.sourceNodeId, 'complete', req.migration_id);
    if (!rec) throw notFound(`migration ${req.migration_id} was never prepared here`);
    if (rec.state !== 'prepared' || this.completing.has(req.migration_id)) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `migration ${req.migration_id} is ${this.completing.has(req.migration_id) ? 'being completed' : rec.state} here, not prepared`);
    }
    // The record's state is written asynchronously: this guards a second call arriving meanwhile.
    const done = this.doComplete(req.migration_id, rec, artifacts, checkpointName, { tcpEstablished: Boolean(req.tcp_established), pagesOnTarget: Boolean(req.pages_on_target) }, progress);
    this.completing.set(req.migration_id, done);
    try {
      await done;
    } finally {
      this.completing.delete(req.migration_id);
    }
  }

  private async doComplete(migrationId: string, rec: TargetRecord, artifacts: ArtifactSpec[], checkpointName: string, o: { tcpEstablished: boolean; pagesOnTarget: boolean }, progress: (p: unknown) => void): Promise<void> {
    const tcpEstablished = o.tcpEstablished;
    const req = { migration_id: migrationId };
    const total = artifacts.reduce((a, x) => a + x.size, 0);
    const timings: Timing[] = [];
    let done = 0;
    let stepName = 'TRANSFER';
    const send = (extra: Record<string, unknown> = {}) => progress({ step: stepName, bytes_done: done, bytes_total: total, timings, ...extra });
    const dir = this.dir(req.migration_id);
    // On a node with the image tmpfs the checkpoint goes there and stays there (restored through links).
    let fast: string | undefined;
    let staged: string | undefined;
    try {
      fast = await this.deps.runtime.stagingDir(req.migration_id);
      if (rec.pageServerPid && !o.pagesOnTarget) {
        // the source did not use the page server (it fell back): stopped, and the dir starts empty
        if (fast) stopPageServer(fast, rec.pageServerPid);
        rec = { ...rec, pageServerPid: undefined };
      }
      await this.db.put(req.migration_id, { ...rec, state: 'restoring' });
      await mkdir(dir, { recursive: true });
      let t0 = performance.now();
      let lastSent = 0;
      // All artifacts at once: their transfers overlap, and every byte is still verified.
      // No fsync: a crash of this node mid-migration aborts it anyway (the source undoes it).
      const got = new Map<string, number>();
      const root = await this.deps.runtime.dockerRootDir();
      // The Docker id came from this node's own Docker; checked anyway, as it names paths.
      const containerDir = pathInside(join(root, 'containers'), rec.dockerId);
      // Unpacked inside Docker's root dir, the restore can rename it into place instead of
      // copying it (dockerd bind-mounts its root onto itself: a rename from outside is EXDEV).
      const into = fast ?? pathInside(containerDir, 'herd-incoming-checkpoint');
      staged = into;
      if (rec.pageServerPid && fast) {
        // the source's dump sent the pages here and ended: the page server has flushed them and exits
        await pageServerDone(fast, rec.pageServerPid);
        stopPageServer(fast);
      } else {
        await rm(into, { recursive: true, force: true });
      }
      await mkdir(into, { recursive: true });
      // CRIU's big images are fetched straight to where the restore reads them
      const fetchPath = (name: string) => {
        const image = IMAGE_ARTIFACT.exec(name)?.[1];
        if (image) return pathInside(into, image);
        return name === 'checkpoint.tar' && fast ? `${fast}.tar` : pathInside(dir, name);
      };
      const source = this.sourceClient(rec.sourceNodeId, rec.sourceAddress);
      this.inUse.set(source, (this.inUse.get(source) ?? 0) + 1);
      await Promise.all(
        artifacts.map((a) =>
          fetchArtifact(source, { migration_id: req.migration_id, artifact: a.name, requester_node_id: this.deps.nodeId } as any, fetchPath(a.name), {
            fsync: false,
            ...this.deps.fetchOptions,
            expectedSize: a.size,
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
      ).finally(() => this.release(source));
      done = total;
      timings.push({ step: 'TRANSFER', ms: Math.round(performance.now() - t0) });
      stepName = 'APPLY_FS';
      send();
      t0 = performance.now();
      // The three are independent; all are awaited (none left writing) before a failure counts.
      await settleAll([
        (async () => {
          if (!artifacts.some((a) => a.name === 'fs.tar')) return;
          const upperDir = rec.upperDir || (await this.deps.runtime.inspect(rec.dockerId)).upperDir;
          // checked entry by entry before anything is written (UnsafeArchiveError names the entry)
          if (rec.fsMode === 'FS_MODE_FULL') await this.deps.runtime.importFull(pathInside(dir, 'fs.tar'), upperDir);
          else await this.deps.runtime.importUpperDir(pathInside(dir, 'fs.tar'), upperDir);
        })(),
        // Docker's json-file driver appends to this file: the history comes first.
        artifacts.some((a) => a.name === 'log.json') ? copyFile(pathInside(dir, 'log.json'), pathInside(containerDir, `${rec.dockerId}-json.log`)) : undefined,
        // The checkpoint tar comes from a peer: extractCheckpoint checks every entry first.
        extractCheckpoint(fetchPath('checkpoint.tar'), into),
      ]);
      timings.push({ step: 'APPLY_FS', ms: Math.round(performance.now() - t0) });
      stepName = 'RESTORE';
      send();
      t0 = performance.now();
      if (this.fenced.has(migrationId)) throw new Error('the source aborted the migration before the restore');
      if (this.failRestoreLeft) {
        this.failRestoreLeft = false;
        throw new Error('restore failed (fault injected: migration.fail_restore)');
      }
      const restored = await this.deps.runtime.restoreFromDir(rec.dockerId, into, checkpointName, { tcpEstablished: Boolean(tcpEstablished) });
      if (this.deps.faults?.pauseAfterRestoreMs) {
        log.warn('restored; pausing before recording and answering it (fault injected: migration.pause_after_restore_ms)', { migration: migrationId });
        await new Promise((r) => setTimeout(r, this.deps.faults!.pauseAfterRestoreMs));
      }
      timings.push({ step: 'RESTORE', ms: Math.round(performance.now() - t0) });
      await this.db.put(req.migration_id, { ...rec, state: 'running' });
      send({ done: true, ok: true, restore_method: restored.method });
      log.info('restored a migrated container', { migration: req.migration_id, herd_id: rec.herdId, timings });
      // After the answer: the container runs, the source is waiting on it to end its downtime.
      await rm(dir, { recursive: true, force: true }).catch((err) => log.warn('could not remove a migration\'s incoming files', { dir, reason: errorText(err) }));
      if (fast) await rm(`${fast}.tar`, { force: true });
    } catch (err) {
      // a full disk is looked for before the removal below frees it (ENOSPC names no path)
      const full = fullDisk([staged, dir]);
      // what was staged for the restore goes too (a failed restore gives its input back)
      if (fast && rec.pageServerPid) stopPageServer(fast, rec.pageServerPid);
      // (a fetch cut short leaves its download as <file>.part)
      await Promise.all([staged, fast && `${fast}.tar`, fast && `${fast}.tar.part`].map((p) => p && rm(p, { recursive: true, force: true })));
      const reason = full && !errorText(err).includes(full) ? `${full} (${errorText(err)})` : errorText(err);
      await this.db.put(req.migration_id, { ...rec, state: 'failed', reason });
      log.warn('could not take over a migrating container', { migration: req.migration_id, step: stepName, reason });
      send({ done: true, ok: false, reason: `${stepName.toLowerCase()} on ${this.deps.nodeId}: ${reason}` });
    }
  }

  /**
   * AbortMigration. Answers only once the migration is settled here: a CompleteMigration
   * still running is fenced (its restore will not start) and waited for. With keep_running
   * a container that runs is kept and reported; anything else is removed and the record
   * marked aborted, which refuses a late prepare, complete or restore of it.
   */
  async abort(req: any, caller?: PeerIdentity): Promise<{ removed: boolean; running: boolean }> {
    const bad = checkId('migration_id', req.migration_id);
    if (bad) throw invalid(bad);
    const id: string = req.migration_id;
    this.authorize(caller, this.db.get(id)?.sourceNodeId, 'abort', id);
    const underWay = this.completing.get(id);
    if (underWay) {
      this.fenced.add(id);
      log.info('abort of a migration being completed: waiting for it to settle', { migration: id });
      await underWay.catch(() => {});
      this.fenced.delete(id);
    }
    const rec = this.db.get(id);
    const reason = truncate(String(req.reason ?? ''), 2000);
    await rm(this.dir(id), { recursive: true, force: true });
    // a completion cut short by a crash of this agent may have left images on the tmpfs (memory)
    const fast = await Promise.resolve().then(() => this.deps.runtime.stagingDir(id)).catch(() => undefined);
    if (fast) stopPageServer(fast, rec?.pageServerPid ?? pageServerPid(fast));
    if (fast) await Promise.all([fast, `${fast}.tar`, `${fast}.tar.part`].map((p) => rm(p, { recursive: true, force: true })));
    if (!rec) {
      // Nothing here: remembered as aborted, so a prepare that arrives late makes nothing.
      await this.db.put(id, { migrationId: id, herdId: '', sourceAddress: '', sourceNodeId: caller?.kind === 'node' ? caller.nodeId : '', fsMode: '', dockerId: '', state: 'aborted', reason });
      return { removed: false, running: false };
    }
    if (rec.state === 'aborted') return { removed: false, running: false };
    if (!rec.dockerId) {
      // Killed between recording and creating, or the create is under way: whatever carries
      // this migration's name and label goes; the mark makes a create that lands later undo itself.
      await this.db.put(id, { ...rec, state: 'aborted', reason });
      const orphan = rec.name ? await this.deps.runtime.inspect(rec.name).catch(() => undefined) : undefined;
      if (orphan?.labels?.[MIGRATION_LABEL] === id) await this.deps.runtime.remove(orphan.dockerId, { force: true });
      log.info('aborted a migration target whose container was being created', { migration: id, removed: Boolean(orphan), reason });
      return { removed: Boolean(orphan && orphan.labels?.[MIGRATION_LABEL] === id), running: false };
    }
    if (req.keep_running && (await this.runsContainer(rec))) {
      if (rec.state !== 'running') await this.db.put(id, { ...rec, state: 'running' });
      log.warn('abort asked for a migrated container that runs here: kept it (the source finishes forward)', { migration: id, herd_id: rec.herdId, reason });
      return { removed: false, running: true };
    }
    try {
      await this.deps.runtime.remove(rec.dockerId, { force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
    }
    await this.db.put(id, { ...rec, state: 'aborted', reason });
    log.info('aborted a migration target', { migration: id, reason });
    return { removed: true, running: false };
  }
}

/** Like Promise.all, but waits for every promise to settle before rejecting with the first failure. */
async function settleAll(ps: Array<Promise<unknown> | undefined>): Promise<void> {
  const rs = await Promise.allSettled(ps);
  const failed = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
