/**
 * One node's CPU and disk shared among the containers on it, by the scenario's contention
 * model (contention.ts), written into the world's state: each container's CPU, IOPS and ops,
 * the node's allocated and requested CPU and its utilization.
 */
import { cloudSimShare, containerOps, fairShare } from './contention';
import { incoming, type CState, type World } from './world';

export const opsOf = (c: CState): number => containerOps(c.spec.ops, c.got, c.want, c.iopsGot, c.iopsWant);

export function shareNode(w: World, n: number): void {
  const { cs, spec } = w;
  const node = w.nodes[n];
  const ns = spec.nodes[n];
  const list = node.list;
  const alloc = new Float64Array(list.length);
  if (w.cloudsim) {
    const vmBuf = w.vmBuf;
    vmBuf.length = 0;
    for (const i of list) {
      const m = cs[i].mig;
      vmBuf.push({ req: cs[i].demand, migratingIn: incoming(m, n), migratingOut: !!m && m.from === n });
    }
    const r = cloudSimShare(vmBuf, ns.peUnits, ns.pes, alloc);
    list.forEach((i, k) => {
      if (vmBuf[k].migratingIn) return;
      const c = cs[i];
      c.got = alloc[k];
      c.iopsGot = c.iopsWant;
      c.ops = opsOf(c);
    });
    node.allocated = r.utilizationMips;
    node.requested = r.requestedMips;
    let u = r.utilizationMips / node.cap;
    if (u > 1 && u < 1.01) u = 1;
    node.util = Math.min(1, u);
    node.diskOps = 0;
    return;
  }
  const wants = list.map((i) => (cs[i].frozen ? 0 : Math.min(cs[i].want, ns.pes * ns.peUnits, cs[i].spec.threads * ns.peUnits)));
  const capacity = Math.max(0, node.cap - node.migCpu);
  fairShare(wants, capacity, alloc);
  const iopsWants = list.map((i) => (cs[i].frozen ? 0 : cs[i].iopsWant));
  const iops = new Float64Array(list.length);
  if (ns.diskIops > 0) fairShare(iopsWants, ns.diskIops, iops);
  else iopsWants.forEach((x, k) => (iops[k] = x));
  let got = 0;
  let wanted = 0;
  let diskOps = 0;
  list.forEach((i, k) => {
    const c = cs[i];
    c.got = alloc[k];
    c.iopsGot = iops[k];
    c.ops = c.frozen ? 0 : opsOf(c);
    got += alloc[k];
    wanted += wants[k];
    diskOps += iops[k];
  });
  node.allocated = got + Math.min(node.migCpu, node.cap);
  node.requested = wanted + Math.min(node.migCpu, node.cap);
  node.util = node.cap > 0 ? Math.min(1, node.allocated / node.cap) : 0;
  node.diskOps = diskOps;
}
