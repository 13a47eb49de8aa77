/**
 * Hostile input against a real herd process: random bytes and mutated valid messages to
 * every RPC of every service (unary and streams), oversized messages, for a bounded time.
 * The daemon must answer each with a status (never hang), stay up, and keep serving.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../common/proto';
import { grpcurl, startHerd } from '../helpers/herd';
import { tempDir, waitFor } from '../helpers/tmp';
import { mulberry32 } from '../../coordinator/election/sim';

const ADDR = '127.0.0.1:7421';
let herd: ReturnType<typeof startHerd>;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir();
  herd = startHerd(['agent', '--node-id', 'fuzz', '--data-dir', tmp.dir, '--listen', ADDR, '--host-interval', '300', '--pmproxy-url', '', '--docker-socket', '/nonexistent.sock']);
  await waitFor('herd answering', async () => (await grpcurl(ADDR, ['grpc.health.v1.Health/Check'])).stdout.includes('SERVING'), 20_000, 200);
});

afterAll(async () => {
  herd?.child.kill('SIGTERM');
  await new Promise((r) => herd?.child.once('exit', r));
  tmp?.cleanup();
});

/** Every method of every service the server offers, with its kind and a valid-ish request encoder. */
function methods(): Array<{ path: string; clientStream: boolean; serverStream: boolean; encode: (o: unknown) => Buffer }> {
  const { definition } = loadProtos();
  const out = [];
  for (const [svc, def] of Object.entries(definition)) {
    if (!('format' in def) && typeof def === 'object') {
      for (const m of Object.values(def as Record<string, any>)) {
        if (m?.path) out.push({ path: m.path as string, clientStream: Boolean(m.requestStream), serverStream: Boolean(m.responseStream), encode: m.requestSerialize });
      }
    }
    void svc;
  }
  return out;
}

function mutate(b: Buffer, rnd: () => number): Buffer {
  const c = Buffer.from(b.length ? b : Buffer.alloc(1));
  const flips = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < flips; i++) c[Math.floor(rnd() * c.length)] = Math.floor(rnd() * 256);
  return c;
}


describe('hostile input to every RPC', () => {
  it('answers every random or mutated message with a status and stays up (bounded: ~15 s)', async () => {
    const client = new grpc.Client(ADDR, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 128 * 1024 * 1024 });
    const all = methods();
    expect(all.length).toBeGreaterThan(15);
    const rnd = mulberry32(20261124);
    const seeds: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from(JSON.stringify({ node_id: '../../etc/passwd' })),
      (all.find((m) => m.path.endsWith('/QuerySamples'))!.encode)({ entity: 'fuzz', metric: 'host.cpu.total', from_ms: 1, to_ms: 2 }),
      (all.find((m) => m.path.endsWith('/Connect'))!.encode)({ hello: { node_id: 'x', log_id: 'y' } }),
      (all.find((m) => m.path.endsWith('/Fetch'))!.encode)({ migration_id: '../../x', artifact: '../../../etc/shadow', offset: 0, requester_node_id: 'fuzz' }),
      (all.find((m) => m.path.endsWith('/PrepareMigration'))!.encode)({ migration_id: 'm1', herd_id: 'h1', source_node_id: 's', create_json: '{"Image":"x"}', name: '../../evil' }),
    ];
    const id = (b: Buffer) => b;
    const deadline = Date.now() + 15_000;
    let calls = 0;
    const statuses = new Map<number, number>();
    while (Date.now() < deadline) {
      const m = all[Math.floor(rnd() * all.length)];
      const base = seeds[Math.floor(rnd() * seeds.length)];
      const kind = rnd();
      const msg = kind < 0.3 ? randomBytes(Math.floor(rnd() * 512)) : kind < 0.95 ? mutate(base, rnd) : Buffer.alloc(5 * 1024 * 1024, 0x0a); // oversized
      const opts = { deadline: Date.now() + (m.path.endsWith('/Watch') ? 300 : 3000) };
      const code: number = await new Promise((resolve) => {
        const done = (e: grpc.ServiceError | null) => resolve(e ? e.code : 0);
        if (!m.clientStream && !m.serverStream) client.makeUnaryRequest(m.path, id, id, msg, opts, done);
        else if (!m.clientStream) {
          const s = client.makeServerStreamRequest(m.path, id, id, msg, opts);
          s.on('data', () => {});
          s.on('error', done);
          s.on('end', () => done(null));
        } else {
          const s = client.makeBidiStreamRequest(m.path, id, id, opts);
          s.on('data', () => {});
          s.on('error', done);
          s.on('end', () => done(null));
          s.write(msg);
          s.write(mutate(msg, rnd));
          setTimeout(() => s.end(), 50);
        }
      });
      // Health.Watch is meant to stay open until the client goes: its deadline is no hang.
      if (!(code === grpc.status.DEADLINE_EXCEEDED && m.path.endsWith('/Watch'))) {
        statuses.set(code, (statuses.get(code) ?? 0) + 1);
        calls++;
      }
    }
    client.close();
    // nothing hung past its deadline, the process is alive and still serving
    expect(statuses.get(grpc.status.DEADLINE_EXCEEDED) ?? 0, JSON.stringify([...statuses])).toBe(0);
    expect(herd.child.exitCode).toBeNull();
    expect((await grpcurl(ADDR, ['grpc.health.v1.Health/Check'])).stdout).toContain('SERVING');
    expect(herd.output()).not.toMatch(/uncaught|unhandled/i);
    console.log(`fuzz: ${calls} calls over ${all.length} methods; statuses ${JSON.stringify(Object.fromEntries([...statuses].map(([k, v]) => [grpc.status[k] ?? k, v])))}`);
  }, 60_000);
});
