/**
 * Host metrics (and any user-configured metric names) from PCP through pmproxy's REST API.
 * Every quirk handled here was measured against pmproxy 6.0.3; see test/fixtures/pcp and
 * the project's PCP recipe. Never call /series/*: it hangs without redis.
 */
import { logger } from '../../common/log';
import type { Collector, Sample } from '../../common/types';

const log = logger('pcp');

export interface PcpCollectorOptions {
  nodeId: string;
  /** pmproxy's REST endpoint; it listens on loopback only */
  url?: string;
  /** PCP metric names, e.g. kernel.all.load, disk.dev.read */
  metrics: string[];
  /** how often the agent calls collect(); sizes the context's polltimeout */
  pollIntervalMs: number;
  /** per HTTP request (default 2000 ms) */
  timeoutMs?: number;
}

/** A non-200 reply from pmproxy, with the message of its JSON body. */
export class PmapiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// pmproxy answers 400 for these when pmcd is stopped: "IPC protocol failure" on the first
// use of an existing context, then "cannot reconnect context: Connection timed out";
// "cannot connect to PMCD: Connection refused" when creating a context.
const PMCD_DOWN = /IPC protocol failure|cannot (re)?connect|Connection (refused|timed out|reset)|PMCD/i;
const UNKNOWN_CONTEXT = /unknown context identifier/i;

const isUnknownContext = (e: unknown) => e instanceof PmapiError && UNKNOWN_CONTEXT.test(e.message);
/** Errors that mean "no PCP this round" rather than "this one metric has a problem". */
const isOutage = (e: unknown) => !(e instanceof PmapiError) || e.status >= 500 || PMCD_DOWN.test(e.message);

/** Seconds plus nanoseconds, kept apart so that neither loses precision. */
export interface PmTimestamp {
  sec: number;
  nsec: number;
}

/**
 * pmproxy prints fetch timestamps as `sec.nsec` with nsec NOT zero-padded:
 * `1795533219.58233936` is 1795533219 s + 58233936 ns (0.058 s), which JSON.parse would
 * read as 0.582 s. So the fraction is read from the raw text as an integer count of ns.
 * The compat form `{"s":..,"us":..}` (/pmapi/ID/_fetch) is accepted as well.
 */
export function parsePmapiTimestamp(raw: string): PmTimestamp | undefined {
  const m = /"timestamp"\s*:\s*(\d+)(?:\.(\d{1,9}))?\s*[,}]/.exec(raw);
  if (m) return { sec: Number(m[1]), nsec: m[2] ? Number(m[2]) : 0 };
  const c = /"timestamp"\s*:\s*\{\s*"s"\s*:\s*(\d+)\s*,\s*"us"\s*:\s*(\d+)\s*\}/.exec(raw);
  if (c) return { sec: Number(c[1]), nsec: Number(c[2]) * 1000 };
  return undefined;
}

const BIG = '\u0001big:';
type Num = number | bigint;

/**
 * u64 values arrive as bare JSON numbers, so JSON.parse rounds those above 2^53
 * (a nanosecond CPU counter gets there after ~104 CPU-days). Long integer literals are
 * turned into marked strings first and then into BigInt, so counter deltas stay exact.
 */
