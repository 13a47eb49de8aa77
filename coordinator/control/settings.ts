/**
 * The one settings schema of the controller: mode, the ordered policy list, the schedule,
 * the filters, hysteresis, pacing and every policy's thresholds. Each value is named and
 * documented here, defaults are the thesis's published figures where it published them
 * (OLTP policy, missing samples, schedule) and otherwise ours, said so.
 *
 * `validateSettings(x)` takes a partial object (anything missing gets its default) and
 * returns full settings or a sentence naming each bad field and its allowed range, so
 * SetPolicy can answer INVALID_ARGUMENT with something a person can act on.
 */
import { z } from 'zod';

/** Every policy the registry (policies.ts) knows, in the order `herd policy show` lists them. */
export const POLICY_NAMES = ['cpu-greedy', 'cpu-greedy-mt', 'oltp-disk', 'balance', 'random', 'low-node-utilization', 'forecast'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** A number that names its allowed range when it is not one (NaN, a string). */
const num = (range: string) => z.number({ error: `must be a number ${range}` });
const FRACTION = 'from 0 to 1';
const fraction = (def: number) => num(FRACTION).min(0, `must be ${FRACTION}`).max(1, `must be ${FRACTION}`).default(def);
const positive = (def: number, max: number, what: string) => num(`above 0 and at most ${max} (${what})`).positive(`must be above 0 (${what})`).max(max, `must be at most ${max} (${what})`).default(def);
const count = (def: number, min: number, max: number) => num(`from ${min} to ${max}`).int('must be a whole number').min(min, `must be from ${min} to ${max}`).max(max, `must be from ${min} to ${max}`).default(def);
/** Durations: at most a day. */
const duration = (def: number, min: number) => num(`from ${min} to 86400000 ms`).int('must be whole milliseconds').min(min, `must be from ${min} to 86400000 ms`).max(86_400_000, `must be from ${min} to 86400000 ms`).default(def);
const obj = <T extends z.ZodRawShape>(shape: T) => z.object(shape).strict().prefault({} as never);

/**
 * CPU greedy (thesis): the busiest container on the most loaded host goes to the least
 * loaded host when the gain clears the reward threshold. The thesis names its inputs (host
 * and container CPU, host container count, reward thresholds) but not their values: ours.
 */
export const CpuGreedySchema = obj({
  /** Source host's CPU use (fraction of its cores) must be at least this to be relieved. */
  hostActiveThreshold: fraction(0.5),
  /** Expected drop of the hotter host's CPU use (source before vs the hotter of source and target after) must reach this. */
  rewardThreshold: fraction(0.1),
  /**
   * A host with fewer containers than this is not a source. 1 by default: a container alone
   * using its host's CPU is moved only off a saturated host (`saturation`) to a target whose
   * free cores exceed what it uses by the reward threshold, where it gets more CPU (a small node
   * beside a bigger idle one); to an equal node it would only move the load.
   */
  minContainersOnSource: count(1, 1, 1000),
  /** A host at or above this CPU use is saturated: its containers may want more than they get. */
  saturation: fraction(0.9),
});

/**
 * CPU greedy for multi-threaded containers (thesis): as CPU greedy, with each container's
 * demand read from its thread (pid) count when its host is saturated, against the target's
 * free cores. Values ours.
 */
export const CpuGreedyMtSchema = obj({
  hostActiveThreshold: fraction(0.5),
  /** Expected cores of work recovered (served after - before), over the source's cores, must reach this. */
  rewardThreshold: fraction(0.1),
  /** A host at or above this CPU use is saturated: its containers may want more than they get. */
  saturation: fraction(0.9),
  minContainersOnSource: count(1, 1, 1000),
});

/** OLTP disk (thesis, published values): six conditions, next candidate, then a fallback. */
export const OltpDiskSchema = obj({
  /** Disk Ops Baseline: the disk ops of the thesis's reference OLTP container. */
  baselineOps: positive(8000, 1e9, 'disk operations per second'),
  /** Disk Ops Baseline Threshold: the candidate's disk ops must reach baselineOps x this. */
  baselineThreshold: fraction(0.005),
  /** Disk Ops Reward Threshold: (max host disk ops - min) / max must reach this. */
  opsRewardThreshold: fraction(0.35),
  /** Disk Active Threshold: the busiest host's disk active fraction must reach this. */
  activeThreshold: fraction(0.15),
  /** Disk Active Reward Threshold: busiest host's disk active - the least busy host's must reach this. */
  activeRewardThreshold: fraction(0.15),
  /** Missing Samples Threshold: the candidate's disk window may miss at most this fraction. */
  missingSamples: fraction(0.02),
  /** When no candidate is left: this policy is tried next ('none' to stop). */
  fallback: z.enum(['cpu-greedy-mt', 'cpu-greedy', 'none']).default('cpu-greedy-mt'),
});

/**
 * Cluster balance with cost-benefit (beyond the thesis): the single move that most lowers
 * the weighted spread of host load, taken only when the work it recovers over the next
 * period outweighs what the move costs.
 */
export const BalanceSchema = obj({
  /** Weight of CPU in the imbalance (Watcher's workload_stabilization weights metrics). */
  cpuWeight: fraction(0.7),
  /** Weight of disk activity in the imbalance. */
  diskWeight: fraction(0.3),
  /** A host whose weighted load is this far above the cluster mean is over its threshold. */
  band: fraction(0.1),
  /** The move must lower the imbalance (weighted SD) by at least this (one move in a large cluster lowers it little). */
  minImprovement: fraction(0.001),
  /** Gain must exceed cost x this (DRS's cost-benefit, with a margin). */
  costBenefitRatio: positive(1, 1000, 'gain over cost'),
  /** Host CPU use (or disk load) at which containers are taken to want more than they get (threads tell how much CPU; the largest disk bounds I/O). */
  saturation: fraction(0.9),
  /** One disk's worth of ops (the source's) counts as this many cores of work when gains are added up. */
  diskCoreEquivalent: positive(1, 1000, 'cores per busy disk'),
});

/** Random baseline: one random allowed move per round with this probability. */
export const RandomSchema = obj({
  moveProbability: fraction(1),
});

/**
 * descheduler's LowNodeUtilization on measured use (Koordinator's LowNodeLoad): nodes under
 * every `low` threshold are underutilized, nodes over any `high` threshold overutilized;
 * containers leave overutilized nodes for underutilized ones. Defaults from descheduler's docs
 * example (thresholds 20%, targetThresholds 50%).
 */
export const LowNodeUtilizationSchema = obj({
  lowCpu: fraction(0.2),
  lowDiskActive: fraction(0.2),
  lowMemory: fraction(0.2),
  highCpu: fraction(0.5),
  highDiskActive: fraction(0.5),
  highMemory: fraction(0.5),
});

/**
 * Forecast (the thesis's machine learning, issue 15): the model in force predicts each
 * container's ops/s on every node; a container moves where the predicted net gain (over its
 * own node's prediction, neighbours counted) clears the reward threshold, and the ops gained over the next evaluation period
 * outweigh the ops lost while it is frozen (cost.ts's expected downtime). Values ours.
 */
export const ForecastSchema = obj({
  /** Predicted ops on the target over the container's measured ops, minus 1, must reach this (0.1: 10% more). */
  rewardThreshold: fraction(0.1),
  /** Ops gained over the period must exceed the ops lost during the expected downtime x this. */
  costBenefitRatio: positive(1, 1000, 'gain over cost'),
  /** A prediction above the measured ops by less than this many ops/s is noise, whatever the ratio. */
  minOpsGain: num('from 0 to 1e12 (ops per second)').min(0, 'must be from 0 to 1e12 (ops per second)').max(1e12, 'must be from 0 to 1e12 (ops per second)').default(1),
});

export const ThresholdsSchema = obj({
  'cpu-greedy': CpuGreedySchema,
  'cpu-greedy-mt': CpuGreedyMtSchema,
  'oltp-disk': OltpDiskSchema,
  balance: BalanceSchema,
  random: RandomSchema,
  'low-node-utilization': LowNodeUtilizationSchema,
  forecast: ForecastSchema,
});

export const ControlSettingsSchema = z
  .object({
    /** off: nothing runs; recommend: decide and record, an operator approves; auto: moves are carried out. */
    mode: z.enum(['off', 'recommend', 'auto']).default('off'),
    /** Ordered policy list: the first that proposes an allowed move wins the round; the next is the fallback. */
    policies: z
      .array(z.enum(POLICY_NAMES, { message: `must be one of ${POLICY_NAMES.join(', ')}` }))
      .min(1, 'must name at least one policy')
      .max(POLICY_NAMES.length, `must name at most ${POLICY_NAMES.length} policies`)
      .refine((l) => new Set(l).size === l.length, 'must not name a policy twice')
      .default(['cpu-greedy-mt']),
    /** The thesis's schedule: a 30 s window, an evaluation every 150 s, the first after 150 s. */
    schedule: obj({
      windowMs: duration(30_000, 1000),
      periodMs: duration(150_000, 1000),
      firstAfterMs: duration(150_000, 0),
    }),
    filters: obj({
      /** A container that moved is not moved again within this. */
      cooldownMs: duration(600_000, 0),
      /** A container is not moved back to a node it left within this (anti-ping-pong). */
      pingPongWindowMs: duration(1_800_000, 0),
      /** A node or container whose newest sample is older than this is not judged (Koordinator: 180 s). */
      staleAfterMs: duration(180_000, 1000),
      /** Thesis's Missing Samples Threshold: a window missing more than this fraction is not judged. */
      maxMissingFraction: fraction(0.02),
      /** After a failed or rolled-back migration the container waits this, doubled per further failure. */
      backoffMs: duration(300_000, 0),
      backoffMaxMs: duration(3_600_000, 0),
    }),
    /** A node must be over its policy's threshold this many evaluations in a row before it is relieved (Koordinator: 5). */
    hysteresisRounds: count(5, 1, 100),
    pacing: obj({
      /** Moves decided in one evaluation. */
      maxMovesPerRound: count(2, 1, 100),
      /** Migrations a node takes part in at once (as source or target), counting those running. */
      maxPerNode: count(1, 1, 16),
      /** Migrations running at once in the cluster (Watcher runs 2 in parallel). */
      maxClusterWide: count(2, 1, 1000),
    }),
    /** Initial placement (herd run): a container without limits is expected to use this. */
    placement: obj({
      defaultCpus: positive(0.5, 1024, 'cores'),
      defaultMemoryBytes: count(256 * 1024 * 1024, 1, 2 ** 50),
    }),
    thresholds: ThresholdsSchema,
  })
  .strict();

export type ControlSettings = z.output<typeof ControlSettingsSchema>;
export type CpuGreedySettings = z.output<typeof CpuGreedySchema>;
export type CpuGreedyMtSettings = z.output<typeof CpuGreedyMtSchema>;
export type OltpDiskSettings = z.output<typeof OltpDiskSchema>;
export type BalanceSettings = z.output<typeof BalanceSchema>;
export type RandomSettings = z.output<typeof RandomSchema>;
export type LowNodeUtilizationSettings = z.output<typeof LowNodeUtilizationSchema>;
export type ForecastSettings = z.output<typeof ForecastSchema>;

/** Sentences naming each bad field and its allowed range, or null when the schema accepts. */
export function explainIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const field = i.path.length ? i.path.join('.') : '(settings)';
      const msg = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
      return `${field}: ${msg}`;
    })
    .join('; ');
}

