/**
 * The control experiment's parts, real: workload images built offline (test/bed/images.sh),
 * a capped bed node (CPU quota on its cgroup parent, disk IOPS split into its containers'
 * blkio throttles), and a real herd agent reading each workload's ops from its log.
 * Figures of the experiment itself are a bench (bench/control-experiment.ts), not a test.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBed, type Bed } from '../bed/bed';
import { nodeCpuSeconds } from '../bed/caps';
import { workloadArgs, type WorkloadKind } from '../bed/workloads';
import { adminClient, agreedLeader, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { waitFor } from '../helpers/tmp';

const CORES = 0.5;
const IOPS = 300;
let bed: Bed;
let herd: HerdNode;
let admin: any;

beforeAll(async () => {
  bed = await startBed({ name: 'wl', subnet: 111, nodes: 1, docker: true, cpuCores: [CORES], diskIops: [IOPS], images: ['sysbench', 'fio'] });
  herd = startHerdOn(bed, 'n1');
  admin = adminClient((await agreedLeader([herd.address], 20_000)).address);
});

afterAll(async () => {
  admin?.close();
  await herd?.proc.stop().catch(() => {});
  await bed?.stop();
});

/** The newest ops samples herd stored for a container (by name), once it has `n` of them. */
async function opsThroughHerd(name: string, n: number): Promise<number[]> {
  return waitFor(`${n} ops samples of ${name} through herd`, async () => {
    const list = await call(admin, 'ListContainers', {});
    const c = list.containers.find((x: any) => x.name === name);
    if (!c) return undefined;
    const q = await call(admin, 'QuerySamples', { entity: c.herd_id, metric: 'container.ops' });
    return q.points.length >= n ? q.points.slice(-n).map((p: any) => p.value as number) : undefined;
  }, 30_000, 250);
}

describe('workloads on a capped bed node', () => {
  it('sysbench cpu (1 and 4 threads) and fio report their ops through herd, within the node caps', async () => {
    const kinds: [WorkloadKind, string][] = [['cpu', 'sb1'], ['cpu-mt', 'sb4'], ['disk', 'fio']];
    for (const [kind, name] of kinds) {
      const r = await bed.docker('n1', 'run', '-d', ...workloadArgs(kind, name));
      expect(r.code, r.stderr).toBe(0);
    }
    const ops = Object.fromEntries(await Promise.all(kinds.map(async ([, name]) => [name, await opsThroughHerd(name, 4)] as const)));
    for (const [name, values] of Object.entries(ops)) expect(Math.min(...values), `${name}: ${values}`).toBeGreaterThan(0);

    // CPU: the node's containers together get the quota, not the machine's cores
    const parent = bed.node('n1').cgroupParent;
    const c0 = nodeCpuSeconds(parent);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const cores = (nodeCpuSeconds(parent) - c0) / ((performance.now() - t0) / 1000);
    expect(cores).toBeGreaterThan(CORES * 0.5);
    expect(cores).toBeLessThan(CORES * 1.1);

    // disk: fio, the node's only disk user, holds the whole cap in its own throttle and stays under it
    const id = (await bed.docker('n1', 'inspect', '-f', '{{.Id}}', 'fio')).stdout.trim();
    const rule = readFileSync(`/sys/fs/cgroup/blkio${parent}/${id}/blkio.throttle.read_iops_device`, 'utf8').trim();
    expect(rule).toMatch(new RegExp(`^\\d+:\\d+ ${IOPS}$`));
    const iops = await opsThroughHerd('fio', 3);
    // a report interval that straddles a throttle slice reads a little over the cap (331 for 300 seen)
    expect(Math.max(...iops), `fio IOPS ${iops}`).toBeLessThanOrEqual(IOPS * 1.25);
    expect(Math.max(...iops), `fio IOPS ${iops}`).toBeGreaterThan(IOPS * 0.5);
  });
});
