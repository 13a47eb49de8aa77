/**
 * The discrete-event simulator: a virtual clock, events (sample ticks, evaluation rounds,
 * migration steps) in a queue, and the cluster's state held constant between events, so
 * every metric is integrated exactly segment by segment. Pure: no I/O, no wall clock (the
 * caller may pass one to time decisions), randomness only from the seed.
 *
 * At each event the demand of every container is re-read (interpolated as its series says),
 * each node's CPU and disk shared by the contention model (node-share.ts), and the segment
 * just ended accounted (metrics.ts). At each evaluation the controller sees a Snapshot built
 * exactly as the coordinator's (observe.ts) and returns moves; the engine carries them out
 * with the migration model's cost (migrate.ts). The state they share: world.ts.
 */
import type { Snapshot } from '../control/snapshot';
import { opsFromCpu } from './contention';
import { EventQueue } from './heap';
import { exactIdealOps, idealOpsRate, type IdealItem } from './ideal';
import { initialPlacement } from './initial-placement';
import { Accounting } from './metrics';
import { finishMigration, startMigration } from './migrate';
import { seriesAt, type SimSpec } from './model';
import { shareNode } from './node-share';
import { record, snapshotter } from './observe';
import { nanWin, type Controller, type CState, type Ev, type NState, type SimResult, type World } from './world';
import { seededRandom } from '../control/decide';

export type { Controller, MigrationEvent, SimResult } from './world';

export function simulate(spec: SimSpec, controller: Controller, clock: () => number = () => 0): SimResult {
  const shown = controller.windowMs ? Math.max(1, Math.round(controller.windowMs / spec.sampleMs)) : spec.windowSteps;
  const W = Math.max(spec.windowSteps, shown);
  const onGrid = (ms: number) => Math.max(spec.sampleMs, Math.round(ms / spec.sampleMs) * spec.sampleMs);
  const periodMs = controller.periodMs ? onGrid(controller.periodMs) : spec.periodMs;
  const firstEvalMs = controller.firstAfterMs !== undefined ? onGrid(controller.firstAfterMs) : spec.firstEvalMs;
  const cloudsim = spec.contention === 'cloudsim';
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
  const w: World = {
    spec, cloudsim, nodes, cs, acc: new Accounting(), queue: new EventQueue<Ev>(), recent: [], migrations: [], rnd: seededRandom(spec.seed),
    byId: new Map(spec.containers.map((c, i) => [c.id, i])), nodeIndex: new Map(spec.nodes.map((n, i) => [n.id, i])), migSeq: 0,
    windowSlots: W, shown, samples: 0, maxPe: Math.max(...spec.nodes.map((n) => n.peUnits)), vmBuf: [],
  };
  const { acc, queue, recent } = w;
  let live = cs.map((_, i) => i).filter((i) => cs[i].node >= 0);
  const rejected = cs.length - live.length;
  const csClock = spec.cloudSimClock === true;
  const offsetMs = csClock ? 100 : 0;
  // CloudSim integrates from its first update to its last one before the limit: the last
  // tick, or a migration started there that ends before the limit (its end updates every host).
  const measureFromMs = csClock ? spec.sampleMs + offsetMs : 0;
  let measureUntilMs = csClock ? measureFromMs : spec.durationMs;
  const series: SimResult['series'] = { tMs: [], nodeUtil: [], ops: [], ideal: [] };
  let idealRate = 0;

  const refresh = (t: number) => {
    if (csClock) dropCompleted(t);
    const items: IdealItem[] = [];
    for (const i of live) {
      const c = cs[i];
      const s = c.spec;
      const started = s.startMs === undefined || t >= s.startMs;
      c.demand = started ? seriesAt(s.cpu, t, spec.zeroAfterEnd) : 0;
      const threadCap = s.threads * w.maxPe;
      c.want = Math.min(c.demand, s.limitUnits > 0 ? s.limitUnits : Infinity, threadCap);
      c.iopsWant = s.iops && started ? seriesAt(s.iops, t, spec.zeroAfterEnd) : 0;
      const opsAtWant = opsFromCpu(s.ops, c.want);
      items.push({ want: c.want, opsAtWant, opsPerUnit: s.ops.kind === 'per-core' ? s.ops.opsPerCore / 1000 : NaN, iopsWant: c.iopsWant });
    }
    idealRate = idealOpsRate(items, cpuCapacity, diskCapacity);
    if (!cloudsim) {
      const active = live.filter((i) => cs[i].want > 0 || cs[i].iopsWant > 0).map((i) => ({ ops: cs[i].spec.ops, threads: cs[i].spec.threads, want: cs[i].want, iopsWant: cs[i].iopsWant }));
      const exact = exactIdealOps(active, spec.nodes);
      if (exact !== undefined) idealRate = Math.min(idealRate, exact);
    }
    nodes.forEach((_, n) => shareNode(w, n));
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

  /** Account a segment of dt ms in the current state. */
  const account = (dt: number, counted: boolean) => {
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

  const snapshot = snapshotter(w);

  // Run: the state at t=0, then event after event.
  let t = 0;
  refresh(0);
  // CloudSim's first update (and first history value) comes at sampleMs + 0.1 s, none at 0.
  if (!csClock) record(w, 0, live, idealRate, series);
  let k = 1;
  let nextTick = spec.sampleMs + offsetMs;
  const prevUtil = new Float64Array(nodes.length);
  while (t < spec.durationMs) {
    const tn = Math.min(nextTick, queue.peekTime(), spec.durationMs);
    // On CloudSim's clock a segment counts from its first update on, up to an update (none at the limit).
    const counted = !csClock || (t >= measureFromMs && (tn === nextTick || tn === queue.peekTime()) && tn < spec.durationMs);
    if (counted && csClock) measureUntilMs = tn;
    account(tn - t, counted);
    nodes.forEach((node, n) => (prevUtil[n] = node.util));
    while (queue.peekTime() <= tn) {
      const { v } = queue.pop()!;
      if (v.kind === 'freeze') cs[v.m.c].frozen = true;
      else finishMigration(w, v.m, tn);
    }
    refresh(tn);
    if (counted) nodes.forEach((node, n) => acc.energy(spec.nodes[n].power, prevUtil[n], node.util, tn - t));
    t = tn;
    if (tn === nextTick && tn < spec.durationMs) {
      record(w, tn, live, idealRate, series);
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
          const from = cs[w.byId.get(mv.herdId) ?? -1]?.node;
          if (startMigration(w, mv, tn)) touched.add(from).add(w.nodeIndex.get(mv.to)!);
          else acc.skipped++;
        }
        for (const n of touched) shareNode(w, n);
      }
      k++;
      nextTick = k * spec.sampleMs + offsetMs;
    }
  }
  return { metrics: acc.finish(controller.name, spec.nodes.length, cs.length, rejected, measureUntilMs - measureFromMs), series, migrations: w.migrations, nodeIds: spec.nodes.map((n) => n.id) };
}

/** The no-migration control: it looks at nothing, so the engine builds it no snapshot. */
export const noMoves: Controller = { name: 'none', evaluate: () => [] };
const EMPTY: Snapshot = { nowMs: 0, stepMs: 0, nodes: [], containers: [], migrations: [] };
