import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { containerSeries, nodeSeries } from '../../agent/metrics/names';
import { NodeMetrics } from '../../agent/metrics/node-metrics';

/** Prometheus' own linter (Debian's prometheus package, installed by test/bed/install.sh). */
function promtool(text: string): string {
  return execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

describe('Prometheus names', () => {
  it('uses node_exporter and cAdvisor names for the same gauges, herd_ names with units for rates', () => {
    expect(nodeSeries('host.mem.available_bytes')?.name).toBe('herd_node_memory_available_bytes');
    expect(nodeSeries('host.load.1')?.name).toBe('node_load1');
    expect(containerSeries('container.mem.usage_bytes')?.name).toBe('container_memory_usage_bytes');
    expect(containerSeries('container.pids')?.name).toBe('container_threads');
    expect(nodeSeries('host.disk.read_ops')?.name).toBe('herd_node_disk_reads_per_second');
    expect(nodeSeries('host.cpu.total')).toMatchObject({ name: 'herd_node_cpu_busy_ratio', scale: 0.01 });
    expect(containerSeries('container.cpu.throttled_ms')).toMatchObject({ name: 'herd_container_cpu_throttled_seconds_per_second', scale: 0.001 });
  });

  it('gives a core and a PCP instance a label of their own', () => {
    expect(nodeSeries('host.cpu.core.3')).toMatchObject({ name: 'herd_node_cpu_core_busy_ratio', extra: { cpu: '3' } });
    expect(nodeSeries('pcp.kernel.all.load[1 minute]')).toMatchObject({ name: 'herd_pcp_kernel_all_load', extra: { instance: '1 minute' } });
    expect(nodeSeries('pcp.disk.all.total')).toMatchObject({ name: 'herd_pcp_disk_all_total' });
    expect(nodeSeries('herd.batch.seq')).toBeUndefined();
    expect(containerSeries('container.unknown')).toBeUndefined();
  });
});

describe('NodeMetrics', () => {
  const make = (containers: Array<{ herdId: string; name: string }>, now = { t: 10_000 }) =>
    new NodeMetrics({ nodeId: 'n1', containers: () => containers, staleMs: 60_000, clock: () => now.t });

  it('exposes the newest value of each series, labelled, scaled, and valid for promtool', async () => {
    const m = make([{ herdId: 'h1', name: 'web' }]);
    m.observeSamples([
      { entity: 'n1', metric: 'host.cpu.total', ts: 9000, value: 40 },
      { entity: 'n1', metric: 'host.cpu.total', ts: 9500, value: 42 },
      { entity: 'n1', metric: 'host.cpu.core.0', ts: 9500, value: 50 },
      { entity: 'n1', metric: 'host.mem.total_bytes', ts: 9500, value: 1e9 },
      { entity: 'h1', metric: 'container.cpu.usage', ts: 9500, value: 1.5 },
      { entity: 'h1', metric: 'container.mem.usage_bytes', ts: 9500, value: 2e6 },
    ]);
    const text = await m.text();
    expect(text).toContain('herd_node_cpu_busy_ratio{node="n1"} 0.42');
    expect(text).toMatch(/^herd_node_cpu_core_busy_ratio\{(cpu="0",node="n1"|node="n1",cpu="0")\} 0.5$/m);
    expect(text).toContain('herd_node_memory_total_bytes{node="n1"} 1000000000');
    expect(text).toContain('herd_container_cpu_usage_cores{herd_id="h1",name="web",node="n1"} 1.5');
    expect(text).toContain('herd_samples_logged_total{node="n1"} 6');
    expect(promtool(text)).toBe('');
  });

  it('drops stale series and containers that left the node', async () => {
    const now = { t: 10_000 };
    const containers = [{ herdId: 'h1', name: 'web' }, { herdId: 'h2', name: 'db' }];
    const m = make(containers, now);
    m.observeSamples([
      { entity: 'h1', metric: 'container.cpu.usage', ts: 9000, value: 1 },
      { entity: 'h2', metric: 'container.cpu.usage', ts: 9000, value: 2 },
      { entity: 'n1', metric: 'host.load.1', ts: 9000, value: 0.5 },
    ]);
    containers.pop(); // h2 migrated away
    let text = await m.text();
    expect(text).toContain('herd_id="h1"');
    expect(text).not.toContain('herd_id="h2"');
    now.t = 9000 + 60_001;
    text = await m.text();
    expect(text).not.toContain('herd_id="h1"');
    expect(text).not.toContain('node_load1{');
  });

  it('counts a migration once, when it ends, with its downtime and steps', async () => {
    const m = make([]);
    const rec = { migration_id: 'm1', state: 'RUNNING', downtime_ms: 0, timings: [] as Array<{ step: string; ms: number }> };
    m.observeMigration(rec);
    const done = { ...rec, state: 'SUCCEEDED', downtime_ms: 800, timings: [{ step: 'checkpoint', ms: 300 }, { step: 'restore', ms: 400 }] };
    m.observeMigration(done);
    m.observeMigration(done); // the source republishes the final record after a restart
    m.observeMigration({ migration_id: 'm2', state: 'ROLLED_BACK', downtime_ms: 0, timings: [] });
    const text = await m.text();
    const value = (name: string, labels: Record<string, string>) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    expect(value('herd_migrations_total', { outcome: 'SUCCEEDED' })).toBe(1);
    expect(value('herd_migrations_total', { outcome: 'ROLLED_BACK' })).toBe(1);
    expect(value('herd_migration_downtime_seconds_bucket', { le: '1' })).toBe(1);
    expect(value('herd_migration_downtime_seconds_bucket', { le: '0.5' })).toBe(0);
    expect(value('herd_migration_step_seconds_count', { step: 'restore' })).toBe(1);
    expect(promtool(text)).toBe('');
  });

  it('escapes label values a container name could break the format with', async () => {
    const m = make([{ herdId: 'h1', name: 'we"b\\x\ny' }]);
    m.observeSamples([{ entity: 'h1', metric: 'container.pids', ts: 9000, value: 3 }]);
    const text = await m.text();
    expect(text).toContain('container_threads{herd_id="h1",name="we\\"b\\\\x\\ny",node="n1"} 3');
    expect(promtool(text)).toBe('');
  });

  it('never exposes a non-finite value', async () => {
    const m = make([{ herdId: 'h1', name: 'web' }]);
    m.observeSamples([{ entity: 'h1', metric: 'container.ops', ts: 9000, value: Number.NaN }, { entity: 'n1', metric: 'host.load.1', ts: 9000, value: Infinity }]);
    const text = await m.text();
    expect(text).not.toMatch(/ (NaN|[+-]?Inf)$/m);
    expect(text).not.toContain('herd_container_app_ops');
  });
});
