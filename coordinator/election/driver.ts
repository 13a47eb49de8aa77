/**
 * The election's thin driver: the pure state machine (election.ts) wired to a clock,
 * LMDB (term and vote, synced before any message leaves) and the network (Peer.Exchange).
 * It is also the node's Leadership: who the coordinator is, for the mesh, the admin API
 * and the uplink.
 */
import * as grpc from '@grpc/grpc-js';
import { Insecure, type Transport } from '../../common/transport';
import { peerIdentity } from '../../common/identity';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { logger } from '../../common/log';
import { loadProtos } from '../../common/proto';
import type { LeaderView, Leadership, Member } from '../leadership';
import { Election, ReadyPipeline, type ElectionOptions, type HardState, type Message, type Ready } from './election';

const log = logger('election');

const TO_WIRE: Record<Message['type'], string> = {
  PreVote: 'PRE_VOTE',
  PreVoteResponse: 'PRE_VOTE_RESPONSE',
  Vote: 'VOTE',
  VoteResponse: 'VOTE_RESPONSE',
  Heartbeat: 'HEARTBEAT',
  HeartbeatResponse: 'HEARTBEAT_RESPONSE',
  TimeoutNow: 'TIMEOUT_NOW',
};
const FROM_WIRE = Object.fromEntries(Object.entries(TO_WIRE).map(([k, v]) => [v, k]));

export function toWire(m: Message): Record<string, unknown> {
  return { type: TO_WIRE[m.type], from: m.from, to: m.to, term: m.term, granted: 'granted' in m ? m.granted : false, transfer: m.type === 'Vote' && m.transfer === true };
}

/** Wire message -> core message; anything odd passes through for the core to refuse with a reason. */
export function fromWire(w: any): unknown {
  return { type: FROM_WIRE[w?.type] ?? w?.type, from: w?.from, to: w?.to, term: Number(w?.term), granted: Boolean(w?.granted), transfer: Boolean(w?.transfer) };
}

export interface DriverOptions {
  self: Member;
  peers: Member[];
  env: Env;
  election?: Partial<ElectionOptions>;
  /** The persist failed: memory is ahead of disk; the node must stop and restart from disk. */
  onFatal: (err: unknown) => void;
  /** How to dial peers (default plain text); each peer must present its own node certificate. */
  transport?: Transport;
}

const INSECURE = new Insecure();

/** Outbound RPC deadline: a reply later than this is useless for a 500-1000 ms timeout. */
const RPC_DEADLINE_MS = 300;
const TICK_MS = 20;

export class ElectionDriver implements Leadership {
  private readonly election: Election;
  private readonly pipeline: ReadyPipeline;
  private readonly db: Database<HardState, string>;
  private readonly members = new Map<string, Member>();
  private readonly clients = new Map<string, grpc.Client & Record<string, any>>();
  private readonly clientGeneration = new Map<string, number>();
  private readonly lastHeard = new Map<string, number>();
  private readonly listeners: Array<(v: LeaderView) => void> = [];
  private timer?: NodeJS.Timeout;
  private view: LeaderView;
  private warned = new Map<string, number>();

  constructor(private readonly opts: DriverOptions) {
    for (const m of [opts.self, ...opts.peers]) this.members.set(m.id, m);
    this.db = opts.env.openDB({ name: 'election' });
    const hard = this.db.get('hard') ?? null;
    this.election = new Election({ ...opts.election, id: opts.self.id, members: [...this.members.keys()], random: Math.random }, hard);
    this.pipeline = new ReadyPipeline({
      persist: (s) => this.db.put('hard', s).then((ok) => {
        if (!ok) throw new Error('LMDB refused the write');
      }),
      send: (m) => this.send(m),
    });
    this.view = { isLeader: false, term: this.election.term, sinceMs: Date.now() };
    if (hard) log.info('restored election state', { term: hard.term, voted_for: hard.votedFor ?? '-' });
  }

