/**
 * The control experiment's arithmetic, pure (no I/O, no clock): the staircase of a scenario,
 * the ideal static placement from measured node capacities, and the figures of a run
 * (mean ops, gain, ping-pong moves). bench/control-experiment.ts drives the bed with it;
 * test/unit/control-model.test.ts checks it.
 */

/** Which containers run in each phase: a staircase up (one more per phase), then down. */
export function staircase(containers: number, down: number): number[][] {
  const phases: number[][] = [];
  for (let k = 1; k <= containers; k++) phases.push(Array.from({ length: k }, (_, i) => i));
  // down: the oldest container stops first
  for (let d = 1; d <= down && d < containers; d++) phases.push(Array.from({ length: containers - d }, (_, i) => i + d));
  return phases;
}

/**
 * Ops of a placement over the phases, by the capacity model: a node with at least one running
 * container serves its measured capacity (every container alone saturates any node of the
 * bed: its caps are below one core and below the disk's speed), shared by its containers.
 */
export function modelOps(placement: readonly number[], phases: readonly number[][], capacity: readonly number[]): number {
  let total = 0;
  for (const running of phases) {
    const busy = new Set(running.map((c) => placement[c]));
    for (const n of busy) total += capacity[n];
  }
  return total / Math.max(1, phases.length);
}

/**
 * The best static placement (each container on one node for the whole run) by the capacity
 * model, by trying every placement (nodes^containers: 27 for 3 and 3). Ties go to the one
 * whose busiest node carries the fewest containers per unit of capacity, then the first.
 */
export function idealPlacement(containers: number, phases: readonly number[][], capacity: readonly number[]): { placement: number[]; ops: number } {
  const nodes = capacity.length;
  let best: { placement: number[]; ops: number; crowd: number } | undefined;
  const p = new Array<number>(containers).fill(0);
  for (let i = 0; i < nodes ** containers; i++) {
    let x = i;
    for (let c = 0; c < containers; c++) (p[c] = x % nodes), (x = Math.floor(x / nodes));
    const ops = modelOps(p, phases, capacity);
    const per = new Array<number>(nodes).fill(0);
    for (const n of p) per[n]++;
    const crowd = Math.max(...per.map((k, n) => k / Math.max(capacity[n], 1e-9)));
    if (!best || ops > best.ops + 1e-9 || (Math.abs(ops - best.ops) <= 1e-9 && crowd < best.crowd - 1e-9)) best = { placement: [...p], ops, crowd };
  }
  return { placement: best!.placement, ops: best!.ops };
}

export interface Move {
  herdId: string;
  from: string;
  to: string;
  ms: number;
}

/** Moves that take a container back to a node it left earlier in the run. */
export function pingPongs(moves: readonly Move[]): number {
  const left = new Map<string, Set<string>>();
  let n = 0;
  for (const m of [...moves].sort((a, b) => a.ms - b.ms)) {
    const mine = left.get(m.herdId) ?? new Set<string>();
    if (mine.has(m.to)) n++;
    mine.add(m.from);
    left.set(m.herdId, mine);
  }
  return n;
}

/** Mean of the finite values; 0 when none. */
export function mean(xs: readonly number[]): number {
  const f = xs.filter(Number.isFinite);
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : 0;
}

/** Relative gain of x over a baseline (0.0641 = +6.41 %); 0 for a zero baseline. */
export const gain = (x: number, base: number): number => (base > 0 ? x / base - 1 : 0);

/**
 * Ops per second of all containers together in each bucket of [fromMs, toMs). Every workload
 * reports once a second the ops of that second, so a bucket's work is the sum of the reports
 * that fall in it (robust to a report landing a little early or late, unlike a per-second
 * mean). A container that reports nothing (not started, stopped, frozen by a migration) adds
 * nothing: lost work counts. The mean of the buckets is the run's mean ops per second.
 */
export function opsBuckets(series: readonly (readonly [number, number])[][], fromMs: number, toMs: number, bucketMs: number): number[] {
  const buckets = Math.max(0, Math.floor((toMs - fromMs) / bucketMs));
  const out = new Array<number>(buckets).fill(0);
  for (const points of series) {
    for (const [ts, v] of points) {
      const i = Math.floor((ts - fromMs) / bucketMs);
      if (i >= 0 && i < buckets && Number.isFinite(v)) out[i] += v / (bucketMs / 1000);
    }
  }
  return out;
}
