/**
 * What the coordinator knows of each node: its hello, whether its stream is open, when
 * it was last heard from, and its container inventory. Persisted, so a restarted
 * coordinator still lists nodes that have not reconnected yet (as disconnected).
 */
import type { Database } from 'lmdb';
import type { Env } from '../common/db';

export interface LabelKV {
  key: string;
  value: string;
}

export interface ContainerRecord {
  herd_id: string;
  docker_id: string;
  name: string;
  image: string;
  state: string;
  node_id: string;
  labels: LabelKV[];
  pid: number;
  created_ms: number;
  /** Limits as created (0 = none): cores, bytes. Absent from agents older than the controller. */
  cpu_limit?: number;
  memory_limit_bytes?: number;
}

export interface NodeRecord {
  node_id: string;
  address: string;
  arch: string;
  cores: number;
  memory_bytes: number;
  labels: LabelKV[];
  capabilities: string[];
  version: string;
  last_seen_ms: number;
  docker_reachable: boolean;
  containers: ContainerRecord[];
}

export class Registry {
  private readonly db: Database<NodeRecord, string>;
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly connected = new Set<string>();

  constructor(env: Env) {
    this.db = env.openDB({ name: 'coord.nodes' });
    for (const { key, value } of this.db.getRange()) this.nodes.set(key as string, value);
  }

  hello(rec: Omit<NodeRecord, 'containers' | 'docker_reachable'>): void {
    const prev = this.nodes.get(rec.node_id);
    const next: NodeRecord = { ...rec, containers: prev?.containers ?? [], docker_reachable: prev?.docker_reachable ?? false };
    this.nodes.set(rec.node_id, next);
    this.connected.add(rec.node_id);
    void this.db.put(rec.node_id, next);
  }

  inventory(nodeId: string, containers: ContainerRecord[], dockerReachable: boolean): void {
    const rec = this.nodes.get(nodeId);
    if (!rec) return;
    rec.containers = containers.map((c) => ({ ...c, node_id: nodeId }));
    rec.docker_reachable = dockerReachable;
    void this.db.put(nodeId, rec);
  }

  /** The node's labels changed after its hello (a drain). */
  labels(nodeId: string, labels: LabelKV[]): void {
    const rec = this.nodes.get(nodeId);
    if (!rec) return;
    rec.labels = labels.map((l) => ({ key: l.key, value: l.value }));
    void this.db.put(nodeId, rec);
  }

  seen(nodeId: string, now: number): void {
    const rec = this.nodes.get(nodeId);
    if (rec) rec.last_seen_ms = now;
  }

  disconnected(nodeId: string): void {
    this.connected.delete(nodeId);
    const rec = this.nodes.get(nodeId);
    if (rec) void this.db.put(nodeId, rec);
  }

  /** Forgets a node that was removed from the cluster. */
  remove(nodeId: string): boolean {
    this.connected.delete(nodeId);
    const had = this.nodes.delete(nodeId);
    if (had) void this.db.remove(nodeId);
    return had;
  }

  isConnected(nodeId: string): boolean {
    return this.connected.has(nodeId);
  }

  get(nodeId: string): NodeRecord | undefined {
    return this.nodes.get(nodeId);
  }

  list(): NodeRecord[] {
    return [...this.nodes.values()].sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0));
  }
}
