import { PassThrough } from 'node:stream';
import Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AppOpsCollector,
  LineBuffer,
  OpsSpecError,
  dockerSince,
  followLogStream,
  opsSpecFromLabels,
  parseDockerLogLine,
  parseOpsLine,
} from '../../agent/collectors/appops';
import { DockerTracker } from '../../agent/docker';
import type { Sample } from '../../common/types';

const SYSBENCH_CPU = '^\\[ *(\\d+)s \\] thds: (\\d+) eps: ([0-9.]+)';
const SYSBENCH_OLTP = '^\\[ *(\\d+)s \\] thds: (\\d+) tps: ([0-9.]+) qps: ([0-9.]+)';
const CPU_LINE = '[ 1s ] thds: 1 eps: 1063.93 lat (ms,95%): 0.94';
const OLTP_LINE = '[ 10s ] thds: 4 tps: 31.94 qps: 648.72 (r/w/o: 455.60/127.76/65.36) lat (ms,95%): 41.10 err/s: 0.00 reconn/s: 0.00';

const spec = (labels: Record<string, string>) => opsSpecFromLabels(labels)!;
const modem = new Dockerode({ socketPath: '/nonexistent' }).modem;
const demux = modem.demuxStream.bind(modem);

/** One frame of Docker's multiplexed stream: [type, 0, 0, 0, len BE32] payload. */
function frame(type: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const h = Buffer.alloc(8);
  h.writeUInt8(type, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** Writes a buffer in awkward pieces: headers and lines split across chunks. */
function dribble(s: PassThrough, buf: Buffer, sizes = [3, 7, 1, 11, 5]) {
  let i = 0;
  for (let k = 0; i < buf.length; k++) {
    const n = sizes[k % sizes.length];
    s.write(buf.subarray(i, i + n));
    i += n;
  }
}

describe('parseOpsLine', () => {
  it('sysbench cpu: group 3 is events per second', () => {
    expect(parseOpsLine(CPU_LINE, spec({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '3' }))).toBe(1063.93);
    expect(parseOpsLine('[ 12s ] thds: 2 eps: 2145.61 lat (ms,95%): 1.01\r', spec({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '3' }))).toBe(2145.61);
    // default group 1 is the elapsed seconds
    expect(parseOpsLine(CPU_LINE, spec({ 'herd.ops.regex': SYSBENCH_CPU }))).toBe(1);
  });
  it('sysbench oltp: tps (group 3) or qps (group 4)', () => {
    expect(parseOpsLine(OLTP_LINE, spec({ 'herd.ops.regex': SYSBENCH_OLTP, 'herd.ops.group': '3' }))).toBe(31.94);
    expect(parseOpsLine(OLTP_LINE, spec({ 'herd.ops.regex': SYSBENCH_OLTP, 'herd.ops.group': '4' }))).toBe(648.72);
  });
  it('named groups: "ops" by default, or the one the label names', () => {
    const named = '^\\[ *(?<sec>\\d+)s \\] thds: \\d+ eps: (?<ops>[0-9.]+)';
    expect(parseOpsLine(CPU_LINE, spec({ 'herd.ops.regex': named }))).toBe(1063.93);
    expect(parseOpsLine(CPU_LINE, spec({ 'herd.ops.regex': named, 'herd.ops.group': 'sec' }))).toBe(1);
  });
  it('scale multiplies', () => {
    expect(parseOpsLine(CPU_LINE, spec({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '3', 'herd.ops.scale': '0.5' }))).toBeCloseTo(531.965, 9);
  });
  it('undefined for other lines, unmatched optional groups and non-numbers', () => {
    const s = spec({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '3' });
    expect(parseOpsLine('SQL statistics:', s)).toBeUndefined();
    expect(parseOpsLine('', s)).toBeUndefined();
    expect(parseOpsLine('a', spec({ 'herd.ops.regex': 'a(\\d+)?' }))).toBeUndefined();
    expect(parseOpsLine('rate=fast', spec({ 'herd.ops.regex': 'rate=(\\w+)' }))).toBeUndefined();
  });
});

describe('opsSpecFromLabels', () => {
  it('no regex label: not opted in', () => {
    expect(opsSpecFromLabels({})).toBeUndefined();
    expect(opsSpecFromLabels(undefined)).toBeUndefined();
  });
  it('names the bad label', () => {
    const bad = (labels: Record<string, string>) => {
      try {
        opsSpecFromLabels(labels);
      } catch (e) {
        expect(e).toBeInstanceOf(OpsSpecError);
        return [(e as OpsSpecError).label, (e as Error).message];
      }
      return undefined;
    };
    expect(bad({ 'herd.ops.regex': 'eps: ([0-9.]+' })).toEqual(['herd.ops.regex', expect.stringContaining('invalid regex')]);
    expect(bad({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '4' })).toEqual(['herd.ops.group', expect.stringContaining('3 groups')]);
    expect(bad({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': 'ops' })?.[0]).toBe('herd.ops.group');
    expect(bad({ 'herd.ops.regex': 'no groups' })?.[0]).toBe('herd.ops.regex');
    expect(bad({ 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.scale': 'x2' })?.[0]).toBe('herd.ops.scale');
  });
});

describe('log lines and streams', () => {
  it('parses Docker timestamps to exact ns and ms', () => {
    const l = parseDockerLogLine(`2026-11-24T16:45:01.123456789Z ${CPU_LINE}`)!;
    expect(l.text).toBe(CPU_LINE);
    expect(l.tsMs).toBe(Date.parse('2026-11-24T16:45:01.123Z'));
    expect(l.tsNs).toBe(BigInt(Date.parse('2026-11-24T16:45:01Z')) * 1_000_000n + 123456789n);
    expect(parseDockerLogLine('2026-11-24T16:45:01Z x\r')).toMatchObject({ text: 'x', tsMs: Date.parse('2026-11-24T16:45:01Z') });
    expect(parseDockerLogLine('no timestamp')).toBeUndefined();
    expect(dockerSince(1795533219000000007n)).toBe('1795533219.000000007');
  });

  it('LineBuffer keeps partial lines (and split UTF-8) until the newline', () => {
    const b = new LineBuffer();
    expect(b.push('[ 1s ] thds')).toEqual([]);
    expect(b.push(': 1\n[ 2s')).toEqual(['[ 1s ] thds: 1']);
    const e = Buffer.from('é\n');
    expect(b.push(e.subarray(0, 1))).toEqual([]);
    expect(b.push(e.subarray(1))).toEqual(['[ 2sé']);
  });

  it('demultiplexes stdout and stderr frames split at any byte', async () => {
    const s = new PassThrough();
    const lines: string[] = [];
    followLogStream(s, false, demux, (l) => lines.push(l));
    const buf = Buffer.concat([
      frame(1, '2026-11-24T16:45:01.000000001Z [ 1s ] thds: 1 eps: 10.00\n'),
      frame(2, '2026-11-24T16:45:01.500000000Z warn: half a '),
      frame(1, '2026-11-24T16:45:02.000000001Z [ 2s ] thds: 1 eps: 20.00\n'),
      frame(2, 'line on stderr\n'),
      frame(1, '2026-11-24T16:45:03.000000001Z [ 3s ] thds: 1 ep'),
    ]);
    dribble(s, buf);
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([
      '2026-11-24T16:45:01.000000001Z [ 1s ] thds: 1 eps: 10.00',
      '2026-11-24T16:45:02.000000001Z [ 2s ] thds: 1 eps: 20.00',
      '2026-11-24T16:45:01.500000000Z warn: half a line on stderr',
    ]);
  });

  it('reads a TTY container stream as raw text', async () => {
    const s = new PassThrough();
    const lines: string[] = [];
    followLogStream(s, true, demux, (l) => lines.push(l));
    dribble(s, Buffer.from('2026-11-24T16:45:01.000000001Z [ 1s ] thds: 1 eps: 10.00\r\n2026-11-24T16:45:02Z x'));
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual(['2026-11-24T16:45:01.000000001Z [ 1s ] thds: 1 eps: 10.00\r']);
  });
});

// ------------------------------------------------------------- the collector, on a fake engine

interface FakeCtr {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
  tty?: boolean;
}

class FakeDocker {
  modem = modem;
  ctrs = new Map<string, FakeCtr>();
  streams: { id: string; opts: Record<string, unknown>; s: PassThrough }[] = [];
  async listContainers() {
    return [...this.ctrs.values()].map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: 'i', State: c.state, Labels: c.labels, Created: 1 }));
  }
  getContainer(id: string) {
    const c = this.ctrs.get(id);
    return {
      inspect: async () => ({ Created: '2026-11-24T16:45:01Z', State: { Pid: 7 }, Config: { Labels: c?.labels, Tty: Boolean(c?.tty) } }),
      logs: async (opts: Record<string, unknown>) => {
        const s = new PassThrough();
        (opts.abortSignal as AbortSignal | undefined)?.addEventListener('abort', () => s.destroy());
        this.streams.push({ id, opts, s });
        return s;
      },
    };
  }
}

const hex = (ch: string) => ch.repeat(64);
const iso = (ms: number, ns = 0) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_m, f) => `.${f}${String(ns).padStart(6, '0')}Z`);

let warns: string[] = [];
beforeEach(() => {
  warns = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('[appops]') && String(chunk).includes('WARN')) warns.push(String(chunk));
    return write(chunk, ...(rest as []));
  });
});
afterEach(() => vi.restoreAllMocks());

