/**
 * Scenario files a user writes (JSON): nodes, containers with their demand over time, the
 * rules of the world, the policies to compare and Herd's controller settings. Validated
 * with one schema; every error names the field and the line it is on. Pure: text in (the
 * CLI reads the file), a SimSpec out. docs/simulator.md shows the format.
 */
import { findNodeAtLocation, parse, parseTree, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { z } from 'zod';
import { BED_MIGRATION, CORE, type MigrationModel, type OpsModel, type Series, type SimContainer, type SimNode, type SimSpec } from './model';
import { POWER_MODELS } from './power';
import { seededRandom } from '../control/decide';
import { knownController } from './runner';

const MB = 1024 * 1024;
const pos = (what: string) => z.number({ error: `must be a number (${what})` }).positive(`must be above 0 (${what})`);
const nonneg = (what: string) => z.number({ error: `must be a number (${what})` }).min(0, `must be 0 or more (${what})`);
const point = z.tuple([nonneg('seconds'), nonneg('value')]);

/** Demand over time: steps [[second, value], ...], a sampled series, a constant, or a seeded OLTP-like generator. */
const SeriesSchema = z.union([
  z.object({ steps: z.array(point).min(1, 'needs at least one [second, value] step') }).strict(),
  z.object({ stepS: pos('seconds between values'), values: z.array(nonneg('value')).min(1), interpolate: z.enum(['linear', 'step']).default('step') }).strict(),
  z.object({ constant: nonneg('value') }).strict(),
  z.object({ random: z.object({ mean: nonneg('mean'), spread: z.number().min(0).max(1).default(0.5), stepS: pos('seconds').default(60) }).strict() }).strict(),
]);

const NodeSchema = z
  .object({
    id: z.string().min(1, 'must not be empty').regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
    count: z.number().int().min(1).max(10_000).default(1),
    cores: pos('cores'),
    coreSpeed: pos('relative to a reference core').default(1),
    memoryMb: pos('MB').default(4096),
    diskIops: nonneg('disk operations per second; 0 = no disk model').default(0),
    arch: z.string().default('x64'),
    power: z.enum(Object.keys(POWER_MODELS) as [string, ...string[]]).default('generic'),
    labels: z.record(z.string(), z.string()).default({}),
  })
  .strict();

const ContainerSchema = z
  .object({
    id: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
    count: z.number().int().min(1).max(100_000).default(1),
    node: z.string().default(''),
    threads: z.number().int().min(1).max(1024).default(1),
    cpus: nonneg('CPU limit in cores, 0 = none').default(0),
    memoryMb: pos('MB').default(64),
    upperDirMb: nonneg('MB').default(1),
    cpu: SeriesSchema,
    iops: SeriesSchema.optional(),
    opsPerCore: pos('operations per second per core').optional(),
    opsCurve: z.array(z.tuple([nonneg('cores'), nonneg('ops per second')])).min(1).optional(),
    labels: z.record(z.string(), z.string()).default({}),
    startS: nonneg('s: when the container is started').optional(),
  })
  .strict();

export const ScenarioSchema = z
  .object({
    name: z.string().default('scenario'),
    durationS: pos('seconds').max(30 * 86400, 'at most 30 days'),
    sampleS: pos('seconds').default(30),
    periodS: pos('seconds').optional(),
    firstEvalS: nonneg('seconds').optional(),
    windowSteps: z.number().int().min(1).max(1000).default(10),
    contention: z.enum(['fair', 'cloudsim']).default('fair'),
    migration: z
      .object({
        kind: z.enum(['herd', 'cloudsim']).default('herd'),
        baseMs: nonneg('ms').default(BED_MIGRATION.baseMs),
        msPerMemMb: nonneg('ms per MB').default(BED_MIGRATION.msPerMemMb),
        msPerUpperMb: nonneg('ms per MB').default(BED_MIGRATION.msPerUpperMb),
        overheadMs: nonneg('ms').default(BED_MIGRATION.overheadMs),
        cpuCores: nonneg('cores on each node while it runs').default(BED_MIGRATION.cpuUnits / CORE),
        linkMbps: pos('Mbit/s').default(1000),
        failureRate: z.number().min(0, 'must be from 0 to 1').max(1, 'must be from 0 to 1').default(0),
      })
      .strict()
      .prefault({}),
    placement: z.enum(['given', 'spread', 'cloudsim']).default('spread'),
    observe: z.enum(['usage', 'demand']).default('usage'),
    overThreshold: z.number().min(0).max(1).default(0.9),
    pingPongS: nonneg('seconds').default(1800),
    /** How long starting a container takes (docker run) before it runs: added to each container's startS. */
    startLatencyS: nonneg('seconds').default(0),
    seed: z.number().int().default(1),
    policies: z.array(z.string()).min(1).default(['none']),
    /** Herd's controller settings over its defaults (coordinator/control/settings.ts). */
    controller: z.record(z.string(), z.unknown()).default({}),
    nodes: z.array(NodeSchema).min(1, 'needs at least one node'),
    containers: z.array(ContainerSchema).default([]),
  })
  .strict();

export type Scenario = z.output<typeof ScenarioSchema>;

export class ScenarioError extends Error {}

/** Parses and validates scenario text; errors name the line and the field. */
export function parseScenario(text: string, source: string): Scenario {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: false, disallowComments: false });
  const lineOf = (offset: number) => text.slice(0, offset).split('\n').length;
  if (errors.length || !tree) {
    const e = errors[0];
    throw new ScenarioError(`${source} line ${e ? lineOf(e.offset) : 1}: ${e ? printParseErrorCode(e.error) : 'empty file'}`);
  }
  const raw: unknown = parse(text);
  const r = ScenarioSchema.safeParse(raw);
  if (!r.success) {
    const msgs = r.error.issues.slice(0, 5).map((i) => {
      const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
      let node = findNodeAtLocation(tree, path);
      for (let k = path.length - 1; !node && k >= 0; k--) node = findNodeAtLocation(tree, path.slice(0, k));
      const field = path.length ? path.join('.') : '(top level)';
      const msg = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
      return `${source} line ${lineOf(node?.offset ?? 0)}, ${field}: ${msg}`;
    });
    throw new ScenarioError(msgs.join('\n'));
  }
  const s = r.data;
  const nodeIds = new Set<string>();
  s.nodes.forEach((n) => expandIds(n.id, n.count).forEach((id) => nodeIds.add(id)));
  s.containers.forEach((c, i) => {
    if (c.node && !nodeIds.has(c.node)) {
      const node = findNodeAtLocation(tree, ['containers', i, 'node']);
      throw new ScenarioError(`${source} line ${lineOf(node?.offset ?? 0)}, containers.${i}.node: no node "${c.node}" (nodes: ${[...nodeIds].slice(0, 8).join(', ')}${nodeIds.size > 8 ? ', ...' : ''})`);
    }
  });
  s.policies.forEach((p, i) => {
    const bad = knownController(p);
    if (bad) throw new ScenarioError(`${source} line ${lineOf(findNodeAtLocation(tree, ['policies', i])?.offset ?? 0)}, policies.${i}: ${bad}`);
  });
  if (s.placement === 'given') {
    const i = s.containers.findIndex((c) => !c.node);
    if (i >= 0) throw new ScenarioError(`${source} line ${lineOf(findNodeAtLocation(tree, ['containers', i])?.offset ?? 0)}, containers.${i}.node: placement "given" needs every container's node`);
  }
  return s;
}