  /** The node's own address once its server is bound (listen port 0 picks one). */
  setSelfAddress(address: string): void {
    this.members.set(this.opts.self.id, { id: this.opts.self.id, address });
    this.refreshView('address');
  }

  start(): void {
    this.apply(this.election.tick(performance.now()));
    this.timer = setInterval(() => this.apply(this.election.tick(performance.now())), TICK_MS);
  }

  /**
   * Before a graceful stop: if this node leads, asks the peer heard from most recently to take
   * over at once and waits (at most `timeoutMs`) until this node no longer leads. Returns the
   * successor's id, or undefined (not the leader, nobody to hand to, or no answer in time: the
   * others then elect after their timeout, as after a crash).
   */
  async handOver(timeoutMs = 500): Promise<string | undefined> {
    if (!this.election.isLeader || this.members.size < 2) return undefined; // a one-node cluster has nobody to hand to
    this.apply(this.election.tick(performance.now()));
    const ready = this.election.transferLeadership();
    const note = ready.notes.find((n) => n.kind === 'transfer');
    const refused = ready.notes.find((n) => n.kind === 'refused');
    if (refused?.kind === 'refused') log.info('not handing the coordinator role over', { reason: refused.reason });
    await this.apply({ ...ready, notes: ready.notes.filter((n) => n.kind !== 'refused') }).catch(() => {});
    if (!note || note.kind !== 'transfer') return undefined;
    for (const end = Date.now() + timeoutMs; Date.now() < end && this.election.isLeader; ) await new Promise((r) => setTimeout(r, 10));
    if (this.election.isLeader) {
      log.warn('the coordinator role was not taken over in time; stopping anyway (the others elect after their timeout)', { asked: note.to, waited_ms: timeoutMs });
      return undefined;
    }
    log.info('handed the coordinator role over', { to: note.to, term: this.election.term });
    return note.to;
  }

