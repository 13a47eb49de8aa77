/**
 * What the controller sees, kept as the coordinator keeps it: at each sample tick every
 * container's and node's value goes into a ring of windows (record), and a Snapshot is built
 * from them (snapshot): windows on one grid, oldest first, NaN before the first sample.
 */
import type { ContainerView, NodeView, Snapshot } from '../control/snapshot';
import { incoming, type SimResult, type World } from './world';

/** Records sample slot of tick t: windows, the series a plot draws, and the spread of host load. */
export function record(w: World, t: number, live: readonly number[], idealRate: number, series: SimResult['series']): void {
  const { spec, cs, nodes } = w;
  const slot = w.samples % w.windowSlots;
  w.samples++;
  for (const i of live) {
    const c = cs[i];
    // A container started late has no sample before its first rate (startMs + a sample period).
    const unseen = c.spec.startMs !== undefined && t < c.spec.startMs + spec.sampleMs;
    c.cpuWin[slot] = unseen ? NaN : (spec.observe === 'demand' ? c.demand : c.got) / 1000;
    c.diskWin[slot] = unseen ? NaN : c.iopsGot;
    c.opsWin[slot] = unseen ? NaN : c.ops;
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
  w.acc.spread(utils, w.cloudsim);
  series.tMs.push(t);
  series.nodeUtil.push(utils);
  series.ops.push(ops);
  series.ideal.push(idealRate);
}

/** The last `shown` values of a ring window, oldest first, NaN where no sample was taken yet. */
function window(w: World, ring: Float64Array): number[] {
  const out: number[] = [];
  for (let k = 0; k < w.shown; k++) {
    const age = w.shown - 1 - k;
    out.push(age < w.samples ? ring[(w.samples - 1 - age) % w.windowSlots] : NaN);
  }
  return out;
}

/** A snapshot builder for the world; thread windows (constant per container) are shared between snapshots. */
export function snapshotter(w: World): (t: number) => Snapshot {
  const threadWindows = new Map<number, number[]>();
  return (t) => {
    const { spec, cs, nodes } = w;
    const nodeViews: NodeView[] = spec.nodes.map((n, i) => ({
      id: n.id, arch: n.arch, cores: nodes[i].cap / 1000, memoryBytes: n.memoryBytes, diskIops: n.diskIops,
      labels: n.labels, criu: true, draining: false, connected: true, lastSampleMs: t,
      cpu: window(w, nodes[i].utilWin), diskOps: window(w, nodes[i].diskWin), diskActive: window(w, nodes[i].activeWin), memUsedBytes: window(w, nodes[i].memWin),
    }));
    const containers: ContainerView[] = [];
    nodes.forEach((node, n) => {
      for (const i of node.list) {
        const c = cs[i];
        if (incoming(c.mig, n)) continue;
        let threads = threadWindows.get(c.spec.threads);
        if (!threads) threadWindows.set(c.spec.threads, (threads = Array.from({ length: w.shown }, () => c.spec.threads)));
        containers.push({
          herdId: c.spec.id, name: c.spec.name, node: spec.nodes[n].id, labels: c.spec.labels,
          limits: { cpus: c.spec.limitUnits / 1000, memoryBytes: 0 }, memoryBytes: c.spec.memoryBytes, upperDirBytes: c.spec.upperDirBytes,
          lastSampleMs: t, cpu: window(w, c.cpuWin), diskOps: window(w, c.diskWin), threads, ops: window(w, c.opsWin), migrating: !!c.mig,
        });
      }
    });
    return { nowMs: t, stepMs: spec.sampleMs, nodes: nodeViews, containers, migrations: w.recent.slice() };
  };
}
