/**
 * The discrete-event simulator: a virtual clock, events (sample ticks, evaluation rounds,
 * migration steps) in a queue, and the cluster's state held constant between events, so
 * every metric is integrated exactly segment by segment. Pure: no I/O, no wall clock (the
 * caller may pass one to time decisions), randomness only from the seed.
 *
 * At each event the demand of every container is re-read (interpolated as its series says),
 * each node's CPU and disk shared by the contention model (contention.ts), and the segment
 * just ended accounted (metrics.ts). At each evaluation the controller sees a Snapshot built
 * exactly as the coordinator's (windows on one grid, oldest first) and returns moves; the
 * engine carries them out with the migration model's cost.
 */
import type { Move } from '../control/policy';
import type { ContainerView, MigrationView, NodeView, Snapshot } from '../control/snapshot';
import { cloudSimShare, containerOps, fairShare, opsFromCpu, type CloudSimVm } from './contention';
import { EventQueue } from './heap';
import { exactIdealOps, idealOpsRate, type IdealItem } from './ideal';
import { initialPlacement } from './initial-placement';
import { Accounting, type RunMetrics } from './metrics';
import { seriesAt, type SimContainer, type SimSpec } from './model';
import { seededRandom } from '../control/decide';

export interface Controller {
  readonly name: string;
  /** Window the controller judges on (ms); default: the scenario's windowSteps. */
  readonly windowMs?: number;
  /** The controller's own schedule (Herd's settings carry one); default: the scenario's. */
  readonly periodMs?: number;
  readonly firstAfterMs?: number;
  /** Moves to make now, in order; the engine skips one whose container is already moving or is not on `from`. */
  evaluate(snapshot: Snapshot): readonly Move[];
}

export interface MigrationEvent {
  atMs: number;
  endMs: number;
  container: string;
  from: string;
  to: string;
  ok: boolean;
  downtimeMs: number;
}

export interface SimResult {
  metrics: RunMetrics;
  /** Per sample tick: time, each node's utilization, ops rate and the ideal's. */
  series: { tMs: number[]; nodeUtil: Float32Array[]; ops: number[]; ideal: number[] };
  migrations: MigrationEvent[];
  nodeIds: string[];
}

interface Mig {
  id: string;
  c: number;
  from: number;
  to: number;
  startMs: number;
  freezeMs: number;
  endMs: number;
  fails: boolean;
  /** Targets of CloudSim's earlier move of this container in the same round: each holds 10% until the end. */
  via: number[];
}

const incoming = (m: Mig | null, n: number) => !!m && (m.to === n || m.via.includes(n));

interface CState {
  spec: SimContainer;
  node: number;
  demand: number;
  want: number;
  iopsWant: number;
  got: number;
  iopsGot: number;
  ops: number;
  mig: Mig | null;
  frozen: boolean;
  leftAt: Map<number, number>;
  cpuWin: Float64Array;
  diskWin: Float64Array;
  opsWin: Float64Array;
}

interface NState {
  cap: number;
  /** Containers on the node in arrival order (with CloudSim contention, also those migrating in). */
  list: number[];
  util: number;
  allocated: number;
  requested: number;
  diskOps: number;
  migCpu: number;
  utilWin: Float64Array;
  diskWin: Float64Array;
  activeWin: Float64Array;
  memWin: Float64Array;
}

type Ev = { kind: 'freeze' | 'end'; m: Mig };

