/**
 * The cluster view the coordinator adds to its node's /metrics: members, their connection
 * and containers, migrations under way, how far each node's log is stored. Other nodes
 * expose nothing here (their gauges read empty), so a Prometheus scraping every node sees the
 * cluster once, from whoever coordinates, without double counting.
 */
import { Gauge, type Registry as PromRegistry } from 'prom-client';
import type { MigrationRecord } from '../common/migration-record';
import { FINAL_STATES } from '../common/migration-record';
import { isDraining } from '../common/labels';
import type { Registry } from './registry';
import type { SampleStore } from './samplestore';

export interface ClusterMetricsDeps {
  isLeader: () => boolean;
  registry: Pick<Registry, 'list' | 'isConnected'>;
  store: Pick<SampleStore, 'ackedSeq'>;
  /** Recent migrations (newest first). */
  migrations: () => MigrationRecord[];
}

export function registerClusterMetrics(prom: PromRegistry, deps: ClusterMetricsDeps): void {
  const registers = [prom];
  // One collect fills every family (registered first, so prom-client runs it before the
  // others are read): they share one walk over the registry.
  const members = new Gauge({ name: 'herd_cluster_member_up', help: '1 if the member is connected to the coordinator, 0 if it is known but not connected (coordinator only).', labelNames: ['member', 'arch'], registers, collect: () => fill() });
  const draining = new Gauge({ name: 'herd_cluster_member_draining', help: '1 while the member is draining (coordinator only).', labelNames: ['member'], registers });
  const containers = new Gauge({ name: 'herd_cluster_member_containers', help: 'Containers the member reported in its last inventory (coordinator only).', labelNames: ['member'], registers });
  const cores = new Gauge({ name: 'herd_cluster_member_cpu_cores', help: 'CPU cores the member has (coordinator only).', labelNames: ['member'], registers });
  const memory = new Gauge({ name: 'herd_cluster_member_memory_bytes', help: 'Memory the member has, in bytes (coordinator only).', labelNames: ['member'], registers });
  const stored = new Gauge({ name: 'herd_cluster_member_stored_seq', help: "Highest batch of the member's sample log the coordinator has stored (coordinator only).", labelNames: ['member'], registers });
  const running = new Gauge({ name: 'herd_cluster_migrations_running', help: 'Migrations under way in the cluster (coordinator only).', registers });

  function fill(): void {
    for (const g of [members, draining, containers, cores, memory, stored, running]) g.reset();
    if (!deps.isLeader()) return;
    for (const n of deps.registry.list()) {
      members.set({ member: n.node_id, arch: n.arch }, deps.registry.isConnected(n.node_id) ? 1 : 0);
      draining.set({ member: n.node_id }, isDraining(n.labels) ? 1 : 0);
      containers.set({ member: n.node_id }, n.containers.length);
      cores.set({ member: n.node_id }, n.cores);
      memory.set({ member: n.node_id }, n.memory_bytes);
      stored.set({ member: n.node_id }, deps.store.ackedSeq(n.node_id));
    }
    running.set(deps.migrations().filter((m) => !FINAL_STATES.has(m.state)).length);
  }
}
