/**
 * Failover time on the test bed with default election settings: from the leader's death
 * (kill -9), isolation (its link cut) or graceful stop (SIGTERM: it hands its role over
 * first) until the new leader has acknowledged a batch of every surviving agent, i.e.
 * samples flow into the cluster's store again, over N rounds each.
 *
 * "Acknowledged a batch" is read from the new leader's ListNodes: the agent's stream is
 * open and its acked seq has moved past the first value seen on the new leader, or has
 * reached the last seq the old leader had acknowledged (which the new leader can only
 * hold by having stored it in this term). There is no same-run baseline to alternate
 * with: the reference is Kubernetes' Lease defaults (~15 s) and etcd's 1 s election timeout.
 *
 *   npx vite-node bench/failover.ts [rounds=20] [nodes=3] [kinds=kill,partition,sigterm]
 *   (root; bed "bn2", subnet 92)
 */
import * as grpc from '@grpc/grpc-js';
import { startBed } from '../test/bed/bed';
import { adminClient, agreedLeader, kill9, startHerdOn, type HerdNode } from '../test/helpers/cluster';
import { report, sleep, spread } from './stats';

const rounds = Number(process.argv[2] ?? 20);
const size = Number(process.argv[3] ?? 3);
const KINDS = { kill: 'kill -9', partition: 'partition', sigterm: 'SIGTERM' } as const;
const kinds = (process.argv[4] ?? 'kill,partition,sigterm').split(',') as Array<keyof typeof KINDS>;

type Client = any;
const clients = new Map<string, Client>();
/** One Admin channel per node address, kept open, so polling costs no handshakes. */
const clientOf = (address: string): Client => clients.get(address) ?? clients.set(address, adminClient(address)).get(address);

function unary(c: Client, method: string, ms: number): Promise<any> {
  return new Promise((res) => c[method]({}, { deadline: Date.now() + ms }, (e: grpc.ServiceError | null, r: any) => res(e ? undefined : r)));
}

/** node id -> acked seq as the coordinator at `address` holds it, for the nodes it lists as connected. */
async function ackedByNode(address: string): Promise<Map<string, number> | undefined> {
  const r = await unary(clientOf(address), 'ListNodes', 500);
  if (!r) return undefined;
  return new Map(r.nodes.filter((n: any) => n.connected).map((n: any) => [n.node_id, Number(n.acked_seq)]));
}

async function main() {
  const bed = await startBed({ nodes: size, name: 'bn2', subnet: 92 });
  const nodes = new Map<string, HerdNode>();
  for (const b of bed.nodes) nodes.set(b.id, startHerdOn(bed, b.id));
  const addrs = (except?: string) => [...nodes.values()].filter((n) => n.id !== except).map((n) => n.address);
  const settle = async () => {
    const l = await agreedLeader(addrs(), 30_000);
    for (let i = 0; i < 300 && ((await ackedByNode(l.address))?.size ?? 0) < size; i++) await sleep(50);
    await sleep(500);
    return l;
  };

  /** ms from t0 until a new leader has acknowledged a batch of every survivor. */
  const recover = async (old: string, oldAcked: Map<string, number>, t0: number): Promise<{ leader: number; connected: number; acked: number }> => {
    const survivors = [...nodes.keys()].filter((id) => id !== old);
    const firstSeen = new Map<string, number>();
    let leader = '';
    let leaderAt = NaN;
    let connectedAt = NaN;
    for (;;) {
      const answers = await Promise.all(survivors.map((id) => unary(clientOf(nodes.get(id)!.address), 'GetLeader', 300)));
      const named = new Set(answers.map((a) => a?.leader_id ?? ''));
      const id = answers[0]?.leader_id;
      if (named.size === 1 && id && id !== old && answers.some((a) => a.answered_by === id)) {
        if (id !== leader) (leader = id), firstSeen.clear(), (leaderAt = performance.now() - t0), (connectedAt = NaN);
        const acked = await ackedByNode(nodes.get(id)!.address);
        if (acked) {
          for (const [n, seq] of acked) if (!firstSeen.has(n)) firstSeen.set(n, seq);
          if (connectedAt !== connectedAt && survivors.every((n) => acked.has(n))) connectedAt = performance.now() - t0;
          const done = survivors.every((n) => acked.has(n) && (acked.get(n)! > firstSeen.get(n)! || acked.get(n)! >= (oldAcked.get(n) ?? Infinity)));
          if (done) return { leader: leaderAt, connected: connectedAt, acked: performance.now() - t0 };
        }
      }
      await sleep(5);
    }
  };

  const results: Record<string, number[]> = {};
  const steps: Record<string, Array<{ leader: number; connected: number }>> = {};
  try {
    for (const k of kinds) {
      const kind = KINDS[k];
      results[kind] = [];
      steps[kind] = [];
      for (let i = 0; i < rounds; i++) {
        const old = await settle();
        const oldAcked = (await ackedByNode(old.address)) ?? new Map();
        const t0 = performance.now();
        if (k === 'kill') await kill9(nodes.get(old.id)!);
        else if (k === 'sigterm') void nodes.get(old.id)!.proc.stop(10_000);
        else await bed.isolate(old.id);
        const r = await recover(old.id, oldAcked, t0);
        results[kind].push(r.acked);
        steps[kind].push(r);
        if (k === 'sigterm') await nodes.get(old.id)!.proc.exited;
        if (k !== 'partition') nodes.set(old.id, startHerdOn(bed, old.id));
        else await bed.heal(old.id);
        process.stderr.write(`${kind} #${i + 1}: new leader agreed ${r.leader.toFixed(0)} ms, every survivor's stream open ${r.connected.toFixed(0)} ms, first batch of each acknowledged ${r.acked.toFixed(0)} ms\n`);
      }
    }
  } finally {
    for (const c of clients.values()) c.close();
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    await bed.stop();
  }
  console.log(`failover, ${size} nodes, default settings (heartbeat 100 ms, election timeout 500-1000 ms), ${rounds} rounds each, until the new leader has acknowledged a batch of every surviving agent:`);
  for (const [kind, xs] of Object.entries(results)) {
    console.log(`  ${kind}: medians: new leader agreed ${spread(steps[kind].map((x) => x.leader)).median.toFixed(0)} ms, streams open ${spread(steps[kind].map((x) => x.connected)).median.toFixed(0)} ms, acknowledged ${spread(xs).median.toFixed(0)} ms`);
    report({ name: `failover after ${kind} of the leader, to the first acknowledged batch of every survivor on the new leader`, unit: 'ms', herd: xs, target: 'median <= 1500 ms, worst <= 3000 ms (Kubernetes Lease defaults: ~15000 ms)' });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
