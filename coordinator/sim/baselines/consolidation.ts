/**
 * Beloglazov & Buyya's dynamic consolidation (CCPE 2012) as CloudSim 4.0 runs it
 * (PowerVmAllocationPolicyMigrationAbstract.optimizeAllocation), on the Policy interface:
 * 1. find the overloaded hosts (the detector: local regression or MAD, falling back to a
 *    0.7 static threshold while the history is short);
 * 2. from each, take VMs by minimum migration time (least RAM) until it is no longer
 *    overloaded;
 * 3. place them, largest CPU demand first, where the host's power rises least (power-aware
 *    best fit decreasing), never on a host the detector would then call overloaded;
 * 4. then empty under-utilized hosts, least utilized first, if all their VMs fit elsewhere:
 *    an emptied host draws no power (the engine counts an idle host at 0 W, as CloudSim does).
 * Quirks kept because its figures depend on them: a host's load after a placement is the MIPS
 * allocated on it now, this round's earlier placements included (CloudSim 4.0's
 * getUtilizationOfCpuMips(host)), but the power it is compared with is the host's last
 * measured one (host.getPower()), so a host that already took a VM this round looks dearer
 * and VMs spread; the detector is consulted only for a host with MIPS allocated; hosts that
 * received VMs in step 3 may still be emptied in step 4 (their VMs then move twice).
 *
 * Reads from the snapshot: node capacity (cores), PE speed (label sim.pe-mips), power model
 * (label sim.power), the utilization the node measured; each container's memory and CPU
 * window (demand, as CloudSim's VMs report it). Pure.
 */
import type { Move, Policy, PolicyInput } from '../../control/policy';
import type { Snapshot } from '../../control/snapshot';
import { POWER_MODELS, watts, type PowerModel } from '../power';

export const HISTORY = 30;
const MB = 1024 * 1024;

interface Vm {
  id: string;
  node: number;
  req: number;
  alloc: number;
  ramMb: number;
  /** Utilization history in MIPS, newest first (NaN: no sample). */
  hist: Float64Array;
}

export interface Host {
  cap: number;
  pe: number;
  power: PowerModel;
  /** Utilization measured at the last update (CloudSim's host.getUtilizationOfCpu()). */
  measured: number;
  vms: Vm[];
  allocated: number;
  /** Sum of the VMs' requests capped at a PE: CloudSim's scheduler has cap - this left, or none once it is over-subscribed. */
  capped: number;
  /** Sum of the VMs' histories (MIPS, newest first) and how many VMs are non-zero at each age. */
  hist: Float64Array;
  nonZero: Int32Array;
  length: number;
}

/** The overload detector: LR and MAD differ only here. */
export type Detector = (host: Host, vmsRequested: number) => boolean;

/** The host's utilization history as CloudSim builds it (fractions, newest first, zero tail trimmed). */
export function hostHistory(h: Host): number[] {
  let n = h.length;
  while (n > 0 && h.nonZero[n - 1] === 0) n--;
  const out = new Array<number>(n);
  for (let j = 0; j < n; j++) out[j] = h.hist[j] / h.cap;
  return out;
}

export function staticOverload(h: Host, requested: number, threshold: number): boolean {
  return requested / h.cap > threshold;
}

export function requestedOf(h: Host): number {
  let s = 0;
  for (const v of h.vms) s += v.req;
  return s;
}

/** MIPS the host's scheduler still has (VmSchedulerTimeSharedOverSubscription: none once the capped requests exceed the host). */
export function availableMips(h: Host): number {
  return h.capped > h.cap ? 0 : h.cap - h.capped;
}

function add(h: Host, v: Vm): void {
  h.vms.push(v);
  h.allocated += v.alloc;
  h.capped += Math.min(v.req, h.pe);
  for (let j = 0; j < HISTORY; j++) {
    const x = v.hist[j];
    if (Number.isNaN(x)) break;
    h.hist[j] += x;
    if (x !== 0) h.nonZero[j]++;
    if (j + 1 > h.length) h.length = j + 1;
  }
}

function remove(h: Host, v: Vm): void {
  h.vms.splice(h.vms.indexOf(v), 1);
  h.allocated -= v.alloc;
  h.capped -= Math.min(v.req, h.pe);
  for (let j = 0; j < HISTORY; j++) {
    const x = v.hist[j];
    if (Number.isNaN(x)) break;
    h.hist[j] -= x;
    if (x !== 0) h.nonZero[j]--;
  }
  if (h.vms.length === 0) (h.length = 0), (h.capped = 0), h.hist.fill(0);
}

export function buildHosts(s: Snapshot): { hosts: Host[]; ids: string[] } {
  const index = new Map(s.nodes.map((n, i) => [n.id, i]));
  const hosts: Host[] = s.nodes.map((n) => {
    const cap = Math.round(n.cores * 1e6) / 1000;
    return {
      cap, pe: Number(n.labels['sim.pe-mips'] ?? cap), power: POWER_MODELS[n.labels['sim.power'] ?? 'generic'] ?? POWER_MODELS.generic,
      measured: n.cpu.length ? n.cpu[n.cpu.length - 1] || 0 : 0, vms: [], allocated: 0, capped: 0,
      hist: new Float64Array(HISTORY), nonZero: new Int32Array(HISTORY), length: 0,
    };
  });
  const byHost: Vm[][] = hosts.map(() => []);
  for (const c of s.containers) {
    const node = index.get(c.node);
    if (node === undefined || c.migrating) continue;
    const w = c.cpu;
    const hist = new Float64Array(HISTORY).fill(NaN);
    for (let j = 0; j < HISTORY && j < w.length; j++) hist[j] = w[w.length - 1 - j] * 1000;
    const req = Number.isNaN(hist[0]) ? 0 : hist[0];
    byHost[node].push({ id: c.herdId, node, req, alloc: 0, ramMb: Math.floor(c.memoryBytes / MB), hist });
  }
  byHost.forEach((vms, i) => {
    const h = hosts[i];
    let capped = 0;
    for (const v of vms) capped += Math.min(v.req, h.pe);
    const factor = capped > h.cap ? h.cap / capped : 1;
    for (const v of vms) {
      v.alloc = factor < 1 ? Math.floor(Math.min(v.req, h.pe) * factor) : Math.min(v.req, h.pe);
      add(h, v);
    }
  });
  return { hosts, ids: s.nodes.map((n) => n.id) };
}

