/**
 * PcpCollector against a real pmcd + pmproxy. No skip: a missing PCP fails here with the
 * bed's message (test/bed/install.sh installs it).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PcpCollector } from '../../agent/collectors/pcp';
import type { Sample } from '../../common/types';
import { pcpRunning, startPcp, startPmcd, stopPcp, stopPmcd } from '../bed/pcp';

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
