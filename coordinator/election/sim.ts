/**
 * Seeded election scenarios on top of the simulator core: chaos schedules with a liveness
 * check after healing, failover timing after a leader is killed, steady-state traffic.
 * Every scenario is a pure function of (seed, options): a failure names its seed and
 * parameters, and replay(seed, options) runs the very same schedule again.
 */
import { DEFAULT_OPTIONS, type ElectionOptions } from './election';
import { InvariantError, type NetParams, Sim, type SimParams, mulberry32 } from './simcore';

export { InvariantError, type NetParams, Sim, type SimParams, mulberry32 } from './simcore';

export interface ScheduleOptions {
  nodes: number;
  /** Length of the fault phase; then the network heals and a majority comes up. */
  chaosMs?: number;
  /** After healing, a leader all live nodes agree on must exist within this long. */
  convergeMs?: number;
  /** ...and it must stay, unchallenged, for this long. */
  stableMs?: number;
  options?: Partial<ElectionOptions>;
}

export interface ScheduleParams extends SimParams {
  chaosMs: number;
  convergeMs: number;
  stableMs: number;
  meanFaultGapMs: number;
  /** Nodes still down after healing (always a minority). */
  keepDown: number;
}

export interface ScheduleResult {
  params: ScheduleParams;
  /** Time from healing to agreement on one leader. */
  convergedAfterMs: number;
  terms: number;
  messages: number;
}

export class SimFailure extends Error {
  constructor(
    readonly seed: number,
    readonly params: unknown,
    detail: string,
    readonly replayHint: string,
  ) {
    super(`election sim failed: ${detail}\n  seed=${seed} params=${JSON.stringify(params)}\n  replay: ${replayHint}`);
  }
}

const range = (r: () => number, lo: number, hi: number) => lo + r() * (hi - lo);

/** Everything about a schedule is drawn from its seed, so the seed alone reproduces it. */
export function scheduleParams(seed: number, o: ScheduleOptions): ScheduleParams {
  const r = mulberry32(seed ^ 0x9e3779b9);
  const minDelayMs = range(r, 0.1, 5);
  return {
    seed,
    nodes: o.nodes,
    options: o.options,
    net: {
      dropRate: r() < 0.2 ? 0 : range(r, 0, 0.3),
      dupRate: range(r, 0, 0.1),
      minDelayMs,
      maxDelayMs: minDelayMs + range(r, 1, 60),
      tailRate: range(r, 0, 0.05),
      tailMs: range(r, 100, 800),
      garbleRate: range(r, 0, 0.02),
    },
    persistMs: [0.1, range(r, 0.2, 20)],
    chaosMs: o.chaosMs ?? 5000,
    convergeMs: o.convergeMs ?? 10_000,
    stableMs: o.stableMs ?? 1000,
    meanFaultGapMs: range(r, 150, 1500),
    keepDown: r() < 0.3 ? 1 + Math.floor(r() * Math.floor((o.nodes - 1) / 2)) : 0,
  };
}

/** One chaos schedule; throws SimFailure if an invariant breaks or the cluster does not recover. */
export function runSchedule(seed: number, o: ScheduleOptions): ScheduleResult {
  const params = scheduleParams(seed, o);
  const hint = `replay(${seed}, ${JSON.stringify(o)})`;
  let sim: Sim | undefined;
  try {
    sim = new Sim(params);
    return chaos(sim, params);
  } catch (err) {
    if (!(err instanceof InvariantError)) throw err;
    throw new SimFailure(seed, params, `${err.message}\n  last events:\n${sim?.traceTail() ?? ''}`, hint);
  }
}

export const replay = runSchedule;

