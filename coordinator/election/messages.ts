/**
 * Election wire messages as plain objects, and the structural check every inbound
 * message goes through before the state machine sees it. The network layer maps these
 * to protobuf; it never needs to validate them itself.
 */

import { describe, isTerm, MAX_TERM } from '../../common/term';

export { describe, isTerm, MAX_TERM };

export type NodeId = string;

export const MESSAGE_TYPES = ['PreVote', 'PreVoteResponse', 'Vote', 'VoteResponse', 'Heartbeat', 'HeartbeatResponse', 'TimeoutNow'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

interface Envelope {
  from: NodeId;
  to: NodeId;
  /**
   * PreVote: the term the sender would campaign in (its term + 1); it changes nobody's term.
   * Everything else: the sender's current term.
   */
  term: number;
}

export interface PreVote extends Envelope {
  type: 'PreVote';
}
export interface PreVoteResponse extends Envelope {
  type: 'PreVoteResponse';
  granted: boolean;
}
export interface Vote extends Envelope {
  type: 'Vote';
  /** The candidate campaigns because the leader handed over to it (TimeoutNow): voters set their lease aside. */
  transfer?: true;
}
export interface VoteResponse extends Envelope {
  type: 'VoteResponse';
  granted: boolean;
}
/** Sent by the leader only: `from` is the leader's id (the driver maps ids to addresses). */
export interface Heartbeat extends Envelope {
  type: 'Heartbeat';
}
export interface HeartbeatResponse extends Envelope {
  type: 'HeartbeatResponse';
}

/** Sent by the leader only, to the peer it hands leadership to (graceful stop): "campaign now". */
export interface TimeoutNow extends Envelope {
  type: 'TimeoutNow';
}

export type Message = PreVote | PreVoteResponse | Vote | VoteResponse | Heartbeat | HeartbeatResponse | TimeoutNow;

/** What must be on disk (synced) before any message of the same step leaves the node. */
export interface HardState {
  term: number;
  votedFor: NodeId | null;
}

const MAX_ID_LENGTH = 256;

export function isNodeId(x: unknown): x is NodeId {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_ID_LENGTH;
}


export type ParseResult = { ok: true; msg: Message } | { ok: false; reason: string };

const TYPE_SET: ReadonlySet<string> = new Set(MESSAGE_TYPES);

/**
 * Structural validation only (membership and term plausibility need the node's state).
 * Returns a fresh object holding only the known fields, so a caller mutating or reusing
 * its buffer afterwards cannot reach into the state machine.
 */
export function parseMessage(raw: unknown): ParseResult {
  try {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return { ok: false, reason: `malformed message: expected an object, got ${describe(raw)}` };
    }
    const r = raw as Record<string, unknown>;
    const type = r.type;
    if (typeof type !== 'string' || !TYPE_SET.has(type)) return { ok: false, reason: `malformed message: unknown type ${describe(type)}` };
    const { from, to, term } = r;
    if (!isNodeId(from)) return { ok: false, reason: `malformed ${type}: bad from ${describe(from)}` };
    if (!isNodeId(to)) return { ok: false, reason: `malformed ${type} from ${from}: bad to ${describe(to)}` };
    if (!isTerm(term)) return { ok: false, reason: `malformed ${type} from ${from}: term ${describe(term)} is not an integer in [0, ${MAX_TERM}]` };
    if (type === 'PreVoteResponse' || type === 'VoteResponse') {
      const granted = r.granted;
      if (typeof granted !== 'boolean') return { ok: false, reason: `malformed ${type} from ${from}: granted ${describe(granted)} is not a boolean` };
      return { ok: true, msg: { type, from, to, term, granted } };
    }
    if (type === 'Vote') {
      const transfer = r.transfer;
      if (transfer !== undefined && typeof transfer !== 'boolean') return { ok: false, reason: `malformed Vote from ${from}: transfer ${describe(transfer)} is not a boolean` };
      return { ok: true, msg: transfer ? { type, from, to, term, transfer } : { type, from, to, term } };
    }
    return { ok: true, msg: { type: type as 'PreVote' | 'Heartbeat' | 'HeartbeatResponse' | 'TimeoutNow', from, to, term } };
  } catch {
    // A Proxy or a throwing getter: the bytes came from somewhere we cannot trust.
    return { ok: false, reason: 'malformed message: unreadable object' };
  }
}
