/**
 * PcpCollector against a fake pmproxy that serves real pmproxy 6.0.3 replies
 * (test/fixtures/pcp), edited only where a test needs new values.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PcpCollector, parsePmapiJson, parsePmapiTimestamp } from '../../agent/collectors/pcp';

const fx = (name: string) => readFileSync(new URL(`../fixtures/pcp/${name}`, import.meta.url), 'utf8');

interface Fake {
  url: string;
  port: number;
  pmcdUp: boolean;
  hang: boolean;
  contexts: Set<number>;
  /** raw fetch replies served in order (the last one repeats) */
  fetches: string[];
  indom: Record<string, string>;
  requests: string[];
  close(): Promise<void>;
}

const descs = new Map<string, unknown>();
for (const f of ['metric.json', 'metric-mixed.json']) {
  for (const m of (JSON.parse(fx(f)) as { metrics: { name: string; success?: boolean }[] }).metrics) {
    if (m.success !== false) descs.set(m.name, m);
  }
}

async function fakePmproxy(port = 0): Promise<Fake> {
  let nextCtx = 13653841;
  const fake: Fake = {
    url: '',
    port: 0,
    pmcdUp: true,
    hang: false,
    contexts: new Set(),
    fetches: [fx('fetch.json')],
    indom: { 'disk.dev.total': fx('indom-disk.dev.json'), 'disk.dev.read': fx('indom-disk.dev.json'), 'kernel.all.load': fx('indom-load.json') },
    requests: [],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    fake.requests.push(u.pathname + u.search);
    if (fake.hang) return; // never answers
    const send = (status: number, body: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    const ctx = Number(u.searchParams.get('context'));
    if (u.pathname === '/pmapi/context') {
      if (!fake.pmcdUp) return send(400, fx('error-pmcd-down-context.json'));
      const id = nextCtx++;
      fake.contexts.add(id);
      return send(200, fx('context.json').replace('13653841', String(id)));
    }
    if (!fake.contexts.has(ctx)) return send(400, fx('error-unknown-context.json').replace(/12345/g, String(ctx)));
    if (!fake.pmcdUp) return send(400, fx('error-pmcd-down-ipc.json'));
    if (u.pathname === '/pmapi/fetch') {
      // like pmproxy: only the names asked for, unknown ones silently left out
      const asked = new Set((u.searchParams.get('names') ?? '').split(','));
      const raw = fake.fetches.length > 1 ? fake.fetches.shift()! : fake.fetches[0];
      const stamp = /"timestamp":[0-9.]+/.exec(raw)![0]; // kept raw: JSON.stringify would "fix" it
      const reply = JSON.parse(raw.replace(/"value":(\d{16,})/g, '"value":"$1"')) as { values: { name: string }[] };
      const body = JSON.stringify({ context: ctx, timestamp: 0, values: reply.values.filter((v) => asked.has(v.name)) });
      return send(200, body.replace('"timestamp":0', stamp).replace(/"value":"(\d+)"/g, '"value":$1'));
    }
    if (u.pathname === '/pmapi/metric') {
      const names = (u.searchParams.get('names') ?? '').split(',');
      const metrics = names.map((n) => descs.get(n) ?? { name: n, message: 'Unknown metric name', success: false });
      if (metrics.every((m) => (m as { success?: boolean }).success === false)) return send(400, fx('error-metric-unknown.json'));
      return send(200, JSON.stringify({ context: ctx, metrics }));
    }
    if (u.pathname === '/pmapi/indom') {
      const body = fake.indom[u.searchParams.get('name') ?? ''];
      return body ? send(200, body) : send(400, fx('error-indom-null.json'));
    }
    send(404, '{}');
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `http://127.0.0.1:${fake.port}`;
  fake.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return fake;
}

/** fetch.json with other counter values and a later timestamp (still unpadded nanoseconds) */
const fetchLater = (cpuUser: number | bigint, diskTotal: number, stamp = '1795533221.58233936') =>
  fx('fetch.json')
    .replace('1795533219.58233936', stamp)
    .replace('"value":244660', `"value":${cpuUser}`)
    .replace('"value":162454', `"value":${diskTotal}`);

let logs: string[] = [];
const pcpLogs = (level: string) => logs.filter((l) => l.includes('[pcp]') && l.includes(` ${level} `));

let fake: Fake;
beforeEach(async () => {
  logs = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    logs.push(String(chunk));
    return String(chunk).includes('[pcp]') ? true : write(chunk, ...(rest as []));
  });
  fake = await fakePmproxy();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await fake.close();
});

const names = ['kernel.all.cpu.user', 'disk.dev.total', 'mem.util.used'];

