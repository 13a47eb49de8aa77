/**
 * What this node tells the coordinator about its containers (the uplink's inventory), and
 * which of them the cgroup collector reads.
 */
import type { DockerTracker } from './docker';

export function inventoryOf(tracker: DockerTracker, nodeId: string) {
  return {
    docker_reachable: tracker.reachable,
    containers: tracker.containers().map((c) => ({
      herd_id: c.herdId,
      docker_id: c.dockerId,
      name: c.name,
      image: c.image,
      state: c.state,
      node_id: nodeId,
      labels: Object.entries(c.labels).map(([key, value]) => ({ key, value })),
      pid: c.pid,
      created_ms: c.createdMs,
      cpu_limit: c.cpuLimit ?? 0,
      memory_limit_bytes: c.memoryLimitBytes ?? 0,
    })),
  };
}

export function runningContainers(tracker: DockerTracker) {
  return tracker
    .containers()
    .filter((c) => c.state === 'running' && c.pid > 0)
    .map((c) => ({ herdId: c.herdId, dockerId: c.dockerId, pid: c.pid }));
}
