/**
 * Faults during a live migration on real processes (herd, dockerd, CRIU on the bed): a
 * migration whose answers are lost must never throw away a container that already runs on
 * the target. Source and target are the two nodes that do not coordinate, so the faults hit
 * only them.
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
let source = '';
let target = '';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const PAUSE = 'migration.pause_after_restore_ms=4000';

beforeAll(async () => {
  bed = await startBed({ nodes: 3, docker: true, name: 'nem', subnet: 81 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  const leader = await agreedLeader([...nodes.values()].map((n) => n.address), 20_000);
  coordinator = leader.address;
  [source, target] = bed.nodes.map((n) => n.id).filter((id) => id !== leader.id);
  await waitFor('3 agents streaming', async () => (await connectedNodes(coordinator)).length === 3, 30_000, 100);
  await waitFor('criu capability everywhere', async () => (await call(adminClient(coordinator), 'ListNodes', {})).nodes.every((n: any) => n.capabilities.includes('criu')), 20_000, 200);
});

afterAll(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

async function restart(id: string, env: NodeJS.ProcessEnv = {}, kill = false): Promise<void> {
  if (kill) await kill9(nodes.get(id)!);
  else await nodes.get(id)!.proc.stop();
  nodes.set(id, startHerdOn(bed, id, [], env));
}

async function connected(id: string): Promise<void> {
  await waitFor(`${id} streaming`, async () => (await connectedNodes(coordinator).catch((): string[] => [])).includes(id), 30_000, 100);
}

async function runCounter(node: string, name: string): Promise<string> {
  const r = await bed.docker(node, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
  expect(r.code, r.stderr).toBe(0);
  const herdId = r.stdout.trim().slice(0, 12);
  await waitFor(`${name} listed`, async () => (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId), 15_000, 100);
  return herdId;
}

const state = async (node: string, name: string) => (await bed.docker(node, 'inspect', '-f', '{{.State.Status}}', name)).stdout.trim();

/** The counter's whole output on a node: the history from the source, then what it counted there. */
async function counts(node: string, name: string): Promise<number[]> {
  return (await bed.docker(node, 'logs', name)).stdout.trim().split('\n').map(Number);
}

/** Every number once, in order, from 1: the counter never restarted, never went back, lost nothing. */
function expectOneHistory(values: number[]): void {
  expect(values[0]).toBe(1);
  const broken = values.findIndex((v, i) => i > 0 && v !== values[i - 1] + 1);
  expect(broken, `the count breaks at ${broken}: ${values.slice(Math.max(0, broken - 3), broken + 3).join(',')}`).toBe(-1);
}

async function expectOnlyOn(node: string, other: string, name: string): Promise<void> {
  expect(await state(node, name)).toBe('running');
  expect((await bed.docker(other, 'ps', '-aq', '--filter', `name=^${name}$`)).stdout.trim()).toBe('');
}

describe('a migration whose answers are lost never throws away the running target', () => {
  it("the target's agent is killed -9 after it restored (its dockerd keeps running): once it is back, the migration finishes forward", async () => {
    await restart(target, { HERD_FAULTS: PAUSE });
    await connected(target);
    const herdId = await runCounter(source, 'tkill');
    await new Promise((r) => setTimeout(r, 1500));
    const pending = migrate(coordinator, herdId, target, 'FS_MODE_DIFF', 90_000);
    await waitFor('the container runs on the target', async () => (await state(target, 'tkill')) === 'running', 30_000, 50);
    await restart(target, {}, true); // killed in its pause: the restore's answer is never sent
    const r = await pending;
    expect(r.error, JSON.stringify(r.error)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('SUCCEEDED');
    // the dropped answer was asked about (the record said so while it waited), then finished forward
    expect(r.records.some((m: any) => /waiting for .* to say whether it runs the container/.test(m.reason)), JSON.stringify(r.records.map((m: any) => m.reason))).toBe(true);
    expect(r.last.reason).toMatch(/the target runs the container: finished forward/);
    await new Promise((res) => setTimeout(res, 500));
    await expectOnlyOn(target, source, 'tkill');
    const values = await counts(target, 'tkill');
    expectOneHistory(values); // the count goes on from where it was: nothing it did on the target is lost
    expect(values.length).toBeGreaterThan(20);
  }, 120_000); // restarts of agents take a while on a loaded machine

  it('the source agent is killed -9 while the target already runs the container: after its restart it finishes forward', async () => {
    await restart(target, { HERD_FAULTS: PAUSE });
    await connected(target);
    const herdId = await runCounter(source, 'skill');
    await new Promise((r) => setTimeout(r, 1500));
    const pending = migrate(coordinator, herdId, target, 'FS_MODE_DIFF', 90_000);
    await waitFor('the container runs on the target', async () => (await state(target, 'skill')) === 'running', 30_000, 50);
    await restart(source, {}, true);
    const r = await pending;
    expect(r.error, JSON.stringify(r.error)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('SUCCEEDED');
    expect(r.last.reason).toMatch(/restarted during the migration.*the target runs the container: finished forward/);
    await new Promise((res) => setTimeout(res, 500));
    await expectOnlyOn(target, source, 'skill');
    expectOneHistory(await counts(target, 'skill'));
    await restart(target);
    await connected(target);
  }, 120_000);
});
