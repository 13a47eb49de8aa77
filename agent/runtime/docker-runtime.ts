/**
 * ContainerRuntime over the Docker Engine API (dockerode), for Docker 20.10 + containerd 1.6 +
 * runc + CRIU. The Docker and containerd traps this works around are in docs/runtime.md; the
 * short version: restore ignores a custom checkpoint dir, restoring on the daemon that made the
 * checkpoint collides in containerd's content store, containerd deletes a failed restore's log
 * and leaks a copy of every restored checkpoint in /tmp, and a restart policy restarts a
 * container the checkpoint has just stopped.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Dockerode from 'dockerode';
import { logger } from '../../common/log';
import { LogCatcher, criuCheck, criuLogPathFromMessage, criuReasons, readCriuLog } from './criu';
import { exportUpperDir, importUpperDir } from './fsdiff';
import {
  CriuError, RuntimeError, type CheckpointResult, type ContainerRuntime, type CreateSpec, type CriuCapability,
  type InspectedContainer, type NetworkAttachment, type RestoreOptions, type RestoreResult, type RuntimeErrorCode, type TransferResult,
} from './runtime';
import { createSpecFromInspect, isUserDefinedNetwork, primaryNetwork, type InspectJson } from './spec';

const log = logger('runtime');

type RawInspect = InspectJson & {
  State?: { Status?: string; Running?: boolean; Pid?: number };
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
  /** per API call (default 30 s); checkpoint and restore get restoreTimeoutMs */
  timeoutMs?: number;
  /** checkpoint, restore and export (default 10 min: a memory-heavy dump passes through containerd at ~20 ms/MB) */
  longTimeoutMs?: number;
}

/** The file checkpoint() writes beside CRIU's images: what the restore must put back. */
const META = 'herd-checkpoint.json';
/** A unique file per restore: containerd then never finds the checkpoint's blob already in its store. */
const NONCE = 'herd-nonce';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

// One CRIU operation at a time per engine (invariant 5), across every runtime object on it.
const criuQueues = new Map<string, Promise<unknown>>();
function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = criuQueues.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  criuQueues.set(key, tail);
  void tail.then(() => { if (criuQueues.get(key) === tail) criuQueues.delete(key); });
  return next;
}

interface DialOptions { query?: Record<string, string>; body?: unknown; timeoutMs?: number; ok?: number[]; stream?: boolean }
interface Modem { dial(opts: Record<string, unknown>, cb: (err: unknown, data: unknown) => void): void }
interface DockerErr { statusCode?: number; json?: { message?: string }; message?: string; code?: string; name?: string }

function dockerMessage(err: unknown): string {
  const e = err as DockerErr;
  const m = e?.json?.message ?? (typeof e?.json === 'string' ? e.json : undefined) ?? e?.message ?? String(err);
  return String(m).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

function toRuntimeError(err: unknown, what: string, codes: Partial<Record<number, RuntimeErrorCode>> = {}): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const e = err as DockerErr;
  const msg = dockerMessage(err);
  if (e?.statusCode === undefined) {
    const timedOut = e?.name === 'AbortError' || e?.name === 'TimeoutError';
    return new RuntimeError(`${what}: Docker ${timedOut ? 'did not answer in time' : `is unreachable (${e?.code ?? msg})`}`, 'UNAVAILABLE', msg);
  }
  const byStatus: Record<number, RuntimeErrorCode> = { 400: 'INVALID_ARGUMENT', 404: 'NOT_FOUND', 409: 'FAILED_PRECONDITION', ...codes };
  return new RuntimeError(`${what}: ${msg}`, byStatus[e.statusCode] ?? 'INTERNAL', msg);
}

function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name)) throw new RuntimeError(`${what} ${JSON.stringify(name)} must match ${NAME_RE.source}`, 'INVALID_ARGUMENT');
}

function cpA(src: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => execFile('cp', ['-a', src, dest], (err, _o, stderr) =>
    err ? reject(new RuntimeError(`cannot copy ${src} to ${dest}: ${stderr.trim() || err.message}`, 'INTERNAL')) : resolve()));
}

export class DockerRuntime implements ContainerRuntime {
  readonly socketPath: string;
  private readonly client: Dockerode;
  private readonly opts: DockerRuntimeOptions;
  private rootDir: Promise<string> | undefined;

  constructor(opts: DockerRuntimeOptions = {}) {
    this.opts = opts;
    const fromEnv = process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice(7) : undefined;
    this.socketPath = opts.socketPath ?? fromEnv ?? '/var/run/docker.sock';
    this.client = opts.docker ?? new Dockerode({ socketPath: this.socketPath });
  }

