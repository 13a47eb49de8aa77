/**
 * Controllers the engine runs: a policy alone (every proposed move carried out, as CloudSim
 * does with its baselines), or none (the no-migration control).
 */
import type { Policy } from '../control/policy';
import type { Controller } from './engine';
import { seededRandom } from './random';

export const noMigration: Controller = { name: 'none', evaluate: () => [] };

/** Runs one policy's proposals as they come (no filters, hysteresis or pacing). */
export function policyController<S>(policy: Policy<S>, settings: S = policy.defaults, seed = 1): Controller {
  const err = policy.validate(settings);
  if (err) throw new Error(err);
  const random = seededRandom(seed);
  return {
    name: policy.name,
    evaluate: (snapshot) => policy.propose({ snapshot, settings, allowed: () => null, relievable: () => true, random }),
  };
}
