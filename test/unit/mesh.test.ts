import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { openEnv } from '../../common/db';
import { loadProtos } from '../../common/proto';
import { BATCH_SEQ_METRIC, SampleLog } from '../../agent/samplelog';
import { Uplink } from '../../agent/uplink';
import { TermFence } from '../../common/fencing';
import { call, startCoordinator, type TestCoordinator } from '../helpers/coord';
import { tempDir, waitFor } from '../helpers/tmp';

const cleanups: Array<() => unknown> = [];
const T0 = Date.now() - 60_000;
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function agent(nodeId: string, target: () => string | undefined, maxInFlight = 8, fence?: TermFence) {
  const t = tempDir();
  const env = openEnv(t.dir, { mapSizeBytes: 256 * 1024 ** 2 });
  const log = new SampleLog(env, nodeId);
  const uplink = new Uplink({
    log,
    target,
    hello: () => ({ node_id: nodeId, address: 'x:1', log_id: log.logId, arch: 'x64', cores: 2, term: fence?.highest ?? 0 }),
    fence,
    inventory: () => ({ docker_reachable: true, containers: [{ herd_id: 'c1', docker_id: 'd'.repeat(64), name: 'web', state: 'running' }] }),
    maxInFlight,
    keepaliveMs: 200,
    deadAfterMs: 2000,
  });
  cleanups.push(async () => {
    uplink.stop();
    await env.close();
    t.cleanup();
  });
  return { log, uplink, env, dir: t.dir };
}

async function coordinator(port = 0, term = 0): Promise<{ c: TestCoordinator; dir: string }> {
  const t = tempDir();
  const c = await startCoordinator(t.dir, port, { term: () => term });
  cleanups.push(t.cleanup);
  cleanups.push(() => c.stop());
  return { c, dir: t.dir };
}

function seqs(c: TestCoordinator, node: string): number[] {
  return [...c.store.range(node, BATCH_SEQ_METRIC, 0, Date.now() + 10_000)].map(([, v]) => v);
}

