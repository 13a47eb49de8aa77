/**
 * PcpCollector against a real pmcd + pmproxy, and a real herd process collecting from them
 * end to end (pmcd -> pmproxy -> agent -> sample log -> Mesh stream -> coordinator store ->
 * Admin API). No skip: a missing PCP fails here with the bed's message (test/bed/install.sh
 * installs it).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PcpCollector } from '../../agent/collectors/pcp';
import type { Sample } from '../../common/types';
import { pcpRunning, startPcp, startPmcd, stopPcp, stopPmcd } from '../bed/pcp';
import { adminClient } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { startHerd } from '../helpers/herd';
import { tempDir, waitFor } from '../helpers/tmp';

const METRICS = ['kernel.all.load', 'kernel.all.cpu.user', 'mem.util.used', 'disk.dev.read', 'no.such.metric'];

let url = '';
let wasRunning = false;
let logs: string[] = [];
let c: PcpCollector;

beforeAll(async () => {
  wasRunning = await pcpRunning();
  ({ url } = await startPcp());
  c = new PcpCollector({ nodeId: 'it-node', url, metrics: METRICS, pollIntervalMs: 1000 });
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('[pcp]')) logs.push(String(chunk));
    return write(chunk, ...(rest as []));
  });
});

afterAll(async () => {
  vi.restoreAllMocks();
  await startPmcd(); // whatever happened above, leave pmcd as the suite found it
  if (!wasRunning) await stopPcp();
});

/** user ticks of all CPUs from /proc/stat, in ms (USER_HZ is 100 on Linux) */
const procUserMs = () => Number(readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/)[1]) * 10;
const meminfo = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
const byMetric = (s: Sample[]) => new Map(s.map((x) => [x.metric, x]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function burn(ms: number) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  return x;
}

describe('PcpCollector on a real pmproxy', () => {
  it('fetches instants at once and counters as rates, with instance names', async () => {
    const u0 = procUserMs();
    const before = Date.now();
    const first = byMetric(await c.collect(Date.now()));
    const after = Date.now();
    const m = [...first.keys()].sort();
    expect(m).toEqual(['pcp.kernel.all.load[1 minute]', 'pcp.kernel.all.load[15 minute]', 'pcp.kernel.all.load[5 minute]', 'pcp.mem.util.used']);
    for (const s of first.values()) {
      expect(s.entity).toBe('it-node');
      // pmcd's timestamp, parsed from the raw text: between our request and its reply
      expect(s.ts).toBeGreaterThanOrEqual(before - 5);
      expect(s.ts).toBeLessThanOrEqual(after + 5);
    }
    const load = first.get('pcp.kernel.all.load[1 minute]')!.value;
    const procLoad = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    expect(Math.abs(load - procLoad)).toBeLessThan(0.5);
    // PCP: mem.util.used = physmem - freemem, in Kbyte
    const used = first.get('pcp.mem.util.used')!.value;
    const procUsed = meminfo('MemTotal') - meminfo('MemFree');
    expect(Math.abs(used - procUsed)).toBeLessThan(Math.max(51200, procUsed * 0.05));

    const unknownWarn = logs.filter((l) => l.includes('WARN') && l.includes('no.such.metric'));
    expect(unknownWarn).toHaveLength(1);

    burn(1000); // about one core for a second
    const second = byMetric(await c.collect(Date.now()));
    const u1 = procUserMs();
    const cpu = second.get('pcp.kernel.all.cpu.user');
    expect(cpu, 'kernel.all.cpu.user rate on the second fetch').toBeDefined();
    const dtSec = (cpu!.ts - first.get('pcp.mem.util.used')!.ts) / 1000;
    const procRate = (u1 - u0) / dtSec;
    console.log(`kernel.all.cpu.user: pcp ${cpu!.value.toFixed(0)} ms/s, /proc/stat ${procRate.toFixed(0)} ms/s over ${dtSec.toFixed(2)} s`);
    expect(cpu!.value).toBeGreaterThan(500); // the burn alone is ~1000 ms/s
    expect(cpu!.value).toBeLessThanOrEqual(cpus().length * 1000 * 1.05); // every core busy
    expect(Math.abs(cpu!.value - procRate)).toBeLessThan(Math.max(100, procRate * 0.25));

    const disks = [...second.keys()].filter((k) => k.startsWith('pcp.disk.dev.read['));
    expect(disks).toContain('pcp.disk.dev.read[vda]');
    for (const d of disks) expect(second.get(d)!.value).toBeGreaterThanOrEqual(0);
    expect(second.has('pcp.no.such.metric')).toBe(false);
    expect(logs.filter((l) => l.includes('WARN') && l.includes('no.such.metric'))).toHaveLength(1);
  });

  it('pmcd stopped: collect() returns [] with one warning, and recovers after pmcd starts', async () => {
    await stopPmcd();
    const warnsBefore = logs.filter((l) => l.includes('WARN')).length;
    for (let i = 0; i < 3; i++) {
      expect(await c.collect(Date.now())).toEqual([]);
      await sleep(300);
    }
    expect(c.unavailable).toBe(true);
    const warns = logs.filter((l) => l.includes('WARN')).slice(warnsBefore);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(/PCP unavailable.*(IPC protocol failure|cannot (re)?connect)/);

    await startPmcd();
    const t0 = Date.now();
    let back: Sample[] = [];
    while (back.length === 0 && Date.now() - t0 < 30_000) {
      back = await c.collect(Date.now());
      if (back.length === 0) await sleep(250);
    }
    console.log(`PCP samples again ${Date.now() - t0} ms after pmcd start`);
    expect(byMetric(back).has('pcp.mem.util.used')).toBe(true);
    expect(c.unavailable).toBe(false);
    expect(logs.filter((l) => l.includes('available again'))).toHaveLength(1);
    // a context made while pmcd was up again: recovery does not wait out libpcp's reconnect back-off
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('a herd process collecting PCP', () => {
  it("stores pmcd's values (through pmproxy, its sample log and its Mesh stream) where the coordinator lists and serves them", async () => {
    await startPcp(); // pmcd may have been stopped above
    const tmp = tempDir();
    const addr = '127.0.0.1:7457';
    // one node: its own coordinator, so the samples go through the same stream and store as in a cluster
    const herd = startHerd(['agent', '--insecure', '--node-id', 'pcp-e2e', '--data-dir', tmp.dir, '--listen', addr, '--pmproxy-url', url, '--pcp-metric', 'kernel.all.load', '--pcp-metric', 'mem.util.used', '--pcp-metric', 'kernel.all.cpu.user', '--pcp-interval', '500', '--host-interval', '1000', '--docker-socket', '/nonexistent.sock']);
    const admin = adminClient(addr, { insecure: true });
    try {
      const want = ['pcp.kernel.all.cpu.user', 'pcp.kernel.all.load[1 minute]', 'pcp.kernel.all.load[15 minute]', 'pcp.kernel.all.load[5 minute]', 'pcp.mem.util.used'];
      const series = await waitFor('the coordinator lists the PCP series', async () => {
        const r = await call(admin, 'ListSeries', { entity: 'pcp-e2e', metric_prefix: 'pcp.' }).catch(() => undefined);
        const names = (r?.series ?? []).map((x: any) => x.metric).sort();
        return want.every((m) => names.includes(m)) ? r.series : undefined;
      }, 30_000, 250);
      expect(series.every((x: any) => x.node_id === 'pcp-e2e'), JSON.stringify(series)).toBe(true);
      const used = await waitFor('several samples of mem.util.used', async () => {
        const r = await call(admin, 'QuerySamples', { entity: 'pcp-e2e', metric: 'pcp.mem.util.used' });
        return r.points.length >= 3 ? r.points : undefined;
      }, 30_000, 250);
      // pmcd's value (Kbyte) against the kernel's, read now
      const procUsed = meminfo('MemTotal') - meminfo('MemFree');
      const last = used[used.length - 1];
      expect(Math.abs(last.value - procUsed)).toBeLessThan(Math.max(51200, procUsed * 0.1));
      expect(Number(last.ts_ms)).toBeGreaterThan(Date.now() - 30_000);
      const load = (await call(admin, 'QuerySamples', { entity: 'pcp-e2e', metric: 'pcp.kernel.all.load[1 minute]' })).points;
      expect(Math.abs(load[load.length - 1].value - Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]))).toBeLessThan(1);
      const cpu = (await call(admin, 'QuerySamples', { entity: 'pcp-e2e', metric: 'pcp.kernel.all.cpu.user' })).points;
      for (const p of cpu) expect(p.value).toBeGreaterThanOrEqual(0); // a rate, ms/s
      expect(herd.output()).not.toMatch(/PCP unavailable/);
    } finally {
      admin.close();
      herd.child.kill('SIGTERM');
      await new Promise((r) => herd.child.once('exit', r));
      tmp.cleanup();
    }
  });
});
