/**
 * Everything one node exposes to Prometheus: the newest value of each of its sample series
 * (host and container metrics, named as names.ts says) and Herd's own counters (sample log,
 * uplink, migrations, election, transfers). The coordinator adds the cluster view
 * (coordinator/cluster-metrics.ts) to the same registry.
 *
 * A registry of its own per node, not prom-client's global one: tests run several nodes in
 * one process.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Sample } from '../../common/types';
import { containerSeries, nodeSeries, type PromSeries } from './names';

export interface ContainerLabels {
  herdId: string;
  name: string;
}

export interface NodeMetricsOptions {
  nodeId: string;
  /** The containers on this node now: their names label the series; others' values are dropped. */
  containers: () => ContainerLabels[];
  /** A series without a new sample for this long is no longer exposed (default 5 min). */
  staleMs?: number;
  clock?: () => number;
}

interface Latest {
  entity: string;
  metric: string;
  value: number;
  ts: number;
}

const FINAL = new Set(['SUCCEEDED', 'ROLLED_BACK', 'FAILED']);

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly latest = new Map<string, Latest>();
  private readonly finished = new Set<string>();
  private readonly clock: () => number;
  private readonly staleMs: number;

  readonly samplesLogged: Counter;
  readonly batchesLogged: Counter;
  readonly transferBytes: Counter;
  readonly migrations: Counter<'outcome'>;
  readonly downtime: Histogram;
  readonly steps: Histogram<'step'>;
  readonly term: Gauge;
  readonly coordinator: Gauge;
  readonly leaderChanges: Counter;

  constructor(private readonly opts: NodeMetricsOptions) {
    this.clock = opts.clock ?? Date.now;
    this.staleMs = opts.staleMs ?? 300_000;
    this.registry.setDefaultLabels({ node: opts.nodeId });
    const r = [this.registry];
    this.samplesLogged = new Counter({ name: 'herd_samples_logged_total', help: 'Samples this node wrote to its local sample log.', registers: r });
    this.batchesLogged = new Counter({ name: 'herd_batches_logged_total', help: 'Batches (one per collection round or record) this node wrote to its sample log.', registers: r });
    this.transferBytes = new Counter({ name: 'herd_transfer_sent_bytes_total', help: 'Artifact bytes this node served to migration targets.', registers: r });
    this.migrations = new Counter({ name: 'herd_migrations_total', help: 'Migrations this node ran as the source, by how they ended.', labelNames: ['outcome'], registers: r });
    this.downtime = new Histogram({ name: 'herd_migration_downtime_seconds', help: 'Time a migrated container was frozen (source-side migrations that succeeded).', buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: r });
    this.steps = new Histogram({ name: 'herd_migration_step_seconds', help: 'Duration of each step of migrations this node ran as the source.', labelNames: ['step'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: r });
    this.term = new Gauge({ name: 'herd_election_term', help: 'Election term this node is in.', registers: r });
    this.coordinator = new Gauge({ name: 'herd_election_is_coordinator', help: '1 while this node is the coordinator, else 0.', registers: r });
    this.leaderChanges = new Counter({ name: 'herd_election_leader_changes_total', help: 'Times this node saw the coordinator change.', registers: r });
  }

  /** Keeps the newest value of each series (called with every batch the node logs). */
  observeSamples(samples: readonly Sample[]): void {
    this.samplesLogged.inc(samples.length);
    this.batchesLogged.inc();
    for (const s of samples) {
      const key = `${s.entity}\u0000${s.metric}`;
      const have = this.latest.get(key);
      if (!have || have.ts <= s.ts) this.latest.set(key, { entity: s.entity, metric: s.metric, value: s.value, ts: s.ts });
    }
  }

  /** A migration record as the source publishes it; counted once, when it ends. */
  observeMigration(record: { migration_id: string; state: string; downtime_ms: number; timings: Array<{ step: string; ms: number }> }): void {
    if (!FINAL.has(record.state) || this.finished.has(record.migration_id)) return;
    this.finished.add(record.migration_id);
    if (this.finished.size > 10_000) this.finished.delete(this.finished.values().next().value as string);
    this.migrations.inc({ outcome: record.state });
    if (record.state === 'SUCCEEDED' && record.downtime_ms > 0) this.downtime.observe(record.downtime_ms / 1000);
    for (const t of record.timings ?? []) if (t.ms >= 0) this.steps.observe({ step: t.step }, t.ms / 1000);
  }

  observeLeadership(v: { term: number; isLeader: boolean }, changed: boolean): void {
    this.term.set(v.term);
    this.coordinator.set(v.isLeader ? 1 : 0);
    if (changed) this.leaderChanges.inc();
  }

  /** Gauges read at scrape time (sample log and uplink positions). */
  gaugeOf(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** A counter kept elsewhere (a module's own running total), read at scrape time. */
  counterOf(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** The exposition text (Prometheus text format 0.0.4): the sample series, then Herd's own. */
  async text(): Promise<string> {
    return this.seriesText() + (await this.registry.metrics());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The newest value of each sample series, written directly: with 200 containers this is
   * 2,400 series, and prom-client's per-label-set gauges took 28x the time of writing the
   * same text (bench/metrics.ts), close to the 50 ms scrape budget. Herd's own metrics are
   * few and stay in prom-client. Drops stale series and containers that left the node.
   */
  private seriesText(): string {
    const now = this.clock();
    const names = new Map(this.opts.containers().map((c) => [c.herdId, c.name]));
    const families = new Map<string, { help: string; lines: string[] }>();
    const node = escapeLabel(this.opts.nodeId);
    for (const [key, l] of this.latest) {
      if (now - l.ts > this.staleMs) {
        this.latest.delete(key);
        continue;
      }
      let series: PromSeries | undefined;
      let labels: string;
      if (l.entity === this.opts.nodeId) {
        series = nodeSeries(l.metric);
        labels = '';
      } else {
        const name = names.get(l.entity);
        if (name === undefined) {
          this.latest.delete(key); // the container left this node (migrated, removed)
          continue;
        }
        series = containerSeries(l.metric);
        labels = `herd_id="${escapeLabel(l.entity)}",name="${escapeLabel(name)}",`;
      }
      if (!series || !Number.isFinite(l.value)) continue;
      for (const [k, v] of Object.entries(series.extra ?? {})) labels += `${k}="${escapeLabel(v)}",`;
      let f = families.get(series.name);
      if (!f) families.set(series.name, (f = { help: series.help, lines: [] }));
      f.lines.push(`${series.name}{${labels}node="${node}"} ${l.value * series.scale}`);
    }
    let out = '';
    for (const [name, f] of families) out += `# HELP ${name} ${f.help}\n# TYPE ${name} gauge\n${f.lines.join('\n')}\n\n`;
    return out;
  }
}

/** Label values as the text format wants them: backslash, double quote and newline escaped. */
function escapeLabel(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}
