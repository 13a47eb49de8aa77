/**
 * Admin's control methods: GetPolicy, SetPolicy, ListDecisions, EvaluateNow, ApproveDecision.
 * Every argument is checked before anything changes; a refusal names the field and what it
 * may be. Access (agent/security/authorize.ts): Get/List are reads, the others need the
 * admin role and are audited.
 */
import * as grpc from '@grpc/grpc-js';
import { peerIdentity, principal } from '../../common/identity';
import { logger } from '../../common/log';
import { checkId, invalid, unary } from '../../common/validate';
import { DEFAULT_SETTINGS, POLICY_NAMES } from '../control/settings';
import { POLICIES } from '../control/policies';
import type { ControllerDriver } from './driver';
import type { ControlRecords } from './records';
import { decisionToWire } from './wire';

const log = logger('admin');

/** Most decisions one ListDecisions answer carries. */
export const MAX_DECISIONS = 1000;
const MAX_SETTINGS_JSON = 64 * 1024;

export interface ControlAdminDeps {
  driver: ControllerDriver;
  records: ControlRecords;
}

/** Who made a call, for the settings' set_by (the audit trail has it too). */
export function caller(call: grpc.ServerUnaryCall<any, any>): string {
  const id = peerIdentity(call);
  return id ? principal(id) : `insecure:${call.getPeer()}`;
}

export function controlHandlers(deps: ControlAdminDeps): grpc.UntypedServiceImplementation {
  const internal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  const policyAnswer = () => ({
    settings: deps.driver.settingsVersion(),
    available: POLICY_NAMES.map((name) => ({
      name,
      summary: POLICIES[name]?.summary ?? '',
      defaults_json: JSON.stringify(DEFAULT_SETTINGS.thresholds[name] ?? {}),
    })),
    next_evaluation_ms: deps.driver.nextEvaluationMs(),
  });
  return {
    GetPolicy: unary('GetPolicy', () => policyAnswer(), internal),

    SetPolicy: unary<any, any>('SetPolicy', (req, call) => {
      const text = String(req.settings_json ?? '').trim();
      if (text.length > MAX_SETTINGS_JSON) throw invalid(`settings_json is longer than ${MAX_SETTINGS_JSON} characters`);
      if (!text && !req.reset) throw invalid('settings_json is empty: give a JSON object with the settings to change, e.g. {"mode":"recommend"}, or reset: true for the defaults');
      let patch: unknown = {};
      if (text) {
        try {
          patch = JSON.parse(text);
        } catch (err) {
          throw invalid(`settings_json is not JSON: ${(err as Error).message}`);
        }
      }
      deps.driver.setSettings(patch, Boolean(req.reset), caller(call));
      return policyAnswer();
    }, internal),

    ListDecisions: unary('ListDecisions', (req: any) => {
      const limit = Number(req.limit || 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DECISIONS) throw invalid(`limit must be 1-${MAX_DECISIONS}, got ${req.limit}`);
      if (req.decision_id) {
        const bad = checkId('decision_id', req.decision_id);
        if (bad) throw invalid(bad);
        const d = deps.records.decision(req.decision_id);
        return { decisions: d ? [decisionToWire(d.record, d.revision)] : [] };
      }
      return { decisions: deps.records.decisions(limit).map((d) => decisionToWire(d.record, d.revision)) };
    }, internal),

    EvaluateNow: unary('EvaluateNow', async (req: any) => {
      const mode = req.mode || 'recommend';
      if (mode !== 'recommend' && mode !== 'auto') throw invalid(`mode must be "recommend" (decide and record, move nothing) or "auto" (carry the moves out), not "${String(req.mode).slice(0, 40)}"`);
      const d = await deps.driver.evaluate('evaluate-now', mode);
      const stored = deps.records.decision(d.id);
      return decisionToWire(stored?.record ?? d, stored?.revision ?? 0);
    }, internal),

    ApproveDecision: unary('ApproveDecision', (req: any) => {
      const bad = checkId('decision_id', req.decision_id) ?? (req.herd_id ? checkId('herd_id', req.herd_id) : undefined);
      if (bad) throw invalid(bad);
      const d = deps.driver.approve(req.decision_id, req.herd_id ?? '');
      const stored = deps.records.decision(d.id);
      return decisionToWire(stored?.record ?? d, stored?.revision ?? 0);
    }, internal),
  };
}
