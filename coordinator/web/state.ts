/**
 * What the cluster page shows, as JSON: members with their load and capacity, containers
 * and where they run, migrations (running ones with their progress), and series of host
 * load and container ops over time. Read from the coordinator's own registry, sample store
 * and migration records; nothing here changes state.
 */
import type { DecisionRecord } from '../../common/decision';
import { isDraining } from '../../common/labels';
import type { MigrationRecord } from '../../common/migration-record';
import type { Registry } from '../registry';
import type { SampleStore } from '../samplestore';

export interface PageDeps {
  nodeId: string;
  registry: Pick<Registry, 'list' | 'isConnected'>;
  store: Pick<SampleStore, 'downsample' | 'getSeries'>;
  migrations: () => MigrationRecord[];
  leader: () => { term: number; leaderId?: string };
  /** Extra sections later capabilities add (e.g. the controller's decisions). */
  extra?: () => Record<string, unknown>;
  clock?: () => number;
}

/** The newest value of a series within the last `withinMs`, or null. */
function latest(store: PageDeps['store'], entity: string, metric: string, now: number, withinMs = 60_000): number | null {
  const pts = store.downsample(entity, metric, now - withinMs, now + 1, withinMs + 1);
  const v = pts.length ? pts[pts.length - 1].value : NaN;
  return Number.isFinite(v) ? v : null;
}

export function clusterState(deps: PageDeps) {
  const now = (deps.clock ?? Date.now)();
  const lead = deps.leader();
  const nodes = deps.registry.list().map((n) => ({
    id: n.node_id,
    address: n.address,
    arch: n.arch,
    cores: n.cores,
    memory_bytes: n.memory_bytes,
    connected: deps.registry.isConnected(n.node_id),
    draining: isDraining(n.labels),
    criu: n.capabilities.includes('criu'),
    cpu_pct: latest(deps.store, n.node_id, 'host.cpu.total', now),
    mem_used_bytes: latest(deps.store, n.node_id, 'host.mem.used_bytes', now),
    disk_busy_pct: latest(deps.store, n.node_id, 'host.disk.active_pct', now),
    last_seen_ms: n.last_seen_ms,
  }));
  const containers = deps.registry.list().flatMap((n) =>
    n.containers.map((c) => ({
      herd_id: c.herd_id,
      name: c.name,
      image: c.image,
      state: c.state,
      node: n.node_id,
      cpu_cores: latest(deps.store, c.herd_id, 'container.cpu.usage', now),
      mem_bytes: latest(deps.store, c.herd_id, 'container.mem.usage_bytes', now),
      ops: latest(deps.store, c.herd_id, 'container.ops', now),
    })),
  );
  const migrations = deps.migrations().slice(0, 50).map((m) => ({
    id: m.migration_id,
    herd_id: m.herd_id,
    from: m.source_node_id,
    to: m.target_node_id,
    state: m.state,
    step: m.step,
    bytes_done: m.bytes_done,
    bytes_total: m.bytes_total,
    started_ms: m.started_ms,
    ended_ms: m.ended_ms,
    downtime_ms: m.downtime_ms,
    reason: m.reason,
  }));
  return { answered_by: deps.nodeId, now_ms: now, term: lead.term, coordinator: lead.leaderId ?? null, nodes, containers, migrations, ...(deps.extra?.() ?? {}) };
}

export interface SeriesQuery {
  /** 'host' (every member's host.cpu.total) or 'ops' (every container's container.ops). */
  kind: 'host' | 'ops';
  minutes: number;
}

/** Parses the series endpoint's query; a sentence naming the bad parameter otherwise. */
export function parseSeriesQuery(params: URLSearchParams): SeriesQuery | string {
  for (const key of params.keys()) if (key !== 'kind' && key !== 'minutes') return `unknown parameter "${key.slice(0, 40)}": this endpoint takes kind (host or ops) and minutes (1-1440)`;
  const kind = params.get('kind') ?? 'host';
  if (kind !== 'host' && kind !== 'ops') return `kind must be host or ops, not "${kind.slice(0, 40)}"`;
  const raw = params.get('minutes') ?? '30';
  const minutes = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(minutes) || minutes < 1 || minutes > 1440) return `minutes must be a whole number from 1 to 1440, not "${raw.slice(0, 40)}"`;
  return { kind, minutes };
}

/** One line per member (host CPU %) or per container (ops), about 120 points each. */
export function clusterSeries(deps: PageDeps, q: SeriesQuery) {
  const now = (deps.clock ?? Date.now)();
  const wanted =
    q.kind === 'host'
      ? deps.registry.list().map((n) => ({ name: n.node_id, entity: n.node_id, metric: 'host.cpu.total' }))
      : deps.registry.list().flatMap((n) => n.containers.map((c) => ({ name: c.name || c.herd_id, entity: c.herd_id, metric: 'container.ops' })));
  // A young cluster's window starts at its first sample, so its few minutes get the points.
  const first = Math.min(now - 60_000, ...wanted.map((w) => deps.store.getSeries(w.entity, w.metric)?.firstMs ?? Infinity));
  const from = Math.max(now - q.minutes * 60_000, first);
  const step = Math.max(1000, Math.round((now - from) / 120));
  const lines = wanted.map((w) => ({ name: w.name, points: deps.store.downsample(w.entity, w.metric, from, now + 1, step).map((p) => [p.ts_ms, p.value]) }));
  const migrations = deps.migrations().filter((m) => m.started_ms >= from).map((m) => ({ at_ms: m.started_ms, herd_id: m.herd_id, from: m.source_node_id, to: m.target_node_id, state: m.state }));
  return { from_ms: from, to_ms: now, step_ms: step, lines: lines.filter((l) => l.points.length > 0), migrations };
}

/** Decisions the page's state carries (newest first); /api/decisions gives more. */
export const PAGE_DECISIONS = 10;
/** Refusals shown per decision on the page (a big cluster refuses hundreds). */
const PAGE_REFUSALS = 5;

/** A decision as the page shows it: what was decided, each move with its reason, the first refusals. */
export function pageDecision(d: DecisionRecord, refusals = PAGE_REFUSALS) {
  return {
    id: d.id,
    atMs: d.atMs,
    mode: d.mode,
    trigger: d.trigger,
    policies: d.policies,
    note: d.note,
    proposals: d.proposals.length,
    actions: d.actions.map((a) => ({ herdId: a.herdId, from: a.from, to: a.to, policy: a.policy, reason: a.reason, status: a.status, detail: a.detail })),
    refusals: d.refusals.slice(0, refusals),
    refusalsTotal: d.refusals.length,
    imbalanceBefore: d.efficacy.imbalanceBefore,
    imbalanceAfter: d.efficacy.imbalanceAfter,
  };
}

/** Parses /api/decisions' query: limit (1-200, default 50); a sentence naming the bad parameter otherwise. */
export function parseDecisionsQuery(params: URLSearchParams): { limit: number } | string {
  for (const key of params.keys()) if (key !== 'limit') return `unknown parameter "${key.slice(0, 40)}": this endpoint takes limit (1-200)`;
  const raw = params.get('limit') ?? '50';
  const limit = Number(raw);
  if (!/^\d+$/.test(raw) || limit < 1 || limit > 200) return `limit must be a whole number from 1 to 200, not "${raw.slice(0, 40)}"`;
  return { limit };
}
