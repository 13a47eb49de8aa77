/**
 * The ideal: an upper bound on the ops any placement could reach, with perfect knowledge of
 * every container's demand at every instant (so also of the next interval) and free,
 * instant migrations.
 *
 * Why it bounds: at any instant a real placement gives container i some CPU x_i <= want_i
 * (its demand, capped by its threads on the fastest node), with the x_i on each node summing
 * to at most that node's capacity, so sum x_i <= the cluster's capacity. Dropping the
 * per-node constraint (a container may be split across nodes: the LP relaxation of bin
 * packing) only enlarges the feasible set, so the relaxation's optimum is >= every real
 * placement's ops at that instant; migrations only take away (downtime, CPU). The relaxed
 * problem, max sum r_i x_i s.t. x_i <= want_i, sum x_i <= C, is a fractional knapsack:
 * exact by filling the highest ops per unit first. Disk is bounded the same way on its own;
 * the smaller of the two bounds holds (each drops one constraint). A container with its
 * own ops curve counts at its full-demand ops (a bound for any non-decreasing curve).
 *
 * At small scale (nodes^containers <= EXACT_LIMIT) the ideal is exact instead: every
 * placement of the running containers is tried with the contention model, the best taken,
 * at every instant (so it knows the next interval perfectly and moves for free).
 */
export const EXACT_LIMIT = 20_000;
import { containerOps, fairShare, type opsFromCpu } from './contention';

export interface IdealItem {
  /** CPU it could use (units) and the ops it makes with all of it. */
  want: number;
  opsAtWant: number;
  /** Ops per CPU unit when linear; NaN for a curve (counted at opsAtWant). */
  opsPerUnit: number;
  /** Disk operations per second it asks; 0 when none. */
  iopsWant: number;
}

export function idealOpsRate(items: readonly IdealItem[], cpuCapacity: number, diskCapacity: number): number {
  return Math.min(cpuBound(items, cpuCapacity), diskBound(items, diskCapacity));
}

function cpuBound(items: readonly IdealItem[], capacity: number): number {
  let total = 0;
  const linear: IdealItem[] = [];
  let wanted = 0;
  for (const it of items) {
    if (Number.isNaN(it.opsPerUnit)) total += it.opsAtWant;
    else (linear.push(it), (wanted += it.want));
  }
  if (wanted <= capacity) {
    for (const it of linear) total += it.opsAtWant;
    return total;
  }
  linear.sort((a, b) => b.opsPerUnit - a.opsPerUnit);
  let left = capacity;
  for (const it of linear) {
    if (left <= 0) break;
    const x = Math.min(it.want, left);
    total += it.opsPerUnit * x;
    left -= x;
  }
  return total;
}

function diskBound(items: readonly IdealItem[], capacity: number): number {
  if (!Number.isFinite(capacity)) return items.reduce((s, it) => s + it.opsAtWant, 0);
  let total = 0;
  const disk: IdealItem[] = [];
  let wanted = 0;
  for (const it of items) {
    if (it.iopsWant > 0) (disk.push(it), (wanted += it.iopsWant));
    else total += it.opsAtWant;
  }
  if (wanted <= capacity) return total + disk.reduce((s, it) => s + it.opsAtWant, 0);
  disk.sort((a, b) => b.opsAtWant / b.iopsWant - a.opsAtWant / a.iopsWant);
  let left = capacity;
  for (const it of disk) {
    if (left <= 0) break;
    const y = Math.min(it.iopsWant, left);
    total += (it.opsAtWant * y) / it.iopsWant;
    left -= y;
  }
  return total;
}

export interface ExactItem {
  ops: Parameters<typeof opsFromCpu>[0];
  threads: number;
  want: number;
  iopsWant: number;
}

/** The best ops over every placement (fair sharing on each node), or undefined past EXACT_LIMIT. */
export function exactIdealOps(items: readonly ExactItem[], nodes: readonly { pes: number; peUnits: number; diskIops: number }[]): number | undefined {
  const n = nodes.length;
  const k = items.length;
  if (k === 0) return 0;
  if (n ** k > EXACT_LIMIT) return undefined;
  const place = new Array<number>(k).fill(0);
  let best = 0;
  const cpu = new Float64Array(k);
  const io = new Float64Array(k);
  for (;;) {
    let total = 0;
    for (let j = 0; j < n; j++) {
      const on: number[] = [];
      for (let i = 0; i < k; i++) if (place[i] === j) on.push(i);
      if (!on.length) continue;
      const node = nodes[j];
      const wants = on.map((i) => Math.min(items[i].want, items[i].threads * node.peUnits, node.pes * node.peUnits));
      fairShare(wants, node.pes * node.peUnits, cpu);
      const iw = on.map((i) => items[i].iopsWant);
      if (node.diskIops > 0) fairShare(iw, node.diskIops, io);
      else iw.forEach((w, x) => (io[x] = w));
      on.forEach((i, x) => (total += containerOps(items[i].ops, cpu[x], items[i].want, io[x], items[i].iopsWant)));
    }
    if (total > best) best = total;
    let d = 0;
    while (d < k && ++place[d] === n) place[d++] = 0;
    if (d === k) return best;
  }
}
