/**
 * Coordinator election with real herd processes, each in its own network namespace:
 * kill -9 of the leader, a leader cut off by the network, a whole-cluster restart, in
 * 3- and 5-node clusters. After each: one leader, every agent streaming to it, and no
 * gap in any node's sample sequence (herd.batch.seq).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_SEQ_METRIC } from '../../agent/samplelog';
import { startBed, type Bed } from '../bed/bed';
import { adminClient, agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../helpers/cluster';
import { call } from '../helpers/coord';
import { HERD, PYGRPCURL, runCmd } from '../helpers/herd';
import { waitFor } from '../helpers/tmp';
import { join } from 'node:path';
import { testPki } from '../helpers/pki';

let bed: Bed | undefined;
const nodes = new Map<string, HerdNode>();

afterEach(async () => {
  for (const n of nodes.values()) await n.proc.stop().catch(() => {});
  nodes.clear();
  await bed?.stop();
  bed = undefined;
});

async function cluster(n: number): Promise<void> {
  bed = await startBed({ nodes: n, name: 'el' });
  for (const b of bed.nodes) nodes.set(b.id, startHerdOn(bed, b.id));
  const leader = await agreedLeader(addresses(), 20_000);
  await waitFor(`all ${n} agents streaming`, async () => (await connectedNodes(leader.address)).length === n, 30_000, 100);
}

const addresses = (except: string[] = []) => [...nodes.values()].filter((n) => !except.includes(n.id)).map((n) => n.address);

/** Waits until every node in `ids` is streaming to the leader and its sequence has grown past `after`, then checks it is gap-free. */
async function expectNoLostSample(leaderAddress: string, ids: string[], after: Record<string, number> = {}): Promise<void> {
  const admin = adminClient(leaderAddress);
  try {
    for (const id of ids) {
      const seqs: number[] = await waitFor(`${id}'s samples at the leader`, async () => {
        const r = await call(admin, 'QuerySamples', { entity: id, metric: BATCH_SEQ_METRIC }).catch(() => undefined);
        const v = r?.points.map((p: any) => p.value) ?? [];
        return v.length && v[v.length - 1] > (after[id] ?? 0) + 3 ? v : undefined;
      }, 20_000, 100);
      expect(seqs[0], `${id} history starts at 1`).toBe(1);
      expect(seqs.filter((v, i) => i > 0 && v !== seqs[i - 1] + 1), `${id}: gaps`).toEqual([]);
    }
  } finally {
    admin.close();
  }
}

async function lastSeqs(leaderAddress: string): Promise<Record<string, number>> {
  const admin = adminClient(leaderAddress);
  try {
    const out: Record<string, number> = {};
    for (const id of nodes.keys()) {
      const r = await call(admin, 'QuerySamples', { entity: id, metric: BATCH_SEQ_METRIC }).catch(() => undefined);
      out[id] = r?.points.length ? r.points[r.points.length - 1].value : 0;
    }
    return out;
  } finally {
    admin.close();
  }
}

async function killLeaderAndCheck(): Promise<void> {
  const old = await agreedLeader(addresses());
  const before = await lastSeqs(old.address);
  await kill9(nodes.get(old.id)!);
  const leader = await agreedLeader(addresses([old.id]), 10_000);
  expect(leader.id).not.toBe(old.id);
  expect(leader.term).toBeGreaterThan(old.term);
  const survivors = [...nodes.keys()].filter((id) => id !== old.id);
  await waitFor('every surviving agent streaming to the new leader', async () => (await connectedNodes(leader.address)).length === survivors.length, 10_000, 50);
  await expectNoLostSample(leader.address, survivors, before);
  // the old leader comes back as a follower and its history is complete too
  nodes.set(old.id, startHerdOn(bed!, old.id));
  const again = await agreedLeader(addresses(), 10_000);
  expect(again.id).toBe(leader.id);
  await expectNoLostSample(leader.address, [old.id], before);
}

