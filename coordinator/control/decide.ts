/**
 * One evaluation of the controller, as a pure state machine:
 *   decide(state, snapshot, settings, {term, trigger, id}) -> { state, decision, moves }
 * No clock, no I/O: the driver (coordinator/controller/) builds the snapshot, carries out the
 * moves in auto mode, fills in `evalMs` and how each migration ended, and keeps `state`.
 *
 * Steps: judge nodes (filters: fresh, connected, enough samples); count for each policy in
 * the chain the rounds in a row each node has been over its threshold (hysteresis: relieved
 * only after `hysteresisRounds`); then, while the round's budget lasts (pacing: moves per
 * round, cluster-wide and per node at once, counting migrations already running), ask the
 * policies in order (an OLTP policy's fallback joins the chain after it) and take the first
 * allowed move; the move is applied to the snapshot so the next one is judged on the
 * cluster as it will be. The record keeps every proposal, every refusal with its rule, and
 * the imbalance before and as expected after.
 */
import { mulberry32 } from '../../common/random';
import type { ActionRecord, DecisionRecord } from '../../common/decision';
import { makeFilters } from './filters';
import { applyMove, fmt, imbalance, loadsOf } from './load';
import type { Move, Policy, PolicyInput, Refusal } from './policy';
import { policyByName } from './policies';
import type { ControlSettings, PolicyName } from './settings';
import type { Snapshot } from './snapshot';

/** What the controller carries from one evaluation to the next. Plain JSON. */
export interface ControlState {
  /** Evaluations so far. */
  rounds: number;
  /** policy -> node -> evaluations in a row the node has been over that policy's threshold (only > 0 kept). */
  over: Record<string, Record<string, number>>;
}

export const initialState = (): ControlState => ({ rounds: 0, over: {} });

export interface DecideContext {
  term: number;
  /** 'schedule' | 'evaluate-now' | 'approve' ... */
  trigger: string;
  /** The decision's id (the driver makes it unique and sortable, e.g. 'd-<ms>-<n>'). */
  id: string;
  /** Seed of the random baseline (default: derived from the id). */
  seed?: number;
}

export interface DecideResult {
  state: ControlState;
  decision: DecisionRecord;
  /** Moves chosen, in order: carried out in auto mode, recorded as recommendations otherwise. */
  moves: Move[];
}

/** At most this many refusals are kept in one record (the note gives the total). */
export const MAX_REFUSALS_RECORDED = 200;

/** The chain of policies tried in order: the list, with each policy's fallback after it. */
export function policyChain(settings: ControlSettings): PolicyName[] {
  const chain: PolicyName[] = [];
  const add = (n: PolicyName) => {
    if (chain.includes(n)) return;
    chain.push(n);
    if (n === 'oltp-disk' && settings.thresholds['oltp-disk'].fallback !== 'none') add(settings.thresholds['oltp-disk'].fallback);
  };
  for (const p of settings.policies) add(p);
  return chain;
}

/** mulberry32 (common/random.ts): small, seeded, deterministic. */
export const seededRandom = mulberry32;

const hashString = (s: string) => {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
};

/** A policy's own settings; the balance and forecast policies also get the evaluation period (the horizon of their gain). */
export const thresholdsOf = (settings: ControlSettings, name: PolicyName): unknown =>
  name === 'balance' || name === 'forecast' ? { ...settings.thresholds[name], periodMs: settings.schedule.periodMs } : settings.thresholds[name];

