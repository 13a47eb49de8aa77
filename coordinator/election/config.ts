/** Election settings, their defaults and their validation (a bad config fails at startup, loudly). */
import { type HardState, type NodeId, isNodeId, isTerm } from './messages';

export interface ElectionOptions {
  /** Leader sends one Heartbeat per peer this often. */
  heartbeatMs: number;
  /** Election timeout is drawn uniformly from [electionMinMs, electionMaxMs) at every reset. */
  electionMinMs: number;
  electionMaxMs: number;
  /** Leader steps down if it has not heard from a majority within this window. */
  checkQuorumMs: number;
  /** A follower that heard its leader this recently refuses (pre-)votes: leader stickiness. */
  leaseMs: number;
  /** Messages with a term more than this far above ours are refused (garbage, not history). */
  maxTermLead: number;
  /** A gap between two ticks larger than this is reported as a clock jump and not acted on at once. */
  clockJumpMs: number;
}

export const DEFAULT_OPTIONS: Readonly<ElectionOptions> = Object.freeze({
  heartbeatMs: 100,
  electionMinMs: 500,
  electionMaxMs: 1000,
  checkQuorumMs: 500,
  leaseMs: 500,
  maxTermLead: 1_000_000,
  clockJumpMs: 250,
});

export interface ElectionConfig extends Partial<ElectionOptions> {
  id: NodeId;
  /** Every voting member, this node included. Fixed for the life of the instance. */
  members: readonly NodeId[];
  /** Uniform in [0, 1). Seeded in tests; Math.random is fine in the daemon. */
  random: () => number;
}

export class ElectionConfigError extends Error {}

export function validateConfig(config: ElectionConfig, hard: HardState | null | undefined): ElectionOptions {
  const bad = (why: string): never => {
    throw new ElectionConfigError(`election config: ${why}`);
  };
  if (!isNodeId(config.id)) bad(`id must be a non-empty string`);
  if (!Array.isArray(config.members) || !config.members.every(isNodeId)) bad('members must be non-empty strings');
  if (new Set(config.members).size !== config.members.length) bad('members contains duplicates');
  if (!config.members.includes(config.id)) bad(`members must include this node (${config.id})`);
  if (typeof config.random !== 'function') bad('random must be a function');
  const o: ElectionOptions = { ...DEFAULT_OPTIONS };
  for (const k of Object.keys(DEFAULT_OPTIONS) as (keyof ElectionOptions)[]) {
    const v = config[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) bad(`${k} must be a positive number`);
    o[k] = v;
  }
  // Without these orderings followers would time out between two heartbeats of a healthy leader.
  if (o.electionMinMs <= 2 * o.heartbeatMs) bad('electionMinMs must exceed 2 * heartbeatMs');
  if (o.electionMaxMs <= o.electionMinMs) bad('electionMaxMs must exceed electionMinMs');
  if (o.checkQuorumMs <= o.heartbeatMs || o.leaseMs <= o.heartbeatMs) bad('checkQuorumMs and leaseMs must exceed heartbeatMs');
  if (hard) {
    if (!isTerm(hard.term)) bad(`persisted term ${String(hard.term)} is invalid`);
    if (hard.votedFor !== null && !config.members.includes(hard.votedFor)) bad(`persisted vote for unknown node ${String(hard.votedFor)}`);
  }
  return o;
}