/** One CloudSim optimizeAllocation round: the moves, in CloudSim's order. */
export function consolidate(input: PolicyInput<unknown>, policy: string, overloaded: Detector): Move[] {
  const { hosts, ids } = buildHosts(input.snapshot);
  const isOver = (h: Host) => overloaded(h, requestedOf(h));
  const moves: Move[] = [];
  const over = new Set<number>();
  hosts.forEach((h, i) => isOver(h) && over.add(i));

  const findHost = (vm: Vm, excluded: Set<number>): number => {
    let best = -1;
    let minPower = Number.MAX_VALUE;
    for (let i = 0; i < hosts.length; i++) {
      if (excluded.has(i)) continue;
      const h = hosts[i];
      // isSuitableForVm: the request fits a PE and what the scheduler has left (0 on an over-subscribed host, whose floored shares leave a few MIPS unallocated).
      if (h.pe < vm.req || availableMips(h) < vm.req) continue;
      // The MIPS allocated on the host now, this round's placements included; zero for an empty host.
      const allocated = h.vms.length && Math.abs(h.allocated) > 1e-9 ? h.allocated : 0;
      if (allocated !== 0) {
        const saved = vm.alloc;
        vm.alloc = Math.min(vm.req, h.pe);
        add(h, vm);
        const bad = isOver(h);
        remove(h, vm);
        vm.alloc = saved;
        if (bad) continue;
      }
      const after = (allocated + vm.req) / h.cap;
      if (after > 1) continue;
      const diff = watts(h.power, after) - watts(h.power, h.measured);
      if (diff < minPower) (minPower = diff), (best = i);
    }
    return best;
  };
  const place = (vm: Vm, to: number, why: string) => {
    vm.alloc = Math.min(vm.req, hosts[to].pe);
    add(hosts[to], vm);
    moves.push({
      herdId: vm.id, from: ids[vm.node], to: ids[to], score: vm.req, policy,
      reason: `${why}; ${ids[to]} is where power rises least`, figures: { requestedMips: vm.req, ramMb: vm.ramMb },
    });
  };

  // 2-3: VMs off the overloaded hosts, least RAM first, until each is no longer overloaded.
  const toMove: Vm[] = [];
  for (const i of over) {
    const h = hosts[i];
    while (h.vms.length) {
      let pick = h.vms[0];
      for (const v of h.vms) if (v.ramMb < pick.ramMb) pick = v;
      toMove.push(pick);
      remove(h, pick);
      if (!isOver(h)) break;
    }
  }
  toMove.sort((a, b) => b.req - a.req);
  for (const vm of toMove) {
    const to = findHost(vm, over);
    if (to >= 0) place(vm, to, `${ids[vm.node]} is overloaded (${policy}); least migration time`);
  }

  // 4: empty under-utilized hosts, least utilized first.
  const off = new Set<number>();
  hosts.forEach((h, i) => h.measured === 0 && off.add(i));
  const skipUnder = new Set<number>([...over, ...off]);
  const skipTarget = new Set<number>([...over, ...off]);
  while (skipUnder.size < hosts.length) {
    let u = -1;
    let min = 1;
    for (let i = 0; i < hosts.length; i++) {
      if (skipUnder.has(i)) continue;
      const m = hosts[i].measured;
      if (m > 0 && m < min && hosts[i].vms.length > 0) (min = m), (u = i);
    }
    if (u < 0) break;
    skipUnder.add(u);
    skipTarget.add(u);
    const vms = hosts[u].vms.slice().sort((a, b) => b.req - a.req);
    const batch: { vm: Vm; to: number; saved: number }[] = [];
    let ok = true;
    for (const vm of vms) {
      const to = findHost(vm, skipTarget);
      if (to < 0) {
        ok = false;
        break;
      }
      batch.push({ vm, to, saved: vm.alloc });
      vm.alloc = Math.min(vm.req, hosts[to].pe);
      add(hosts[to], vm);
    }
    if (!ok) {
      for (const b of batch) remove(hosts[b.to], b.vm), (b.vm.alloc = b.saved);
      continue;
    }
    for (const b of batch) {
      remove(hosts[b.to], b.vm);
      b.vm.alloc = b.saved;
      place(b.vm, b.to, `${ids[u]} is under-utilized (${(100 * min).toFixed(1)}%): emptied to switch it off`);
      skipUnder.add(b.to);
    }
  }
  return moves;
}

/** Shared shell of the CloudSim baselines. */
export function consolidationPolicy<S>(name: string, summary: string, defaults: S, validate: (s: unknown) => string | null, detector: (s: S) => Detector): Policy<S> {
  return { name, summary, defaults, validate, propose: (input) => consolidate(input as PolicyInput<unknown>, name, detector(input.settings)) };
}
