/**
 * A full disk during a live migration, on real processes (herd, dockerd, CRIU on the bed):
 * the agents' image tmpfs, where the fast path dumps a checkpoint on the source and fetches
 * it to on the target, shrunk to what it holds plus 16 KiB (test/bed/diskfull.ts). Either
 * way the migration rolls back with a reason that names the full disk, the container runs
 * exactly once, on the source, counting on from where it was, and neither node keeps
 * anything of the migration (no container, no files under migrations/, nothing on the tmpfs).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { fillImageTmpfs, imageTmpfsEntries, imageTmpfsOf } from '../bed/diskfull';
import { adminClient, agreedLeader, connectedNodes, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { migrate } from '../helpers/migrate';
import { waitFor } from '../helpers/tmp';

let bed: Bed;
const nodes = new Map<string, HerdNode>();
let coordinator = '';
const heal: Array<() => Promise<void>> = [];
/** What each node's image tmpfs held before this file's migrations (it outlives beds). */
const before = new Map<string, Set<string>>();

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const FULL = /no space left on device|ENOSPC/i;

beforeAll(async () => {
  bed = await startBed({ nodes: 2, docker: true, name: 'ex', subnet: 161 });
  for (const n of bed.nodes) nodes.set(n.id, startHerdOn(bed, n.id));
  await settled();
  for (const n of bed.nodes) {
    await waitFor(`${n.id}'s image tmpfs`, () => imageTmpfsOf(bed, n.id), 20_000, 100);
    before.set(n.id, new Set(imageTmpfsEntries(bed, n.id)));
  }
});

afterAll(async () => {
  for (const h of heal.splice(0)) await h().catch(() => {});
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  await bed?.stop();
});

/** Both agents streaming to an agreed coordinator with CRIU (asked again before each step: on a loaded machine the role may move). */
async function settled(): Promise<void> {
  await waitFor('a settled cluster', async () => {
    coordinator = (await agreedLeader([...nodes.values()].map((n) => n.address), 20_000)).address;
    const listed = (await call(adminClient(coordinator), 'ListNodes', {})).nodes;
    return (await connectedNodes(coordinator)).length === 2 && listed.every((n: any) => n.capabilities.includes('criu'));
  }, 60_000, 200);
}

async function runCounter(node: string, name: string): Promise<string> {
  await settled();
  const r = await bed.docker(node, 'run', '-d', '--name', name, BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
  expect(r.code, r.stderr).toBe(0);
  const herdId = r.stdout.trim().slice(0, 12);
  await waitFor(`${name} listed running`, async () => {
    await settled();
    return (await call(adminClient(coordinator), 'ListContainers', { node_id: node })).containers.some((c: any) => c.herd_id === herdId && c.state === 'running');
  }, 30_000, 100);
  return herdId;
}

/** Every number once, in order, from 1: the counter never restarted, never went back. */
async function expectOneHistory(node: string, name: string): Promise<void> {
  const values = (await bed.docker(node, 'logs', name)).stdout.trim().split('\n').map(Number);
  expect(values[0]).toBe(1);
  const broken = values.findIndex((v, i) => i > 0 && v !== values[i - 1] + 1);
  expect(broken, `the count breaks at ${broken}: ${values.slice(Math.max(0, broken - 3), broken + 3).join(',')}`).toBe(-1);
}

/** Runs on `on` only, and nothing of the migration is left on either node. */
async function expectOnceAndClean(on: string, name: string): Promise<void> {
  for (const n of bed.nodes) {
    const all = (await bed.docker(n.id, 'ps', '-a', '--format', '{{.Names}} {{.State}}')).stdout.split('\n').filter((l) => l.startsWith(`${name} `));
    expect(all, `${name} on ${n.id}`).toEqual(n.id === on ? [`${name} running`] : []);
    for (const sub of ['in', 'out']) {
      const dir = join(nodes.get(n.id)!.dataDir, 'migrations', sub);
      expect(existsSync(dir) ? readdirSync(dir) : [], `${dir}`).toEqual([]);
    }
    expect(imageTmpfsEntries(bed, n.id).filter((e) => !before.get(n.id)!.has(e)), `${n.id}'s image tmpfs`).toEqual([]);
  }
}

describe('a full disk during a migration', () => {
  const [a, b] = ['n1', 'n2'];

  it("the target's image tmpfs is full: the transfer runs out of space, the migration rolls back saying so, and the container counts on at the source", async () => {
    const herdId = await runCounter(a, 'tfull');
    await new Promise((r) => setTimeout(r, 1000));
    heal.push(await fillImageTmpfs(bed, b));
    await settled();
    const r = await migrate(coordinator, herdId, b, 'FS_MODE_DIFF', 60_000);
    await heal.pop()!();
    expect(r.error, JSON.stringify(r.error)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('ROLLED_BACK');
    expect(r.last.reason).toMatch(FULL);
    expect(r.last.reason).toMatch(new RegExp(`on ${b}: no space left on device: the file system of ${imageTmpfsOf(bed, b)}/`));
    await new Promise((res) => setTimeout(res, 500));
    await expectOnceAndClean(a, 'tfull');
    await expectOneHistory(a, 'tfull');
    // with its space back the same move goes through
    await settled();
    const again = await migrate(coordinator, herdId, b, 'FS_MODE_DIFF', 60_000);
    expect(again.last.state, again.last.reason).toBe('SUCCEEDED');
    await expectOnceAndClean(b, 'tfull');
    await expectOneHistory(b, 'tfull');
  }, 120_000);

  it("the source's image tmpfs is full: the dump fails, the migration rolls back saying so, and the container was never stopped for good", async () => {
    const herdId = await runCounter(a, 'sfull');
    await new Promise((r) => setTimeout(r, 1000));
    heal.push(await fillImageTmpfs(bed, a));
    await settled();
    const r = await migrate(coordinator, herdId, b, 'FS_MODE_DIFF', 60_000);
    await heal.pop()!();
    expect(r.error, JSON.stringify(r.error)).toBeUndefined();
    expect(r.last.state, r.last.reason).toBe('ROLLED_BACK');
    expect(r.last.reason).toMatch(FULL);
    // the source's own tmpfs named, not CRIU's last line before its log was cut off
    expect(r.last.reason).toMatch(new RegExp(`^checkpoint failed: .*: no space left on device: the file system of ${imageTmpfsOf(bed, a)} `));
    await new Promise((res) => setTimeout(res, 500));
    await expectOnceAndClean(a, 'sfull');
    await expectOneHistory(a, 'sfull');
  }, 120_000);
});
