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
  const maxDown = Math.floor((o.nodes - 1) / 2);
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
    chaosMs: o.chaosMs ?? 8000,
    convergeMs: o.convergeMs ?? 10_000,
    stableMs: o.stableMs ?? 1000,
    meanFaultGapMs: range(r, 100, 1200),
    keepDown: maxDown > 0 && r() < 0.3 ? 1 + Math.floor(r() * maxDown) : 0,
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
      const i = sim.ids.findIndex((_, k) => sim.election(k)?.role === 'leader');
      if (i < 0) return;
      sim.crash(i);
      later(range(r, 200, 3000), () => sim.restart(i));
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
      sim.setLink(a, b, false);
      later(range(r, 100, 3000), () => sim.setLink(a, b, true));
    },
    () => {
      // A graceful stop of the leader: it hands over, then goes (maybe before the handover
      // ends). The driver always stops after handing over, so the stop is not one of the
      // faults the heal cancels; it comes by the heal at the latest.
      const i = sim.ids.findIndex((_, k) => sim.election(k)?.role === 'leader');
      if (i < 0) return;
      sim.transfer(i);
      sim.at(Math.min(sim.time + range(r, 0, 600), p.chaosMs), () => sim.crash(i));
      later(range(r, 600, 3000), () => sim.restart(i));
    },
    () => sim.jumpClock(Math.floor(r() * n), (r() < 0.5 ? -1 : 1) * range(r, 300, 10_000)),
    () => {
      sim.net.dropRate = 0.9;
      later(range(r, 100, 1000), () => (sim.net.dropRate = base.dropRate));
    },
    () => {
      // A congested network: many messages arrive seconds late, well after newer rounds.
      Object.assign(sim.net, { tailRate: 0.5, tailMs: 3000 });
      later(range(r, 200, 2000), () => Object.assign(sim.net, { tailRate: base.tailRate, tailMs: base.tailMs }));
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

  // Agreement must outlast one check-quorum window: right after healing, a leader that lost
  // its majority during the chaos may still be in office for a moment, correctly, and about to go.
  const hold = p.options?.checkQuorumMs ?? DEFAULT_OPTIONS.checkQuorumMs;
  let since = healAt;
  let who = '';
  const settled = () => {
    const a = sim.agreement();
    const key = a ? `${a.leader}@${a.term}` : '';
    if (key !== who) {
      who = key;
      since = sim.time;
    }
    return a !== null && sim.time - since >= hold;
  };
  if (!sim.runUntil(healAt + p.convergeMs, settled)) {
    sim.fail(`no agreed leader within ${p.convergeMs}ms of healing (${n - p.keepDown}/${n} nodes up)`);
  }
  const convergedAfterMs = since - healAt;
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

interface Settled {
  sim: Sim;
  fail: (why: string) => never;
  leader: number;
  term: number;
}

/** Run `body` on a cluster that has settled on a leader, at a random moment; wrap any broken invariant with the seed. */
function onSettled<T>(name: string, seed: number, o: FailoverOptions, body: (s: Settled) => T): T {
  const params: SimParams = { seed, nodes: o.nodes, net: { ...LAN, ...o.net }, persistMs: o.persistMs ?? LAN_PERSIST_MS, options: o.options };
  const sim = new Sim(params);
  const fail = (why: string): never => {
    throw new SimFailure(seed, params, `${why}\n  last events:\n${sim.traceTail()}`, `${name}(${seed}, ${JSON.stringify(o)})`);
  };
  try {
    if (!sim.runUntil(30_000, () => sim.agreement() !== null)) fail('no leader on a quiet LAN');
    // A random phase relative to the heartbeats and the followers' timers.
    sim.runUntil(sim.time + 500 + sim.rng() * 2000);
    const a = sim.agreement() ?? fail('leader lost on a quiet LAN');
    return body({ sim, fail, leader: sim.ids.indexOf(a.leader), term: a.term });
  } catch (err) {
    if (err instanceof InvariantError) fail(err.message);
    throw err;
  }
}

export interface FailoverResult {
  /** kill -9 of the leader to a new leader existing. */
  electedMs: number;
  /** kill -9 of the leader to every live node following the new one. */
  agreedMs: number;
}

/** kill -9 the leader of a settled cluster; time the takeover. */
export function measureFailover(seed: number, o: FailoverOptions): FailoverResult {
  return onSettled('measureFailover', seed, o, ({ sim, fail, leader, term }) => {
    sim.crash(leader);
    const killedAt = sim.time;
    if (!sim.runUntil(killedAt + 30_000, () => [...sim.leaders.keys()].some((t) => t > term))) fail('no new leader within 30 s');
    const electedMs = sim.time - killedAt;
    if (!sim.runUntil(killedAt + 30_000, () => sim.agreement() !== null)) fail('live nodes never agreed on the new leader');
    return { electedMs, agreedMs: sim.time - killedAt };
  });
}

export interface HandoverResult {
  /** The node the leader handed over to won (the handover was not lost). */
  handedOver: boolean;
  /** The leader's handover to a new leader existing. */
  electedMs: number;
  /** The handover to every node but the old leader following the new one. */
  agreedMs: number;
}

/**
 * A graceful stop: the leader of a settled cluster hands over, and stops once it no longer
 * leads (as ElectionDriver.handOver does), or after stopAfterMs. Times the takeover.
 */
export function measureHandover(seed: number, o: FailoverOptions & { stopAfterMs?: number }): HandoverResult {
  return onSettled('measureHandover', seed, o, ({ sim, fail, leader, term }) => {
    const old = sim.election(leader)!;
    const to = sim.transfer(leader) ?? fail('the settled leader found nobody to hand over to');
    const at = sim.time;
    const steppedDown = sim.runUntil(at + (o.stopAfterMs ?? 500), () => old.role !== 'leader');
    sim.crash(leader);
    if (!sim.runUntil(at + 30_000, () => [...sim.leaders.keys()].some((t) => t > term))) fail('no new leader within 30 s');
    const electedMs = sim.time - at;
    if (!sim.runUntil(at + 30_000, () => sim.agreement() !== null)) fail('live nodes never agreed on the new leader');
    return { handedOver: steppedDown && sim.leaders.get(term + 1) === to, electedMs, agreedMs: sim.time - at };
  });
}

export interface TrafficResult {
  intervals: number;
  /** Heartbeats sent per peer per heartbeat interval (target: 1). */
  heartbeatsPerPeer: number;
  /** All election messages per peer per heartbeat interval, responses included. */
  messagesPerPeer: number;
}

/** Election traffic of a settled cluster on a loss-free LAN. */
export function measureTraffic(seed: number, o: FailoverOptions & { durationMs?: number }): TrafficResult {
  const hb = o.options?.heartbeatMs ?? DEFAULT_OPTIONS.heartbeatMs;
  return onSettled('measureTraffic', seed, { ...o, net: { dropRate: 0, ...o.net } }, ({ sim }) => {
    const before = new Map(sim.sent);
    const duration = o.durationMs ?? 60_000;
    sim.runUntil(sim.time + duration);
    const delta = (t: string) => (sim.sent.get(t) ?? 0) - (before.get(t) ?? 0);
    let all = 0;
    for (const t of sim.sent.keys()) all += delta(t);
    const intervals = duration / hb;
    const peers = o.nodes - 1;
    return { intervals, heartbeatsPerPeer: delta('Heartbeat') / intervals / peers, messagesPerPeer: all / intervals / peers };
  });
}

/**
 * A follower loses the leader for awayMs (fully isolated, or only deaf to it) and comes
 * back. Pre-vote keeps its term from rising and leader stickiness keeps the others from
 * listening: the leader and the term must not change. Returns its pre-vote rounds.
 */
export function returningNode(seed: number, o: FailoverOptions & { awayMs: number; deafOnly?: boolean }): { rounds: number } {
  return onSettled('returningNode', seed, o, ({ sim, fail, leader, term }) => {
    const f = (leader + 1 + Math.floor(sim.rng() * (o.nodes - 1))) % o.nodes;
    const before = sim.sent.get('PreVote') ?? 0;
    if (o.deafOnly) sim.setLink(leader, f, false);
    else sim.partition(sim.ids.map((_, k) => (k === f ? 1 : 0)));
    sim.runUntil(sim.time + o.awayMs);
    sim.heal();
    sim.runUntil(sim.time + 3000);
    const a = sim.agreement();
    if (!a || a.leader !== sim.ids[leader] || a.term !== term) {
      fail(`returning ${sim.ids[f]} disturbed leader ${sim.ids[leader]} (term ${term}): now ${JSON.stringify(a)}`);
    }
    return { rounds: ((sim.sent.get('PreVote') ?? 0) - before) / (o.nodes - 1) };
  });
}

/**
 * The leader is cut off alone. It must stop being leader (check-quorum), the majority
 * must elect another, and after healing the old one follows the new one.
 */
export function isolatedLeader(seed: number, o: FailoverOptions): { stepDownMs: number; electedMs: number } {
  return onSettled('isolatedLeader', seed, o, ({ sim, fail, leader, term }) => {
    const old = sim.election(leader)!;
    sim.partition(sim.ids.map((_, k) => (k === leader ? 1 : 0)));
    const cutAt = sim.time;
    if (!sim.runUntil(cutAt + 30_000, () => old.role !== 'leader')) fail('isolated leader never stepped down');
    const stepDownMs = sim.time - cutAt;
    if (!sim.runUntil(cutAt + 30_000, () => [...sim.leaders.keys()].some((t) => t > term))) fail('majority never elected a new leader');
    const electedMs = sim.time - cutAt;
    sim.heal();
    sim.runUntil(sim.time + 3000);
    const a = sim.agreement();
    if (!a || a.term <= term || old.leaderId !== a.leader) fail(`old leader did not rejoin as a follower: ${JSON.stringify(a)}`);
    return { stepDownMs, electedMs };
  });
}
