/**
 * What a move does to the containers it does not move (the forecast policy's second term).
 * The model predicts the moved container's ops on each node; a move also takes CPU and disk
 * from the containers already on the target and frees them for those left on the source.
 * Judging the mover alone sent a second busy container to a node a busy one already filled:
 * the mover gained a quarter core, its new neighbour lost as much or more.
 *
 * Both sides are read from the window's measured figures, as CFS shares a host (max-min
 * fair): on the target the newcomer takes what it wants up to what is free or an equal share,
 * whichever is more; what it takes beyond the free part comes out of its neighbours, whose
 * ops shrink in proportion to the share of their CPU (or declared disk) they lose. On the
 * source, the CPU (disk) it used goes to the containers there that want more than they get,
 * whose ops grow in proportion. Pure: loads in, numbers out.
 */
import { cpuDemand, diskDemand, finite, meanOf, type ContainerLoad, type NodeLoad } from './load';

/** A host at or over this use (fraction of its cores or declared disk) is saturated (features.ts's SATURATION). */
const SATURATION = 0.9;

const opsOf = (cs: readonly ContainerLoad[]) => cs.reduce((s, c) => s + finite(meanOf(c.view.ops)), 0);

/** Ops/s the containers on `to` lose when `c` (now on `from`) joins them; 0 when it fits in what is free. */
export function neighboursLoss(c: ContainerLoad, from: NodeLoad, to: NodeLoad): number {
  const others = to.containers.filter((k) => k.view.herdId !== c.view.herdId);
  if (others.length === 0) return 0;
  const share = (want: number, capacity: number, used: number) => {
    if (!(capacity > 0) || !(used > 0)) return 0;
    const free = Math.max(0, capacity - used);
    const take = Math.min(want, Math.max(free, capacity / (others.length + 1)));
    return Math.min(1, Math.max(0, take - free) / used);
  };
  const cpu = share(cpuDemand(c, from, SATURATION), to.view.cores, to.cpu * to.view.cores);
  const disk = to.view.diskIops > 0 ? share(diskDemand(c, from, SATURATION, to.view.diskIops), to.view.diskIops, to.diskOps) : 0;
  return opsOf(others) * Math.max(cpu, disk);
}

/**
 * Ops/s the containers left on `from` gain when `c` leaves: what it used of a resource goes to
 * those held back on it there (wanting more than they get), their ops growing in proportion;
 * a container held back on both grows as the scarcer allows, one held back on neither not at all.
 */
export function sourceGain(c: ContainerLoad, from: NodeLoad): number {
  const others = from.containers.filter((k) => k.view.herdId !== c.view.herdId);
  if (others.length === 0) return 0;
  const disk = from.view.diskIops > 0;
  const wantsCpu = others.map((k) => Math.max(0, cpuDemand(k, from, SATURATION) - k.cpu));
  const wantsDisk = others.map((k) => (disk ? Math.max(0, diskDemand(k, from, SATURATION, Infinity) - k.diskOps) : 0));
  const growth = (freed: number, wants: number[], use: (k: ContainerLoad) => number) => {
    let want = 0;
    let used = 0;
    others.forEach((k, i) => {
      if (wants[i] > 0) {
        want += wants[i];
        used += use(k);
      }
    });
    return used > 0 ? Math.min(freed, want) / used : 0;
  };
  const cpu = growth(c.cpu, wantsCpu, (k) => k.cpu);
  const dsk = growth(c.diskOps, wantsDisk, (k) => k.diskOps);
  let gain = 0;
  others.forEach((k, i) => {
    const held = [wantsCpu[i] > 0 ? cpu : Infinity, wantsDisk[i] > 0 ? dsk : Infinity];
    const g = Math.min(...held);
    if (Number.isFinite(g)) gain += finite(meanOf(k.view.ops)) * g;
  });
  return gain;
}