export function parsePmapiJson(raw: string): unknown {
  // the marker goes in as a JSON escape: a raw control character is not valid JSON
  const marked = raw.replace(/(?<!\\)("value"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"\\u0001big:$2"');
  return JSON.parse(marked, (_k, v) => {
    if (typeof v !== 'string' || !v.startsWith(BIG)) return v;
    const b = BigInt(v.slice(BIG.length));
    return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  });
}

interface FetchReply {
  values: { name: string; instances: { instance: number | null; value: unknown }[] }[];
}
interface MetricDesc {
  name: string;
  sem?: string;
  indom?: string;
  message?: string;
  success?: boolean;
}

/** Per-second rate between two counter readings; undefined after a reset or wrap. */
function rate(prev: Num, cur: Num, dtSec: number): number | undefined {
  if (!(dtSec > 0)) return undefined;
  if (typeof prev === 'bigint' || typeof cur === 'bigint') {
    if (!Number.isInteger(Number(prev)) || !Number.isInteger(Number(cur))) return undefined;
    const d = BigInt(cur) - BigInt(prev);
    return d < 0n ? undefined : Number(d) / dtSec;
  }
  return cur < prev ? undefined : (cur - prev) / dtSec;
}

export class PcpCollector implements Collector {
  readonly name = 'pcp';
  private readonly url: string;
  private readonly nodeId: string;
  private readonly metrics: string[];
  private readonly pollIntervalMs: number;
  private readonly timeoutMs: number;
  private readonly pollTimeoutSec: number;

  private ctx: number | undefined;
  private readonly descs = new Map<string, MetricDesc>();
  /** instance id -> name, per instance domain (several metrics share one, e.g. disk.dev.*) */
  private readonly indoms = new Map<string, Map<number, string>>();
  private readonly prev = new Map<string, { t: number; v: Num }>();
  private readonly warnedUnknown = new Set<string>();
  private readonly warnedMeta = new Set<string>();
  private down = false;
  private busy = false;
  private closed = false;

  constructor(opts: PcpCollectorOptions) {
    this.nodeId = opts.nodeId;
    this.url = (opts.url ?? 'http://127.0.0.1:44322').replace(/\/+$/, '');
    this.metrics = [...new Set(opts.metrics)];
    this.pollIntervalMs = opts.pollIntervalMs;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    // pmproxy drops a context after polltimeout seconds unused; 3x the interval survives a
    // couple of slow or skipped rounds without recreating it (default would be 5 s).
    this.pollTimeoutSec = Math.max(5, Math.ceil((3 * opts.pollIntervalMs) / 1000));
  }

  /** Whether the last round failed (pmproxy or pmcd unavailable). */
  get unavailable(): boolean {
    return this.down;
  }

  async collect(_now: number): Promise<Sample[]> {
    if (this.closed || this.metrics.length === 0) return [];
    // A round slower than the poll interval must not overlap the next one: the counter
    // state and the caches are shared.
    if (this.busy) return [];
    this.busy = true;
    try {
      const samples = await this.round();
      if (this.down) {
        this.down = false;
        log.info('PCP is available again', { url: this.url });
      }
      return samples;
    } catch (err) {
      if (!this.down) {
        this.down = true;
        log.warn('PCP unavailable; no PCP samples until it answers (retrying every round)', {
          url: this.url,
          reason: explain(err),
        });
      } else {
        log.debug('PCP still unavailable', { reason: explain(err) });
      }
      return [];
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    this.closed = true;
  }

  private async round(): Promise<Sample[]> {
    const names = this.metrics.map(encodeURIComponent).join(',');
    const raw = await this.withContext((c) => this.get(`/pmapi/fetch?context=${c}&names=${names}`));
    const receivedMs = Date.now();
    const reply = parsePmapiJson(raw) as FetchReply;
    if (!reply || !Array.isArray(reply.values)) throw new Error('pmproxy fetch reply has no values array');

    // Time of the sample: pmcd's own timestamp, read from the raw text (see
    // parsePmapiTimestamp). It is when the values were taken, so rates are not skewed by
    // the HTTP round trip or by pmproxy's queueing; pmproxy is on this node (loopback), so
    // it shares our clock. The receive time is only the fallback.
    const stamp = parsePmapiTimestamp(raw);
    const tSec = stamp ? stamp.sec + stamp.nsec / 1e9 : receivedMs / 1000;
    const ts = stamp ? stamp.sec * 1000 + Math.floor(stamp.nsec / 1e6) : receivedMs;

    this.reportUnknown(new Set(reply.values.map((v) => v.name)));
    await this.loadDescriptors(reply.values.map((v) => v.name).filter((n) => !this.descs.has(n)));

    const samples: Sample[] = [];
    for (const metric of reply.values) {
      const desc = this.descs.get(metric.name);
      if (!desc || !Array.isArray(metric.instances)) continue; // sem unknown: cannot tell counters apart
      const counter = desc.sem === 'counter';
      const names = await this.instanceNames(metric.name, desc, metric.instances);
      for (const { instance, value } of metric.instances) {
        if (typeof value !== 'number' && typeof value !== 'bigint') continue; // string metrics
        let series = `pcp.${metric.name}`;
        if (instance !== null && instance !== undefined) {
          const inst = names?.get(instance);
          if (inst === undefined) continue; // vanished between fetch and indom query
          series += `[${inst}]`;
        }
        if (!counter) {
          samples.push({ entity: this.nodeId, metric: series, ts, value: Number(value) });
          continue;
        }
        const prev = this.prev.get(series);
        this.prev.set(series, { t: tSec, v: value });
        const r = prev ? rate(prev.v, value, tSec - prev.t) : undefined;
        if (r !== undefined) samples.push({ entity: this.nodeId, metric: series, ts, value: r });
      }
    }
    // Instances come and go (containers, disks): forget counters not seen for a while.
    const horizon = tSec - (10 * this.pollIntervalMs) / 1000;
    for (const [k, p] of this.prev) if (p.t < horizon) this.prev.delete(k);
    return samples;
  }

  /** pmproxy drops unknown names from a fetch without a word: say so, once per name. */
  private reportUnknown(returned: Set<string>): void {
    const fresh = this.metrics.filter((n) => !returned.has(n) && !this.warnedUnknown.has(n));
    for (const n of this.metrics) if (returned.has(n)) this.warnedUnknown.delete(n);
    if (fresh.length === 0) return;
    for (const n of fresh) this.warnedUnknown.add(n);
    log.warn('PCP does not know these metric names; they are ignored', { names: fresh.join(','), url: this.url });
  }

  /** Descriptors (semantics, instance domain) for names seen in a fetch, queried once. */
  private async loadDescriptors(missing: string[]): Promise<void> {
    if (missing.length === 0) return;
    const q = missing.map(encodeURIComponent).join(',');
    let reply: { metrics?: MetricDesc[] };
    try {
      reply = parsePmapiJson(await this.withContext((c) => this.get(`/pmapi/metric?context=${c}&names=${q}`))) as typeof reply;
    } catch (err) {
      if (isOutage(err)) throw err;
      this.warnOnceMeta(missing.join(','), `cannot describe PCP metrics: ${explain(err)}`);
      return;
    }
    for (const d of reply.metrics ?? []) {
      if (d.success === false || !d.name) continue;
      this.descs.set(d.name, d);
    }
  }

  private async instanceNames(
    metric: string,
    desc: MetricDesc,
    instances: { instance: number | null }[],
  ): Promise<Map<number, string> | undefined> {
    if (!instances.some((i) => i.instance !== null && i.instance !== undefined)) return undefined;
    const key = desc.indom ?? metric;
    const cached = this.indoms.get(key);
    if (cached && instances.every((i) => i.instance === null || cached.has(i.instance))) return cached;
    // An id we have not seen: the domain changed (a container or disk appeared), re-query it.
    let reply: { instances?: { instance: number; name: string }[] };
    try {
      reply = JSON.parse(
        await this.withContext((c) => this.get(`/pmapi/indom?context=${c}&name=${encodeURIComponent(metric)}`)),
      );
    } catch (err) {
      if (isOutage(err)) throw err;
      this.warnOnceMeta(metric, `cannot read the PCP instance names of ${metric}: ${explain(err)}`);
      return cached;
    }
    const map = new Map<number, string>();
    for (const i of reply.instances ?? []) map.set(i.instance, i.name);
    this.indoms.set(key, map);
    return map;
  }

  private warnOnceMeta(key: string, msg: string): void {
    if (this.warnedMeta.has(key)) return;
    this.warnedMeta.add(key);
    log.warn(msg, { url: this.url });
  }

  /**
   * Runs a request with the shared context, creating it when needed and once more when
   * pmproxy has forgotten it (it expired, or pmproxy restarted).
   */
  private async withContext<T>(fn: (ctx: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const ctx = this.ctx ?? (this.ctx = await this.newContext());
      try {
        return await fn(ctx);
      } catch (err) {
        if (this.ctx === ctx && (isUnknownContext(err) || (err instanceof PmapiError && PMCD_DOWN.test(err.message)))) {
          // Measured: after pmcd comes back, an old context keeps failing with "cannot
          // reconnect context" for ~10 s (libpcp's reconnect back-off, growing with each
          // failure), while a new context works at once. So drop it and start afresh.
          this.ctx = undefined;
        }
        if (attempt === 0 && isUnknownContext(err)) {
          log.debug('pmproxy forgot our context; creating a new one', { context: ctx });
          continue;
        }
        throw err;
      }
    }
  }

  private async newContext(): Promise<number> {
    const body = await this.get(`/pmapi/context?hostspec=localhost&polltimeout=${this.pollTimeoutSec}`);
    const ctx = (JSON.parse(body) as { context?: unknown }).context;
    if (typeof ctx !== 'number') throw new Error(`pmproxy returned no context: ${body.slice(0, 200)}`);
    return ctx;
  }

  private async get(path: string): Promise<string> {
    const res = await fetch(this.url + path, { signal: AbortSignal.timeout(this.timeoutMs) });
    const text = await res.text();
    if (res.status !== 200) {
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not JSON (a proxy's error page?): keep the text
      }
      throw new PmapiError(res.status, message);
    }
    return text;
  }
}

function explain(err: unknown): string {
  if (err instanceof PmapiError) return `HTTP ${err.status}: ${err.message}`;
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (err.name === 'TimeoutError') return 'timed out';
    if (cause) return `${err.message}: ${cause.code ?? cause.message ?? String(cause)}`;
    return err.message;
  }
  return String(err);
}