/** A policy's `validate`: null when its schema accepts the object, else the sentence naming each bad field. */
export function validatorFor(schema: z.ZodType): (x: unknown) => string | null {
  return (x) => {
    const r = schema.safeParse(x ?? {});
    return r.success ? null : explainIssues(r.error);
  };
}

/**
 * The `validate` of a policy whose settings also carry the evaluation period (the horizon of
 * its gain, added by the decision step): the period checked here, the rest by the schema.
 */
export function validatorWithPeriod(schema: z.ZodType): (x: unknown) => string | null {
  const validate = validatorFor(schema);
  return (x) => {
    if (x === null || typeof x !== 'object' || !('periodMs' in x)) return validate(x);
    const { periodMs, ...rest } = x as { periodMs: unknown };
    if (typeof periodMs !== 'number' || !(periodMs > 0) || !Number.isFinite(periodMs)) return 'periodMs: must be a number of milliseconds above 0';
    return validate(rest);
  };
}

export type Validated = { ok: true; settings: ControlSettings } | { ok: false; error: string };

/** Full settings from a partial object (defaults fill the rest), or an error naming each bad field and its range. */
export function validateSettings(x: unknown): Validated {
  const r = ControlSettingsSchema.safeParse(x ?? {});
  if (!r.success) return { ok: false, error: explainIssues(r.error) };
  const s = r.data;
  const problems: string[] = [];
  if (s.filters.backoffMaxMs < s.filters.backoffMs) problems.push(`filters.backoffMaxMs: must be at least filters.backoffMs (${s.filters.backoffMs} ms)`);
  if (s.schedule.windowMs > s.filters.staleAfterMs + s.schedule.periodMs) problems.push(`schedule.windowMs: must be at most filters.staleAfterMs + schedule.periodMs (${s.filters.staleAfterMs + s.schedule.periodMs} ms)`);
  const b = s.thresholds.balance;
  if (b.cpuWeight + b.diskWeight <= 0) problems.push('thresholds.balance: cpuWeight + diskWeight must be above 0');
  if (s.pacing.maxMovesPerRound > s.pacing.maxClusterWide) problems.push(`pacing.maxMovesPerRound: must be at most pacing.maxClusterWide (${s.pacing.maxClusterWide})`);
  if (problems.length) return { ok: false, error: problems.join('; ') };
  return { ok: true, settings: s };
}

/** Every default: what a cluster runs before anyone sets a policy. */
export const DEFAULT_SETTINGS: ControlSettings = ControlSettingsSchema.parse({});

/** Settings merged over others (a SetPolicy with only some fields), validated. */
export function mergeSettings(base: ControlSettings, patch: unknown): Validated {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return { ok: false, error: '(settings): must be an object' };
  return validateSettings(deepMerge(base, patch as Record<string, unknown>));
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out;
}
