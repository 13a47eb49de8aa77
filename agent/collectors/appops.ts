/**
 * Application performance ("ops", the forecast's target) from container log lines.
 * A container opts in with labels:
 *   herd.ops.regex  JavaScript regex applied to each log line (stdout and stderr)
 *   herd.ops.group  capture group number or name (default: the group named "ops", else 1)
 *   herd.ops.scale  multiplier (default 1)
 * e.g. sysbench cpu --report-interval=1: `^\[ *(\d+)s \] thds: (\d+) eps: ([0-9.]+)` group 3.
 */
import { StringDecoder } from 'node:string_decoder';
import { Writable } from 'node:stream';
import { logger } from '../../common/log';
import type { Collector, Container, Sample } from '../../common/types';
import type { DockerTracker } from '../docker';

const log = logger('appops');

export const OPS_METRIC = 'container.ops';
export const LABEL_REGEX = 'herd.ops.regex';
export const LABEL_GROUP = 'herd.ops.group';
export const LABEL_SCALE = 'herd.ops.scale';

export interface OpsSpec {
  regex: RegExp;
  group: number | string;
  scale: number;
}

/** A label that cannot be used; names the label so the user can fix it. */
export class OpsSpecError extends Error {
  constructor(
    readonly label: string,
    message: string,
  ) {
    super(message);
  }
}

/** The spec of a container's labels; undefined without herd.ops.regex; throws OpsSpecError. */
export function opsSpecFromLabels(labels: Record<string, string> | undefined): OpsSpec | undefined {
  const source = labels?.[LABEL_REGEX];
  if (source === undefined || source === '') return undefined;
  let regex: RegExp;
  try {
    regex = new RegExp(source);
  } catch (err) {
    throw new OpsSpecError(LABEL_REGEX, `invalid regex: ${(err as Error).message}`);
  }
  // the groups a regex has, from a match of the empty alternative
  const probe = new RegExp(`${source}|`).exec('')!;
  const count = probe.length - 1;
  const named = Object.keys(probe.groups ?? {});

  let group: number | string;
  const g = labels?.[LABEL_GROUP]?.trim();
  if (g === undefined || g === '') group = named.includes('ops') ? 'ops' : 1;
  else if (/^\d+$/.test(g)) group = Number(g);
  else group = g;
  if (typeof group === 'number' ? group < 1 || group > count : !named.includes(group)) {
    throw new OpsSpecError(
      typeof labels?.[LABEL_GROUP] === 'string' ? LABEL_GROUP : LABEL_REGEX,
      `capture group ${JSON.stringify(group)} does not exist (the regex has ${count} groups${named.length ? `, named ${named.join(', ')}` : ''})`,
    );
  }

  let scale = 1;
  const s = labels?.[LABEL_SCALE]?.trim();
  if (s !== undefined && s !== '') {
    scale = Number(s);
    if (!Number.isFinite(scale)) throw new OpsSpecError(LABEL_SCALE, `not a finite number: ${JSON.stringify(s)}`);
  }
  return { regex, group, scale };
}

/** The ops value of one log line (without Docker's timestamp), or undefined if it has none. */
export function parseOpsLine(line: string, spec: OpsSpec): number | undefined {
  const m = spec.regex.exec(line.endsWith('\r') ? line.slice(0, -1) : line);
  if (!m) return undefined;
  const raw = typeof spec.group === 'number' ? m[spec.group] : m.groups?.[spec.group];
  if (raw === undefined || raw.trim() === '') return undefined;
  const v = Number(raw);
  return Number.isFinite(v) ? v * spec.scale : undefined;
}

/** A line of `docker logs --timestamps`: RFC 3339 time with nanoseconds, a space, the text. */
export interface LogLine {
  /** nanoseconds since the epoch: exact, so a restarted follower can skip what it has seen */
  tsNs: bigint;
  tsMs: number;
  text: string;
}

export function parseDockerLogLine(line: string): LogLine | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ?/.exec(line);
  if (!m) return undefined;
  const secMs = Date.parse(m[1] + m[3]);
  if (Number.isNaN(secMs)) return undefined;
  const ns = Number((m[2] ?? '').padEnd(9, '0'));
  let text = line.slice(m[0].length);
  if (text.endsWith('\r')) text = text.slice(0, -1); // TTY containers end lines with \r\n
  return { tsNs: BigInt(secMs / 1000) * 1_000_000_000n + BigInt(ns), tsMs: secMs + Math.floor(ns / 1e6), text };
}

