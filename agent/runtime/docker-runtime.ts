/**
 * ContainerRuntime over the Docker Engine API (dockerode), for Docker 20.10 + containerd 1.6 +
 * runc + CRIU. The Docker and containerd traps this works around are in docs/runtime.md; the
 * short version: restore ignores a custom checkpoint dir, restoring on the daemon that made the
 * checkpoint collides in containerd's content store, containerd deletes a failed restore's log
 * and leaks a copy of every restored checkpoint in /tmp, and a restart policy restarts a
 * container the checkpoint has just stopped.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Dockerode from 'dockerode';
import { logger } from '../../common/log';
import { fullDisk } from './disk-space';
import { checkpointFiles, fastCheckpointDir, isInside, linkCheckpoint, probeFastPath, sentDirOf, type FastPath } from './fast-checkpoint';
import { continueStopped, dropCriuConfigLabels } from './page-server';
import { dumpThroughPageServer } from './page-server-dump';
import { LogCatcher, withRuncConfOption, criuCheck, criuFailure, keptLogPath, readCriuLog } from './criu';
import { META, NONCE, cleanLeaks, ctrdLeaks, placeCheckpoint, readMeta, writeMeta, type CheckpointMeta } from './checkpoint-files';
import { checkName, dial, dockerMessage, serialized, toRuntimeError, type DialOptions, type DockerErr } from './engine';
import { exportUpperDir, importUpperDir } from './fsdiff';
import {
  RuntimeError, type CheckpointOptions, type CheckpointResult, type ContainerRuntime, type CreateSpec, type CriuCapability,
  type InspectedContainer, type NetworkAttachment, type RestoreOptions, type RestoreResult, type TransferResult,
} from './runtime';
import { createSpecFromInspect, isUserDefinedNetwork, primaryNetwork, type InspectJson } from './spec';

const log = logger('runtime');

type RawInspect = InspectJson & {
  State?: { Status?: string; Running?: boolean; Paused?: boolean; Pid?: number };
  HostConfig?: { AutoRemove?: boolean; RestartPolicy?: { Name?: string; MaximumRetryCount?: number } };
};

export interface DockerRuntimeOptions {
  /** default: DOCKER_HOST's unix socket, else /var/run/docker.sock */
  socketPath?: string;
  docker?: Dockerode;
  /** where a failed dump's or restore's whole CRIU log is kept (CriuError.logFile); none by default */
  keepLogsDir?: string;
  /** containerd's temp dir, where it leaks `ctrd-checkpoint*` copies (default /tmp) */
  containerdTmpDir?: string;
  /** per API call (default 30 s); checkpoint, restore and export get longTimeoutMs */
  timeoutMs?: number;
  /** checkpoint, restore and export (default 10 min: a memory-heavy dump passes through containerd at ~20 ms/MB) */
  longTimeoutMs?: number;
  /** false: always `docker checkpoint create` and copied restores (default true: the fast path when containerd is reachable) */
  fastPath?: boolean;
  /** `size=` of the image tmpfs (default: the kernel's, half the RAM) */
  imageTmpfsSize?: string;
}

const FAST_RETRY_MS = 30_000;

export class DockerRuntime implements ContainerRuntime {
  readonly socketPath: string;
  private readonly client: Dockerode;
  private readonly opts: DockerRuntimeOptions;
  private rootDir: Promise<string> | undefined;
  private fast: { at: number; p: Promise<FastPath> } | undefined;

  constructor(opts: DockerRuntimeOptions = {}) {
    this.opts = opts;
    const fromEnv = process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice(7) : undefined;
    this.socketPath = opts.socketPath ?? fromEnv ?? '/var/run/docker.sock';
    this.client = opts.docker ?? new Dockerode({ socketPath: this.socketPath });
  }

  private get timeoutMs(): number { return this.opts.timeoutMs ?? 30_000; }
  private get longTimeoutMs(): number { return this.opts.longTimeoutMs ?? 600_000; }

  private dial<T>(method: string, apiPath: string, o: DialOptions = {}): Promise<T> {
    return dial<T>(this.client, method, apiPath, { ...o, timeoutMs: o.timeoutMs ?? this.timeoutMs });
  }

