/**
 * Raft leader election without the log, as a pure state machine (etcd-io/raft style).
 * Inputs: tick(nowMs) and receive(msg). Output of every input: a Ready. No I/O, no
 * timers, no Math.random: the driver (real daemon) and the simulator (tests) feed it.
 * Pre-vote (thesis §9.6), check-quorum and leader stickiness keep a node that comes back
 * from a partition from deposing a healthy leader, and make a leader cut off into a
 * minority step down. See docs/election.md.
 */
import { type ElectionConfig, type ElectionOptions, validateConfig } from './config';
import { type HardState, type Message, type NodeId, MAX_TERM, parseMessage } from './messages';
import type { Note, Ready, Role } from './ready';

export { DEFAULT_OPTIONS, ElectionConfigError, type ElectionConfig, type ElectionOptions } from './config';
export { type HardState, type Message, type NodeId, MAX_TERM } from './messages';
export { ReadyPipeline, type Note, type Ready, type ReadyIO, type Role } from './ready';

export class Election {
  readonly id: NodeId;
  readonly members: readonly NodeId[];
  readonly options: Readonly<ElectionOptions>;
  private readonly peers: readonly NodeId[];
  private readonly memberSet: ReadonlySet<NodeId>;
  private readonly quorum: number;
  private readonly random: () => number;

  private _term: number;
  private _votedFor: NodeId | null;
  private _role: Role = 'follower';
  private _leaderId: NodeId | null = null;
  private _leaderSince: number | null = null;

  /** Internal clock: advances by the driver's forward steps only, so it never runs backwards. */
  private now = 0;
  private lastRaw = 0;
  private started = false;
  private electionDeadline = Infinity;
  private heartbeatDeadline = Infinity;
  private leaderHeardAt = -Infinity;
  private readonly peerHeardAt = new Map<NodeId, number>();
  private readonly granted = new Set<NodeId>();
  private readonly rejected = new Set<NodeId>();

  private out: Message[] = [];
  private notes: Note[] = [];
  private dirty = false;
  private changed = false;

  /** `hard` is what the driver last persisted; omit it on a node's very first start. */
  constructor(config: ElectionConfig, hard?: HardState | null) {
    this.options = Object.freeze(validateConfig(config, hard));
    this.id = config.id;
    this.members = Object.freeze([...config.members]);
    this.memberSet = new Set(this.members);
    this.peers = this.members.filter((m) => m !== this.id);
    this.quorum = Math.floor(this.members.length / 2) + 1;
    this.random = config.random;
    this._term = hard?.term ?? 0;
    this._votedFor = hard?.votedFor ?? null;
  }

  get role(): Role {
    return this._role;
  }
  get term(): number {
    return this._term;
  }
  get votedFor(): NodeId | null {
    return this._votedFor;
  }
  get leaderId(): NodeId | null {
    return this._leaderId;
  }
  /** Internal-clock ms at which this node learned of the current leader (or won); null without a leader. */
  get leaderSince(): number | null {
    return this._leaderSince;
  }
  get isLeader(): boolean {
    return this._role === 'leader';
  }
  get hardState(): HardState {
    return { term: this._term, votedFor: this._votedFor };
  }

  /** How long the driver may wait before the next tick; it should tick at least every heartbeatMs anyway. */
  msUntilNextDeadline(): number {
    if (!this.started) return 0;
    const d = this._role === 'leader' ? this.heartbeatDeadline : this.electionDeadline;
    return Math.max(0, Math.min(d - this.now, this.options.heartbeatMs));
  }

  /** nowMs: the driver's monotonic clock. Call at least every heartbeatMs and before each receive. */
  tick(nowMs: number): Ready {
    this.begin();
    // Beyond 2^53 ms, adding a tick's few ms is lost to rounding and time would stand still.
    if (typeof nowMs !== 'number' || !(Math.abs(nowMs) <= Number.MAX_SAFE_INTEGER)) {
      this.notes.push({ kind: 'refused', reason: `tick: time ${String(nowMs)} is not a usable number of ms` });
      return this.end();
    }
    if (!this.started) {
      this.started = true;
      this.now = nowMs;
      this.lastRaw = nowMs;
      this.resetElectionTimer();
      // Nobody to wait for: a one-node cluster is its own majority at once.
      if (this.peers.length === 0) this.campaign();
      return this.end();
    }
    const delta = nowMs - this.lastRaw;
    this.lastRaw = nowMs;
    if (delta < 0) {
      // Counted as no time at all: the internal clock stays monotonic and timers stay armed.
      this.notes.push({ kind: 'clock-jump', deltaMs: delta });
    } else {
      this.now += delta;
      if (delta > this.options.clockJumpMs) this.onForwardJump(delta);
    }
    if (this._role === 'leader') {
      if (!this.hasQuorum()) {
        this.becomeFollower(this._term, null, 'check-quorum: no majority heard from within checkQuorumMs');
      } else if (this.now >= this.heartbeatDeadline) {
        this.broadcastHeartbeat();
      }
    }
    if (this._role !== 'leader' && this.now >= this.electionDeadline) this.campaign();
    return this.end();
  }

