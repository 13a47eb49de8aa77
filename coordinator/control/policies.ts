/**
 * Every policy by name: the controller, the simulator and `herd policy show` read this one
 * registry. Names match settings.ts's POLICY_NAMES (a unit test checks both ways).
 */
import { cpuGreedy } from './cpu-greedy';
import type { Policy } from './policy';
import type { PolicyName } from './settings';

export const POLICIES: Readonly<Record<PolicyName, Policy<any>>> = {
  'cpu-greedy': cpuGreedy,
  'cpu-greedy-mt': cpuGreedy,
  'oltp-disk': cpuGreedy,
  balance: cpuGreedy,
  random: cpuGreedy,
  'low-node-utilization': cpuGreedy,
};

export function policyByName(name: PolicyName): Policy<unknown> {
  return POLICIES[name] as Policy<unknown>;
}