/** Docker's `since`: seconds.nanoseconds, nanoseconds zero-padded to 9 digits. */
export function dockerSince(tsNs: bigint): string {
  return `${tsNs / 1_000_000_000n}.${(tsNs % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/** Splits a byte stream into complete lines; a partial line waits for its newline. */
export class LineBuffer {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  constructor(private readonly maxLine = 1 << 20) {}

  push(chunk: Buffer | string): string[] {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    // a "line" that never ends (binary output) must not grow without bound
    if (this.partial.length > this.maxLine) this.partial = '';
    return lines;
  }
}

export type Demux = (stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream) => void;

/**
 * Feeds the complete lines of a `docker logs` stream to onLine. Without a TTY the stream
 * is multiplexed (8-byte frame headers, stdout and stderr interleaved), so it goes through
 * demux with a line buffer per output; with a TTY it is raw text.
 */
export function followLogStream(stream: NodeJS.ReadableStream, tty: boolean, demux: Demux, onLine: (line: string) => void): void {
  const sink = () => {
    const buf = new LineBuffer();
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of buf.push(chunk)) onLine(l);
        cb();
      },
    });
  };
  if (tty) stream.pipe(sink());
  else demux(stream, sink(), sink());
}

interface Follower {
  dockerId: string;
  herdId: string;
  spec: OpsSpec;
  abort: AbortController;
  ended: boolean;
  /** lines at or before this time were seen by an earlier follower (or predate the collector) */
  skipUntilNs: bigint;
}

export interface AppOpsCollectorOptions {
  tracker: DockerTracker;
  /** cap on samples waiting for collect(); the oldest are dropped beyond it */
  maxPending?: number;
}

export class AppOpsCollector implements Collector {
  readonly name = 'appops';
  private readonly tracker: DockerTracker;
  private readonly maxPending: number;
  /** following starts now: earlier log lines are history, not current performance */
  private readonly startedNs = BigInt(Date.now()) * 1_000_000n;
  private readonly followers = new Map<string, Follower>();
  private readonly lastNs = new Map<string, bigint>();
  private readonly retryAt = new Map<string, number>();
  private readonly warnedSpec = new Set<string>();
  private pending: Sample[] = [];
  private droppedWarned = false;
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(opts: AppOpsCollectorOptions) {
    this.tracker = opts.tracker;
    this.maxPending = opts.maxPending ?? 100_000;
    this.unsubscribe = this.tracker.onChange((list) => this.sync(list));
  }

  /** Containers with a live log follower (docker ids). */
  following(): string[] {
    return [...this.followers.values()].filter((f) => !f.ended).map((f) => f.dockerId);
  }

  async collect(_now: number): Promise<Sample[]> {
    this.sync(this.tracker.containers());
    const out = this.pending;
    this.pending = [];
    return out;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const f of this.followers.values()) f.abort.abort();
    this.followers.clear();
  }

  /** Starts followers for running opted-in containers and stops the others. */
  sync(list: Container[]): void {
    if (this.closed) return;
    const running = new Map<string, { c: Container; spec: OpsSpec }>();
    for (const c of list) {
      if (c.state !== 'running') continue;
      const spec = this.specOf(c);
      if (spec) running.set(c.dockerId, { c, spec });
    }
    for (const [id, f] of this.followers) {
      if (!running.has(id) || f.ended) {
        f.abort.abort();
        this.followers.delete(id);
      }
    }
    // Docker unreachable lists nothing: keep the resume points for when it answers again.
    if (this.tracker.reachable) {
      const present = new Set(list.map((c) => c.dockerId));
      for (const id of this.lastNs.keys()) if (!present.has(id)) this.lastNs.delete(id);
    }
    const now = Date.now();
    for (const [id, { c, spec }] of running) {
      if (this.followers.has(id) || (this.retryAt.get(id) ?? 0) > now) continue;
      this.start(c, spec);
    }
  }

  private specOf(c: Container): OpsSpec | undefined {
    try {
      return opsSpecFromLabels(c.labels);
    } catch (err) {
      const e = err as OpsSpecError;
      const key = `${c.dockerId}\n${e.label}\n${c.labels[e.label]}`;
      if (!this.warnedSpec.has(key)) {
        this.warnedSpec.add(key);
        log.warn('ignoring the container for ops: bad label', {
          container: c.name,
          herdId: c.herdId,
          label: e.label,
          value: c.labels[e.label],
          reason: e.message,
        });
      }
      return undefined;
    }
  }

  private start(c: Container, spec: OpsSpec): void {
    const skipUntilNs = this.lastNs.get(c.dockerId) ?? this.startedNs - 1n;
    const f: Follower = { dockerId: c.dockerId, herdId: c.herdId, spec, abort: new AbortController(), ended: false, skipUntilNs };
    this.followers.set(c.dockerId, f);
    const fail = (err: unknown) => {
      if (f.ended) return;
      f.ended = true;
      if (!f.abort.signal.aborted) {
        this.retryAt.set(c.dockerId, Date.now() + 1000); // do not hammer a dockerd that refuses
        log.debug('log follower ended', { container: c.name, reason: err instanceof Error ? err.message : String(err) });
      }
    };
    void (async () => {
      const docker = this.tracker.docker;
      const container = docker.getContainer(c.dockerId);
      const tty = this.tracker.tty(c.dockerId) ?? Boolean((await container.inspect()).Config?.Tty);
      const stream = await container.logs({
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        // since includes lines at exactly that time; skipUntilNs drops the one already seen
        since: dockerSince(skipUntilNs + 1n),
        abortSignal: f.abort.signal,
      });
      if (f.abort.signal.aborted) {
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        return;
      }
      f.abort.signal.addEventListener('abort', () => (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.());
      stream.on('end', () => fail('end of log stream (container stopped?)'));
      stream.on('close', () => fail('log stream closed'));
      stream.on('error', fail);
      followLogStream(stream, tty, (s, o, e) => docker.modem.demuxStream(s, o, e), (line) => this.onLine(f, line));
    })().catch(fail);
  }

  private onLine(f: Follower, line: string): void {
    if (f.abort.signal.aborted) return;
    const l = parseDockerLogLine(line);
    if (!l || l.tsNs <= f.skipUntilNs) return;
    if (l.tsNs > (this.lastNs.get(f.dockerId) ?? 0n)) this.lastNs.set(f.dockerId, l.tsNs);
    const value = parseOpsLine(l.text, f.spec);
    if (value === undefined) return;
    this.pending.push({ entity: f.herdId, metric: OPS_METRIC, ts: l.tsMs, value });
    if (this.pending.length > this.maxPending) {
      this.pending.splice(0, this.pending.length - this.maxPending);
      if (!this.droppedWarned) {
        this.droppedWarned = true;
        log.warn('ops samples are not being collected; dropping the oldest', { max: this.maxPending });
      }
    }
  }
}