describe('election on real processes', () => {
  it('3 nodes: kill -9 of the leader elects another; every agent follows it; nothing is lost', async () => {
    await cluster(3);
    // herd status asked through a follower shows the coordinator's view
    const leader = await agreedLeader(addresses());
    const follower = [...nodes.values()].find((n) => n.id !== leader.id)!;
    const pki = testPki();
    const st = await runCmd(process.execPath, [HERD, 'status', '-s', follower.address, '--cacert', pki.caCert, '--cert', pki.adminCert, '--key', pki.adminKey]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toContain(`coordinator: ${leader.id} at ${leader.address}, term ${leader.term}`);
    expect(st.stdout).toContain(`view of: ${leader.id}`);
    expect(st.stdout.split('\n').filter((l) => / (leader|follower) .* yes /.test(l)).length).toBe(3);
    await killLeaderAndCheck();
  });

  it('3 nodes: a leader cut off by the network stops coordinating; the majority elects; healing leaves one leader', async () => {
    await cluster(3);
    const old = await agreedLeader(addresses());
    const before = await lastSeqs(old.address);
    await bed!.isolate(old.id);
    const leader = await agreedLeader(addresses([old.id]), 10_000);
    expect(leader.id).not.toBe(old.id);
    // the minority side: ask the isolated node itself, from inside its namespace
    const view = await waitFor('the isolated node to step down', async () => {
      const r = await bed!.exec(old.id, PYGRPCURL, [...testPki().adminFlags, nodes.get(old.id)!.address, 'herd.v1.Admin/GetCluster']);
      const v = r.code === 0 ? JSON.parse(r.stdout) : undefined;
      return v && v.members.find((m: any) => m.self).role !== 'leader' ? v : undefined;
    }, 5000, 100);
    expect(view.answered_by).toBe(old.id);
    const listed = await bed!.exec(old.id, PYGRPCURL, [...testPki().adminFlags, nodes.get(old.id)!.address, 'herd.v1.Admin/ListNodes']);
    expect(listed.stderr).toMatch(/Code: Unavailable/); // it does not act as coordinator
    await bed!.heal(old.id);
    const healed = await agreedLeader(addresses(), 10_000);
    expect(healed.id).toBe(leader.id); // the returning node did not depose it
    await waitFor('all 3 streaming after healing', async () => (await connectedNodes(healed.address)).length === 3, 10_000, 100);
    await expectNoLostSample(healed.address, [...nodes.keys()], before);
  });

  it('3 nodes: hostile election messages are refused with a reason and change nothing', async () => {
    await cluster(3);
    const leader = await agreedLeader(addresses());
    const target = [...nodes.values()].find((n) => n.id !== leader.id)!;
    // Sent with the leader's own node certificate: only malformed content can be wrong.
    const tls = join(nodes.get(leader.id)!.dataDir, 'tls');
    const asLeader = ['-cacert', join(tls, 'ca.crt'), '-cert', join(tls, 'node.crt'), '-key', join(tls, 'node.key')];
    const send = (msg: unknown, flags = asLeader) => runCmd(PYGRPCURL, [...flags, '-d', JSON.stringify(msg), target.address, 'herd.v1.Peer/Exchange']);
    const cases: Array<[unknown, RegExp]> = [
      [{ type: 'HEARTBEAT', from: leader.id, to: target.id, term: '9007199254740000' }, /term/i],
      [{ type: 'ELECTION_MESSAGE_TYPE_UNSPECIFIED', from: leader.id, to: target.id, term: '1' }, /type/i],
      [{ type: 'HEARTBEAT', from: leader.id, to: 'someone-else', term: String(leader.term) }, /not for this node|to/i],
    ];
    for (const [msg, re] of cases) {
      const r = await send(msg);
      expect(r.code, `${JSON.stringify(msg)} was accepted: ${r.stdout}`).not.toBe(0);
      expect(r.stderr).toMatch(/Code: InvalidArgument/);
      expect(r.stderr, JSON.stringify(msg)).toMatch(re);
    }
    // A node speaks only for itself: its certificate must name the sender.
    for (const msg of [{ type: 'HEARTBEAT', from: 'mallory', to: target.id, term: String(leader.term + 1) }, { type: 'VOTE', from: target.id, to: target.id, term: '5' }, {}]) {
      const r = await send(msg);
      expect(r.stderr, JSON.stringify(msg)).toMatch(/Code: PermissionDenied/);
      expect(r.stderr).toMatch(new RegExp(`certificate names node "${leader.id}"`));
    }
    // Operators do not vote; strangers do not get in.
    const op = await send({ type: 'HEARTBEAT', from: leader.id, to: target.id, term: String(leader.term + 1) }, testPki().adminFlags);
    expect(op.stderr).toMatch(/Code: PermissionDenied/);
    expect(op.stderr).toMatch(/node-to-node traffic/);
    const anon = await send({ type: 'HEARTBEAT', from: leader.id, to: target.id, term: String(leader.term + 1) }, ['-cacert', join(tls, 'ca.crt')]);
    expect(anon.stderr).toMatch(/Code: Unauthenticated/);
    const after = await agreedLeader(addresses());
    expect(after).toEqual(leader); // same leader, same term: nothing moved
    for (const n of nodes.values()) expect(n.proc.child.exitCode).toBeNull();
  });

  it('3 nodes: all restarted at once, the cluster comes back with its history', async () => {
    await cluster(3);
    const before = await lastSeqs((await agreedLeader(addresses())).address);
    await Promise.all([...nodes.values()].map(kill9));
    for (const id of [...nodes.keys()]) nodes.set(id, startHerdOn(bed!, id));
    const leader = await agreedLeader(addresses(), 20_000);
    await waitFor('all 3 streaming', async () => (await connectedNodes(leader.address)).length === 3, 20_000, 100);
    await expectNoLostSample(leader.address, [...nodes.keys()], before);
  });

  it('3 nodes: a leader stopped with SIGTERM hands its role over first; every agent follows the successor; nothing is lost', async () => {
    await cluster(3);
    const old = await agreedLeader(addresses());
    const before = await lastSeqs(old.address);
    const stopping = nodes.get(old.id)!;
    await stopping.proc.stop(10_000);
    expect((await stopping.proc.exited).code).toBe(0);
    const log = stopping.proc.log();
    const handed = /handed the coordinator role over to=(\S+) term=(\d+)/.exec(log);
    expect(handed, log.slice(-2000)).not.toBeNull();
    const leader = await agreedLeader(addresses([old.id]), 10_000);
    // the successor it named won the very next term: no election timeout, no pre-vote round
    expect([leader.id, leader.term]).toEqual([handed![1], old.term + 1]);
    expect(Number(handed![2])).toBe(old.term + 1);
    const survivors = [...nodes.keys()].filter((id) => id !== old.id);
    await waitFor('every surviving agent streaming to the successor', async () => (await connectedNodes(leader.address)).length === survivors.length, 10_000, 50);
    await expectNoLostSample(leader.address, survivors, before);
    nodes.set(old.id, startHerdOn(bed!, old.id));
    expect((await agreedLeader(addresses(), 10_000)).id).toBe(leader.id);
    await expectNoLostSample(leader.address, [old.id], before);
  });

  it('5 nodes: kill -9 of the leader elects another; every agent follows it; nothing is lost', async () => {
    await cluster(5);
    await killLeaderAndCheck();
  });
});
