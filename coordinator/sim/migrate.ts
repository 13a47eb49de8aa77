/**
 * Migrations in the simulator: a move started with the scenario's migration model's cost
 * (the bed-calibrated stop-and-copy, or CloudSim's RAM / half the link), and its end (the
 * container on its target, or back on its source when it fails). Both update the world's
 * state and its accounting; the engine re-shares the nodes they touch.
 */
import type { Move } from '../control/policy';
import { incoming, type Mig, type World } from './world';

const mb = (b: number) => b / (1024 * 1024);

/** Starts a move at t; false (the move is skipped) if its container or node is unknown, already moving, not on `from`, or the target lacks memory. */
export function startMigration(w: World, move: Move, t: number): boolean {
  const { spec, cs, nodes, acc } = w;
  const ci = w.byId.get(move.herdId);
  const to = w.nodeIndex.get(move.to);
  if (ci === undefined || to === undefined) return false;
  const c = cs[ci];
  if (w.cloudsim && spec.cloudSimClock === true && c.mig && c.mig.startMs === t && spec.nodes[c.mig.from].id === move.from && to !== c.mig.from && !incoming(c.mig, to)) {
    // CloudSim starts both moves of a VM its round placed twice; the second one's target is where it ends.
    c.mig.via.push(c.mig.to);
    c.mig.to = to;
    nodes[to].list.push(ci);
    const view = w.recent.find((r) => r.migrationId === c.mig!.id);
    if (view) view.to = spec.nodes[to].id;
    acc.migrations++;
    return true;
  }
  if (c.node < 0 || c.mig || spec.nodes[c.node].id !== move.from || to === c.node) return false;
  if (!w.cloudsim) {
    const mem = nodes[to].list.reduce((s, i) => s + cs[i].spec.memoryBytes, 0);
    if (mem + c.spec.memoryBytes > spec.nodes[to].memoryBytes) return false;
  }
  const mm = spec.migration;
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
  const m: Mig = { id: `m${++w.migSeq}`, c: ci, from: c.node, to, startMs: t, freezeMs, endMs, fails: w.rnd() < mm.failureRate, via: [] };
  c.mig = m;
  if (w.cloudsim) nodes[to].list.push(ci);
  else {
    nodes[c.node].migCpu += mm.kind === 'herd' ? mm.cpuUnits : 0;
    nodes[to].migCpu += mm.kind === 'herd' ? mm.cpuUnits : 0;
    w.queue.push(freezeMs, { kind: 'freeze', m });
  }
  w.queue.push(endMs, { kind: 'end', m });
  w.recent.push({ migrationId: m.id, herdId: c.spec.id, from: spec.nodes[m.from].id, to: spec.nodes[to].id, startedMs: t, endedMs: 0, outcome: 'RUNNING', downtimeMs: 0, bytes: 0, memoryBytes: c.spec.memoryBytes });
  acc.migrations++;
  return true;
}

/** Ends migration m at t: the container on its target, or (a failure) resumed on its source. */
export function finishMigration(w: World, m: Mig, t: number): void {
  const { spec, cs, nodes, acc } = w;
  const c = cs[m.c];
  const remove = (n: number) => {
    const l = nodes[n].list;
    const k = l.indexOf(m.c);
    if (k >= 0) l.splice(k, 1);
  };
  const downtime = spec.migration.kind === 'herd' ? m.endMs - m.freezeMs : 0;
  acc.downtimeMs += downtime;
  if (!w.cloudsim) {
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
  const view = w.recent.find((r) => r.migrationId === m.id);
  if (view) Object.assign(view, { endedMs: t, outcome: m.fails ? 'ROLLED_BACK' : 'SUCCEEDED', downtimeMs: downtime, bytes: c.spec.memoryBytes + c.spec.upperDirBytes });
  w.migrations.push({ atMs: m.startMs, endMs: t, container: c.spec.id, from: spec.nodes[m.from].id, to: spec.nodes[m.to].id, ok: !m.fails, downtimeMs: downtime });
}
