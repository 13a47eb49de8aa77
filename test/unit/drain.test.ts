// Draining a node: the mark kept by the node itself (real LMDB, reopened), and Admin.DrainNode
// end to end in one process: a real coordinator (gRPC, ingest, registry) and a real agent
// uplink whose command handler does what agent/node.ts does. test/integration/migration.test.ts
// drains a real node with the CLI, restarts it, and has a migration to it refused.
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { DrainState } from '../../agent/drain';
import { SampleLog } from '../../agent/samplelog';
import { Uplink } from '../../agent/uplink';
import { openEnv } from '../../common/db';
import { checkLabels } from '../../coordinator/ingest';
import { call, startCoordinator, type TestCoordinator } from '../helpers/coord';
import { tempDir, waitFor } from '../helpers/tmp';

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('DrainState', () => {
  it('starts from the config label, then keeps what it is told, across a reopen', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    let env = openEnv(t.dir);
    let d = new DrainState(env, { zone: 'lab', 'herd.draining': 'true' });
    expect(d.draining).toBe(true);
    expect(d.labels()).toEqual([{ key: 'zone', value: 'lab' }, { key: 'herd.draining', value: 'true' }]);
    await d.set(false, 'admin:alice');
    expect(d.labels()).toEqual([{ key: 'zone', value: 'lab' }]);
    await env.close();
    env = openEnv(t.dir);
    d = new DrainState(env, { zone: 'lab', 'herd.draining': 'true' }); // the config still says so: the node's own mark wins
    expect(d.draining).toBe(false);
    await d.set(true, 'admin:alice');
    expect(new DrainState(env, {}).draining).toBe(true);
    await env.close();
  });

  it('the coordinator refuses malformed labels in a node update', () => {
    expect(checkLabels([{ key: 'a', value: 'b' }])).toBeUndefined();
    expect(checkLabels('x')).toMatch(/must be a list/);
    expect(checkLabels(Array.from({ length: 65 }, () => ({ key: 'a', value: 'b' })))).toMatch(/at most 64 labels/);
    expect(checkLabels([{ key: '', value: 'b' }])).toMatch(/key and a value/);
    expect(checkLabels([{ key: 'a', value: 'v'.repeat(300) }])).toMatch(/at most 256 characters/);
    expect(checkLabels([null])).toMatch(/key and a value/);
  });
});

describe('Admin.DrainNode', () => {
  let c: TestCoordinator;
  async function agent(nodeId: string, answer = true) {
    const t = tempDir();
    const env = openEnv(t.dir, { mapSizeBytes: 64 * 1024 ** 2 });
    const log = new SampleLog(env, nodeId);
    const drain = new DrainState(env, { zone: 'lab' });
    const uplink: Uplink = new Uplink({
      log,
      target: () => c.address,
      hello: () => ({ node_id: nodeId, address: 'x:1', log_id: log.logId, arch: 'x64', cores: 2, term: 0, labels: drain.labels() }),
      inventory: () => ({ docker_reachable: true, containers: [] }),
      maxInFlight: 8,
      keepaliveMs: 200,
      deadAfterMs: 2000,
      onCommand: (cmd) => {
        if (!cmd?.drain || !answer) return;
        void drain.set(Boolean(cmd.drain.draining), cmd.drain.by).then(() => uplink.sendLabels(drain.labels()));
      },
    });
    uplink.start();
    cleanups.push(async () => {
      uplink.stop();
      await env.close();
      t.cleanup();
    });
    await waitFor(`${nodeId} connected`, () => c.registry.isConnected(nodeId), 5000);
    return { drain, uplink };
  }
  const status = async (req: unknown): Promise<[grpc.status, string]> => {
    try {
      await call(c.admin, 'DrainNode', req);
    } catch (err: any) {
      return [err.code, err.details];
    }
    throw new Error(`DrainNode ${JSON.stringify(req)} succeeded`);
  };

  it('drains a connected node, which keeps the mark; undrains it; answers bad requests clearly', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    c = await startCoordinator(t.dir);
    cleanups.push(() => c.stop());
    const a = await agent('n1');
    const r = await call(c.admin, 'DrainNode', { node_id: 'n1', draining: true });
    expect(r.node).toMatchObject({ node_id: 'n1', connected: true });
    expect(r.node.labels).toEqual([{ key: 'zone', value: 'lab' }, { key: 'herd.draining', value: 'true' }]);
    expect(a.drain.draining).toBe(true); // on the node's disk, before the answer
    const listed = await call(c.admin, 'ListNodes', {});
    expect(listed.nodes.find((n: any) => n.node_id === 'n1').labels).toContainEqual({ key: 'herd.draining', value: 'true' });
    const back = await call(c.admin, 'DrainNode', { node_id: 'n1', draining: false });
    expect(back.node.labels).toEqual([{ key: 'zone', value: 'lab' }]);
    expect(a.drain.draining).toBe(false);

    expect(await status({ node_id: '../n1', draining: true })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining('node_id')]);
    expect(await status({ node_id: 'ghost', draining: true })).toEqual([grpc.status.NOT_FOUND, 'no node "ghost" has ever connected; ListNodes shows the known nodes']);
    a.uplink.stop();
    await waitFor('n1 gone', () => !c.registry.isConnected('n1'), 5000);
    expect(await status({ node_id: 'n1', draining: true })).toEqual([grpc.status.UNAVAILABLE, 'node n1 is not connected: it keeps its drain mark itself, so it must be up to change it']);
    // a node that never reports the change: the caller is told, nothing is claimed
    await agent('n2', false);
    expect(await status({ node_id: 'n2', draining: true })).toEqual([grpc.status.DEADLINE_EXCEEDED, 'node n2 did not report the change within 1500 ms; ListNodes shows its labels when it does']);
  });
});
