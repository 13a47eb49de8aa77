/**
 * Where containers start. 'given': the scenario names each one's node. 'spread': each in
 * turn on the node with memory room that is least loaded after it (demand at t=0 over
 * capacity). 'cloudsim': CloudSim's initial allocation in its PlanetLab examples (power-aware
 * best fit over the VMs in order: each VM reserves its full MIPS and RAM, 1 Gbit/s of host
 * bandwidth shared by 100 Mbit/s VMs, and goes where the host's power rises least: from the
 * host's measured power, 0 before the first update, to its power with the MIPS allocated so
 * far plus the VM's, so VMs take empty hosts first, one each). A container that fits nowhere is
 * rejected: index -1, counted by the engine.
 */
import { seriesAt, type SimSpec } from './model';
import { watts } from './power';

const MB = 1024 * 1024;

export function initialPlacement(spec: SimSpec): number[] {
  if (spec.placement === 'cloudsim') return cloudSimPlacement(spec);
  const index = new Map(spec.nodes.map((n, i) => [n.id, i]));
  if (spec.placement === 'given') return spec.containers.map((c) => index.get(c.node) ?? -1);
  const load = spec.nodes.map(() => 0);
  const mem = spec.nodes.map(() => 0);
  return spec.containers.map((c) => {
    if (c.node && index.has(c.node)) {
      const i = index.get(c.node)!;
      load[i] += seriesAt(c.cpu, 0);
      mem[i] += c.memoryBytes;
      return i;
    }
    const d = seriesAt(c.cpu, 0);
    let best = -1;
    let bestScore = Infinity;
    spec.nodes.forEach((n, i) => {
      if (mem[i] + c.memoryBytes > n.memoryBytes) return;
      const score = (load[i] + d) / (n.pes * n.peUnits);
      if (score < bestScore) (bestScore = score), (best = i);
    });
    if (best >= 0) (load[best] += d), (mem[best] += c.memoryBytes);
    return best;
  });
}

/** CloudSim 4.0 PowerVmAllocationPolicyMigrationAbstract.findHostForVm at t=0. */
function cloudSimPlacement(spec: SimSpec): number[] {
  const used = spec.nodes.map(() => 0);
  const ram = spec.nodes.map((n) => Math.floor(n.memoryBytes / MB));
  const bw = spec.nodes.map(() => 1_000_000);
  return spec.containers.map((c) => {
    const mips = c.limitUnits;
    const vmRam = Math.floor(c.memoryBytes / MB);
    let best = -1;
    let minPower = Number.MAX_VALUE;
    spec.nodes.forEach((n, i) => {
      const total = n.pes * n.peUnits;
      if (n.peUnits < mips || total - used[i] < mips || ram[i] < vmRam || bw[i] < 100_000) return;
      // Allocated MIPS so far plus the VM's, against the measured power: idle before the first update.
      const diff = watts(n.power, (used[i] + mips) / total) - watts(n.power, 0);
      if (diff < minPower) (minPower = diff), (best = i);
    });
    if (best >= 0) {
      used[best] += mips;
      ram[best] -= vmRam;
      bw[best] -= 100_000;
    }
    return best;
  });
}