  /** msg: whatever the network decoded; anything malformed is refused with a reason. */
  receive(raw: unknown): Ready {
    this.begin();
    if (!this.started) return this.refuse('not started: tick() first');
    const parsed = parseMessage(raw);
    if (!parsed.ok) return this.refuse(parsed.reason);
    const m = parsed.msg;
    if (m.to !== this.id) return this.refuse(`${m.type} from ${m.from} addressed to ${m.to}, not ${this.id}`);
    if (m.from === this.id) return this.refuse(`${m.type} claims to come from this node`);
    if (!this.memberSet.has(m.from)) return this.refuse(`${m.type} from unknown node ${m.from}`);
    if (m.term > this._term + this.options.maxTermLead) {
      return this.refuse(`${m.type} from ${m.from}: term ${m.term} is more than maxTermLead=${this.options.maxTermLead} above ours (${this._term})`);
    }
    switch (m.type) {
      case 'PreVote':
        this.onPreVote(m.from, m.term);
        break;
      case 'Vote':
        this.onVote(m.from, m.term, m.transfer === true);
        break;
      case 'PreVoteResponse':
        this.onPreVoteResponse(m.from, m.term, m.granted);
        break;
      case 'VoteResponse':
        this.onVoteResponse(m.from, m.term, m.granted);
        break;
      case 'Heartbeat':
        this.onHeartbeat(m.from, m.term);
        break;
      case 'HeartbeatResponse':
        this.onHeartbeatResponse(m.from, m.term);
        break;
      case 'TimeoutNow':
        this.onTimeoutNow(m.from, m.term);
        break;
    }
    return this.end();
  }

  /**
   * Hands leadership over before this node stops (a graceful shutdown): `to`, or the peer
   * heard from most recently, is asked to campaign at once, without a pre-vote, and voters set
   * their lease aside for it. Failover then takes a vote round instead of an election timeout.
   * The vote rule is untouched (one vote per term), so this cannot make two leaders in a term;
   * if the message is lost nothing happens and the others time out as usual after this node goes.
   */
  transferLeadership(to?: NodeId): Ready {
    this.begin();
    if (!this.started) return this.refuse('transferLeadership: not started: tick() first');
    if (this._role !== 'leader') return this.refuse(`transferLeadership: ${this.id} is not the leader`);
    let target = to;
    if (target === undefined) {
      let best = -Infinity;
      for (const p of this.peers) {
        const heard = this.peerHeardAt.get(p) ?? -Infinity;
        if (this.now - heard < this.options.checkQuorumMs && heard > best) {
          best = heard;
          target = p;
        }
      }
      if (target === undefined) return this.refuse('transferLeadership: no peer heard from within checkQuorumMs to hand over to');
    } else if (!this.peers.includes(target)) {
      return this.refuse(`transferLeadership: ${String(target)} is not a peer of ${this.id}`);
    }
    this.send('TimeoutNow', target, this._term);
    this.notes.push({ kind: 'transfer', to: target, term: this._term });
    return this.end();
  }

  // --- handlers -------------------------------------------------------------------

  private onHeartbeat(from: NodeId, term: number): void {
    if (term < this._term) {
      // Answer with our term so a stale leader steps down; staying silent could leave a node
      // whose term rose (a vote in a failed round) unable to rejoin while check-quorum holds.
      this.send('HeartbeatResponse', from, this._term);
      return this.ignore(`Heartbeat from ${from} at stale term ${term} < ${this._term}`);
    }
    if (term === this._term && (this._role === 'leader' || (this._leaderId !== null && this._leaderId !== from))) {
      // Two leaders in one term cannot happen with honest nodes; keep following the first.
      this.notes.push({ kind: 'refused', reason: `Heartbeat from ${from} claims term ${term}, whose leader is ${this._leaderId}` });
      return;
    }
    this.becomeFollower(term, from, 'heartbeat');
    this.leaderHeardAt = this.now;
    this.send('HeartbeatResponse', from, this._term);
  }

