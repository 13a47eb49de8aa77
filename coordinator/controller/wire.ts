/**
 * A DecisionRecord as herd.v1.Decision and back. The wire names the nodes *_node_id and
 * carries figures as a list (every reflection client reads a list; not all read maps).
 * What comes back from a log is bounded: a record is the coordinator's, but it passed
 * through every agent's log, so nothing in it may blow up the store or a listing.
 */
import type { ActionRecord, ControlMode, DecisionRecord } from '../../common/decision';

export type WireDecision = Record<string, any>;

const MAX_ITEMS = 5_000;
const str = (v: unknown, n = 2_000) => String(v ?? '').slice(0, n);
const num = (v: unknown) => (Number.isFinite(Number(v)) ? Number(v) : 0);
const list = (v: unknown): any[] => (Array.isArray(v) ? v.slice(0, MAX_ITEMS) : []);
const MODES: ControlMode[] = ['off', 'recommend', 'auto'];

export function decisionToWire(d: DecisionRecord, revision: number): WireDecision {
  return {
    id: d.id,
    at_ms: d.atMs,
    term: d.term,
    mode: d.mode,
    policies: d.policies,
    trigger: d.trigger,
    summary: {
      nodes: d.summary.nodes,
      containers: d.summary.containers,
      judged_nodes: d.summary.judgedNodes,
      judged_containers: d.summary.judgedContainers,
      mean_cpu: d.summary.meanCpu,
      mean_disk_active: d.summary.meanDiskActive,
    },
    proposals: d.proposals.map((p) => ({
      herd_id: p.herdId,
      from_node_id: p.from,
      to_node_id: p.to,
      policy: p.policy,
      score: p.score,
      reason: p.reason,
      figures: Object.entries(p.figures).map(([name, value]) => ({ name, value })),
    })),
    refusals: d.refusals.map((r) => ({ herd_id: r.herdId, to_node_id: r.to, filter: r.filter, reason: r.reason })),
    actions: d.actions.map((a) => ({
      herd_id: a.herdId,
      from_node_id: a.from,
      to_node_id: a.to,
      policy: a.policy,
      reason: a.reason,
      status: a.status,
      migration_id: a.migrationId,
      detail: a.detail,
    })),
    efficacy: { imbalance_before: d.efficacy.imbalanceBefore, imbalance_after: d.efficacy.imbalanceAfter, moved_fraction: d.efficacy.movedFraction },
    note: d.note,
    eval_ms: d.evalMs,
    revision,
  };
}

export function decisionFromWire(w: WireDecision): { record: DecisionRecord; revision: number } {
  const s = w.summary ?? {};
  const e = w.efficacy ?? {};
  const record: DecisionRecord = {
    id: str(w.id, 128),
    atMs: num(w.at_ms),
    term: num(w.term),
    mode: MODES.includes(w.mode) ? w.mode : 'off',
    policies: list(w.policies).map((p) => str(p, 100)),
    trigger: str(w.trigger, 100),
    summary: {
      nodes: num(s.nodes),
      containers: num(s.containers),
      judgedNodes: num(s.judged_nodes),
      judgedContainers: num(s.judged_containers),
      meanCpu: num(s.mean_cpu),
      meanDiskActive: num(s.mean_disk_active),
    },
    proposals: list(w.proposals).map((p) => ({
      herdId: str(p?.herd_id, 128),
      from: str(p?.from_node_id, 128),
      to: str(p?.to_node_id, 128),
      policy: str(p?.policy, 100),
      score: num(p?.score),
      reason: str(p?.reason),
      figures: Object.fromEntries(list(p?.figures).map((f) => [str(f?.name, 100), num(f?.value)])),
    })),
    refusals: list(w.refusals).map((r) => ({ herdId: str(r?.herd_id, 128), to: str(r?.to_node_id, 128), filter: str(r?.filter, 100), reason: str(r?.reason) })),
    actions: list(w.actions).map(
      (a): ActionRecord => ({
        herdId: str(a?.herd_id, 128),
        from: str(a?.from_node_id, 128),
        to: str(a?.to_node_id, 128),
        policy: str(a?.policy, 100),
        reason: str(a?.reason),
        status: str(a?.status, 40),
        migrationId: str(a?.migration_id, 128),
        detail: str(a?.detail),
      }),
    ),
    efficacy: { imbalanceBefore: num(e.imbalance_before), imbalanceAfter: num(e.imbalance_after), movedFraction: num(e.moved_fraction) },
    note: str(w.note),
    evalMs: num(w.eval_ms),
  };
  return { record, revision: Math.max(0, Math.trunc(num(w.revision))) };
}
