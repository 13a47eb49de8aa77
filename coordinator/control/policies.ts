/**
 * Every policy by name: the controller, the simulator and `herd policy show` read this one
 * registry. Names match settings.ts's POLICY_NAMES (a unit test checks both ways).
 */
import { balance } from './balance';
import { cpuGreedy } from './cpu-greedy';
import { cpuGreedyMt } from './cpu-greedy-mt';
import { forecast } from './forecast';
import { lowNodeUtilization } from './low-node-utilization';
import { oltpDisk } from './oltp-disk';
import { randomPolicy } from './random';
import type { Policy } from './policy';
import type { PolicyName } from './settings';

export const POLICIES: Readonly<Record<PolicyName, Policy<any>>> = {
  'cpu-greedy': cpuGreedy,
  'cpu-greedy-mt': cpuGreedyMt,
  'oltp-disk': oltpDisk,
  balance,
  random: randomPolicy,
  'low-node-utilization': lowNodeUtilization,
  forecast,
};

export function policyByName(name: PolicyName): Policy<unknown> {
  return POLICIES[name] as Policy<unknown>;
}
