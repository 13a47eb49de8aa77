/**
 * The agent's view of the local Docker engine: which containers exist, in which state,
 * under which herd id. Docker being absent or down is a normal condition for an agent
 * (it keeps collecting host metrics), so refresh() reports it once and never throws.
 */
import Dockerode from 'dockerode';
import { logger } from '../common/log';
import type { Container } from '../common/types';
import { AdaptiveTimeout, type TimeoutChange } from './docker-timeout';

const log = logger('docker');

export interface DockerTrackerOptions {
  socketPath: string;
  nodeId: string;
  /** a Dockerode (or a test double of listContainers/getContainer) instead of one on socketPath */
  docker?: Dockerode;
  /**
   * per list/inspect call at first (settings.dockerTimeoutMs, default 10 s): a hung dockerd must
   * not hang the agent; after a timeout the wait backs off (agent/docker-timeout.ts)
   */
  timeoutMs?: number;
  /** the longest the backoff waits (default 8 x timeoutMs) */
  maxTimeoutMs?: number;
}

export type ChangeListener = (containers: Container[]) => void;

/** Herd id: the `herd.id` label, which follows the container across migrations, else the short Docker id. */
export function herdIdOf(dockerId: string, labels: Record<string, string> | undefined): string {
  const label = labels?.['herd.id']?.trim();
  return label ? label : dockerId.replace(/^sha256:/, '').slice(0, 12);
}

interface Inspected {
  state: string;
  pid: number;
  labels: Record<string, string>;
  createdMs: number;
  tty: boolean;
  cpuLimit: number;
  memoryLimitBytes: number;
}

export class DockerTracker {
  readonly nodeId: string;
  readonly socketPath: string;
  private readonly client: Dockerode;
  private readonly wait: AdaptiveTimeout;
  private list: Container[] = [];
  private signature = '';
  private ok = true;
  private warned = false;
  private readonly inspected = new Map<string, Inspected>();
  private readonly listeners = new Set<ChangeListener>();
  private inflight: Promise<Container[]> | undefined;

  constructor(opts: DockerTrackerOptions) {
    this.nodeId = opts.nodeId;
    this.socketPath = opts.socketPath;
    this.wait = new AdaptiveTimeout({ baseMs: opts.timeoutMs ?? 10_000, maxMs: opts.maxTimeoutMs });
    // No client-wide timeout on the Dockerode instance: others use it for long-lived
    // streams (logs follow), which a socket timeout would cut. Calls here pass abortSignal.
    this.client = opts.docker ?? new Dockerode({ socketPath: opts.socketPath });
  }

  get docker(): Dockerode {
    return this.client;
  }

  /** False after a refresh that could not reach Docker. */
  get reachable(): boolean {
    return this.ok;
  }

  /** How long the next list/inspect call may take (the configured wait, or more after timeouts). */
  get timeoutMs(): number {
    return this.wait.ms;
  }

  /** The list of the last refresh() ([] while Docker is unreachable). */
  containers(): Container[] {
    return this.list;
  }

  /** Docker's TTY flag of a container, from its last inspect (needed to read its logs). */
  tty(dockerId: string): boolean | undefined {
    return this.inspected.get(dockerId)?.tty;
  }

