/**
 * How Herd's sample series are named for Prometheus.
 *
 * Where a Herd series is the same gauge node_exporter or cAdvisor exports (load, container
 * memory, threads), it gets their name, so existing dashboards and alerts work. Herd's other series
 * are per-second rates it computed over its own collection period: exporting them under
 * node_exporter's `_total` counter names would make `rate()` over them wrong, so they are
 * gauges named `herd_..._per_second` (no `rate()` needed). Percentages become ratios (0-1)
 * and milliseconds seconds, as Prometheus' base units ask.
 */

export interface PromSeries {
  /** Prometheus metric name. */
  name: string;
  help: string;
  /** Multiplier from Herd's unit to the Prometheus unit (e.g. 0.01 for % -> ratio). */
  scale: number;
  /** Extra label derived from the Herd metric name (a CPU core, a PCP instance). */
  extra?: Record<string, string>;
}

const NODE: Record<string, Omit<PromSeries, 'extra'>> = {
  'host.cpu.total': { name: 'herd_node_cpu_busy_ratio', help: 'Fraction of all CPU time busy over the last collection period (0-1).', scale: 0.01 },
  'host.load.1': { name: 'node_load1', help: '1m load average (as node_exporter).', scale: 1 },
  'host.load.5': { name: 'node_load5', help: '5m load average (as node_exporter).', scale: 1 },
  'host.load.15': { name: 'node_load15', help: '15m load average (as node_exporter).', scale: 1 },
  // node_exporter's node_memory_MemTotal_bytes fails promtool's snake_case lint: Herd's own names.
  'host.mem.total_bytes': { name: 'herd_node_memory_total_bytes', help: 'Memory of the node in bytes.', scale: 1 },
  'host.mem.available_bytes': { name: 'herd_node_memory_available_bytes', help: 'Memory available for new work in bytes (MemAvailable).', scale: 1 },
  'host.mem.used_bytes': { name: 'herd_node_memory_used_bytes', help: 'Memory in use (total minus available) in bytes.', scale: 1 },
  'host.disk.read_ops': { name: 'herd_node_disk_reads_per_second', help: 'Reads completed per second on physical disks.', scale: 1 },
  'host.disk.write_ops': { name: 'herd_node_disk_writes_per_second', help: 'Writes completed per second on physical disks.', scale: 1 },
  'host.disk.read_bytes': { name: 'herd_node_disk_read_bytes_per_second', help: 'Bytes read per second from physical disks.', scale: 1 },
  'host.disk.write_bytes': { name: 'herd_node_disk_written_bytes_per_second', help: 'Bytes written per second to physical disks.', scale: 1 },
  'host.disk.active_pct': { name: 'herd_node_disk_busy_ratio', help: 'Fraction of wall time the busiest disk was busy (0-1).', scale: 0.01 },
  'host.net.rx_bytes': { name: 'herd_node_network_receive_bytes_per_second', help: 'Bytes received per second on all interfaces but loopback.', scale: 1 },
  'host.net.tx_bytes': { name: 'herd_node_network_transmit_bytes_per_second', help: 'Bytes sent per second on all interfaces but loopback.', scale: 1 },
  'host.containers': { name: 'herd_node_containers', help: 'Containers on the node (Docker).', scale: 1 },
};

const CONTAINER: Record<string, Omit<PromSeries, 'extra'>> = {
  'container.cpu.usage': { name: 'herd_container_cpu_usage_cores', help: 'CPU used by the container, in cores, over the last collection period.', scale: 1 },
  'container.cpu.throttled_periods': { name: 'herd_container_cpu_throttled_periods_per_second', help: 'CFS periods per second in which the container was throttled.', scale: 1 },
  'container.cpu.throttled_ms': { name: 'herd_container_cpu_throttled_seconds_per_second', help: 'Seconds throttled per second.', scale: 0.001 },
  'container.mem.usage_bytes': { name: 'container_memory_usage_bytes', help: 'Memory used by the container minus inactive file cache, in bytes (as docker stats).', scale: 1 },
  'container.blkio.read_ops': { name: 'herd_container_fs_reads_per_second', help: 'Block I/O reads per second.', scale: 1 },
  'container.blkio.write_ops': { name: 'herd_container_fs_writes_per_second', help: 'Block I/O writes per second.', scale: 1 },
  'container.blkio.read_bytes': { name: 'herd_container_fs_read_bytes_per_second', help: 'Block I/O bytes read per second.', scale: 1 },
  'container.blkio.write_bytes': { name: 'herd_container_fs_written_bytes_per_second', help: 'Block I/O bytes written per second.', scale: 1 },
  'container.pids': { name: 'container_threads', help: 'Threads in the container (pids.current, as cAdvisor).', scale: 1 },
  'container.net.rx_bytes': { name: 'herd_container_network_receive_bytes_per_second', help: 'Bytes received per second by the container.', scale: 1 },
  'container.net.tx_bytes': { name: 'herd_container_network_transmit_bytes_per_second', help: 'Bytes sent per second by the container.', scale: 1 },
  'container.ops': { name: 'herd_container_app_ops', help: "The application's own operations figure (from its log, herd.ops.* labels).", scale: 1 },
};

const CORE = /^host\.cpu\.core\.(\d+)$/;

/** The Prometheus series of a Herd node metric, or undefined when it has none (e.g. herd.batch.seq). */
export function nodeSeries(metric: string): PromSeries | undefined {
  const known = NODE[metric];
  if (known) return known;
  const core = CORE.exec(metric);
  if (core) return { name: 'herd_node_cpu_core_busy_ratio', help: 'Fraction of one core busy over the last collection period (0-1).', scale: 0.01, extra: { cpu: core[1] } };
  if (metric.startsWith('pcp.')) {
    // pcp.<name> or pcp.<name>[<instance>]: one Prometheus family per PCP name.
    const m = /^pcp\.([A-Za-z0-9_.]+)(?:\[(.*)\])?$/.exec(metric);
    if (!m) return undefined;
    return { name: `herd_pcp_${m[1].replace(/\./g, '_')}`, help: `PCP metric ${m[1]} through pmproxy (counters as rates per second).`, scale: 1, ...(m[2] !== undefined ? { extra: { instance: m[2] } } : {}) };
  }
  return undefined;
}

/** The Prometheus series of a Herd container metric, or undefined. */
export function containerSeries(metric: string): PromSeries | undefined {
  return CONTAINER[metric];
}
