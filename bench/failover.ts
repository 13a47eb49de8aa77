/**
 * Failover time on the test bed with default election settings: from the leader's death
 * (kill -9), isolation (its link cut) or graceful stop (SIGTERM: it hands its role over
 * first) to every surviving agent streaming to the new leader, over N rounds each. Baseline for comparison: Kubernetes' Lease defaults
 * (~15 s) and etcd's 1 s election timeout.
 *
 *   npx vite-node bench/failover.ts [rounds=20] [nodes=3]      (root; uses test/bed)
 */
import { startBed } from '../test/bed/bed';
import { agreedLeader, connectedNodes, kill9, startHerdOn, type HerdNode } from '../test/helpers/cluster';

const rounds = Number(process.argv[2] ?? 20);
const size = Number(process.argv[3] ?? 3);

async function main() {
  const bed = await startBed({ nodes: size, name: 'fo' });
  const nodes = new Map<string, HerdNode>();
  for (const b of bed.nodes) nodes.set(b.id, startHerdOn(bed, b.id));
  const addrs = (except?: string) => [...nodes.values()].filter((n) => n.id !== except).map((n) => n.address);
  const settle = async () => {
    const l = await agreedLeader(addrs(), 30_000);
    for (let i = 0; i < 300 && (await connectedNodes(l.address)).length < size; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    return l;
  };

  /** ms from t0 until the survivors agree on a new leader and all of them stream to it. */
  const recover = async (old: string, t0: number) => {
    for (;;) {
      const l = await agreedLeader(addrs(old), 30_000);
      if (l.id !== old) {
        const connected = await connectedNodes(l.address).catch(() => []);
        if (connected.filter((id) => id !== old).length === size - 1) return performance.now() - t0;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  const results: Record<string, number[]> = { 'kill -9': [], partition: [], SIGTERM: [] };
  try {
    for (const kind of ['kill -9', 'partition', 'SIGTERM'] as const) {
      for (let i = 0; i < rounds; i++) {
        const old = await settle();
        const t0 = performance.now();
        if (kind === 'kill -9') await kill9(nodes.get(old.id)!);
        else if (kind === 'SIGTERM') void nodes.get(old.id)!.proc.stop(10_000);
        else await bed.isolate(old.id);
        results[kind].push(await recover(old.id, t0));
        if (kind === 'SIGTERM') await nodes.get(old.id)!.proc.exited;
        if (kind !== 'partition') nodes.set(old.id, startHerdOn(bed, old.id));
        else await bed.heal(old.id);
        process.stderr.write(`${kind} #${i + 1}: ${results[kind][i].toFixed(0)} ms\n`);
      }
    }
  } finally {
    for (const n of nodes.values()) await n.proc.stop().catch(() => {});
    await bed.stop();
  }
  console.log(`failover, ${size} nodes, default settings (heartbeat 100 ms, election timeout 500-1000 ms), ${rounds} rounds each:`);
  for (const [kind, xs] of Object.entries(results)) {
    const s = [...xs].sort((a, b) => a - b);
    const median = s[Math.floor(s.length / 2)];
    console.log(`  ${kind.padEnd(9)}: median ${median.toFixed(0)} ms, worst ${s[s.length - 1].toFixed(0)} ms  (vs Kubernetes Lease ~15000 ms: ${(15000 / median).toFixed(0)}x faster; target median <= 1500, worst <= 3000)`);
  }
}

void main();