  stop(): void {
    clearInterval(this.timer);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  current(): LeaderView {
    return this.view;
  }

  onChange(fn: (v: LeaderView) => void): void {
    this.listeners.push(fn);
  }

  /** The cluster as this node sees it (Admin.GetCluster). */
  cluster(): { term: number; leaderId: string; members: Array<{ node_id: string; address: string; role: string; last_heard_ms: number; self: boolean }> } {
    const now = Date.now();
    const stale = 2 * (this.election.options.electionMaxMs ?? 1000);
    const leader = this.election.leaderId ?? '';
    const members = [...this.members.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((m) => {
        const self = m.id === this.opts.self.id;
        const heard = self ? now : (this.lastHeard.get(m.id) ?? 0);
        const role = self ? this.election.role : m.id === leader ? 'leader' : now - heard < stale ? 'follower' : 'unreachable';
        return { node_id: m.id, address: m.address, role, last_heard_ms: heard, self };
      });
    return { term: this.election.term, leaderId: leader, members };
  }

  /** grpc-js handler for Peer.Exchange. */
  readonly exchange = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>): void => {
    const msg = fromWire(call.request) as Message;
    // Over mTLS a node votes and leads only as itself: the message must come from the certificate's node.
    const caller = peerIdentity(call);
    if (caller && (caller.kind !== 'node' || caller.nodeId !== msg.from)) {
      this.rateLimitedWarn(`election message claiming to be from ${msg.from} refused: the certificate names ${caller.kind === 'node' ? caller.nodeId : `operator ${caller.name}`}`);
      return callback({ code: grpc.status.PERMISSION_DENIED, details: `the election message claims to come from node "${msg.from}" but the certificate names ${caller.kind === 'node' ? `node "${caller.nodeId}"` : `operator "${caller.name}"`}` });
    }
    this.apply(this.election.tick(performance.now()));
    const ready = this.election.receive(msg);
    const refused = ready.notes.find((n) => n.kind === 'refused');
    if (!refused && this.members.has(msg.from)) this.lastHeard.set(msg.from, Date.now());
    const replies = ready.messages.filter((m) => m.to === msg.from);
    this.apply({ ...ready, messages: ready.messages.filter((m) => m.to !== msg.from) }).then(
      () => {
        if (refused && refused.kind === 'refused') callback({ code: grpc.status.INVALID_ARGUMENT, details: `election message refused: ${refused.reason}` });
        else callback(null, { messages: replies.map(toWire) });
      },
      (err) => callback({ code: grpc.status.UNAVAILABLE, details: `cannot persist election state: ${(err as Error)?.message ?? err}` }),
    );
  };

  private apply(ready: Ready): Promise<void> {
    for (const n of ready.notes) {
      if (n.kind === 'refused') this.rateLimitedWarn(n.reason);
      else if (n.kind === 'role') log.info('election state changed', { role: n.role, term: n.term, leader: n.leaderId ?? '-', reason: n.reason });
      else if (n.kind === 'clock-jump') log.warn('clock jump observed; not acting on it at once', { delta_ms: Math.round(n.deltaMs) });
      else if (n.kind === 'transfer') log.info('handing the coordinator role over', { to: n.to, term: n.term });
    }
    const done = this.pipeline.push(ready).catch((err) => {
      log.error('cannot persist the election term and vote: stopping this node (it restarts from what is on disk)', { error: err });
      this.opts.onFatal(err);
      throw err;
    });
    if (ready.changed) this.refreshView('election');
    return done;
  }

  private refreshView(_why: string): void {
    const leaderId = this.election.leaderId ?? undefined;
    const prev = this.view;
    const next: LeaderView = {
      isLeader: this.election.isLeader,
      leaderId,
      leaderAddress: leaderId ? this.members.get(leaderId)?.address : undefined,
      term: this.election.term,
      sinceMs: prev.leaderId === leaderId && prev.term === this.election.term ? prev.sinceMs : Date.now(),
    };
    this.view = next;
    if (prev.isLeader !== next.isLeader || prev.leaderId !== next.leaderId || prev.leaderAddress !== next.leaderAddress || prev.term !== next.term) {
      for (const fn of this.listeners) fn(next);
    }
  }

  private send(m: Message): void {
    const peer = this.members.get(m.to);
    if (!peer) return;
    const client = this.client(peer);
    client.Exchange(toWire(m), { deadline: Date.now() + RPC_DEADLINE_MS }, (err: grpc.ServiceError | null, reply: any) => {
      if (err) {
        if (err.code === grpc.status.INVALID_ARGUMENT) this.rateLimitedWarn(`${m.to} refused our ${m.type}: ${err.details}`);
        return; // a lost message: the protocol retries
      }
      this.lastHeard.set(m.to, Date.now());
      for (const w of reply?.messages ?? []) {
        this.apply(this.election.tick(performance.now()));
        void this.apply(this.election.receive(fromWire(w))).catch(() => {});
      }
    });
  }

  private client(peer: Member): grpc.Client & Record<string, any> {
    const transport = this.opts.transport ?? INSECURE;
    let c = this.clients.get(peer.id);
    if (c && this.clientGeneration.get(peer.id) !== transport.generation) {
      c.close(); // made with certificates since renewed
      c = undefined;
    }
    if (!c) {
      const { herd } = loadProtos();
      this.clientGeneration.set(peer.id, transport.generation);
      c = new herd.Peer(peer.address, transport.credentials(peer.id), {
        ...transport.channelOptions,
        // A restarted peer must be reachable again within an election timeout, not grpc's default 2 min backoff.
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 300,
      }) as grpc.Client & Record<string, any>;
      this.clients.set(peer.id, c);
    }
    return c;
  }

  private rateLimitedWarn(reason: string): void {
    const now = Date.now();
    const key = reason.slice(0, 80);
    if ((this.warned.get(key) ?? 0) > now - 10_000) return;
    this.warned.set(key, now);
    log.warn('refused an election message', { reason });
  }
}
