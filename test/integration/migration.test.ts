/**
 * Live migration with real dockerd + CRIU on the test bed, through the Admin API of a
 * real herd cluster: state continues, files follow, identity and history follow; every
 * rollback path by fault injection; bad requests refused without touching anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
let coordinator = '';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'mig' });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
  await waitFor('3 agents streaming', async () => (await connectedNodes(coordinator)).length === 3, 30_000, 100);
  await waitFor('criu capability everywhere', async () => {
    const r = await call(adminClient(coordinator), 'ListNodes', {});
    return r.nodes.every((n: any) => n.capabilities.includes('criu'));
  }, 20_000, 200);
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

/** Starts a container on a node and waits for the coordinator to list it; returns its herd id. */
async function runOn(node: string, name: string, args: string[], cmd = COUNTER): Promise<string> {
  const r = await bed.docker(node, 'run', '-d', '--name', name, ...args, BUSYBOX_IMAGE, 'sh', '-c', cmd);
  expect(r.code, r.stderr).toBe(0);
  const herdId = r.stdout.trim().slice(0, 12);
  await waitFor(`${name} listed`, async () => (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running'), 15_000, 100);
  return herdId;
}

async function lastLog(node: string, name: string): Promise<number> {
  const r = await bed.docker(node, 'logs', '--tail', '1', name);
  return Number(r.stdout.trim().split('\n').pop());
}

describe('live migration', () => {
  it('moves a running counter with its files: the count continues on the target, the source is gone', async () => {
    const herdId = await runOn('n1', 'counter', []);
    expect((await bed.docker('n1', 'exec', 'counter', 'sh', '-c', 'echo written-on-n1 > /root/state.txt')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    const before = await lastLog('n1', 'counter');
    const r = await migrate(coordinator, herdId, 'n2');
    expect(r.error, JSON.stringify(r)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('SUCCEEDED');
    expect(r.last.timings.map((t: any) => t.step)).toEqual(expect.arrayContaining(['PREPARE', 'CHECKPOINT', 'PACKAGE', 'TRANSFER', 'APPLY_FS', 'RESTORE', 'REMOVE_SOURCE']));
    expect(Number(r.last.downtime_ms)).toBeGreaterThan(0);
    await new Promise((r2) => setTimeout(r2, 500));
    const after = await lastLog('n2', 'counter');
    expect(after).toBeGreaterThan(before); // the counter did not restart from 1
    expect((await bed.docker('n2', 'exec', 'counter', 'cat', '/root/state.txt')).stdout.trim()).toBe('written-on-n1');
    expect((await bed.docker('n1', 'ps', '-aq', '--filter', 'name=counter')).stdout.trim()).toBe('');
    const detail = await waitFor('history shows n1 then n2', async () => {
      const d = await call(adminClient(coordinator), 'GetContainer', { herd_id: herdId });
      return d.history.length === 2 ? d : undefined;
    }, 15_000, 200);
    expect(detail.history.map((v: any) => v.node_id)).toEqual(['n1', 'n2']);
    expect(detail.container).toMatchObject({ herd_id: herdId, node_id: 'n2' });
    const list = await call(adminClient(coordinator), 'ListMigrations', { herd_id: herdId });
    expect(list.migrations[0]).toMatchObject({ migration_id: r.last.migration_id, state: 'SUCCEEDED' });
  });
});