describe('timestamps and numbers', () => {
  it('reads the unpadded nanoseconds from the raw text', () => {
    expect(parsePmapiTimestamp(fx('fetch.json'))).toEqual({ sec: 1795533219, nsec: 58233936 });
    expect(parsePmapiTimestamp(fx('fetch-mixed.json'))).toEqual({ sec: 1795538950, nsec: 297010815 });
    // JSON.parse would say .58233936 s, i.e. 524 ms late
    expect((JSON.parse(fx('fetch.json')) as { timestamp: number }).timestamp % 1).toBeCloseTo(0.58233936, 6);
  });
  it('accepts the compat endpoint form and nothing else', () => {
    expect(parsePmapiTimestamp(fx('compat-fetch.json'))).toEqual({ sec: 1795533485, nsec: 194604000 });
    expect(parsePmapiTimestamp('{"values":[]}')).toBeUndefined();
  });
  it('keeps u64 values above 2^53 exact', () => {
    const v = parsePmapiJson('{"values":[{"instances":[{"instance":null,"value":18446744073709551615},{"instance":1,"value":1234}]}]}') as {
      values: { instances: { value: unknown }[] }[];
    };
    expect(v.values[0].instances[0].value).toBe(18446744073709551615n);
    expect(v.values[0].instances[1].value).toBe(1234);
  });
});