export function decide(state: ControlState, snapshot: Snapshot, settings: ControlSettings, ctx: DecideContext): DecideResult {
  const filters0 = makeFilters(snapshot, settings);
  const judged = snapshot.nodes.filter((n) => filters0.judged(n.id));
  const judgedIds = new Set(judged.map((n) => n.id));
  const chain = policyChain(settings);

  // Hysteresis: rounds in a row over each policy's threshold; a node not judged starts again.
  const over: ControlState['over'] = {};
  for (const name of chain) {
    const p = policyByName(name);
    if (!p.overThreshold) continue;
    const hot = p.overThreshold(snapshot, thresholdsOf(settings, name));
    const prev = state.over[name] ?? {};
    const next: Record<string, number> = {};
    for (const id of hot) if (judgedIds.has(id)) next[id] = (prev[id] ?? 0) + 1;
    over[name] = next;
  }
  const nextState: ControlState = { rounds: state.rounds + 1, over };
  const relievableFor = (name: string, p: Policy) => (nodeId: string) => !p.overThreshold || (over[name]?.[nodeId] ?? 0) >= settings.hysteresisRounds;

  const loads0 = loadsOf(snapshot);
  const weights = settings.thresholds.balance;
  const before = imbalance(loads0, weights, (id) => judgedIds.has(id));
  const notes: string[] = [];
  const proposals: Move[] = [];
  const refusals = new Map<string, Refusal>();
  const moves: Move[] = [];
  const random = seededRandom(ctx.seed ?? hashString(ctx.id));
  let current = snapshot;

  let running = 0;
  for (const m of snapshot.migrations) if (m.outcome === 'RUNNING') running++;
  const budget = settings.mode === 'off' ? 0 : Math.max(0, Math.min(settings.pacing.maxMovesPerRound, settings.pacing.maxClusterWide - running));
  if (settings.mode === 'off') notes.push('mode is off: nothing evaluated');
  else if (budget === 0) notes.push(`${running} migration(s) running, the most at once is ${settings.pacing.maxClusterWide}: no move this round`);
  else if (judged.length < 2) notes.push(`${judged.length} node(s) judged (fresh, connected, enough samples) of ${snapshot.nodes.length}: a move needs two`);

  while (moves.length < budget && judged.length >= 2) {
    const filters = current === snapshot ? filters0 : makeFilters(current, settings);
    let chosen: Move | undefined;
    for (const name of chain) {
      const p = policyByName(name);
      const input: PolicyInput = {
        snapshot: current,
        settings: thresholdsOf(settings, name),
        allowed: filters.allowed,
        movable: filters.movable,
        relievable: relievableFor(name, p),
        random,
        note: (s) => {
          if (!notes.includes(s)) notes.push(s);
        },
      };
      const proposed = p.propose(input);
      for (const m of proposed) if (!proposals.some((x) => x.herdId === m.herdId && x.to === m.to && x.policy === m.policy)) proposals.push(m);
      chosen = proposed.find((m) => filters.allowed(m.herdId, m.to) === null);
      if (chosen) break;
    }
    for (const r of filters.refusals()) refusals.set(`${r.herdId}\u0000${r.to}\u0000${r.filter}`, r);
    if (!chosen) break;
    moves.push(chosen);
    current = applyMove(current, chosen.herdId, chosen.to);
  }
  for (const r of filters0.refusals()) refusals.set(`${r.herdId}\u0000${r.to}\u0000${r.filter}`, r);

  const after = moves.length ? imbalance(loadsOf(current), weights, (id) => judgedIds.has(id)) : before;
  const actions: ActionRecord[] = moves.map((m) => ({
    herdId: m.herdId,
    from: m.from,
    to: m.to,
    policy: m.policy,
    reason: m.reason,
    status: settings.mode === 'auto' ? 'started' : 'recommended',
    migrationId: '',
    detail: settings.mode === 'auto' ? '' : 'waits for approval (recommend mode)',
  }));
  const allRefusals = [...refusals.values()];
  if (allRefusals.length > MAX_REFUSALS_RECORDED) notes.push(`${allRefusals.length} refusals, the first ${MAX_REFUSALS_RECORDED} kept`);
  const head =
    settings.mode === 'off'
      ? 'off'
      : moves.length
        ? `${moves.length} move(s) ${settings.mode === 'auto' ? 'started' : 'recommended'} by ${[...new Set(moves.map((m) => m.policy))].join(', ')}; imbalance ${fmt(before)} -> ${fmt(after)}`
        : `no move (${chain.join(' then ')})`;

  let meanCpu = 0;
  let meanDisk = 0;
  for (const n of judged) (meanCpu += loads0.get(n.id)!.cpu), (meanDisk += loads0.get(n.id)!.diskActive);
  const judgedContainers = snapshot.containers.filter((c) => judgedIds.has(c.node)).length;
  const decision: DecisionRecord = {
    id: ctx.id,
    atMs: snapshot.nowMs,
    term: ctx.term,
    mode: settings.mode,
    policies: [...settings.policies],
    trigger: ctx.trigger,
    summary: {
      nodes: snapshot.nodes.length,
      containers: snapshot.containers.length,
      judgedNodes: judged.length,
      judgedContainers,
      meanCpu: judged.length ? meanCpu / judged.length : 0,
      meanDiskActive: judged.length ? meanDisk / judged.length : 0,
    },
    proposals: proposals.map((m) => ({ herdId: m.herdId, from: m.from, to: m.to, policy: m.policy, score: m.score, reason: m.reason, figures: { ...m.figures } })),
    refusals: allRefusals.slice(0, MAX_REFUSALS_RECORDED).map((r) => ({ ...r })),
    actions,
    efficacy: { imbalanceBefore: before, imbalanceAfter: after, movedFraction: snapshot.containers.length ? moves.length / snapshot.containers.length : 0 },
    note: [head, ...notes].join('. '),
    evalMs: 0,
  };
  return { state: nextState, decision, moves };
}

/**
 * Whether a recommended move may still be carried out now (ApproveDecision): the filters on
 * today's snapshot, so an approval never bypasses pinning, draining, room or pacing.
 */
export function checkMove(snapshot: Snapshot, settings: ControlSettings, herdId: string, to: string): Refusal | null {
  return makeFilters(snapshot, settings).allowed(herdId, to);
}
