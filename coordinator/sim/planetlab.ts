/**
 * PlanetLab traces (../shared/traces/planetlab/*.csv: a row per VM, its name, then 288 CPU
 * utilizations in percent, one per 5 minutes) and their mapping onto a simulated cluster
 * the way CloudSim's PlanetLab benchmark maps them (Beloglazov & Buyya, CCPE 2012):
 * - one container per row; four VM types in four contiguous blocks of the rows (CloudSim's
 *   Helper.createVmList: type = i / ceil(n / 4)): 2500 MIPS / 870 MB, 2000 / 1740,
 *   1000 / 1740, 500 / 613, one core each;
 * - demand = value / 100 x the type's MIPS (1000 MIPS = one reference core), linear between
 *   samples, the last held after it (CloudSim's UtilizationModelPlanetLabInMemory repeats the
 *   288th value in its 289th slot);
 * - hosts alternate HP ProLiant ML110 G4 (2 x 1860 MIPS) and G5 (2 x 2660 MIPS), 4 GB,
 *   with their SPECpower models.
 * Parsing is pure (text in); cli/ reads the files.
 */
import { BED_MIGRATION, type MigrationModel, type SimContainer, type SimNode, type SimSpec } from './model';
import { POWER_MODELS } from './power';

export interface TraceRow {
  name: string;
  /** Utilization, percent, one per 5 minutes. */
  values: number[];
}

export class TraceError extends Error {}

/** Parses one day's CSV; an error names the file, line and column of the first bad value. */
export function parsePlanetLab(text: string, source: string): TraceRow[] {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.split(',') ?? [];
  if (header[0] !== 'vm' || header.length < 2) throw new TraceError(`${source} line 1: expected a header "vm,t0,t5,..." (got "${(lines[0] ?? '').slice(0, 40)}")`);
  const width = header.length - 1;
  const rows: TraceRow[] = [];
  for (let ln = 1; ln < lines.length; ln++) {
    const line = lines[ln];
    if (line.trim() === '') continue;
    const cells = line.split(',');
    if (cells.length !== width + 1) throw new TraceError(`${source} line ${ln + 1}: ${cells.length - 1} values, the header has ${width}`);
    const values = new Array<number>(width);
    for (let k = 1; k <= width; k++) {
      const cell = cells[k].trim();
      const v = cell === '' ? NaN : Number(cell);
      if (!Number.isFinite(v)) throw new TraceError(`${source} line ${ln + 1}, column ${header[k]}: "${cells[k]}" is not a number (a missing sample must be filled before replaying)`);
      if (v < 0 || v > 100) throw new TraceError(`${source} line ${ln + 1}, column ${header[k]}: ${v} is outside 0..100 percent`);
      values[k - 1] = v;
    }
    rows.push({ name: cells[0], values });
  }
  if (rows.length === 0) throw new TraceError(`${source}: no VM rows`);
  return rows;
}

export const VM_TYPES = [
  { mips: 2500, ramMb: 870 },
  { mips: 2000, ramMb: 1740 },
  { mips: 1000, ramMb: 1740 },
  { mips: 500, ramMb: 613 },
] as const;

export const STEP_MS = 300_000;
const MB = 1024 * 1024;

/** CloudSim's host list: alternating G4 and G5; `memoryMb` 4096 as CloudSim's (see the like-with-like note in docs/simulator.md). */
export function cloudSimHosts(count: number, memoryMb = 4096): SimNode[] {
  return Array.from({ length: count }, (_, i) => {
    const g5 = i % 2 === 1;
    return {
      id: `host-${i}`, pes: 2, peUnits: g5 ? 2660 : 1860, memoryBytes: memoryMb * MB, diskIops: 0, arch: 'x64',
      power: g5 ? POWER_MODELS.ml110g5 : POWER_MODELS.ml110g4, labels: { 'sim.power': g5 ? 'ml110g5' : 'ml110g4', 'sim.pe-mips': String(g5 ? 2660 : 1860) },
    };
  });
}

/** One container per row, CloudSim's VM types in contiguous blocks. `upperDirMb`: PlanetLab says nothing of files; assumed small. */
export function planetLabContainers(rows: readonly TraceRow[], prefix = '', upperDirMb = 10): SimContainer[] {
  const block = Math.ceil(rows.length / VM_TYPES.length);
  return rows.map((r, i) => {
    const type = VM_TYPES[Math.floor(i / block)];
    return {
      id: `${prefix}vm-${i}`, name: r.name, memoryBytes: type.ramMb * MB, upperDirBytes: upperDirMb * MB, threads: 1,
      limitUnits: type.mips, cpu: { stepMs: STEP_MS, values: r.values.map((v) => (v / 100) * type.mips), interpolate: 'linear' },
      ops: { kind: 'per-core', opsPerCore: 1000 }, labels: {}, node: '',
    };
  });
}

/** CloudSim's own setup for a day: 800 hosts (or `hosts`), its placement, contention and migration model, 24 h at 5 minutes. */
export function cloudSimSetup(rows: readonly TraceRow[], opts: { hosts?: number; seed?: number } = {}): SimSpec {
  return {
    nodes: cloudSimHosts(opts.hosts ?? 800),
    containers: planetLabContainers(rows),
    durationMs: 288 * STEP_MS,
    sampleMs: STEP_MS,
    periodMs: STEP_MS,
    firstEvalMs: STEP_MS,
    windowSteps: 30,
    contention: 'cloudsim',
    migration: { kind: 'cloudsim', linkMbps: 1000, failureRate: 0 },
    placement: 'cloudsim',
    observe: 'demand',
    overThreshold: 0.9,
    pingPongMs: 3_600_000,
    zeroAfterEnd: false,
    cloudSimClock: true,
    seed: opts.seed ?? 1,
  };
}

/**
 * The like-with-like cluster: `hosts` of CloudSim's types, all kept on, containers spread.
 * Memory is not a constraint (64 GB hosts) because CloudSim's never is after creation
 * (PlanetLab cloudlets ask no RAM, so its consolidation packs ~15 VMs on a 4 GB host).
 */
export function fixedClusterSetup(rows: readonly TraceRow[], hosts: number, migration: MigrationModel = { kind: 'cloudsim', linkMbps: 1000, failureRate: 0 }, seed = 1): SimSpec {
  return { ...cloudSimSetup(rows, { hosts, seed }), nodes: cloudSimHosts(hosts, 65536), placement: 'spread', migration };
}

export { BED_MIGRATION };

/**
 * Herd's controller settings for 5-minute PlanetLab samples (chosen on the tuning days
 * 2011-03-03 and 03-06 only): a two-sample window, an evaluation per sample, no hysteresis
 * beyond one round (a sample is already a 5-minute mean), up to 20 moves a round on a
 * cluster of tens of hosts, a container left alone for an hour after it moved.
 */
export const PLANETLAB_SETTINGS = {
  schedule: { windowMs: 600_000, periodMs: 300_000, firstAfterMs: 300_000 },
  filters: { staleAfterMs: 600_000, cooldownMs: 3_600_000, pingPongWindowMs: 7_200_000 },
  hysteresisRounds: 1,
  pacing: { maxMovesPerRound: 20, maxPerNode: 2, maxClusterWide: 40 },
};