  private onHeartbeatResponse(from: NodeId, term: number): void {
    if (term > this._term) return this.becomeFollower(term, null, `${from} is at higher term ${term}`);
    if (this._role === 'leader' && term === this._term) this.peerHeardAt.set(from, this.now);
  }

  private onPreVote(from: NodeId, term: number): void {
    if (this.inLease()) {
      this.send('PreVoteResponse', from, this._term, false);
      return this.ignore(`PreVote from ${from}: leader ${this._leaderId} is alive`);
    }
    // Granting changes nothing here: a pre-vote is a question, not a vote.
    if (term > this._term) this.send('PreVoteResponse', from, term, true);
    else this.send('PreVoteResponse', from, this._term, false);
  }

  /** The leader asks this node to take over: only this term's leader may, and only a follower acts on it. */
  private onTimeoutNow(from: NodeId, term: number): void {
    if (term !== this._term || from !== this._leaderId || this._role !== 'follower') {
      return this.ignore(`TimeoutNow from ${from} at term ${term}: not from the leader of this node's term ${this._term} (${this._leaderId ?? 'none'})`);
    }
    this.startVote(true);
  }

  private onVote(from: NodeId, term: number, transfer: boolean): void {
    // A transfer vote comes from the node the leader itself handed over to: the lease protects
    // that leader from disruption, so it does not apply.
    if (term > this._term && this.inLease() && !transfer) return this.ignore(`Vote from ${from}: leader ${this._leaderId} is alive`);
    if (term < this._term) return this.send('VoteResponse', from, this._term, false);
    if (term > this._term) this.becomeFollower(term, null, `Vote from ${from} at higher term`);
    const grant = this._votedFor === null || this._votedFor === from;
    if (grant) {
      if (this._votedFor !== from) {
        this._votedFor = from;
        this.dirty = true;
      }
      // Whoever we voted for needs the time to win before we start a rival round.
      this.resetElectionTimer();
    }
    this.send('VoteResponse', from, this._term, grant);
  }

  private onPreVoteResponse(from: NodeId, term: number, granted: boolean): void {
    if (!granted && term > this._term) return this.becomeFollower(term, null, `${from} is at higher term ${term}`);
    if (this._role !== 'pre-candidate' || (granted && term !== this._term + 1)) return;
    this.tally(from, granted);
    if (this.granted.size >= this.quorum) this.startVote();
    else if (this.rejected.size >= this.quorum) this.becomeFollower(this._term, null, 'pre-vote lost');
  }

  private onVoteResponse(from: NodeId, term: number, granted: boolean): void {
    if (term > this._term) return this.becomeFollower(term, null, `${from} is at higher term ${term}`);
    if (this._role !== 'candidate' || term < this._term) return;
    this.tally(from, granted);
    if (this.granted.size >= this.quorum) this.becomeLeader();
    else if (this.rejected.size >= this.quorum) this.becomeFollower(this._term, null, 'vote lost');
  }

  // --- transitions ----------------------------------------------------------------

  private campaign(): void {
    this.setRole('pre-candidate', null, 'election timeout');
    this.granted.clear();
    this.rejected.clear();
    this.granted.add(this.id);
    this.resetElectionTimer();
    if (this.granted.size >= this.quorum) return this.startVote();
    for (const p of this.peers) this.send('PreVote', p, this._term + 1);
  }

  private startVote(transfer = false): void {
    if (this._term >= MAX_TERM) {
      this.notes.push({ kind: 'refused', reason: `cannot campaign: term ${this._term} is at the largest exact integer` });
      return this.becomeFollower(this._term, null, 'term exhausted');
    }
    this._term += 1;
    this._votedFor = this.id;
    this.dirty = true;
    this.setRole('candidate', null, transfer ? 'the leader handed over' : 'pre-vote won', true);
    this.granted.clear();
    this.rejected.clear();
    this.granted.add(this.id);
    this.resetElectionTimer();
    if (this.granted.size >= this.quorum) return this.becomeLeader();
    for (const p of this.peers) this.out.push(transfer ? { type: 'Vote', from: this.id, to: p, term: this._term, transfer } : { type: 'Vote', from: this.id, to: p, term: this._term });
  }