  private async raw(idOrName: string): Promise<RawInspect> {
    try {
      return await this.dial<RawInspect>('GET', `/containers/${encodeURIComponent(idOrName)}/json`);
    } catch (err) {
      throw toRuntimeError(err, `inspect ${idOrName}`);
    }
  }

  async inspect(idOrName: string): Promise<InspectedContainer> {
    const c = await this.raw(idOrName);
    const { spec, caveats } = createSpecFromInspect(c);
    const networks: NetworkAttachment[] = await Promise.all(Object.entries(c.NetworkSettings?.Networks ?? {}).map(async ([name, ep]) => {
      let driver = '';
      try {
        driver = (await this.dial<{ Driver?: string }>('GET', `/networks/${encodeURIComponent(ep.NetworkID || name)}`)).Driver ?? '';
      } catch (err) {
        log.debug('network inspect failed', { network: name, reason: dockerMessage(err) });
      }
      return { name, networkId: ep.NetworkID ?? '', ipv4: ep.IPAddress ?? '', mac: ep.MacAddress ?? '', driver, userDefined: isUserDefinedNetwork(name) };
    }));
    const data = c.GraphDriver?.Data ?? {};
    if (c.GraphDriver?.Name !== 'overlay2') caveats.push(`storage driver ${c.GraphDriver?.Name}: no overlay upper dir; only the whole file system mode applies`);
    return {
      dockerId: c.Id,
      name: (c.Name ?? '').replace(/^\//, ''),
      herdId: spec.Labels['herd.id'],
      image: spec.Image,
      imageId: c.Image ?? '',
      imageLayers: c.Image ? ((await this.imageLayers(c.Image)) ?? []) : [],
      state: c.State?.Status ?? 'unknown',
      pid: c.State?.Pid ?? 0,
      labels: c.Config?.Labels ?? {},
      upperDir: data.UpperDir ?? '',
      mergedDir: data.MergedDir ?? '',
      createSpec: spec,
      networks,
      caveats,
    };
  }

  async imageLayers(ref: string): Promise<string[] | null> {
    try {
      const img = await this.dial<{ RootFS?: { Layers?: string[] } }>('GET', `/images/${encodeURIComponent(ref)}/json`);
      return img.RootFS?.Layers ?? [];
    } catch (err) {
      if ((err as DockerErr)?.statusCode === 404) return null;
      throw toRuntimeError(err, `inspect image ${ref}`);
    }
  }

  async create(spec: CreateSpec, name: string): Promise<string> {
    checkName(name, 'container name');
    // Docker 20.10 takes one network at create; the others are connected before the first start.
    const all = spec.NetworkingConfig?.EndpointsConfig ?? {};
    const primary = primaryNetwork(spec.HostConfig?.NetworkMode as string | undefined);
    const first = all[primary] ? { [primary]: all[primary] } : {};
    const body = { ...spec, NetworkingConfig: { EndpointsConfig: first } };
    let id: string;
    try {
      id = (await this.dial<{ Id: string }>('POST', '/containers/create', { query: { name }, body })).Id;
    } catch (err) {
      throw toRuntimeError(err, `create ${name} from ${spec.Image}`, { 409: 'ALREADY_EXISTS' });
    }
    for (const [net, ep] of Object.entries(all)) {
      if (net === primary) continue;
      try {
        await this.dial('POST', `/networks/${encodeURIComponent(net)}/connect`, { body: { Container: id, EndpointConfig: ep } });
      } catch (err) {
        await this.remove(id, { force: true }).catch(() => undefined);
        throw toRuntimeError(err, `connect ${name} to network ${net}`);
      }
    }
    return id;
  }

  /**
   * The direct path: containerd found from dockerd's flags and the image tmpfs mounted. Failures
   * are kept for FAST_RETRY_MS, so a node without it does not scan /proc at every checkpoint.
   */
  fastPath(): Promise<FastPath> {
    if (this.opts.fastPath === false) return Promise.resolve({ ok: false, reason: 'the fast path is turned off (fastPath: false)' });
    if (this.fast && (Date.now() - this.fast.at < FAST_RETRY_MS || !this.fast.p)) return this.fast.p;
    const p = probeFastPath(this.socketPath, this.opts);
    this.fast = { at: Date.now(), p };
    void p.then((f) => { if (f.ok) this.fast = { at: Infinity, p }; });
    return p;
  }

  async stagingDir(key: string): Promise<string | undefined> {
    checkName(key, 'staging key');
    const f = await this.fastPath();
    return f.ok ? path.join(f.imageRoot, `in.${key}`) : undefined;
  }

  async checkpointDirs(checkpointDir: string, name: string): Promise<string[]> {
    checkName(name, 'checkpoint name');
    const f = await this.fastPath();
    return [...(f.ok ? [fastCheckpointDir(f.imageRoot, checkpointDir, name)] : []), path.join(checkpointDir, name)];
  }

  checkpoint(dockerId: string, checkpointDir: string, name: string, opts: CheckpointOptions = {}): Promise<CheckpointResult> {
    checkName(name, 'checkpoint name');
    if (!path.isAbsolute(checkpointDir)) throw new RuntimeError(`checkpoint dir ${checkpointDir} must be absolute`, 'INVALID_ARGUMENT');
    return serialized(this.socketPath, () => this.doCheckpoint(dockerId, checkpointDir, name, opts));
  }

  /** Whether containerd runs this container's task: a live connection, and the right containerd. */
  private async directReady(id: string): Promise<{ f: FastPath & { ok: true } } | { reason: string }> {
    const f = await this.fastPath();
    if (!f.ok) return { reason: f.reason };
    try {
      const t = await f.ctrd.taskStatus(id);
      if (t.status !== 'running') return { reason: `containerd at ${f.loc.socket} has the task ${t.status}, not running` };
    } catch (err) {
      return { reason: `containerd at ${f.loc.socket} cannot be used: ${(err as Error).message}` };
    }
    return { f };
  }

  private async doCheckpoint(dockerId: string, checkpointDir: string, name: string, opts: CheckpointOptions): Promise<CheckpointResult> {
    const c = await this.raw(dockerId);
    const id = c.Id;
    if (!c.State?.Running) throw new RuntimeError(`cannot checkpoint ${id.slice(0, 12)}: it is ${c.State?.Status}, not running`, 'FAILED_PRECONDITION');
    if (c.HostConfig?.AutoRemove) {
      throw new RuntimeError(`cannot checkpoint ${id.slice(0, 12)}: it was started with --rm, and Docker would remove it (and its files) as soon as the checkpoint stops it`, 'FAILED_PRECONDITION');
    }
    const direct = await this.directReady(id);
    // Pages to the target's page server: only on the direct path, and only with runc's state at hand.
    let toPages = opts.pageServer && 'f' in direct ? opts.pageServer : undefined;
    let pagesRefusal = opts.pageServer && 'reason' in direct ? `the pages were dumped here: ${direct.reason}` : '';
    const stateJson = 'f' in direct ? path.join(direct.f.loc.runcRoot, id, 'state.json') : '';
    if (toPages && !fs.existsSync(stateJson)) {
      pagesRefusal = `the pages were dumped here: runc's state of the container is not at ${stateJson}`;
      toPages = undefined;
    }
    if ('reason' in direct) {
      if (opts.tcpEstablished) throw new RuntimeError(`cannot checkpoint ${id.slice(0, 12)} with its TCP connections: Docker has no such option and the direct path is not available (${direct.reason})`, 'FAILED_PRECONDITION');
      log.info('checkpoint through Docker (the direct path is not available)', { id: id.slice(0, 12), reason: direct.reason });
    }
    if (stateJson) dropCriuConfigLabels(stateJson); // left by an agent killed mid-dump: not for this dump
    const dir = 'f' in direct ? fastCheckpointDir(direct.f.imageRoot, checkpointDir, name) : path.join(checkpointDir, name);
    if (fs.existsSync(dir)) throw new RuntimeError(`checkpoint dir ${dir} already exists`, 'ALREADY_EXISTS');
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    // The checkpoint stops the container; its restart policy would start it again from scratch
    // (a second copy of a container that is about to run on the target). Put back on failure,
    // and by restoreFromDir (or thaw) on a rollback: the policy is in META, written before the dump.
    const policy = c.HostConfig?.RestartPolicy ?? { Name: 'no' };
    const restarts = policy.Name !== '' && policy.Name !== 'no';
    if (restarts) await this.setRestartPolicy(id, { Name: 'no', MaximumRetryCount: 0 });
    const t0 = Date.now();
    const work = `${dir}.work`;
    const sent = toPages ? sentDirOf(dir) : undefined;
    try {
      if (toPages && sent && 'f' in direct) {
        await dumpThroughPageServer(direct.f.ctrd, {
          id, pid: c.State?.Pid ?? 0, stateJson, sent, dir, work, to: toPages, openTcp: Boolean(opts.tcpEstablished),
          meta: { dockerId: id, restartPolicy: policy }, timeoutMs: this.longTimeoutMs,
        });
        await this.untilStopped(id);
      } else if ('f' in direct) {
        writeMeta(dir, { dockerId: id, restartPolicy: policy });
        await direct.f.ctrd.checkpoint(id, { imagePath: dir, workPath: work, openTcp: opts.tcpEstablished }, this.longTimeoutMs);
        await this.untilStopped(id);
      } else {
        await this.dial('POST', `/containers/${id}/checkpoints`, {
          body: { CheckpointID: name, CheckpointDir: path.dirname(dir), Exit: true }, timeoutMs: this.longTimeoutMs,
        });
      }
    } catch (err) {
      const ms = Date.now() - t0;
      if (restarts) await this.setRestartPolicy(id, policy).catch((e) => log.warn('cannot put the restart policy back', { id, reason: dockerMessage(e) }));
      const failedWork = sent && !fs.existsSync(path.join(sent, 'inventory.img')) ? `${sent}.work` : work;
      const dumpLog = 'f' in direct ? readCriuLog(path.join(failedWork, 'dump.log'), this.keepPath(id, 'checkpoint')) : undefined;
      // looked at before the removal frees it: a dump into a full file system leaves a cut-off log
      const full = fullDisk(['f' in direct ? direct.f.imageRoot : path.dirname(dir)]);
      if ('f' in direct) for (const d of checkpointFiles(dir)) fs.rmSync(d, { recursive: true, force: true });
      const failure = this.criuFailure('checkpoint', id, err, ms, dumpLog);
      // said first: CRIU's last words before its log was cut off are not the reason
      if (full) failure.message = failure.message.includes(': CRIU: ') ? failure.message.replace(': CRIU: ', `: ${full}; CRIU: `) : `${failure.message}; ${full}`;
      // CRIU thaws the tasks of a failed dump; say so when that did not happen (no rollback left)
      const running = await this.raw(id).then((x) => x.State?.Running, () => undefined);
      if (running === false) failure.message += '; the container is no longer running';
      throw failure;
    }
    const ms = Date.now() - t0;
    for (const d of [work, `${sentDirOf(dir)}.work`]) fs.rmSync(d, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, META))) writeMeta(dir, { dockerId: id, restartPolicy: policy });
    if (toPages) return { dir, sentDir: sent, ms, method: 'page-server', fallbackReason: '' };
    return { dir, ms, method: 'f' in direct ? 'containerd' : 'docker', fallbackReason: pagesRefusal || ('reason' in direct ? direct.reason : '') };
  }

  /**
   * After a direct checkpoint the task is gone; dockerd learns it from containerd's exit event
   * a moment later. Waited for, so that whatever comes next (a rollback's restore) finds the
   * container stopped, as after `docker checkpoint create`.
   */
  private async untilStopped(id: string, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.raw(id);
      if (!c.State?.Running) return;
      if (Date.now() > until) throw new RuntimeError(`Docker still shows ${id.slice(0, 12)} running ${timeoutMs} ms after its checkpoint`, 'INTERNAL');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private async setRestartPolicy(id: string, policy: { Name?: string; MaximumRetryCount?: number }): Promise<void> {
    try {
      await this.dial('POST', `/containers/${id}/update`, { body: { RestartPolicy: policy } });
    } catch (err) {
      throw toRuntimeError(err, `set the restart policy of ${id.slice(0, 12)}`);
    }
  }

  private criuFailure(op: 'checkpoint' | 'restore', id: string, err: unknown, ms: number, caught?: { lines: string[]; kept?: string }): RuntimeError {
    return criuFailure(op, id, err, ms, this.opts.keepLogsDir, caught);
  }

  private keepPath(id: string, op: string): string | undefined {
    return keptLogPath(this.opts.keepLogsDir, id, op);
  }

  restoreFromDir(dockerId: string, checkpointSrcDir: string, name: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
    checkName(name, 'checkpoint name');
    return serialized(this.socketPath, () => this.doRestore(dockerId, checkpointSrcDir, name, opts));
  }

  private async doRestore(dockerId: string, src: string, name: string, opts: RestoreOptions): Promise<RestoreResult> {
    if (!fs.existsSync(path.join(src, 'inventory.img'))) {
      throw new RuntimeError(`${src} is not a CRIU checkpoint (no inventory.img)`, fs.existsSync(src) ? 'INVALID_ARGUMENT' : 'NOT_FOUND');
    }
    const c = await this.raw(dockerId);
    const id = c.Id;
    if (c.State?.Running) throw new RuntimeError(`cannot restore into ${id.slice(0, 12)}: it is running`, 'FAILED_PRECONDITION');
    const root = await this.dockerRootDir();
    // Docker 20.10 refuses a custom checkpoint dir at restore: the checkpoint goes where it looks.
    const dest = path.join(root, 'containers', id, 'checkpoints', name);
    const keep = opts.keepSource ?? false;
    const fast = await this.fastPath();
    let placed: 'renamed' | 'copied' | 'in place' | 'linked' = 'in place';
    if (path.resolve(src) !== dest) {
      fs.rmSync(dest, { recursive: true, force: true }); // left by a crashed attempt
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (fast.ok && isInside(fast.imageRoot, src)) {
        linkCheckpoint(src, dest, fast.loc.tmpDir);
        placed = 'linked';
      } else {
        placed = await placeCheckpoint(src, dest, keep);
      }
    }
    const nonce = `${randomUUID()} ${Date.now()}`;
    fs.writeFileSync(path.join(dest, NONCE), nonce);
    const meta = readMeta(dest);
    const tmp = this.opts.containerdTmpDir ?? (fast.ok ? fast.loc.tmpDir : '/tmp');
    const before = new Set(ctrdLeaks(tmp));
    const catcher = new LogCatcher(path.join(root, 'containerd/daemon/io.containerd.runtime.v2.task/moby', id, 'restore.log'));
    const t0 = Date.now();
    const undoConf = opts.tcpEstablished ? withRuncConfOption('tcp-established') : undefined;
    try {
      await this.dial('POST', `/containers/${id}/start`, { query: { checkpoint: name }, timeoutMs: this.longTimeoutMs });
    } catch (err) {
      undoConf?.();
      const ms = Date.now() - t0;
      const caught = catcher.finish(this.keepPath(id, 'restore'));
      cleanLeaks(tmp, before, nonce);
      // leave the input as it was given, so the caller can retry or roll back with it
      fs.rmSync(path.join(dest, NONCE), { force: true });
      if (placed === 'renamed') fs.renameSync(dest, src);
      else if (placed === 'copied' || placed === 'linked') fs.rmSync(dest, { recursive: true, force: true });
      throw this.criuFailure('restore', id, err, ms, caught);
    }
    const ms = Date.now() - t0;
    undoConf?.();
    catcher.close();
    const leaksRemoved = cleanLeaks(tmp, before, nonce);
    fs.rmSync(dest, { recursive: true, force: true }); // consumed; a later rollback needs a new checkpoint
    if ((placed === 'copied' || placed === 'linked') && !keep) fs.rmSync(src, { recursive: true, force: true });
    const after = await this.raw(id);
    // A rollback: checkpoint() switched this very container's restart policy off; switch it back.
    await this.putPolicyBack(after, meta);
    return { ms, pid: after.State?.Pid ?? 0, leaksRemoved, method: placed === 'linked' ? 'linked' : 'placed' };
  }

  async start(dockerId: string): Promise<void> {
    try {
      await this.dial('POST', `/containers/${encodeURIComponent(dockerId)}/start`);
    } catch (err) {
      throw toRuntimeError(err, `start ${dockerId.slice(0, 12)}`);
    }
  }

  async thaw(dockerId: string, checkpointDir?: string): Promise<number> {
    const c = await this.raw(dockerId);
    if (!c.State?.Running) return 0;
    const f = await this.fastPath();
    if (f.ok) dropCriuConfigLabels(path.join(f.loc.runcRoot, c.Id, 'state.json')); // an agent killed mid-dump left it
    // frozen between the two dumps of a page-server checkpoint (this agent restarted meanwhile)
    if (c.State.Paused && f.ok) await f.ctrd.resume(c.Id);
    const n = continueStopped(c.State.Pid ?? 0);
    const meta = checkpointDir ? readMeta(checkpointDir) : undefined;
    await this.putPolicyBack(c, meta);
    return n;
  }

  /** The restart policy a checkpoint switched off (META), back on the same container. */
  private async putPolicyBack(c: RawInspect, meta: CheckpointMeta | undefined): Promise<void> {
    const want = meta?.dockerId === c.Id ? meta.restartPolicy : undefined;
    const have = c.HostConfig?.RestartPolicy;
    if (want?.Name && (want.Name !== have?.Name || (want.MaximumRetryCount ?? 0) !== (have?.MaximumRetryCount ?? 0))) {
      await this.setRestartPolicy(c.Id, want);
    }
  }

  async stop(dockerId: string, opts: { timeoutS?: number } = {}): Promise<void> {
    const t = opts.timeoutS ?? 10;
    try {
      await this.dial('POST', `/containers/${encodeURIComponent(dockerId)}/stop`, { query: { t: String(t) }, timeoutMs: this.timeoutMs + t * 1000 });
    } catch (err) {
      throw toRuntimeError(err, `stop ${dockerId.slice(0, 12)}`);
    }
  }

  async remove(dockerId: string, opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.dial('DELETE', `/containers/${encodeURIComponent(dockerId)}`, { query: { force: String(opts.force ?? false), v: 'false' } });
    } catch (err) {
      throw toRuntimeError(err, `remove ${dockerId.slice(0, 12)}`);
    }
  }

  exportUpperDir(upperDir: string, destTarPath: string): Promise<TransferResult> {
    return exportUpperDir(upperDir, destTarPath);
  }

  importUpperDir(srcTarPath: string, upperDir: string): Promise<TransferResult> {
    return importUpperDir(srcTarPath, upperDir);
  }

  async exportFull(dockerId: string, destTarPath: string): Promise<TransferResult> {
    const t0 = Date.now();
    try {
      const stream = await this.dial<NodeJS.ReadableStream>('GET', `/containers/${encodeURIComponent(dockerId)}/export`, { stream: true, timeoutMs: this.longTimeoutMs });
      await pipeline(stream, fs.createWriteStream(destTarPath));
    } catch (err) {
      fs.rmSync(destTarPath, { force: true });
      throw toRuntimeError(err, `export ${dockerId.slice(0, 12)}`);
    }
    return { bytes: fs.statSync(destTarPath).size, ms: Date.now() - t0 };
  }

  /** Same checks and flags as the diff layer: a `docker export` tar has no whiteouts, only files. */
  importFull(srcTarPath: string, upperDir: string): Promise<TransferResult> {
    return importUpperDir(srcTarPath, upperDir);
  }

  criuCheck(): Promise<CriuCapability> {
    void this.fastPath().then((f) => log.info(f.ok ? 'checkpoints go straight to containerd' : 'checkpoints go through Docker', f.ok ? { containerd: f.loc.socket, images: f.imageRoot } : { reason: f.reason }));
    return criuCheck();
  }

  private info(): Promise<{ DockerRootDir?: string; ExperimentalBuild?: boolean }> {
    return this.dial<{ DockerRootDir?: string; ExperimentalBuild?: boolean }>('GET', '/info').catch((err: unknown) => {
      throw toRuntimeError(err, 'docker info');
    });
  }

  dockerRootDir(): Promise<string> {
    this.rootDir ??= this.info().then((i) => {
      if (!i.DockerRootDir) throw new RuntimeError('docker info has no DockerRootDir', 'INTERNAL');
      return i.DockerRootDir;
    });
    const p = this.rootDir;
    p.catch(() => { if (this.rootDir === p) this.rootDir = undefined; }); // a daemon that was down: ask again next time
    return p;
  }

  async experimental(): Promise<boolean> {
    return Boolean((await this.info()).ExperimentalBuild);
  }
}
