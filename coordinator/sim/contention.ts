/**
 * The contention model: how a node's CPU (and disk) is shared among the containers on it.
 *
 * - fairShare: max-min fair sharing (what CFS gives containers of equal weight): every
 *   container gets what it wants up to an equal share; what the light ones leave is split
 *   among the heavy ones. A container's want is its demand capped by its threads (one PE
 *   each) and its CPU limit. Disk IOPS are shared the same way.
 * - cloudSimShare: CloudSim's VmSchedulerTimeSharedOverSubscription, arithmetic kept as it
 *   is (same doubles, same floor), so its SLA figures come out the same: each VM's request is
 *   capped at one PE; a VM migrating in reserves 10% of it on the target, a VM migrating out
 *   gets 90% on the source; when the requests exceed the host, all are scaled down together.
 */

/** Max-min fair shares of `capacity` among `wants` (written into `out`). */
export function fairShare(wants: ArrayLike<number>, capacity: number, out: Float64Array | number[]): void {
  const n = wants.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += wants[i];
  if (sum <= capacity) {
    for (let i = 0; i < n; i++) out[i] = wants[i];
    return;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => wants[a] - wants[b]);
  let left = Math.max(0, capacity);
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const share = left / (n - k);
    const got = Math.min(wants[i], share);
    out[i] = got;
    left -= got;
  }
}

export interface CloudSimVm {
  /** Requested MIPS (uncapped). */
  req: number;
  migratingIn: boolean;
  migratingOut: boolean;
}

/**
 * CloudSim's allocation on one host. Returns each VM's allocated MIPS, and the host's
 * utilization in MIPS as HostDynamicWorkload counts it (a migrating-out VM's share divided
 * by 0.9 again, so the degradation is the VM's loss, not the host's).
 */
export function cloudSimShare(vms: readonly CloudSimVm[], peMips: number, pes: number, alloc: Float64Array | number[]): { utilizationMips: number; requestedMips: number } {
  const total = peMips * pes;
  let available = total;
  let over = false;
  let required = 0;
  for (let i = 0; i < vms.length; i++) {
    const v = vms[i];
    const capped = v.req > peMips ? peMips : v.req;
    let need = capped;
    if (v.migratingIn) need *= 0.1;
    required += need;
    if (!over && available >= need) {
      alloc[i] = v.migratingOut ? capped * 0.9 : v.migratingIn ? capped * 0.1 : capped;
      available -= need;
    } else {
      over = true;
    }
  }
  if (over) {
    const factor = total / required;
    for (let i = 0; i < vms.length; i++) {
      const v = vms[i];
      let mips = v.req > peMips ? peMips : v.req;
      if (v.migratingOut) {
        mips *= factor;
        mips *= 0.9;
      } else if (v.migratingIn) {
        mips *= 0.1;
        mips *= factor;
      } else {
        mips *= factor;
      }
      alloc[i] = Math.floor(mips);
    }
  }
  let utilizationMips = 0;
  let requestedMips = 0;
  for (let i = 0; i < vms.length; i++) {
    const v = vms[i];
    let a = alloc[i];
    if (!v.migratingIn && v.migratingOut) a /= 0.9;
    utilizationMips += a;
    requestedMips += v.req;
  }
  return { utilizationMips, requestedMips };
}

/** Ops per second a container makes from the CPU (units) it got, given its model. */
export function opsFromCpu(model: { kind: 'per-core'; opsPerCore: number } | { kind: 'curve'; points: ReadonlyArray<readonly [number, number]> }, cpuUnits: number): number {
  const cores = cpuUnits / 1000;
  if (model.kind === 'per-core') return model.opsPerCore * cores;
  const p = model.points;
  if (p.length === 0) return 0;
  if (cores <= p[0][0]) return p[0][0] > 0 ? (p[0][1] * cores) / p[0][0] : p[0][1];
  for (let i = 1; i < p.length; i++) {
    if (cores <= p[i][0]) {
      const [x0, y0] = p[i - 1];
      const [x1, y1] = p[i];
      return y0 + ((y1 - y0) * (cores - x0)) / (x1 - x0);
    }
  }
  return p[p.length - 1][1];
}

/** Ops of a container that got `got` CPU units and `iopsGot` disk ops/s: CPU-bound, or disk-bound when its disk share falls short. */
export function containerOps(model: Parameters<typeof opsFromCpu>[0], got: number, want: number, iopsGot: number, iopsWant: number): number {
  const fromCpu = opsFromCpu(model, Math.min(got, want));
  if (iopsWant <= 0) return fromCpu;
  return Math.min(fromCpu, opsFromCpu(model, want) * Math.min(1, iopsGot / iopsWant));
}
