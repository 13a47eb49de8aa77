/**
 * grpcurl-style access to a real herd process, through an independent and strict client:
 * every descriptor the server reflects is loaded into protobuf's own DescriptorPool
 * (Debian's python3-protobuf), and calls are made through it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHerd, grpcurl } from '../helpers/herd';
import { testPki } from '../helpers/pki';
import { tempDir, waitFor } from '../helpers/tmp';

const ADDR = '127.0.0.1:7419';
let herd: ReturnType<typeof startHerd>;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir();
  testPki().provision(tmp.dir, 'solo', ADDR);
  herd = startHerd(['agent', '--node-id', 'solo', '--data-dir', tmp.dir, '--listen', ADDR, '--host-interval', '300', '--pmproxy-url', '', '--docker-socket', '/nonexistent.sock']);
  await waitFor('herd answering', async () => (await grpcurl(ADDR, ['grpc.health.v1.Health/Check'])).stdout.includes('SERVING'), 20_000, 200);
  await waitFor('host samples stored', async () => (await grpcurl(ADDR, ['herd.v1.Admin/QuerySamples'], ['-d', '{"entity":"solo","metric":"host.cpu.total"}'])).code === 0, 20_000, 200);
});

afterAll(async () => {
  herd?.child.kill('SIGTERM');
  await new Promise((r) => herd?.child.once('exit', r));
  tmp?.cleanup();
});

describe('server reflection with a strict client', () => {
  it('lists every service', async () => {
    const r = await grpcurl(ADDR, ['list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection', 'herd.v1.Admin', 'herd.v1.Join', 'herd.v1.Mesh', 'herd.v1.Peer', 'herd.v1.Transfer']);
  });

  it('describes every service and every message they use', async () => {
    const seen = new Set<string>();
    for (const svc of ['herd.v1.Admin', 'herd.v1.Join', 'herd.v1.Mesh', 'herd.v1.Peer', 'herd.v1.Transfer', 'grpc.health.v1.Health']) {
      const r = await grpcurl(ADDR, ['describe', svc]);
      expect(r.code, r.stderr).toBe(0);
      for (const m of r.stdout.matchAll(/\( (?:stream )?\.([\w.]+) \)/g)) seen.add(m[1]);
    }
    expect(seen.size).toBeGreaterThan(10);
    // Follow field types until every reachable message has been described.
    const nested = new Set<string>(seen);
    const todo = [...seen];
    while (todo.length) {
      const msg = todo.pop()!;
      const r = await grpcurl(ADDR, ['describe', msg]);
      expect(r.code, `${msg}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`(message|enum) ${msg.split('.').pop()}`));
      for (const m of r.stdout.matchAll(/\.((?:herd\.v1|grpc\.health\.v1)\.[\w.]+)/g)) {
        if (!nested.has(m[1])) {
          nested.add(m[1]);
          todo.push(m[1]);
        }
      }
    }
    expect(nested).toContain('herd.v1.SeriesPoints');
    expect(nested).toContain('herd.v1.Label');
  }, 240_000); // one strict-client process per message described: the contract has grown to many messages

  it("shows the contract's comments, as grpcurl describe does", async () => {
    const r = await grpcurl(ADDR, ['describe', 'herd.v1.QuerySamplesRequest']);
    expect(r.stdout).toMatch(/Downsampling step, ms: one point per step/);
    const s = await grpcurl(ADDR, ['describe', 'herd.v1.Mesh']);
    expect(s.stdout).toMatch(/Opened by every agent to the coordinator/);
  });

  it('calls every Admin method with -d JSON', async () => {
    const leader = await grpcurl(ADDR, ['herd.v1.Admin/GetLeader'], ['-d', '{}']);
    expect(JSON.parse(leader.stdout)).toMatchObject({ leader_id: 'solo', address: ADDR });
    const nodes = JSON.parse((await grpcurl(ADDR, ['herd.v1.Admin/ListNodes'])).stdout);
    expect(nodes.nodes[0]).toMatchObject({ node_id: 'solo', connected: true, arch: 'x64' });
    const containers = await grpcurl(ADDR, ['herd.v1.Admin/ListContainers'], ['-d', '{"node_id":"solo"}']);
    expect(containers.code, containers.stderr).toBe(0);
    const series = JSON.parse((await grpcurl(ADDR, ['herd.v1.Admin/ListSeries'], ['-d', '{"entity":"solo","metric_prefix":"host."}'])).stdout);
    expect(series.series.map((s: any) => s.metric)).toContain('host.mem.used_bytes');
    const q = JSON.parse((await grpcurl(ADDR, ['herd.v1.Admin/QuerySamples'], ['-d', '{"entity":"solo","metric":"host.mem.used_bytes","step_ms":"60000"}'])).stdout);
    expect(q.points.length).toBeGreaterThan(0);
    expect(Number(q.points[0].value)).toBeGreaterThan(0);
  });

  it('answers bad calls with grpcurl-style errors', async () => {
    const r = await grpcurl(ADDR, ['herd.v1.Admin/QuerySamples'], ['-d', '{"entity":"solo","metric":"host.cpu.total","from_ms":"9","to_ms":"3"}']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Code: InvalidArgument\n\s+Message: the time range is empty or inverted/);
    const nf = await grpcurl(ADDR, ['herd.v1.Admin/ListContainers'], ['-d', '{"node_id":"ghost"}']);
    expect(nf.stderr).toMatch(/Code: NotFound/);
  });
});