describe('AppOpsCollector', () => {
  it('follows opted-in running containers, stops with them and resumes without duplicates', async () => {
    const fake = new FakeDocker();
    const cpuLabels = { 'herd.id': 'bench-1', 'herd.ops.regex': SYSBENCH_CPU, 'herd.ops.group': '3' };
    fake.ctrs.set(hex('a'), { id: hex('a'), name: 'bench', state: 'running', labels: cpuLabels });
    fake.ctrs.set(hex('b'), { id: hex('b'), name: 'broken', state: 'running', labels: { 'herd.ops.regex': '([' } });
    fake.ctrs.set(hex('c'), { id: hex('c'), name: 'plain', state: 'running', labels: {} });
    fake.ctrs.set(hex('d'), { id: hex('d'), name: 'stopped', state: 'exited', labels: cpuLabels });
    fake.ctrs.set(hex('e'), { id: hex('e'), name: 'tty', state: 'running', tty: true, labels: { 'herd.ops.regex': 'ops=(?<ops>\\d+)', 'herd.ops.scale': '2' } });
    const tracker = new DockerTracker({ socketPath: '/fake', nodeId: 'n1', docker: fake as unknown as Dockerode });
    const t0 = Date.now();
    const ops = new AppOpsCollector({ tracker });
    await tracker.refresh(); // onChange starts the followers
    await vi.waitFor(() => expect(fake.streams).toHaveLength(2));
    expect(ops.following().sort()).toEqual([hex('a'), hex('e')]);
    const a = fake.streams.find((x) => x.id === hex('a'))!;
    expect(a.opts).toMatchObject({ follow: true, stdout: true, stderr: true, timestamps: true });
    expect(Number(a.opts.since) * 1000).toBeGreaterThanOrEqual(t0 - 1);
    expect(Number(a.opts.since) * 1000).toBeLessThanOrEqual(Date.now());

    const base = Date.now();
    dribble(a.s, Buffer.concat([
      frame(1, `${iso(base + 1000, 111)} [ 1s ] thds: 1 eps: 1063.93 lat (ms,95%): 0.94\n`),
      frame(2, `${iso(base + 1500)} some warning\n`),
      frame(1, `${iso(base + 2000, 222)} [ 2s ] thds: 1 eps: 1071.00 lat (ms,95%): 0.94\n${iso(base + 3000)} [ 3s ] thds: 1 eps: 99`),
    ]));
    const e = fake.streams.find((x) => x.id === hex('e'))!;
    e.s.write(`${iso(base + 1000)} ops=21\r\n`);
    const acc: Sample[] = [];
    const until = (n: number) => vi.waitFor(async () => {
      acc.push(...(await ops.collect(Date.now())));
      expect(acc.length).toBeGreaterThanOrEqual(n);
    });
    await until(3);
    await new Promise((r) => setTimeout(r, 20));
    acc.push(...(await ops.collect(Date.now())));
    expect(acc.sort((x, y) => x.ts - y.ts || x.entity.localeCompare(y.entity))).toEqual([
      { entity: 'bench-1', metric: 'container.ops', ts: base + 1000, value: 1063.93 },
      { entity: 'eeeeeeeeeeee', metric: 'container.ops', ts: base + 1000, value: 42 },
      { entity: 'bench-1', metric: 'container.ops', ts: base + 2000, value: 1071 },
    ]); // the partial "[ 3s ]" line waits for its newline

    // the invalid regex: one warning naming container and label, however often we sync
    await ops.collect(Date.now());
    await tracker.refresh();
    expect(warns).toHaveLength(1);
    expect(warns[0]).toContain('container=broken');
    expect(warns[0]).toContain('label=herd.ops.regex');

    // the container stops: Docker ends the stream; the tracker notices; no follower
    fake.ctrs.get(hex('a'))!.state = 'exited';
    a.s.end();
    await tracker.refresh();
    expect(ops.following()).toEqual([hex('e')]);
    acc.length = 0;

    // ...and starts again: follow from just after the last line seen; Docker's since is
    // inclusive and a restart may replay, so seen lines must not count twice
    fake.ctrs.get(hex('a'))!.state = 'running';
    await tracker.refresh();
    await vi.waitFor(() => expect(fake.streams).toHaveLength(3));
    const a2 = fake.streams[2];
    expect(a2.opts.since).toBe(dockerSince(BigInt(base + 2000) * 1_000_000n + 222n + 1n));
    a2.s.write(frame(1, `${iso(base + 2000, 222)} [ 2s ] thds: 1 eps: 1071.00 lat (ms,95%): 0.94\n`));
    a2.s.write(frame(1, `${iso(base + 9000)} [ 1s ] thds: 1 eps: 500.5 lat (ms,95%): 0.94\n`));
    await until(1);
    expect(acc).toEqual([{ entity: 'bench-1', metric: 'container.ops', ts: base + 9000, value: 500.5 }]);

    // the container disappears: its follower is stopped (stream destroyed)
    fake.ctrs.delete(hex('a'));
    await tracker.refresh();
    expect(ops.following()).toEqual([hex('e')]);
    expect(a2.s.destroyed).toBe(true);

    ops.close();
    expect(e.s.destroyed).toBe(true);
  });

  it('ignores a stream that cannot be opened and retries it later', async () => {
    const fake = new FakeDocker();
    fake.ctrs.set(hex('f'), { id: hex('f'), name: 'f', state: 'running', labels: { 'herd.ops.regex': '(\\d+)' } });
    let fail = true;
    const orig = fake.getContainer.bind(fake);
    fake.getContainer = (id: string) => {
      const c = orig(id);
      return { ...c, logs: async (o: Record<string, unknown>) => (fail ? Promise.reject(new Error('boom')) : c.logs(o)) };
    };
    const tracker = new DockerTracker({ socketPath: '/fake', nodeId: 'n1', docker: fake as unknown as Dockerode });
    const ops = new AppOpsCollector({ tracker });
    await tracker.refresh();
    await vi.waitFor(() => expect(ops.following()).toEqual([]));
    fail = false;
    await new Promise((r) => setTimeout(r, 1100)); // the retry back-off
    await ops.collect(Date.now());
    await vi.waitFor(() => expect(fake.streams).toHaveLength(1));
    expect(ops.following()).toEqual([hex('f')]);
    ops.close();
  });
});
