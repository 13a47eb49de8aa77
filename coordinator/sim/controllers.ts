/**
 * Controllers the engine runs:
 * - none: the no-migration control;
 * - a policy alone, every proposed move carried out (how CloudSim runs its baselines);
 * - Herd's controller: the coordinator's own decide() (filters, hysteresis, pacing, the
 *   policy chain), imported, never copied, with its state carried from round to round.
 */
import { decide, initialState, seededRandom } from '../control/decide';
import type { Policy } from '../control/policy';
import { validateSettings, type ControlSettings } from '../control/settings';
import { noMoves, type Controller } from './engine';

export const noMigration: Controller = noMoves;

/** Runs one policy's proposals as they come (no filters, hysteresis or pacing). */
export function policyController<S>(policy: Policy<S>, settings: S = policy.defaults, seed = 1): Controller {
  const err = policy.validate(settings);
  if (err) throw new Error(err);
  const random = seededRandom(seed);
  return {
    name: policy.name,
    evaluate: (snapshot) => policy.propose({ snapshot, settings, allowed: () => null, movable: () => null, relievable: () => true, random }),
  };
}

/** Herd's decision step in auto mode with `patch` over the defaults (policies, thresholds, pacing...). */
export function herdController(name: string, patch: unknown, seed = 1): Controller {
  const v = validateSettings({ mode: 'auto', ...(patch as object) });
  if (!v.ok) throw new Error(`settings of ${name}: ${v.error}`);
  const settings: ControlSettings = v.settings;
  let state = initialState();
  let round = 0;
  return {
    name,
    windowMs: settings.schedule.windowMs,
    periodMs: settings.schedule.periodMs,
    firstAfterMs: settings.schedule.firstAfterMs,
    evaluate(snapshot) {
      const r = decide(state, snapshot, settings, { term: 1, trigger: 'schedule', id: `d-${snapshot.nowMs}-${round++}`, seed: seed + round });
      state = r.state;
      return r.moves;
    },
  };
}