describe('PcpCollector', () => {
  it('emits instants at once, counters as per-second rates from the second fetch, with pmcd time', async () => {
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 5000 });
    const first = await c.collect(Date.now());
    // 1795533219 s + 58233936 ns: the fixture's real sampling time
    expect(first).toEqual([{ entity: 'n1', metric: 'pcp.mem.util.used', ts: 1795533219058, value: 4084212 }]);

    fake.fetches = [fetchLater(244660 + 1000, 162454 + 50)];
    const second = await c.collect(Date.now());
    const by = Object.fromEntries(second.map((s) => [s.metric, s]));
    expect(by['pcp.kernel.all.cpu.user'].value).toBeCloseTo(500, 6); // 1000 ms over 2 s
    expect(by['pcp.disk.dev.total[vda]'].value).toBeCloseTo(25, 6);
    expect(by['pcp.mem.util.used'].value).toBe(4084212);
    expect(second.every((s) => s.ts === 1795533221058 && s.entity === 'n1')).toBe(true);
    expect(pcpLogs('WARN')).toEqual([]);
  });

  it('creates one context with polltimeout >= 3x the interval and reuses it', async () => {
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 7000 });
    for (let i = 0; i < 3; i++) await c.collect(Date.now());
    const ctxReqs = fake.requests.filter((r) => r.startsWith('/pmapi/context'));
    expect(ctxReqs).toEqual(['/pmapi/context?hostspec=localhost&polltimeout=21']);
    const fetches = fake.requests.filter((r) => r.startsWith('/pmapi/fetch'));
    expect(fetches).toHaveLength(3);
    expect(fetches.every((r) => r.includes('context=13653841&names=kernel.all.cpu.user,disk.dev.total,mem.util.used'))).toBe(true);
    // descriptors and instance names are cached
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/metric'))).toHaveLength(1);
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/indom'))).toHaveLength(1);
  });

  it('re-creates the context on "unknown context identifier" within the same round', async () => {
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 1000 });
    await c.collect(Date.now());
    fake.contexts.clear(); // expired, or pmproxy restarted
    fake.fetches = [fetchLater(245660, 162504)];
    const out = await c.collect(Date.now());
    expect(out.map((s) => s.metric).sort()).toEqual(['pcp.disk.dev.total[vda]', 'pcp.kernel.all.cpu.user', 'pcp.mem.util.used']);
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/context'))).toHaveLength(2);
    expect(fake.requests.some((r) => r.includes('/pmapi/fetch?context=13653842'))).toBe(true);
    expect(pcpLogs('WARN')).toEqual([]);
  });

  it('maps instance ids through /pmapi/indom and re-queries on an unknown id', async () => {
    const twoDisks = fx('indom-disk.dev.json').replace(
      '"instances":[',
      '"instances":[{"instance":1,"name":"vdb","labels":{}},',
    );
    fake.fetches = [fx('fetch-mixed.json')];
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: ['kernel.all.load', 'disk.dev.read'], pollIntervalMs: 1000 });
    const first = await c.collect(Date.now());
    expect(first.map((s) => [s.metric, s.value])).toEqual([
      ['pcp.kernel.all.load[1 minute]', 0.17],
      ['pcp.kernel.all.load[5 minute]', 0.13],
      ['pcp.kernel.all.load[15 minute]', 0.050000001],
    ]);
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/indom')).length).toBe(2);

    fake.indom['disk.dev.read'] = twoDisks;
    fake.fetches = [
      fx('fetch-mixed.json')
        .replace('1795538950.297010815', '1795538951.297010815')
        .replace('{"instance":0,"value":31131}', '{"instance":0,"value":31141},{"instance":1,"value":7}'),
    ];
    const second = await c.collect(Date.now());
    expect(second.find((s) => s.metric === 'pcp.disk.dev.read[vda]')?.value).toBeCloseTo(10, 6);
    // vdb is new: no previous reading, so no rate yet, but its name was resolved
    expect(second.some((s) => s.metric === 'pcp.disk.dev.read[vdb]')).toBe(false);
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/indom?context=13653841&name=disk.dev.read')).length).toBe(2);
  });

  it('warns once about names pmproxy drops silently', async () => {
    fake.fetches = [fx('fetch-mixed.json')];
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: ['mem.util.used', 'no.such.metric'], pollIntervalMs: 1000 });
    expect(await c.collect(Date.now())).toEqual([{ entity: 'n1', metric: 'pcp.mem.util.used', ts: 1795538950297, value: 362868 }]);
    await c.collect(Date.now());
    const w = pcpLogs('WARN');
    expect(w).toHaveLength(1);
    expect(w[0]).toContain('names=no.such.metric');
    // only names that came back are described (a lone unknown name would make /pmapi/metric fail)
    expect(fake.requests.find((r) => r.startsWith('/pmapi/metric'))).toContain('names=mem.util.used');
  });

  it('returns no samples at all when every name is unknown', async () => {
    fake.fetches = [fx('fetch-unknown-metric.json')];
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: ['no.such.metric'], pollIntervalMs: 1000 });
    expect(await c.collect(Date.now())).toEqual([]);
    expect(pcpLogs('WARN')).toHaveLength(1);
    expect(c.unavailable).toBe(false);
  });

  it('pmcd down: [] with one warning, drops the context, recovers with one info line', async () => {
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 1000 });
    expect(await c.collect(Date.now())).toHaveLength(1);
    fake.pmcdUp = false;
    for (let i = 0; i < 4; i++) expect(await c.collect(Date.now())).toEqual([]);
    expect(c.unavailable).toBe(true);
    const w = pcpLogs('WARN');
    expect(w).toHaveLength(1);
    expect(w[0]).toContain('IPC protocol failure');
    // after the IPC failure every round tries a new context ("cannot connect to PMCD")
    expect(fake.requests.filter((r) => r.startsWith('/pmapi/context')).length).toBe(4);

    fake.pmcdUp = true;
    fake.fetches = [fetchLater(250000, 170000)];
    const back = await c.collect(Date.now());
    expect(back.map((s) => s.metric)).toContain('pcp.mem.util.used');
    expect(c.unavailable).toBe(false);
    expect(pcpLogs('INFO').filter((l) => l.includes('available again'))).toHaveLength(1);
    expect(pcpLogs('WARN')).toHaveLength(1);
  });

  it('pmproxy absent: [] with one warning, retries each round, recovers when it starts', async () => {
    const port = fake.port;
    await fake.close();
    const c = new PcpCollector({ nodeId: 'n1', url: `http://127.0.0.1:${port}`, metrics: names, pollIntervalMs: 1000 });
    for (let i = 0; i < 3; i++) expect(await c.collect(Date.now())).toEqual([]);
    const w = pcpLogs('WARN');
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/ECONNREFUSED/);
    expect(w[0]).toContain(`127.0.0.1:${port}`);

    fake = await fakePmproxy(port);
    expect(await c.collect(Date.now())).toHaveLength(1);
    expect(pcpLogs('INFO').filter((l) => l.includes('available again'))).toHaveLength(1);
  });

  it('gives up on a pmproxy that does not answer within the timeout', async () => {
    fake.hang = true;
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 1000, timeoutMs: 200 });
    const t0 = Date.now();
    expect(await c.collect(Date.now())).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(pcpLogs('WARN')[0]).toContain('timed out');
  });

  it('skips a counter that went backwards (reset, wrap) and computes exact rates for huge u64s', async () => {
    const c = new PcpCollector({ nodeId: 'n1', url: fake.url, metrics: names, pollIntervalMs: 1000 });
    await c.collect(Date.now());
    fake.fetches = [fetchLater(100, 162454)];
    const reset = await c.collect(Date.now());
    expect(reset.some((s) => s.metric === 'pcp.kernel.all.cpu.user')).toBe(false);
    expect(reset.find((s) => s.metric === 'pcp.disk.dev.total[vda]')?.value).toBe(0);

    const big = 2n ** 60n;
    fake.fetches = [
      fetchLater(big, 0, '1795533222.58233936'),
      fetchLater(big + 3n, 0, '1795533223.58233936'),
    ];
    await c.collect(Date.now());
    const r = await c.collect(Date.now());
    expect(r.find((s) => s.metric === 'pcp.kernel.all.cpu.user')?.value).toBe(3);
  });
});
