/**
 * The controller on the coordinator: the thin driver around the pure decision step
 * (coordinator/control/decide.ts). It keeps the schedule, builds the snapshot from the
 * coordinator's own stores, carries moves out through the one migration path Admin.Migrate
 * takes (coordinator/migrate.ts), and records every decision - and every change to one, as
 * a migration ends - so that it survives the coordinator (records.ts says how).
 *
 * Runs only while this node coordinates: `lead()` starts the schedule (first evaluation
 * `firstAfterMs` after taking over), `follow()` stops it. The decision step's own state
 * (hysteresis counters) lives in memory: a new coordinator starts counting afresh, which
 * can only delay a move, never cause one.
 */
import { checkMove, decide, initialState, type ControlState } from '../control/decide';
import { DEFAULT_SETTINGS, mergeSettings, validateSettings, type ControlSettings } from '../control/settings';
import type { ActionRecord, ControlMode, DecisionRecord } from '../../common/decision';
import { FINAL_STATES } from '../../common/migration-record';
import { logger } from '../../common/log';
import { RpcError } from '../../common/validate';
import { checkMigrate, startMigration, type MigrateDeps } from '../migrate';
import type { ControlRecords, SettingsVersion } from './records';
import { buildSnapshot, type SnapshotSources } from './snapshot-builder';
import type { ForecastView, Snapshot } from '../control/snapshot';
import { decisionToWire, type WireDecision } from './wire';
import type { ControllerObserver } from './metrics';

const log = logger('control');

/** The policy that reads snapshot.forecast (coordinator/control/forecast.ts). */
const FORECAST_POLICY = 'forecast';

/** Grid steps per window: a 30 s window gives 6 s steps, so 5 s sampling fills every step. */
export const STEPS_PER_WINDOW = 5;
/**
 * The snapshot describes the cluster this long ago: a sample reaches the coordinator a moment
 * after it is taken, and a grid whose last step ends "now" would find that step empty.
 */
export const DELIVERY_ALLOWANCE_MS = 1000;
/** Recent decisions checked for moves whose end was not recorded (a coordinator change). */
const RECONCILE_DECISIONS = 50;
/** Decisions the coordinator keeps (the nodes' logs keep them for their retention). */
export const MAX_DECISIONS_KEPT = 10_000;

export const gridStep = (s: ControlSettings) => Math.max(1, Math.floor(s.schedule.windowMs / STEPS_PER_WINDOW));

export interface DriverDeps extends SnapshotSources {
  records: ControlRecords;
  migrate: MigrateDeps;
  term: () => number;
  /** Keeps records in this node's log and hands them to every agent (survive the coordinator). */
  persist: (control: { decisions?: WireDecision[]; policy?: SettingsVersion[] }) => void;
  /** What the model in force predicts for the snapshot (coordinator/forecast/service.ts); absent or undefined: no forecast. */
  forecast?: (s: Snapshot) => Promise<ForecastView | undefined>;
  /** Told of every evaluation and every move's end (the /metrics counters). */
  observer?: ControllerObserver;
  clock?: () => number;
}