describe('mesh protocol', () => {
  it('streams batches, acknowledges them once stored, and carries the inventory', async () => {
    const { c } = await coordinator();
    const a = agent('n1', () => c.address);
    for (let i = 0; i < 20; i++) await a.log.append([{ entity: 'n1', metric: 'host.cpu.total', ts: T0 + i, value: i }]);
    a.uplink.start();
    await waitFor('all 20 batches acked', () => a.uplink.ackedSeq() === 20);
    expect(seqs(c, 'n1')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const q = await call(c.admin, 'QuerySamples', { entity: 'n1', metric: 'host.cpu.total' });
    expect(q.points.map((p: any) => p.value)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const inv = await waitFor('inventory', async () => (await call(c.admin, 'ListContainers', {})).containers.length === 1);
    expect(inv).toBe(true);
    const nodes = await call(c.admin, 'ListNodes', {});
    expect(nodes.nodes[0]).toMatchObject({ node_id: 'n1', connected: true, acked_seq: 20, container_count: 1 });
  });

  it('keeps at most maxInFlight batches unacknowledged and the rest in LMDB', async () => {
    // A coordinator that welcomes but never acknowledges.
    const { herd } = loadProtos();
    let received = 0;
    const server = new grpc.Server();
    server.addService(herd.Mesh.service, {
      Connect: (s: grpc.ServerDuplexStream<any, any>) => {
        s.on('data', (m: any) => {
          if (m.body === 'hello') s.write({ welcome: { coordinator_id: 'slow', acked_seq: 0, max_in_flight: 5 } });
          if (m.body === 'batch') received++;
        });
        s.on('error', () => {});
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => server.forceShutdown());
    const a = agent('n1', () => `127.0.0.1:${port}`, 64);
    a.uplink.start();
    for (let i = 0; i < 200; i++) await a.log.append([{ entity: 'n1', metric: 'm', ts: T0 + i, value: i }]);
    await waitFor('5 batches received', () => received === 5);
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toBe(5); // the coordinator's window (5) bounds the agent, not its own 64
    expect(a.log.lastSeq()).toBe(200);
  });

  it('loses no sample when the coordinator restarts: replay starts after its acknowledgement', async () => {
    const first = await coordinator();
    const port = Number(first.c.address.split(':')[1]);
    const a = agent('n1', () => `127.0.0.1:${port}`);
    a.uplink.start();
    for (let i = 0; i < 30; i++) await a.log.append([{ entity: 'n1', metric: 'm', ts: T0 + i, value: i }]);
    await waitFor('acked 30', () => a.uplink.ackedSeq() === 30);
    await first.c.stop();
    // while the coordinator is down the agent keeps writing
    for (let i = 30; i < 60; i++) await a.log.append([{ entity: 'n1', metric: 'm', ts: T0 + i, value: i }]);
    const again = await startCoordinator(first.dir, port);
    cleanups.push(() => again.stop());
    await waitFor('acked 60 after restart', () => a.uplink.ackedSeq() === 60, 15_000);
    expect(seqs(again, 'n1')).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect([...again.store.range('n1', 'm', T0, T0 + 5000)].length).toBe(60);
  });

  it('a new coordinator with an empty store gets the whole retained log replayed', async () => {
    const first = await coordinator();
    let target = first.c.address;
    const a = agent('n1', () => target);
    a.uplink.start();
    for (let i = 0; i < 10; i++) await a.log.append([]);
    await waitFor('acked 10', () => a.uplink.ackedSeq() === 10);
    const second = await coordinator();
    target = second.c.address;
    a.uplink.retarget();
    await waitFor('acked 10 by the new one', () => a.uplink.ackedSeq() === 10 && seqs(second.c, 'n1').length === 10);
  });

  it('restarts the sequence of an agent whose data dir was wiped (new log id)', async () => {
    const { c } = await coordinator();
    const a = agent('n1', () => c.address);
    a.uplink.start();
    for (let i = 0; i < 5; i++) await a.log.append([]);
    await waitFor('acked 5', () => a.uplink.ackedSeq() === 5);
    a.uplink.stop();
    const b = agent('n1', () => c.address); // same node id, fresh log
    b.uplink.start();
    await b.log.append([{ entity: 'n1', metric: 'fresh', ts: T0, value: 42 }]);
    await waitFor('fresh log acked', () => b.uplink.ackedSeq() === 1);
    expect([...c.store.range('n1', 'fresh', 0, Date.now())]).toEqual([[T0, 42]]);
  });
});

describe('mesh: fencing by election term', () => {
  it('an agent refuses a coordinator of a lower term than it has seen, and sends it nothing', async () => {
    const { c } = await coordinator(0, 5);
    // the hello says 7: the coordinator itself refuses the stream
    const a = agent('n1', () => c.address, 8, new TermFence({ highest: 7 }));
    await a.log.append([]);
    a.uplink.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(a.uplink.ackedSeq()).toBe(0);
    expect(seqs(c, 'n1')).toEqual([]);
  });

  it('the agent side fences too: a welcome of an older term is refused', async () => {
    const { c } = await coordinator(0, 5);
    const fence = new TermFence({ highest: 5 });
    const a = agent('n1', () => c.address, 8, fence);
    a.uplink.start();
    await a.log.append([]);
    await waitFor('acked at term 5', () => a.uplink.ackedSeq() === 1);
    fence.observe(6); // a newer election happened; the coordinator at term 5 is now stale
    a.uplink.retarget();
    await a.log.append([]);
    await new Promise((r) => setTimeout(r, 500));
    expect(seqs(c, 'n1')).toEqual([1]);
  });

  it('the coordinator refuses an agent that has seen a newer term, saying so', async () => {
    const { c } = await coordinator(0, 5);
    const { herd } = loadProtos();
    const client = new herd.Mesh(c.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const s = client.Connect();
      s.on('data', () => {});
      s.on('error', resolve);
      s.write({ hello: { node_id: 'n2', log_id: 'L', term: 9 } });
    });
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/at term 5 but node n2 has seen term 9: a newer coordinator exists/);
  });
});

describe('mesh: a silent coordinator connection', () => {
  it('is dropped after deadAfterMs: the agent dials a new connection, not the same stuck one', async () => {
    // accepts TCP and never answers a byte (as a TLS handshake stalled half-way)
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => { sockets.push(s); s.on('error', () => {}); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
    const port = (server.address() as net.AddressInfo).port;
    const a = agent('n1', () => `127.0.0.1:${port}`);
    a.uplink.start();
    // deadAfterMs is 2000: within 6 s at least two fresh connections after the first
    await waitFor('a third connection', () => sockets.length >= 3, 8000);
    expect(a.uplink.connected()).toBe(false);
  });
});

describe('mesh: bad input never crashes the coordinator nor loses stored samples', () => {
  async function rawStream(c: TestCoordinator, msgs: unknown[]): Promise<grpc.ServiceError> {
    const { herd } = loadProtos();
    const client = new herd.Mesh(c.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    return new Promise((resolve, reject) => {
      const s = client.Connect();
      s.on('data', () => {});
      s.on('error', resolve);
      s.on('end', () => reject(new Error('stream ended without an error')));
      for (const m of msgs) s.write(m);
    });
  }

  it('answers each kind of garbage with INVALID_ARGUMENT and a reason', async () => {
    const { c } = await coordinator();
    await c.store.ingest('n9', 'L', 1, 0, [{ entity: 'n9', metric: 'keep', offsets_ms: [1], values: [1] }]);
    const hello = { hello: { node_id: 'n2', log_id: 'L2' } };
    const cases: Array<[unknown[], RegExp]> = [
      [[{ batch: { seq: 1, series: [] } }], /first message .* must be a hello/],
      [[{ keepalive: {} }], /first message/],
      [[{ hello: { node_id: '../../etc', log_id: 'x' } }], /node_id .* is not valid/],
      [[{ hello: { node_id: 'n2' } }], /log_id is required/],
      [[hello, { batch: { seq: 0, created_ms: 5, series: [] } }], /seq must be a positive integer/],
      [[hello, { batch: { seq: 1, created_ms: 1000, series: [{ entity: 'n2', metric: 'm', offsets_ms: [1, 2], values: [1] }] } }], /2 times but 1 values/],
      [[hello, { batch: { seq: 1, created_ms: 1000, series: [{ entity: 'n2', metric: 'm', offsets_ms: [1], values: [NaN] }] } }], /not a finite number/],
      [[hello, { batch: { seq: 1, created_ms: 1000, series: [{ entity: '', metric: 'm', offsets_ms: [1], values: [1] }] } }], /entity is required/],
      [[hello, { batch: { seq: 1, series: [] } }], /created_ms must be a positive/],
      [[hello, { batch: { seq: 1, created_ms: 1000, series: [{ entity: 'n2', metric: 'm', offsets_ms: [-2000], values: [1] }] } }], /before the epoch/],
      [[hello, { batch: { seq: 1, created_ms: 1000, series: [{ entity: 'n2', metric: 'm/../../x\u0000', offsets_ms: [1], values: [1] }] } }], /metric .* is not valid/],
      [[hello, { hello: hello.hello }], /hello may only be the first/],
      [[hello, {}], /unknown or empty message/],
    ];
    for (const [msgs, re] of cases) {
      const err = await rawStream(c, msgs);
      expect(err.code, `${JSON.stringify(msgs)} -> ${err.details}`).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(re);
    }
    expect([...c.store.range('n9', 'keep', 0, 10)]).toEqual([[1, 1]]);
  });

  it('survives bytes that are not protobuf at all', async () => {
    const { c } = await coordinator();
    const client = new grpc.Client(c.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const s = client.makeBidiStreamRequest('/herd.v1.Mesh/Connect', (b: Buffer) => b, (b: Buffer) => b);
      s.on('data', () => {});
      s.on('error', resolve);
      s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99]));
    });
    expect([grpc.status.INTERNAL, grpc.status.INVALID_ARGUMENT]).toContain(err.code);
    // and it still serves
    expect((await call(c.admin, 'ListNodes', {})).nodes).toEqual([]);
  });
});