  /** Called after a refresh that changed the set of containers or a state; returns an unsubscribe. */
  onChange(cb: ChangeListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Lists all containers (running or not); concurrent calls share one listing. */
  refresh(): Promise<Container[]> {
    this.inflight ??= this.doRefresh().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async doRefresh(): Promise<Container[]> {
    let next: Container[];
    try {
      const infos = await this.timed(() => this.client.listContainers({ all: true, abortSignal: AbortSignal.timeout(this.wait.ms) }));
      next = [];
      for (const info of infos) {
        const c = await this.toContainer(info);
        if (c) next.push(c);
      }
      // forget inspections of containers that are gone
      const ids = new Set(infos.map((i) => i.Id));
      for (const id of this.inspected.keys()) if (!ids.has(id)) this.inspected.delete(id);
      if (this.warned) {
        log.info('Docker is reachable again', { socket: this.socketPath, containers: next.length });
      }
      this.ok = true;
      this.warned = false;
    } catch (err) {
      const change = isTimeout(err) ? this.wait.timedOut() : undefined;
      if (!this.warned) {
        log.warn('Docker is unreachable; no containers are tracked until it answers (retrying every refresh)', {
          socket: this.socketPath,
          reason: reasonOf(err),
        });
        this.warned = true;
      } else {
        log.debug('Docker still unreachable', { reason: reasonOf(err) });
      }
      this.backOff(change);
      this.ok = false;
      next = [];
    }
    this.publish(next);
    return next;
  }

  private async toContainer(info: Dockerode.ContainerInfo): Promise<Container | undefined> {
    let ins = this.inspected.get(info.Id);
    // The pid changes on every start, so a state change means a new inspect, too.
    if (!ins || ins.state !== info.State) {
      try {
        const d = await this.timed(() => this.client.getContainer(info.Id).inspect({ abortSignal: AbortSignal.timeout(this.wait.ms) }));
        ins = {
          state: info.State,
          pid: d.State?.Pid ?? 0,
          labels: d.Config?.Labels ?? info.Labels ?? {},
          createdMs: Date.parse(d.Created) || info.Created * 1000,
          tty: Boolean(d.Config?.Tty),
          cpuLimit: (d.HostConfig?.NanoCpus ?? 0) / 1e9,
          memoryLimitBytes: d.HostConfig?.Memory ?? 0,
        };
        this.inspected.set(info.Id, ins);
      } catch (err) {
        if (statusOf(err) === 404) return undefined; // removed between list and inspect
        if (isUnreachable(err)) throw err;
        // keep what the list says and inspect again next time
        log.debug('inspect failed', { id: info.Id.slice(0, 12), reason: reasonOf(err) });
        ins = { state: info.State, pid: 0, labels: info.Labels ?? {}, createdMs: info.Created * 1000, tty: false, cpuLimit: 0, memoryLimitBytes: 0 };
      }
    }
    return {
      herdId: herdIdOf(info.Id, ins.labels),
      dockerId: info.Id,
      name: (info.Names?.[0] ?? '').replace(/^\//, ''),
      image: info.Image,
      state: info.State,
      pid: ins.pid,
      labels: ins.labels,
      createdMs: ins.createdMs,
      cpuLimit: ins.cpuLimit,
      memoryLimitBytes: ins.memoryLimitBytes,
    };
  }

  /** A Docker call, its duration counted towards relaxing a backed-off wait. */
  private async timed<T>(callDocker: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    const r = await callDocker();
    const relaxed = this.wait.answered(Date.now() - t0);
    if (relaxed) log.info(`Docker answers quickly again: each call may take up to ${relaxed.toMs} ms from now on`, { socket: this.socketPath });
    return r;
  }

  private backOff(change: TimeoutChange | undefined): void {
    if (!change) return;
    log.warn(`Docker did not answer within ${change.fromMs} ms: each call may take up to ${change.toMs} ms from now on ` +
      `(a slow engine, e.g. an emulated or loaded machine; --docker-timeout sets the first wait)`, { socket: this.socketPath });
  }

  private publish(next: Container[]): void {
    this.list = next;
    const sig = next
      .map((c) => `${c.dockerId}|${c.herdId}|${c.state}|${c.pid}`)
      .sort()
      .join('\n');
    if (sig === this.signature) return;
    this.signature = sig;
    for (const cb of this.listeners) {
      try {
        cb(next);
      } catch (err) {
        log.error('container change listener failed', { reason: reasonOf(err) });
      }
    }
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

function isTimeout(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError' || (err as Error)?.name === 'TimeoutError';
}

function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return statusOf(err) === undefined && (code !== undefined || isTimeout(err));
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    const msg = err.name === 'AbortError' || err.name === 'TimeoutError' ? 'timed out' : err.message;
    return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  }
  return String(err);
}