  private becomeLeader(): void {
    this.setRole('leader', this.id, 'vote won');
    this.electionDeadline = Infinity;
    // Every peer gets one full window to answer before check-quorum can count it as gone.
    for (const p of this.peers) this.peerHeardAt.set(p, this.now);
    this.broadcastHeartbeat();
  }

  private becomeFollower(term: number, leader: NodeId | null, reason: string): void {
    const termChanged = term > this._term;
    if (termChanged) {
      this._term = term;
      this._votedFor = null;
      this.dirty = true;
    }
    this.setRole('follower', leader, reason, termChanged);
    this.resetElectionTimer();
  }

  private setRole(role: Role, leader: NodeId | null, reason: string, termChanged = false): void {
    const leaderChanged = leader !== this._leaderId;
    if (role === this._role && !leaderChanged && !termChanged) return;
    if (leaderChanged) this._leaderSince = leader === null ? null : this.now;
    this._role = role;
    this._leaderId = leader;
    this.changed = true;
    this.notes.push({ kind: 'role', role, term: this._term, leaderId: leader, reason });
  }

  private broadcastHeartbeat(): void {
    for (const p of this.peers) this.send('Heartbeat', p, this._term);
    this.heartbeatDeadline = this.now + this.options.heartbeatMs;
  }

  // --- helpers --------------------------------------------------------------------

  /**
   * A jump is a paused process or a broken clock; either way our timers are no evidence that
   * the others are gone. Give them a short grace to be heard from before acting on it; if a
   * new leader was elected meanwhile its term reaches us within that grace.
   */
  private onForwardJump(delta: number): void {
    this.notes.push({ kind: 'clock-jump', deltaMs: delta });
    const grace = 2 * this.options.heartbeatMs;
    if (this._role === 'leader') {
      const floor = this.now - this.options.checkQuorumMs + grace;
      for (const p of this.peers) this.peerHeardAt.set(p, Math.max(this.peerHeardAt.get(p) ?? -Infinity, floor));
    } else {
      this.electionDeadline = Math.max(this.electionDeadline, this.now + grace);
      if (this._leaderId !== null) this.leaderHeardAt = Math.max(this.leaderHeardAt, this.now - this.options.leaseMs + grace);
    }
  }

  private hasQuorum(): boolean {
    let heard = 1;
    for (const p of this.peers) if (this.now - (this.peerHeardAt.get(p) ?? -Infinity) < this.options.checkQuorumMs) heard++;
    return heard >= this.quorum;
  }

  private inLease(): boolean {
    if (this._role === 'leader') return true;
    return this._role === 'follower' && this._leaderId !== null && this.now - this.leaderHeardAt < this.options.leaseMs;
  }

  private tally(from: NodeId, granted: boolean): void {
    if (granted) this.granted.add(from);
    else this.rejected.add(from);
  }

  private resetElectionTimer(): void {
    const { electionMinMs: lo, electionMaxMs: hi } = this.options;
    const r = this.random();
    // A bad RNG must not produce a NaN deadline, which would never fire.
    const u = typeof r === 'number' && r >= 0 && r < 1 ? r : 0.5;
    this.electionDeadline = this.now + lo + u * (hi - lo);
  }

  private send(type: 'PreVoteResponse' | 'VoteResponse', to: NodeId, term: number, granted: boolean): void;
  private send(type: 'PreVote' | 'Vote' | 'Heartbeat' | 'HeartbeatResponse' | 'TimeoutNow', to: NodeId, term: number): void;
  private send(type: Message['type'], to: NodeId, term: number, granted?: boolean): void {
    this.out.push(granted === undefined ? ({ type, from: this.id, to, term } as Message) : ({ type, from: this.id, to, term, granted } as Message));
  }

  private ignore(reason: string): void {
    this.notes.push({ kind: 'ignored', reason });
  }

  private refuse(reason: string): Ready {
    this.notes.push({ kind: 'refused', reason });
    return this.end();
  }

  private begin(): void {
    this.out = [];
    this.notes = [];
    this.dirty = false;
    this.changed = false;
  }

  private end(): Ready {
    return { persist: this.dirty ? this.hardState : null, messages: this.out, notes: this.notes, changed: this.changed };
  }
}