const expandIds = (id: string, count: number) => (count === 1 ? [id] : Array.from({ length: count }, (_, i) => `${id}-${i + 1}`));

function toSeries(s: z.output<typeof SeriesSchema>, scale: number, rnd: () => number, durationMs: number): Series {
  if ('constant' in s) return { stepMs: durationMs + 1, values: [s.constant * scale], interpolate: 'step' };
  if ('values' in s) return { stepMs: s.stepS * 1000, values: s.values.map((v) => v * scale), interpolate: s.interpolate };
  if ('random' in s) {
    // Seeded bursts around the mean (synthetic OLTP): each step mean x (1 +/- spread).
    const stepMs = s.random.stepS * 1000;
    const n = Math.ceil(durationMs / stepMs) + 1;
    return { stepMs, values: Array.from({ length: n }, () => s.random.mean * scale * (1 + s.random.spread * (2 * rnd() - 1))), interpolate: 'step' };
  }
  // Steps: a value holds from its second until the next step's.
  const steps = [...s.steps].sort((a, b) => a[0] - b[0]);
  const stepMs = gcdMs(steps.map((p) => p[0] * 1000).concat(durationMs));
  const n = Math.ceil(durationMs / stepMs) + 1;
  const values = Array.from({ length: n }, (_, k) => {
    let v = 0;
    for (const [t, x] of steps) if (t * 1000 <= k * stepMs) v = x * scale;
    return v;
  });
  return { stepMs, values, interpolate: 'step' };
}