export function simulate(spec: SimSpec, controller: Controller, clock: () => number = () => 0): SimResult {
  const shown = controller.windowMs ? Math.max(1, Math.round(controller.windowMs / spec.sampleMs)) : spec.windowSteps;
  const W = Math.max(spec.windowSteps, shown);
  const onGrid = (ms: number) => Math.max(spec.sampleMs, Math.round(ms / spec.sampleMs) * spec.sampleMs);
  const periodMs = controller.periodMs ? onGrid(controller.periodMs) : spec.periodMs;
  const firstEvalMs = controller.firstAfterMs !== undefined ? onGrid(controller.firstAfterMs) : spec.firstEvalMs;
  const rnd = seededRandom(spec.seed);
  const cloudsim = spec.contention === 'cloudsim';
  const acc = new Accounting();
  const queue = new EventQueue<Ev>();
  const maxPe = Math.max(...spec.nodes.map((n) => n.peUnits));
  const diskCapacity = spec.nodes.every((n) => n.diskIops > 0) ? spec.nodes.reduce((s, n) => s + n.diskIops, 0) : Infinity;
  const cpuCapacity = spec.nodes.reduce((s, n) => s + n.pes * n.peUnits, 0);
  const placed = initialPlacement(spec);
  const nodes: NState[] = spec.nodes.map((n) => ({
    cap: n.pes * n.peUnits, list: [], util: 0, allocated: 0, requested: 0, diskOps: 0, migCpu: 0,
    utilWin: nanWin(W), diskWin: nanWin(W), activeWin: nanWin(W), memWin: nanWin(W),
  }));
  const cs: CState[] = spec.containers.map((c, i) => ({
    spec: c, node: placed[i], demand: 0, want: 0, iopsWant: 0, got: 0, iopsGot: 0, ops: 0, mig: null, frozen: false,
    leftAt: new Map(), cpuWin: nanWin(W), diskWin: nanWin(W), opsWin: nanWin(W),
  }));
  cs.forEach((c, i) => c.node >= 0 && nodes[c.node].list.push(i));
  let live = cs.map((_, i) => i).filter((i) => cs[i].node >= 0);
  const rejected = cs.length - live.length;
  const csClock = spec.cloudSimClock === true;
  const offsetMs = csClock ? 100 : 0;
  // CloudSim integrates from its first update to its last one before the limit: the last
  // tick, or a migration started there that ends before the limit (its end updates every host).
  const measureFromMs = csClock ? spec.sampleMs + offsetMs : 0;
  let measureUntilMs = csClock ? measureFromMs : spec.durationMs;
  const migrations: MigrationEvent[] = [];
  const recent: MigrationView[] = [];
  const series = { tMs: [] as number[], nodeUtil: [] as Float32Array[], ops: [] as number[], ideal: [] as number[] };
  let idealRate = 0;
  let samples = 0;
  let migSeq = 0;

  const refresh = (t: number) => {
    if (csClock) dropCompleted(t);
    const items: IdealItem[] = [];
    for (const i of live) {
      const c = cs[i];
      const s = c.spec;
      c.demand = seriesAt(s.cpu, t, spec.zeroAfterEnd);
      const threadCap = s.threads * maxPe;
      c.want = Math.min(c.demand, s.limitUnits > 0 ? s.limitUnits : Infinity, threadCap);
      c.iopsWant = s.iops ? seriesAt(s.iops, t, spec.zeroAfterEnd) : 0;
      const opsAtWant = opsFromCpu(s.ops, c.want);
      items.push({ want: c.want, opsAtWant, opsPerUnit: s.ops.kind === 'per-core' ? s.ops.opsPerCore / 1000 : NaN, iopsWant: c.iopsWant });
    }
    idealRate = idealOpsRate(items, cpuCapacity, diskCapacity);
    if (!cloudsim) {
      const active = live.filter((i) => cs[i].want > 0 || cs[i].iopsWant > 0).map((i) => ({ ops: cs[i].spec.ops, threads: cs[i].spec.threads, want: cs[i].want, iopsWant: cs[i].iopsWant }));
      const exact = exactIdealOps(active, spec.nodes);
      if (exact !== undefined) idealRate = Math.min(idealRate, exact);
    }
    nodes.forEach((_, n) => share(n));
  };

  /** CloudSim's getCompletedVms: a VM asking no MIPS at an update, not migrating, is deallocated for good. */
  const dropCompleted = (t: number) => {
    let dropped = false;
    for (const i of live) {
      const c = cs[i];
      if (c.mig || seriesAt(c.spec.cpu, t, spec.zeroAfterEnd) !== 0) continue;
      const l = nodes[c.node].list;
      l.splice(l.indexOf(i), 1);
      c.node = -1;
      c.demand = c.want = c.got = c.ops = 0;
      dropped = true;
    }
    if (dropped) live = live.filter((i) => cs[i].node >= 0);
  };

  const vmBuf: CloudSimVm[] = [];
  const share = (n: number) => {
    const node = nodes[n];
    const ns = spec.nodes[n];
    const list = node.list;
    const alloc = new Float64Array(list.length);
    if (cloudsim) {
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
    else iopsWants.forEach((w, k) => (iops[k] = w));
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
  };

  const opsOf = (c: CState): number => containerOps(c.spec.ops, c.got, c.want, c.iopsGot, c.iopsWant);

  /** Account a segment of dt ms in the current state. */
  const account = (from: number, dt: number, counted: boolean) => {
    if (dt <= 0 || !counted) return;
    nodes.forEach((node) => acc.host(dt, node.allocated, node.requested, node.util, spec.overThreshold));
    const s = dt / 1000;
    for (const i of live) {
      const c = cs[i];
      const req = cloudsim ? c.demand : c.want;
      acc.demand += req * s;
      acc.served += Math.min(req, c.got) * s;
      acc.ops += c.ops * s;
      if (c.mig && (c.frozen || (cloudsim && c.got < req))) acc.migrationLoss += (req - (c.frozen ? 0 : c.got)) * s;
    }
    acc.idealOps += idealRate * s;
  };

  const record = (t: number) => {
    const slot = samples % W;
    samples++;
    for (const i of live) {
      const c = cs[i];
      c.cpuWin[slot] = (spec.observe === 'demand' ? c.demand : c.got) / 1000;
      c.diskWin[slot] = c.iopsGot;
      c.opsWin[slot] = c.ops;
    }
    const utils = new Float32Array(nodes.length);
    let ops = 0;
    nodes.forEach((node, n) => {
      node.utilWin[slot] = node.util;
      node.diskWin[slot] = node.diskOps;
      node.activeWin[slot] = spec.nodes[n].diskIops > 0 ? Math.min(1, node.diskOps / spec.nodes[n].diskIops) : 0;
      node.memWin[slot] = node.list.reduce((sum, i) => sum + (incoming(cs[i].mig, n) ? 0 : cs[i].spec.memoryBytes), 0);
      utils[n] = node.util;
    });
    for (const i of live) ops += cs[i].ops;
    acc.spread(utils, cloudsim);
    series.tMs.push(t);
    series.nodeUtil.push(utils);
    series.ops.push(ops);
    series.ideal.push(idealRate);
  };

  const window = (w: Float64Array): number[] => {
    const out: number[] = [];
    for (let k = 0; k < shown; k++) {
      const age = shown - 1 - k;
      out.push(age < samples ? w[(samples - 1 - age) % W] : NaN);
    }
    return out;
  };

  const threadWindows = new Map<number, number[]>();
  const snapshot = (t: number): Snapshot => {
    const nodeViews: NodeView[] = spec.nodes.map((n, i) => ({
      id: n.id, arch: n.arch, cores: nodes[i].cap / 1000, memoryBytes: n.memoryBytes, diskIops: n.diskIops,
      labels: n.labels, criu: true, draining: false, connected: true, lastSampleMs: t,
      cpu: window(nodes[i].utilWin), diskOps: window(nodes[i].diskWin), diskActive: window(nodes[i].activeWin), memUsedBytes: window(nodes[i].memWin),
    }));
    const containers: ContainerView[] = [];
    nodes.forEach((node, n) => {
      for (const i of node.list) {
        const c = cs[i];
        if (incoming(c.mig, n)) continue;
        let threads = threadWindows.get(c.spec.threads);
        if (!threads) threadWindows.set(c.spec.threads, (threads = Array.from({ length: shown }, () => c.spec.threads)));
        containers.push({
          herdId: c.spec.id, name: c.spec.name, node: spec.nodes[n].id, labels: c.spec.labels,
          limits: { cpus: c.spec.limitUnits / 1000, memoryBytes: 0 }, memoryBytes: c.spec.memoryBytes, upperDirBytes: c.spec.upperDirBytes,
          lastSampleMs: t, cpu: window(c.cpuWin), diskOps: window(c.diskWin), threads, ops: window(c.opsWin), migrating: !!c.mig,
        });
      }
    });
    return { nowMs: t, stepMs: spec.sampleMs, nodes: nodeViews, containers, migrations: recent.slice() };
  };

  const byId = new Map(spec.containers.map((c, i) => [c.id, i]));
  const nodeIndex = new Map(spec.nodes.map((n, i) => [n.id, i]));

  const start = (move: Move, t: number): boolean => {
    const ci = byId.get(move.herdId);
    const to = nodeIndex.get(move.to);
    if (ci === undefined || to === undefined) return false;
    const c = cs[ci];
    if (cloudsim && csClock && c.mig && c.mig.startMs === t && spec.nodes[c.mig.from].id === move.from && to !== c.mig.from && !incoming(c.mig, to)) {
      // CloudSim starts both moves of a VM its round placed twice; the second one's target is where it ends.
      c.mig.via.push(c.mig.to);
      c.mig.to = to;
      nodes[to].list.push(ci);
      const view = recent.find((r) => r.migrationId === c.mig!.id);
      if (view) view.to = spec.nodes[to].id;
      acc.migrations++;
      return true;
    }
    if (c.node < 0 || c.mig || spec.nodes[c.node].id !== move.from || to === c.node) return false;
    if (!cloudsim) {
      const mem = nodes[to].list.reduce((s, i) => s + cs[i].spec.memoryBytes, 0);
      if (mem + c.spec.memoryBytes > spec.nodes[to].memoryBytes) return false;
    }
    const mm = spec.migration;
    const mb = (b: number) => b / (1024 * 1024);
    let freezeMs: number;
    let endMs: number;
    if (mm.kind === 'cloudsim') {
      // CloudSim: RAM (MB) / (bw / 2), bw in kbit/s as its hosts carry it.
      endMs = t + (Math.floor(mb(c.spec.memoryBytes)) / ((mm.linkMbps * 1000) / (2 * 8000))) * 1000;
      freezeMs = endMs;
    } else {
      const downtime = mm.baseMs + mm.msPerMemMb * mb(c.spec.memoryBytes) + mm.msPerUpperMb * mb(c.spec.upperDirBytes);
      freezeMs = t + mm.overheadMs;
      endMs = freezeMs + downtime;
    }
    const m: Mig = { id: `m${++migSeq}`, c: ci, from: c.node, to, startMs: t, freezeMs, endMs, fails: rnd() < mm.failureRate, via: [] };
    c.mig = m;
    if (cloudsim) nodes[to].list.push(ci);
    else {
      nodes[c.node].migCpu += spec.migration.kind === 'herd' ? spec.migration.cpuUnits : 0;
      nodes[to].migCpu += spec.migration.kind === 'herd' ? spec.migration.cpuUnits : 0;
      queue.push(freezeMs, { kind: 'freeze', m });
    }
    queue.push(endMs, { kind: 'end', m });
    recent.push({ migrationId: m.id, herdId: c.spec.id, from: spec.nodes[m.from].id, to: spec.nodes[to].id, startedMs: t, endedMs: 0, outcome: 'RUNNING', downtimeMs: 0, bytes: 0, memoryBytes: c.spec.memoryBytes });
    acc.migrations++;
    return true;
  };

  const finish = (m: Mig, t: number) => {
    const c = cs[m.c];
    const remove = (n: number) => {
      const l = nodes[n].list;
      const k = l.indexOf(m.c);
      if (k >= 0) l.splice(k, 1);
    };
    const downtime = spec.migration.kind === 'herd' ? m.endMs - m.freezeMs : 0;
    acc.downtimeMs += downtime;
    if (!cloudsim) {
      const cpu = spec.migration.kind === 'herd' ? spec.migration.cpuUnits : 0;
      nodes[m.from].migCpu -= cpu;
      nodes[m.to].migCpu -= cpu;
    }
    remove(m.to);
    for (const n of m.via) remove(n);
    if (m.fails) {
      acc.failed++;
    } else {
      remove(m.from);
      nodes[m.to].list.push(m.c);
      const back = c.leftAt.get(m.to);
      if (back !== undefined && t - back < spec.pingPongMs) acc.pingPong++;
      c.leftAt.set(m.from, t);
      c.node = m.to;
    }
    c.mig = null;
    c.frozen = false;
    const view = recent.find((r) => r.migrationId === m.id);
    if (view) Object.assign(view, { endedMs: t, outcome: m.fails ? 'ROLLED_BACK' : 'SUCCEEDED', downtimeMs: downtime, bytes: c.spec.memoryBytes + c.spec.upperDirBytes });
    migrations.push({ atMs: m.startMs, endMs: t, container: c.spec.id, from: spec.nodes[m.from].id, to: spec.nodes[m.to].id, ok: !m.fails, downtimeMs: downtime });
  };

  // Run: the state at t=0, then event after event.
  let t = 0;
  refresh(0);
  // CloudSim's first update (and first history value) comes at sampleMs + 0.1 s, none at 0.
  if (!csClock) record(0);
  let k = 1;
  let nextTick = spec.sampleMs + offsetMs;
  const prevUtil = new Float64Array(nodes.length);
  while (t < spec.durationMs) {
    const tn = Math.min(nextTick, queue.peekTime(), spec.durationMs);
    // On CloudSim's clock a segment counts from its first update on, up to an update (none at the limit).
    const counted = !csClock || (t >= measureFromMs && (tn === nextTick || tn === queue.peekTime()) && tn < spec.durationMs);
    if (counted && csClock) measureUntilMs = tn;
    account(t, tn - t, counted);
    nodes.forEach((node, n) => (prevUtil[n] = node.util));
    while (queue.peekTime() <= tn) {
      const { v } = queue.pop()!;
      if (v.kind === 'freeze') cs[v.m.c].frozen = true;
      else finish(v.m, tn);
    }
    refresh(tn);
    if (counted) nodes.forEach((node, n) => acc.energy(spec.nodes[n].power, prevUtil[n], node.util, tn - t));
    t = tn;
    if (tn === nextTick && tn < spec.durationMs) {
      record(tn);
      const tick = tn - offsetMs;
      if (tick >= firstEvalMs && (tick - firstEvalMs) % periodMs === 0) {
        const horizon = tn - Math.max(spec.pingPongMs, 3_600_000);
        while (recent.length && recent[0].endedMs !== 0 && recent[0].endedMs < horizon) recent.shift();
        const snap = controller === noMoves ? EMPTY : snapshot(tn);
        const t0 = clock();
        const moves = controller.evaluate(snap);
        acc.decisionMs.push(clock() - t0);
        const touched = new Set<number>();
        for (const mv of moves) {
          const from = cs[byId.get(mv.herdId) ?? -1]?.node;
          if (start(mv, tn)) touched.add(from).add(nodeIndex.get(mv.to)!);
          else acc.skipped++;
        }
        for (const n of touched) share(n);
      }
      k++;
      nextTick = k * spec.sampleMs + offsetMs;
    }
  }
  return { metrics: acc.finish(controller.name, spec.nodes.length, cs.length, rejected, measureUntilMs - measureFromMs), series, migrations, nodeIds: spec.nodes.map((n) => n.id) };
}

/** The no-migration control: it looks at nothing, so the engine builds it no snapshot. */
export const noMoves: Controller = { name: 'none', evaluate: () => [] };
const EMPTY: Snapshot = { nowMs: 0, stepMs: 0, nodes: [], containers: [], migrations: [] };

function nanWin(w: number): Float64Array {
  return new Float64Array(w).fill(NaN);
}