  private get timeoutMs(): number { return this.opts.timeoutMs ?? 30_000; }
  private get longTimeoutMs(): number { return this.opts.longTimeoutMs ?? 600_000; }

  /** One Engine API call, without dockerode's habit of sending options both as query and body. */
  private dial<T>(method: string, apiPath: string, o: DialOptions = {}): Promise<T> {
    const statusCodes: Record<number, boolean | string> = { 200: true, 201: true, 204: true, 304: true, 400: 'bad parameter', 404: 'not found', 409: 'conflict', 500: 'server error' };
    for (const s of o.ok ?? []) statusCodes[s] = true;
    // modem: a path ending in '?' takes options._query as the query string; _body {} sends no body
    const options = { _query: o.query ?? {}, _body: o.body ?? {} };
    return new Promise<T>((resolve, reject) => (this.client.modem as unknown as Modem).dial({
      path: o.query ? `${apiPath}?` : apiPath, method, options, statusCodes, isStream: o.stream ?? false,
      abortSignal: AbortSignal.timeout(o.timeoutMs ?? this.timeoutMs),
    }, (err, data) => (err ? reject(err) : resolve(data as T))));
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
        driver = (await this.dial<{ Driver?: string }>('GET', `/networks/${encodeURIComponent(ep.NetworkID ?? name)}`)).Driver ?? '';
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

  checkpoint(dockerId: string, checkpointDir: string, name: string): Promise<CheckpointResult> {
    checkName(name, 'checkpoint name');
    if (!path.isAbsolute(checkpointDir)) throw new RuntimeError(`checkpoint dir ${checkpointDir} must be absolute`, 'INVALID_ARGUMENT');
    return serialized(this.socketPath, () => this.doCheckpoint(dockerId, checkpointDir, name));
  }

  private async doCheckpoint(dockerId: string, checkpointDir: string, name: string): Promise<CheckpointResult> {
    const c = await this.raw(dockerId);
    const id = c.Id;
    if (!c.State?.Running) throw new RuntimeError(`cannot checkpoint ${id.slice(0, 12)}: it is ${c.State?.Status}, not running`, 'FAILED_PRECONDITION');
    if (c.HostConfig?.AutoRemove) {
      throw new RuntimeError(`cannot checkpoint ${id.slice(0, 12)}: it was started with --rm, and Docker would remove it (and its files) as soon as the checkpoint stops it`, 'FAILED_PRECONDITION');
    }
    const dir = path.join(checkpointDir, name);
    if (fs.existsSync(dir)) throw new RuntimeError(`checkpoint dir ${dir} already exists`, 'ALREADY_EXISTS');
    fs.mkdirSync(checkpointDir, { recursive: true });
    // The checkpoint stops the container; its restart policy would start it again from scratch
    // (a second copy of a container that is about to run on the target). Put back on failure,
    // and by restoreFromDir on a rollback.
    const policy = c.HostConfig?.RestartPolicy ?? { Name: 'no' };
    const restarts = policy.Name !== '' && policy.Name !== 'no';
    if (restarts) await this.setRestartPolicy(id, { Name: 'no', MaximumRetryCount: 0 });
    const t0 = Date.now();
    try {
      await this.dial('POST', `/containers/${id}/checkpoints`, {
        body: { CheckpointID: name, CheckpointDir: checkpointDir, Exit: true }, timeoutMs: this.longTimeoutMs,
      });
    } catch (err) {
      const ms = Date.now() - t0;
      if (restarts) await this.setRestartPolicy(id, policy).catch((e) => log.warn('cannot put the restart policy back', { id, reason: dockerMessage(e) }));
      throw this.criuFailure('checkpoint', id, err, ms);
    }
    const ms = Date.now() - t0;
    fs.writeFileSync(path.join(dir, META), JSON.stringify({ dockerId: id, restartPolicy: policy, at: new Date().toISOString() }) + '\n');
    return { dir, ms };
  }

  private async setRestartPolicy(id: string, policy: { Name?: string; MaximumRetryCount?: number }): Promise<void> {
    try {
      await this.dial('POST', `/containers/${id}/update`, { body: { RestartPolicy: policy } });
    } catch (err) {
      throw toRuntimeError(err, `set the restart policy of ${id.slice(0, 12)}`);
    }
  }

  /** A CriuError with CRIU's own error lines when its log can be read, else a RuntimeError. */
  private criuFailure(op: 'checkpoint' | 'restore', id: string, err: unknown, ms: number, caught?: { lines: string[]; kept?: string }): RuntimeError {
    const msg = dockerMessage(err);
    if (!caught && op === 'checkpoint') {
      const file = criuLogPathFromMessage(msg);
      caught = file ? readCriuLog(file, this.keepPath(id, op)) : undefined;
    }
    const what = `${op} of ${id.slice(0, 12)} failed after ${ms} ms`;
    if (!caught || caught.lines.length === 0) return toRuntimeError(err, what, { 500: 'FAILED_PRECONDITION' });
    const reasons = criuReasons(caught.lines);
    return new CriuError(`${what}: CRIU: ${reasons.join('; ') || caught.lines[caught.lines.length - 1]}`, op, caught.lines, caught.kept, msg);
  }

  private keepPath(id: string, op: string): string | undefined {
    if (!this.opts.keepLogsDir) return undefined;
    return path.join(this.opts.keepLogsDir, `${id.slice(0, 12)}-${op}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
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
    fs.rmSync(dest, { recursive: true, force: true }); // left by a crashed attempt
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const moved = await this.place(src, dest, opts.keepSource ?? false);
    const nonce = `${randomUUID()} ${Date.now()}`;
    fs.writeFileSync(path.join(dest, NONCE), nonce);
    const meta = this.readMeta(dest);
    const tmp = this.opts.containerdTmpDir ?? '/tmp';
    const before = new Set(this.ctrdLeaks(tmp));
    const catcher = new LogCatcher(path.join(root, 'containerd/daemon/io.containerd.runtime.v2.task/moby', id, 'restore.log'));
    const t0 = Date.now();
    try {
      await this.dial('POST', `/containers/${id}/start`, { query: { checkpoint: name }, timeoutMs: this.longTimeoutMs });
    } catch (err) {
      const ms = Date.now() - t0;
      const caught = catcher.finish(this.keepPath(id, 'restore'));
      this.cleanLeaks(tmp, before, nonce);
      // leave the input as it was given, so the caller can retry or roll back with it
      fs.rmSync(path.join(dest, NONCE), { force: true });
      if (moved) fs.renameSync(dest, src);
      else fs.rmSync(dest, { recursive: true, force: true });
      throw this.criuFailure('restore', id, err, ms, caught);
    }
    const ms = Date.now() - t0;
    catcher.close();
    const leaksRemoved = this.cleanLeaks(tmp, before, nonce);
    fs.rmSync(dest, { recursive: true, force: true }); // consumed; a later rollback needs a new checkpoint
    const after = await this.raw(id);
    const want = meta?.restartPolicy;
    const have = after.HostConfig?.RestartPolicy;
    if (want?.Name && (want.Name !== have?.Name || (want.MaximumRetryCount ?? 0) !== (have?.MaximumRetryCount ?? 0))) {
      await this.setRestartPolicy(id, want);
    }
    return { ms, pid: after.State?.Pid ?? 0, leaksRemoved };
  }

  /** Moves (or copies) a checkpoint into place; true if it was moved. */
  private async place(src: string, dest: string, keep: boolean): Promise<boolean> {
    if (!keep) {
      try {
        fs.renameSync(src, dest);
        console.log('DEBUGMV', src, dest, fs.existsSync(src), fs.existsSync(dest));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw new RuntimeError(`cannot move ${src} to ${dest}: ${(err as Error).message}`, 'INTERNAL');
      }
    }
    await cpA(src, dest);
    return false;
  }

  private readMeta(dir: string): { restartPolicy?: { Name?: string; MaximumRetryCount?: number } } | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, META), 'utf8')) as { restartPolicy?: { Name?: string; MaximumRetryCount?: number } };
    } catch {
      return undefined;
    }
  }

  private ctrdLeaks(tmp: string): string[] {
    try {
      return fs.readdirSync(tmp).filter((f) => f.startsWith('ctrd-checkpoint'));
    } catch {
      return [];
    }
  }

  /**
   * containerd 1.6 leaves /tmp/ctrd-checkpoint<random>/, a full copy of the checkpoint, after every
   * restore, failed or not. Only the new ones holding this restore's nonce are ours: another
   * daemon on the host may be restoring right now.
   */
  private cleanLeaks(tmp: string, before: Set<string>, nonce: string): number {
    let n = 0;
    for (const f of this.ctrdLeaks(tmp)) {
      if (before.has(f)) continue;
      const dir = path.join(tmp, f);
      try {
        if (fs.readFileSync(path.join(dir, NONCE), 'utf8') !== nonce) continue;
        fs.rmSync(dir, { recursive: true, force: true });
        n++;
      } catch { /* not ours, or gone */ }
    }
    return n;
  }

  async start(dockerId: string): Promise<void> {
    try {
      await this.dial('POST', `/containers/${encodeURIComponent(dockerId)}/start`);
    } catch (err) {
      throw toRuntimeError(err, `start ${dockerId.slice(0, 12)}`);
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