function chaos(sim: Sim, p: ScheduleParams): ScheduleResult {
  const n = p.nodes;
  const r = sim.rng;
  const base = { ...sim.net };
  let healed = false;
  const later = (ms: number, fn: () => void) => sim.at(sim.time + ms, () => healed || fn());
  const faults: (() => void)[] = [
    () => {
      const i = Math.floor(r() * n);
      sim.crash(i);
      later(range(r, 0, 3000), () => sim.restart(i));
    },
    () => {
      // kill -9 of the leader: the case failover is about.
      for (let i = 0; i < n; i++) if (sim.election(i)?.role === 'leader') sim.crash(i), later(range(r, 200, 3000), () => sim.restart(i));
    },
    () => {
      sim.partition(sim.ids.map(() => Math.floor(r() * 2)));
      later(range(r, 100, 3000), () => sim.heal());
    },
    () => {
      // Isolate one node, typically the leader, so that it later comes back into a healthy majority.
      const i = r() < 0.5 ? Math.floor(r() * n) : Math.max(0, sim.ids.findIndex((_, k) => sim.election(k)?.role === 'leader'));
      sim.partition(sim.ids.map((_, k) => (k === i ? 1 : 0)));
      later(range(r, 100, 4000), () => sim.heal());
    },
    () => {
      const a = Math.floor(r() * n);
      const b = (a + 1 + Math.floor(r() * (n - 1))) % n;
      sim.cut.add(a * n + b);
      later(range(r, 100, 3000), () => sim.cut.delete(a * n + b));
    },
    () => sim.jumpClock(Math.floor(r() * n), (r() < 0.5 ? -1 : 1) * range(r, 300, 10_000)),
    () => {
      sim.net.dropRate = 0.9;
      later(range(r, 100, 1000), () => (sim.net.dropRate = base.dropRate));
    },
  ];
  for (let t = -p.meanFaultGapMs * Math.log(1 - r()); t < p.chaosMs; t += -p.meanFaultGapMs * Math.log(1 - r())) {
    const f = faults[Math.floor(r() * faults.length)];
    sim.at(t, () => healed || f());
  }
  sim.runUntil(p.chaosMs);

  healed = true;
  const healAt = sim.time;
  sim.heal();
  Object.assign(sim.net, { ...base, dropRate: 0, garbleRate: 0, tailRate: 0 });
  const down = new Set<number>();
  while (down.size < p.keepDown) down.add(Math.floor(r() * n));
  for (let i = 0; i < n; i++) (down.has(i) ? sim.crash(i) : sim.restart(i));

  if (!sim.runUntil(healAt + p.convergeMs, () => sim.agreement() !== null)) {
    sim.fail(`no agreed leader within ${p.convergeMs}ms of healing (${n - p.keepDown}/${n} nodes up)`);
  }
  const convergedAfterMs = sim.time - healAt;
  const first = sim.agreement()!;
  sim.runUntil(sim.time + p.stableMs);
  const now = sim.agreement();
  if (!now || now.leader !== first.leader || now.term !== first.term) {
    sim.fail(`leader ${first.leader} (term ${first.term}) was disturbed on a healthy network: now ${JSON.stringify(now)}`);
  }
  let messages = 0;
  for (const c of sim.sent.values()) messages += c;
  return { params: p, convergedAfterMs, terms: sim.leaders.size, messages };
}

export interface FailoverOptions {
  nodes: number;
  options?: Partial<ElectionOptions>;
  net?: Partial<NetParams>;
  persistMs?: [number, number];
}

/** A LAN with an occasional loss, and an SD-card-class fsync: what a Pi cluster sees. */
export const LAN: NetParams = { dropRate: 0.01, dupRate: 0, minDelayMs: 0.5, maxDelayMs: 5, tailRate: 0.01, tailMs: 50, garbleRate: 0 };
export const LAN_PERSIST_MS: [number, number] = [2, 20];

export interface FailoverResult {
  /** kill -9 of the leader to a new leader existing. */
  electedMs: number;
  /** kill -9 of the leader to every live node following the new one. */
  agreedMs: number;
}

/** Settle a cluster, kill its leader at a random moment, time the takeover. */
export function measureFailover(seed: number, o: FailoverOptions): FailoverResult {
  const params: SimParams = { seed, nodes: o.nodes, net: { ...LAN, ...o.net }, persistMs: o.persistMs ?? LAN_PERSIST_MS, options: o.options };
  const sim = new Sim(params);
  const fail = (why: string): never => {
    throw new SimFailure(seed, params, `${why}\n  last events:\n${sim.traceTail()}`, `measureFailover(${seed}, ${JSON.stringify(o)})`);
  };
  try {
    if (!sim.runUntil(30_000, () => sim.agreement() !== null)) fail('no initial leader');
    // A random phase relative to the heartbeat and the followers' timers.
    sim.runUntil(sim.time + 1000 + sim.rng() * 2000);
    const old = sim.agreement() ?? fail('initial leader lost on a quiet network');
    sim.crash(sim.ids.indexOf(old.leader));
    const killedAt = sim.time;
    const elected = () => [...sim.leaders.keys()].some((t) => t > old.term);
    if (!sim.runUntil(killedAt + 30_000, elected)) fail('no new leader within 30 s');
    const electedMs = sim.time - killedAt;
    if (!sim.runUntil(killedAt + 30_000, () => sim.agreement() !== null)) fail('live nodes never agreed on the new leader');
    return { electedMs, agreedMs: sim.time - killedAt };
  } catch (err) {
    if (err instanceof InvariantError) fail(err.message);
    throw err;
  }
}

export interface TrafficResult {
  intervals: number;
  /** Heartbeats sent per peer per heartbeat interval (target: 1). */
  heartbeatsPerPeer: number;
  /** All election messages per peer per heartbeat interval, responses included. */
  messagesPerPeer: number;
}

/** Election traffic of a settled cluster on a LAN. */
export function measureTraffic(seed: number, o: FailoverOptions & { durationMs?: number }): TrafficResult {
  const hb = o.options?.heartbeatMs ?? DEFAULT_OPTIONS.heartbeatMs;
  const sim = new Sim({ seed, nodes: o.nodes, net: { ...LAN, dropRate: 0, ...o.net }, persistMs: o.persistMs ?? LAN_PERSIST_MS, options: o.options });
  sim.runUntil(30_000, () => sim.agreement() !== null);
  const before = new Map(sim.sent);
  const duration = o.durationMs ?? 60_000;
  sim.runUntil(sim.time + duration);
  const delta = (t: string) => (sim.sent.get(t) ?? 0) - (before.get(t) ?? 0);
  let all = 0;
  for (const t of sim.sent.keys()) all += delta(t);
  const intervals = duration / hb;
  const peers = o.nodes - 1;
  return { intervals, heartbeatsPerPeer: delta('Heartbeat') / intervals / peers, messagesPerPeer: all / intervals / peers };
}