export class ControllerDriver {
  private readonly clock: () => number;
  private state: ControlState = initialState();
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private ledSince = 0;
  private lastEvalMs = 0;
  private nextEvalMs = 0;
  private seq = 0;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: DriverDeps) {
    this.clock = deps.clock ?? Date.now;
    // Settings that arrive by replay (a former coordinator's SetPolicy) take effect at once.
    deps.records.onSettings(() => this.reschedule());
  }

  /** The settings in force: the newest version set, or the defaults. */
  settings(): ControlSettings {
    const cur = this.deps.records.settings();
    if (!cur) return DEFAULT_SETTINGS;
    const v = validateSettings(JSON.parse(cur.settings_json));
    return v.ok ? v.settings : DEFAULT_SETTINGS;
  }

  settingsVersion(): SettingsVersion {
    return this.deps.records.settings() ?? { settings_json: JSON.stringify(DEFAULT_SETTINGS), version: 0, set_ms: 0, set_by: '', term: 0 };
  }

  /** When the next scheduled evaluation runs (0: none). */
  nextEvaluationMs(): number {
    return this.timer ? this.nextEvalMs : 0;
  }

  /** This node became coordinator: the schedule starts. */
  lead(): void {
    if (this.leading) return;
    this.leading = true;
    this.ledSince = this.clock();
    this.lastEvalMs = 0;
    this.state = initialState();
    this.reschedule();
  }

  /** This node stopped coordinating (or stops): no more evaluations here. */
  follow(): void {
    this.leading = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Validates and stores new settings (a patch over those in force, or over the defaults
   * with `reset`); throws INVALID_ARGUMENT naming the field and range, changing nothing.
   */
  setSettings(patch: unknown, reset: boolean, by: string): SettingsVersion {
    const v = mergeSettings(reset ? DEFAULT_SETTINGS : this.settings(), patch);
    if (!v.ok) throw new RpcError(3 /* INVALID_ARGUMENT */, `the settings were not changed: ${v.error} (docs/control.md lists every setting)`);
    const next: SettingsVersion = { settings_json: JSON.stringify(v.settings), version: this.settingsVersion().version + 1, set_ms: this.clock(), set_by: by, term: this.deps.term() };
    this.deps.records.putSettings(next); // reschedules through onSettings
    this.deps.persist({ policy: [next] });
    log.info('controller settings changed', { version: next.version, by: by || '-', mode: v.settings.mode, policies: v.settings.policies.join(',') });
    return next;
  }

  private reschedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.settings();
    if (!this.leading || s.mode === 'off') return;
    const due = this.lastEvalMs ? this.lastEvalMs + s.schedule.periodMs : this.ledSince + s.schedule.firstAfterMs;
    this.nextEvalMs = Math.max(due, this.clock());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastEvalMs = this.clock();
      void this.evaluate('schedule')
        .catch((err) => log.error('evaluation failed', { error: err }))
        .finally(() => this.reschedule());
    }, this.nextEvalMs - this.clock());
    this.timer.unref();
  }

  /**
   * One evaluation: snapshot, decision, and (auto) the moves started. Evaluations never
   * overlap: a second one waits for the first. `mode` overrides the settings' (EvaluateNow).
   */
  evaluate(trigger: string, mode?: ControlMode): Promise<DecisionRecord> {
    const run = this.running.then(() => this.evaluateNow(trigger, mode));
    this.running = run.catch(() => undefined);
    return run;
  }

  private async evaluateNow(trigger: string, modeOverride?: ControlMode): Promise<DecisionRecord> {
    this.reconcile();
    const settings = this.settings();
    const mode = modeOverride ?? settings.mode;
    const now = this.clock() - DELIVERY_ALLOWANCE_MS;
    const t0 = performance.now();
    const snapshot = await this.withForecast(this.snapshot(settings, now), settings);
    const id = `d-${now}-${++this.seq}`;
    const out = decide(this.state, snapshot, { ...settings, mode }, { term: this.deps.term(), trigger, id });
    this.state = out.state;
    const decision: DecisionRecord = { ...out.decision, evalMs: Math.round((performance.now() - t0) * 100) / 100 };
    if (mode === 'auto') for (const a of decision.actions) if (a.status === 'recommended' || a.status === 'started') this.carryOut(decision, a);
    this.keep(decision, 0);
    this.deps.observer?.evaluated(decision);
    this.deps.records.trim(MAX_DECISIONS_KEPT);
    log.info('evaluation', { id, trigger, mode, proposals: decision.proposals.length, refusals: decision.refusals.length, actions: decision.actions.map((a) => `${a.herdId}:${a.from}->${a.to}:${a.status}`).join(' ') || '-', note: decision.note });
    return decision;
  }

  /**
   * The snapshot with the model in force's forecast (one batched onnxruntime call per
   * container over every node), when there is one and a policy in force reads it: at 500
   * nodes and 5,000 containers it is 2.5 million rows, seconds of CPU no other policy needs.
   */
  private async withForecast(s: Snapshot, settings: ControlSettings): Promise<Snapshot> {
    if (!this.deps.forecast || !settings.policies.includes(FORECAST_POLICY)) return s;
    try {
      const forecast = await this.deps.forecast(s);
      return forecast ? { ...s, forecast } : s;
    } catch (err) {
      log.warn('forecasting failed: this evaluation runs without a forecast', { error: err });
      return s;
    }
  }

  /** The cluster now, on the grid the settings' window asks for. */
  snapshot(settings: ControlSettings, nowMs: number): Snapshot {
    const f = settings.filters;
    return buildSnapshot(this.deps, { nowMs, windowMs: settings.schedule.windowMs, stepMs: gridStep(settings), historyMs: Math.max(f.cooldownMs, f.pingPongWindowMs, f.backoffMaxMs) });
  }

  /** Carries out a decision's recommended moves (all, or one container's); answers with the decision. */
  approve(decisionId: string, herdId: string): DecisionRecord {
    const stored = this.deps.records.decision(decisionId);
    if (!stored) throw new RpcError(5 /* NOT_FOUND */, `no decision "${decisionId}"; ListDecisions (herd decisions) shows them`);
    const decision = structuredClone(stored.record);
    const waiting = decision.actions.filter((a) => a.status === 'recommended' && (!herdId || a.herdId === herdId));
    if (waiting.length === 0) {
      const what = herdId ? `a recommended move of container ${herdId}` : 'a recommended move';
      const has = decision.actions.map((a) => `${a.herdId} ${a.status}`).join(', ') || 'no moves';
      throw new RpcError(9 /* FAILED_PRECONDITION */, `decision ${decisionId} has no ${what} waiting for approval (it has: ${has})`);
    }
    // An approval never bypasses the filters: pinned, draining, room, pacing are judged now.
    const settings = this.settings();
    const snapshot = this.snapshot(settings, this.clock() - DELIVERY_ALLOWANCE_MS);
    for (const a of waiting) {
      const refused = checkMove(snapshot, settings, a.herdId, a.to);
      if (refused) {
        a.status = 'skipped';
        a.detail = `refused at approval by the ${refused.filter} filter: ${refused.reason}`;
        this.deps.observer?.moveEnded(a);
      } else this.carryOut(decision, a);
    }
    this.keep(decision, stored.revision + 1);
    return decision;
  }

  /** Starts an action's migration through the migration path; its end is recorded later. */
  private carryOut(decision: DecisionRecord, a: ActionRecord): void {
    this.startMove(decision, a);
    if (a.status !== 'started') this.deps.observer?.moveEnded(a); // it ended before it began
  }

  private startMove(decision: DecisionRecord, a: ActionRecord): void {
    let checked;
    try {
      checked = checkMigrate(this.deps.migrate, { herd_id: a.herdId, target_node_id: a.to });
    } catch (err) {
      a.status = 'skipped';
      a.detail = err instanceof RpcError ? err.message : String(err);
      return;
    }
    if (checked.container.node_id !== a.from) {
      a.status = 'skipped';
      a.detail = `container ${a.herdId} is on ${checked.container.node_id} now, not on ${a.from}`;
      return;
    }
    const started = startMigration(this.deps.migrate, checked.container, a.to, checked.fsMode, (m) => {
      if (!FINAL_STATES.has(m.state)) return;
      this.actionEnded(decision.id, m.migration_id, m.state, m.reason);
    });
    a.migrationId = started.record.migration_id;
    a.status = started.sent ? 'started' : 'ROLLED_BACK';
    a.detail = started.sent ? '' : `the source node ${a.from} is not connected`;
  }

  /**
   * Moves a former coordinator started and did not see end (it was deposed first): their
   * migration records, replayed here, say how they ended; the decisions get a revision.
   */
  private reconcile(): void {
    for (const { record } of this.deps.records.decisions(RECONCILE_DECISIONS)) {
      for (const a of record.actions) {
        if (a.status !== 'started' || !a.migrationId) continue;
        const m = this.deps.migrate.migrations.get(a.migrationId);
        if (m && FINAL_STATES.has(m.state)) this.actionEnded(record.id, m.migration_id, m.state, m.reason);
      }
    }
  }

  /** A migration a decision started ended: the decision gets a new revision saying how. */
  private actionEnded(decisionId: string, migrationId: string, state: string, reason: string): void {
    // Deferred: the decision that started it is stored right after it starts.
    setImmediate(() => {
      const stored = this.deps.records.decision(decisionId);
      if (!stored) return;
      const decision = structuredClone(stored.record);
      const a = decision.actions.find((x) => x.migrationId === migrationId);
      if (!a || a.status === state) return;
      a.status = state;
      a.detail = reason;
      this.keep(decision, stored.revision + 1);
      this.deps.observer?.moveEnded(a);
      log.info('controller move ended', { decision: decisionId, herd_id: a.herdId, from: a.from, to: a.to, state, reason: reason || undefined });
    });
  }

  private keep(decision: DecisionRecord, revision: number): void {
    this.deps.records.putDecision(decision, revision);
    this.deps.persist({ decisions: [decisionToWire(decision, revision)] });
  }
}
