/**
 * What a run is judged by, accumulated segment by segment between events (state is constant
 * inside a segment). Definitions follow Beloglazov & Buyya (CCPE 2012) as CloudSim computes
 * them, so the figures compare with its own:
 * - SLATAH: share of the time hosts are active (use > 0) during which they give their
 *   containers less CPU than requested;
 * - PDM: CPU demand lost to migrations / all CPU demand;
 * - SLAV = SLATAH x PDM;
 * - energy: trapezoid between host power at consecutive events, 0 W while a host was idle.
 * Herd's own: ops against the ideal bound (ideal.ts), migrations per container per hour,
 * ping-pong moves, downtime, spread of host utilization (SD, CV over hosts in use, time
 * mean), share of node time over the threshold, decision time per round.
 */
import { watts, type PowerModel } from './power';

export interface RunMetrics {
  policy: string;
  nodes: number;
  containers: number;
  /** Containers that fit no node at the start (not run; counted, never dropped silently). */
  rejected: number;
  hours: number;
  ops: number;
  idealOps: number;
  /** ops / idealOps (1 = the bound). */
  opsVsIdeal: number;
  slatahPct: number;
  pdmPct: number;
  slavPct: number;
  /** All CPU demand not served (contention and migrations), percent. */
  unservedPct: number;
  energyKWh: number;
  /** Mean number of hosts in use (utilization > 0). */
  meanActiveHosts: number;
  migrations: number;
  failedMigrations: number;
  skippedMoves: number;
  migrationsPerContainerHour: number;
  pingPong: number;
  downtimeS: number;
  hostUtilSd: number;
  hostUtilCv: number;
  overThresholdPct: number;
  rounds: number;
  decisionMsMean: number;
  decisionMsMax: number;
}

export class Accounting {
  activeHostTime = 0;
  violationTime = 0;
  energyJ = 0;
  demand = 0;
  served = 0;
  migrationLoss = 0;
  ops = 0;
  idealOps = 0;
  nodeTime = 0;
  overTime = 0;
  sdSum = 0;
  cvSum = 0;
  spreadSamples = 0;
  migrations = 0;
  failed = 0;
  skipped = 0;
  pingPong = 0;
  downtimeMs = 0;
  decisionMs: number[] = [];

  /** One host over a segment of dt ms in one state. */
  host(dtMs: number, allocated: number, requested: number, utilization: number, overThreshold: number): void {
    this.nodeTime += dtMs;
    if (utilization > overThreshold) this.overTime += dtMs;
    if (allocated > 0) {
      this.activeHostTime += dtMs;
      if (allocated < requested) this.violationTime += dtMs;
    }
  }

  /** Host energy over dt ms, CloudSim's way: 0 if it was idle, else the mean of the powers at both ends. */
  energy(model: PowerModel, previous: number, current: number, dtMs: number): void {
    if (previous === 0 || dtMs <= 0) return;
    const a = watts(model, previous);
    const b = watts(model, current);
    this.energyJ += (a + (b - a) / 2) * (dtMs / 1000);
  }

  /** Spread of utilization at one sample: over every node, or (a power-off world) over the hosts in use. */
  spread(utils: ArrayLike<number>, inUseOnly: boolean): void {
    let n = 0;
    let sum = 0;
    const counted = (u: number) => !inUseOnly || u > 0;
    for (let i = 0; i < utils.length; i++) if (counted(utils[i])) (n++, (sum += utils[i]));
    if (n === 0) return;
    const mean = sum / n;
    let sq = 0;
    for (let i = 0; i < utils.length; i++) if (counted(utils[i])) sq += (utils[i] - mean) ** 2;
    const sd = Math.sqrt(sq / n);
    this.sdSum += sd;
    this.cvSum += mean > 0 ? sd / mean : 0;
    this.spreadSamples++;
  }

  finish(policy: string, nodes: number, containers: number, rejected: number, durationMs: number): RunMetrics {
    const hours = durationMs / 3_600_000;
    const slatah = this.activeHostTime > 0 ? this.violationTime / this.activeHostTime : 0;
    const pdm = this.demand > 0 ? this.migrationLoss / this.demand : 0;
    const dm = this.decisionMs;
    const running = containers - rejected;
    return {
      policy,
      nodes,
      containers,
      rejected,
      hours,
      ops: this.ops,
      idealOps: this.idealOps,
      opsVsIdeal: this.idealOps > 0 ? this.ops / this.idealOps : 1,
      slatahPct: 100 * slatah,
      pdmPct: 100 * pdm,
      slavPct: 100 * slatah * pdm,
      unservedPct: this.demand > 0 ? (100 * (this.demand - this.served)) / this.demand : 0,
      energyKWh: this.energyJ / 3.6e6,
      meanActiveHosts: durationMs > 0 ? this.activeHostTime / durationMs : 0,
      migrations: this.migrations,
      failedMigrations: this.failed,
      skippedMoves: this.skipped,
      migrationsPerContainerHour: running > 0 && hours > 0 ? this.migrations / running / hours : 0,
      pingPong: this.pingPong,
      downtimeS: this.downtimeMs / 1000,
      hostUtilSd: this.spreadSamples ? this.sdSum / this.spreadSamples : 0,
      hostUtilCv: this.spreadSamples ? this.cvSum / this.spreadSamples : 0,
      overThresholdPct: this.nodeTime > 0 ? (100 * this.overTime) / this.nodeTime : 0,
      rounds: dm.length,
      decisionMsMean: dm.length ? dm.reduce((a, b) => a + b, 0) / dm.length : 0,
      decisionMsMax: dm.length ? Math.max(...dm) : 0,
    };
  }
}
