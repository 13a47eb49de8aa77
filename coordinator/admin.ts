/**
 * The Admin service: what operators ask of the cluster (grpcurl, the herd CLI).
 * Every argument is checked and answered with the right status and a plain reason.
 */
import * as grpc from '@grpc/grpc-js';
import { logger } from '../common/log';
import { checkId, checkMetric, invalid, notFound, RpcError, unary } from '../common/validate';
import type { NodeRecord, Registry } from './registry';
import type { SampleStore } from './samplestore';

const log = logger('admin');

/** Most raw samples one QuerySamples answer may carry; past it, ask with a step. */
export const MAX_RAW_POINTS = 50_000;
/** Most downsampled points one answer may carry. */
export const MAX_STEPS = 100_000;

export interface LeaderInfo {
  leader_id: string;
  address: string;
  term: number;
  since_ms: number;
  answered_by?: string;
}

export interface ClusterInfo {
  answered_by: string;
  term: number;
  leader_id: string;
  members: Array<{ node_id: string; address: string; role: string; last_heard_ms: number; self: boolean }>;
}

export interface AdminDeps {
  store: SampleStore;
  registry: Registry;
  leader: () => LeaderInfo;
  cluster?: () => ClusterInfo;
  clock?: () => number;
}

/** A node as Admin shows it (herd.v1.NodeInfo). */
export function nodeInfo(n: NodeRecord, registry: Registry, store: Pick<SampleStore, 'ackedSeq'>): Record<string, unknown> {
  return {
    node_id: n.node_id,
    address: n.address,
    connected: registry.isConnected(n.node_id),
    arch: n.arch,
    cores: n.cores,
    memory_bytes: n.memory_bytes,
    capabilities: n.capabilities,
    acked_seq: store.ackedSeq(n.node_id),
    last_seen_ms: n.last_seen_ms,
    container_count: n.containers.length,
    labels: n.labels,
    version: n.version,
    docker_reachable: n.docker_reachable,
  };
}

export function adminHandlers(deps: AdminDeps): grpc.UntypedServiceImplementation {
  const clock = deps.clock ?? Date.now;
  const internal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  return {
    ListNodes: unary('ListNodes', () => ({ nodes: deps.registry.list().map((n) => nodeInfo(n, deps.registry, deps.store)) }), internal),

    ListContainers: unary('ListContainers', (req: any) => {
      const nodeId = req.node_id ?? '';
      if (nodeId) {
        const bad = checkId('node_id', nodeId);
        if (bad) throw invalid(bad);
        if (!deps.registry.get(nodeId)) throw notFound(`no node "${nodeId}" has ever connected; ListNodes shows the known nodes`);
      }
      const nodes = nodeId ? [deps.registry.get(nodeId)!] : deps.registry.list();
      const containers = nodes.flatMap((n) => [...n.containers].sort((a, b) => (a.name < b.name ? -1 : 1)));
      return { containers };
    }, internal),

    ListSeries: unary('ListSeries', (req: any) => {
      if (req.entity) {
        const bad = checkId('entity', req.entity);
        if (bad) throw invalid(bad);
      }
      if (req.metric_prefix && req.metric_prefix.length > 200) throw invalid('metric_prefix is longer than 200 characters');
      return {
        series: deps.store.listSeries(req.entity, req.metric_prefix).map((s) => ({
          entity: s.entity,
          metric: s.metric,
          node_id: s.nodeId,
          first_ms: s.firstMs,
          last_ms: s.lastMs,
        })),
      };
    }, internal),

    QuerySamples: unary('QuerySamples', (req: any) => {
      const bad = checkId('entity', req.entity) ?? checkMetric(req.metric);
      if (bad) throw invalid(bad);
      const from = Number(req.from_ms ?? 0);
      const toAsked = Number(req.to_ms ?? 0);
      const step = Number(req.step_ms ?? 0);
      for (const [name, v] of [['from_ms', from], ['to_ms', toAsked], ['step_ms', step]] as const) {
        if (!Number.isSafeInteger(v) || v < 0) throw invalid(`${name} must be a non-negative integer of ms since the epoch, got ${v}`);
      }
      const to = toAsked === 0 ? clock() + 1 : toAsked;
      if (to <= from) throw invalid(`the time range is empty or inverted: from_ms ${from} must be before to_ms ${to}`);
      const series = deps.store.getSeries(req.entity, req.metric);
      if (!series) throw notFound(`no series ${req.entity}/${req.metric}; ListSeries shows what is stored`);
      const start = Math.max(from, 0);
      if (step === 0) {
        const n = deps.store.count(req.entity, req.metric, start, to, MAX_RAW_POINTS + 1);
        if (n > MAX_RAW_POINTS) {
          const span = Math.min(to, series.lastMs + 1) - Math.max(start, series.firstMs);
          const suggested = Math.max(1, Math.ceil(span / 1000));
          throw invalid(`the range holds more than ${MAX_RAW_POINTS} samples; narrow it or downsample with step_ms (e.g. step_ms: ${suggested} gives about 1000 points)`);
        }
        const points = [];
        for (const [ts, v] of deps.store.range(req.entity, req.metric, start, to)) points.push({ ts_ms: ts, value: v, min: v, max: v, count: 1 });
        return { entity: req.entity, metric: req.metric, points };
      }
      const points = deps.store.downsample(req.entity, req.metric, start, to, step);
      if (points.length > MAX_STEPS) {
        const span = points[points.length - 1].ts_ms - points[0].ts_ms;
        throw invalid(`step_ms ${step} over this range gives more than ${MAX_STEPS} points; use step_ms >= ${Math.ceil(span / MAX_STEPS) + 1} or a narrower range`);
      }
      return { entity: req.entity, metric: req.metric, points };
    }, internal),

    GetLeader: unary('GetLeader', () => deps.leader(), internal),

    GetCluster: unary('GetCluster', () => {
      if (!deps.cluster) throw new RpcError(grpc.status.UNIMPLEMENTED, 'this node has no election');
      return deps.cluster();
    }, internal),
  };
}
