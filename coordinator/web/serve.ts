/**
 * What the coordinator adds to its node's web port: the cluster view on /metrics
 * (cluster-metrics.ts) and the cluster page's routes with the controller's decisions. Both
 * read the coordinator's stores; a node that is not the coordinator shows the families empty
 * and sends the page on to the one that is.
 */
import type { Registry as PromRegistry } from 'prom-client';
import type { DecisionRecord } from '../../common/decision';
import { registerClusterMetrics } from '../cluster-metrics';
import type { Leadership } from '../leadership';
import type { Migrations } from '../migrations';
import type { Registry } from '../registry';
import type { SampleStore } from '../samplestore';
import { pageRoutes, type Route } from './routes';

export interface CoordinatorWebDeps {
  /** The node's /metrics registry. */
  prom: PromRegistry;
  nodeId: string;
  registry: Registry;
  store: SampleStore;
  migrations: Pick<Migrations, 'list'>;
  leadership: Pick<Leadership, 'current'>;
  /** The controller's newest decisions, newest first. */
  decisions: (limit: number) => DecisionRecord[];
}

export function coordinatorWeb(deps: CoordinatorWebDeps): Record<string, Route> {
  const lead = () => deps.leadership.current();
  registerClusterMetrics(deps.prom, { isLeader: () => lead().isLeader, registry: deps.registry, store: deps.store, migrations: () => deps.migrations.list('', 1000) });
  return pageRoutes({
    nodeId: deps.nodeId,
    registry: deps.registry,
    store: deps.store,
    migrations: () => deps.migrations.list('', 50),
    leader: lead,
    lead,
    decisions: deps.decisions,
  });
}
