/**
 * Three real herd processes, each in its own network namespace with its own dockerd:
 * samples from every node reach the coordinator; a container's cgroup metrics and
 * log-derived ops appear through Admin; a kill -9 and restart of the coordinator loses
 * no sample (the herd.batch.seq series of every node stays gap-free).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_SEQ_METRIC } from '../../agent/samplelog';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
let admin: any;

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  const leader = await agreedLeader([...nodes.values()].map((n) => n.address), 20_000);
  admin = adminClient(leader.address);
  await waitFor('3 nodes connected', async () => (await connectedNodes(leader.address)).length === 3, 30_000, 200);
});

afterAll(async () => {
  admin?.close();
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

async function seqValues(node: string): Promise<number[]> {
  const r = await call(admin, 'QuerySamples', { entity: node, metric: BATCH_SEQ_METRIC });
  return r.points.map((p: any) => p.value);
}

function expectGapFree(seqs: number[], node: string): void {
  expect(seqs.length, `${node} has batches`).toBeGreaterThan(0);
  expect(seqs[0], `${node} starts at 1`).toBe(1);
  const gaps = seqs.filter((v, i) => i > 0 && v !== seqs[i - 1] + 1);
  expect(gaps, `${node}: gaps in its batch sequence`).toEqual([]);
}

describe('a 3-node cluster on the test bed', () => {
  it('stores a host sample produced on each node', async () => {
    for (const id of ['n1', 'n2', 'n3']) {
      const r = await waitFor(`host samples of ${id}`, async () => {
        const q = await call(admin, 'QuerySamples', { entity: id, metric: 'host.mem.used_bytes' }).catch(() => undefined);
        return q && q.points.length > 0 ? q : undefined;
      }, 20_000, 200);
      expect(r.points[0].value).toBeGreaterThan(0);
    }
    const list = await call(admin, 'ListNodes', {});
    expect(list.nodes.map((n: any) => [n.node_id, n.connected, n.docker_reachable])).toEqual([['n1', true, true], ['n2', true, true], ['n3', true, true]]);
  });

  it("shows a container's cgroup metrics and log-derived ops", async () => {
    const script = 'while :; do :; done & i=0; while true; do i=$((i+1)); echo "[ ${i}s ] thds: 1 eps: 123.45"; sleep 0.2; done';
    const run = await bed.docker('n2', 'run', '-d', '--name', 'busy', '--label', 'herd.ops.regex=^\\[ *(\\d+)s \\] thds: (\\d+) eps: ([0-9.]+)', '--label', 'herd.ops.group=3', BUSYBOX_IMAGE, 'sh', '-c', script);
    expect(run.code, run.stderr).toBe(0);
    const c = await waitFor('container in inventory', async () => (await call(admin, 'ListContainers', { node_id: 'n2' })).containers.find((x: any) => x.name === 'busy' && x.state === 'running'), 20_000, 200);
    expect(c).toMatchObject({ state: 'running', node_id: 'n2', herd_id: run.stdout.trim().slice(0, 12) });
    const value = async (metric: string) => {
      const q = await call(admin, 'QuerySamples', { entity: c.herd_id, metric }).catch(() => undefined);
      return q?.points.length ? Math.max(...q.points.map((p: any) => p.value)) : undefined;
    };
    expect(await waitFor('cpu usage of the busy loop', async () => ((await value('container.cpu.usage')) ?? 0) > 0.3 && value('container.cpu.usage'), 20_000, 250)).toBeLessThan(2.5);
    expect(await waitFor('pids', () => value('container.pids'), 10_000, 250)).toBeGreaterThanOrEqual(2);
    expect(await waitFor('memory', () => value('container.mem.usage_bytes'), 10_000, 250)).toBeGreaterThan(0);
    expect(await waitFor('ops from the log', () => value('container.ops'), 15_000, 250)).toBe(123.45);
    await bed.docker('n2', 'rm', '-f', 'busy');
  });

  it('loses no sample when the coordinator is killed with SIGKILL and restarted', async () => {
    const old = await agreedLeader([...nodes.values()].map((n) => n.address));
    const others = [...nodes.keys()].filter((id) => id !== old.id);
    const before = await Promise.all(others.map(seqValues));
    await kill9(nodes.get(old.id)!);
    await new Promise((r) => setTimeout(r, 3000)); // agents keep sampling into their logs meanwhile
    nodes.set(old.id, startHerdOn(bed, old.id));
    const leader = await agreedLeader([...nodes.values()].map((n) => n.address), 20_000);
    admin.close();
    admin = adminClient(leader.address);
    await waitFor('all agents back', async () => (await connectedNodes(leader.address)).length === 3, 30_000, 250);
    for (const [i, id] of others.entries()) {
      const last = before[i][before[i].length - 1];
      // samples taken while the coordinator was down (about 6 batches a second) were replayed
      const seqs = await waitFor(`${id} caught up`, async () => {
        const s = await seqValues(id);
        return s[s.length - 1] > last + 15 ? s : undefined;
      }, 20_000, 250);
      expectGapFree(seqs, id);
    }
    expectGapFree(await seqValues(old.id), old.id);
  });

  it('loses no sample when an agent is killed with SIGKILL and restarted', async () => {
    const leader = await agreedLeader([...nodes.values()].map((n) => n.address));
    const victim = [...nodes.keys()].find((id) => id !== leader.id)!;
    const before = await seqValues(victim);
    await kill9(nodes.get(victim)!);
    nodes.set(victim, startHerdOn(bed, victim));
    const seqs = await waitFor(`${victim} streaming again`, async () => {
      const s = await seqValues(victim);
      return s[s.length - 1] > before[before.length - 1] + 5 ? s : undefined;
    }, 30_000, 250);
    expectGapFree(seqs, victim);
  });
});