function gcdMs(xs: number[]): number {
  const g = (a: number, b: number): number => (b === 0 ? a : g(b, a % b));
  const r = xs.map((x) => Math.round(x)).filter((x) => x > 0).reduce((a, b) => g(a, b), 0);
  return Math.max(1000, r || 1000);
}

/** The scenario as the engine runs it (containers and nodes with `count` expanded). */
export function scenarioSpec(s: Scenario): SimSpec {
  const durationMs = s.durationS * 1000;
  const rnd = seededRandom(s.seed);
  const nodes: SimNode[] = s.nodes.flatMap((n) =>
    expandIds(n.id, n.count).map((id) => ({
      id, pes: Math.ceil(n.cores), peUnits: (n.cores / Math.ceil(n.cores)) * n.coreSpeed * CORE, memoryBytes: n.memoryMb * MB,
      diskIops: n.diskIops, arch: n.arch, power: POWER_MODELS[n.power], labels: { ...n.labels, 'sim.power': n.power },
    })),
  );
  const containers: SimContainer[] = s.containers.flatMap((c) =>
    expandIds(c.id, c.count).map((id) => {
      const ops: OpsModel = c.opsCurve ? { kind: 'curve', points: c.opsCurve } : { kind: 'per-core', opsPerCore: c.opsPerCore ?? 1000 };
      return {
        id, name: id, memoryBytes: c.memoryMb * MB, upperDirBytes: c.upperDirMb * MB, threads: c.threads, limitUnits: c.cpus * CORE,
        cpu: toSeries(c.cpu, CORE, rnd, durationMs), iops: c.iops ? toSeries(c.iops, 1, rnd, durationMs) : undefined, ops, labels: c.labels, node: c.node,
        ...(c.startS !== undefined ? { startMs: (c.startS + s.startLatencyS) * 1000 } : {}),
      };
    }),
  );
  const m = s.migration;
  const migration: MigrationModel = m.kind === 'cloudsim'
    ? { kind: 'cloudsim', linkMbps: m.linkMbps, failureRate: m.failureRate }
    : { kind: 'herd', baseMs: m.baseMs, msPerMemMb: m.msPerMemMb, msPerUpperMb: m.msPerUpperMb, overheadMs: m.overheadMs, cpuUnits: m.cpuCores * CORE, failureRate: m.failureRate };
  const sampleMs = s.sampleS * 1000;
  const periodMs = (s.periodS ?? s.sampleS) * 1000;
  return {
    nodes, containers, durationMs, sampleMs, periodMs: Math.max(sampleMs, Math.round(periodMs / sampleMs) * sampleMs),
    firstEvalMs: s.firstEvalS !== undefined ? Math.max(sampleMs, Math.round((s.firstEvalS * 1000) / sampleMs) * sampleMs) : periodMs,
    windowSteps: s.windowSteps, contention: s.contention, migration, placement: s.placement, observe: s.observe,
    overThreshold: s.overThreshold, pingPongMs: s.pingPongS * 1000, zeroAfterEnd: false, seed: s.seed,
  };
}
