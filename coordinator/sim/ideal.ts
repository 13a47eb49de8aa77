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
 */
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
