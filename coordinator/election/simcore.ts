/**
 * Discrete-event simulator for the election core: fake clock, fake network, fake disk.
 * Everything random comes from one seeded RNG, so a run is a pure function of its
 * parameters. The node driver it models is the real one's contract: tick at least every
 * heartbeat and before each receive, persist before send (ReadyPipeline), and after a
 * crash come back with only what reached the disk.
 */
import { Election, type ElectionOptions, type HardState, type Message, type Ready } from './election';
import { MAX_TERM } from './messages';

import { mulberry32 } from '../../common/random';

export { mulberry32 };

export interface NetParams {
  dropRate: number;
  dupRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** Share of messages delayed by an extra up-to-tailMs: reorders them past later ones. */
  tailRate: number;
  tailMs: number;
  /** Share of messages replaced by garbage the receiver must refuse. */
  garbleRate: number;
}

export interface SimParams {
  seed: number;
  nodes: number;
  net: NetParams;
  /** Time an LMDB synced write takes: [min, max) ms. */
  persistMs: [number, number];
  options?: Partial<ElectionOptions>;
}

/** An invariant broke; the scenario wraps it with the seed and parameters. */
export class InvariantError extends Error {}

interface Event {
  at: number;
  seq: number;
  fn: () => void;
}

interface SimNode {
  id: string;
  e: Election | null;
  durable: HardState | null;
  clockOffset: number;
  /** Bumped on crash: events of the previous incarnation see a mismatch and vanish. */
  gen: number;
  busyUntil: number;
  timerAt: number;
}

const TRACE = 48;

export class Sim {
  time = 0;
  readonly ids: string[];
  readonly rng: () => number;
  readonly net: NetParams;
  readonly leaders = new Map<number, string>();
  readonly sent = new Map<string, number>();
  /** Partition group per node; messages cross only within a group. */
  group: number[];
  private readonly cut = new Set<number>();
  private readonly nodes: SimNode[];
  private readonly heap: Event[] = [];
  private seq = 0;
  private spin = 0;
  private readonly trace: [number, string][] = [];

  constructor(readonly params: SimParams) {
    this.rng = mulberry32(params.seed);
    this.net = { ...params.net };
    this.ids = Array.from({ length: params.nodes }, (_, i) => `n${i + 1}`);
    this.group = this.ids.map(() => 0);
    this.nodes = this.ids.map((id) => ({ id, e: null, durable: null, clockOffset: 0, gen: 0, busyUntil: 0, timerAt: Infinity }));
    for (let i = 0; i < this.nodes.length; i++) this.start(i, this.rng() * 1000);
  }

  election(i: number): Election | null {
    return this.nodes[i].e;
  }
  isUp(i: number): boolean {
    return this.nodes[i].e !== null;
  }
  durable(i: number): HardState | null {
    return this.nodes[i].durable;
  }

  at(t: number, fn: () => void): void {
    const ev = { at: Math.max(t, this.time), seq: this.seq++, fn };
    const h = this.heap;
    let k = h.push(ev) - 1;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (before(h[p], ev)) break;
      h[k] = h[p];
      k = p;
    }
    h[k] = ev;
  }

  /** Run events up to time `until`; stop early (returning true) once `stop` holds after an event. */
  runUntil(until: number, stop?: () => boolean): boolean {
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      const ev = this.pop();
      // A zero-delay loop would spin forever at one instant; report it as the bug it is.
      if (ev.at === this.time && ++this.spin > 100_000) this.fail('event storm: 100000 events at one instant');
      if (ev.at !== this.time) this.spin = 0;
      this.time = ev.at;
      ev.fn();
      if (stop && stop()) return true;
    }
    this.time = Math.max(this.time, until);
    return stop ? stop() : false;
  }

  crash(i: number): void {
    const n = this.nodes[i];
    if (!n.e) return;
    n.e = null;
    n.gen++;
    n.timerAt = Infinity;
    this.log(`crash ${n.id}`);
  }

  restart(i: number): void {
    if (this.nodes[i].e) return;
    // A new process: its monotonic clock starts near zero, unrelated to the old one.
    this.start(i, -this.time + this.rng() * 100);
    this.log(`restart ${this.nodes[i].id} from ${JSON.stringify(this.nodes[i].durable)}`);
  }

  /** The node's driver asks it to hand leadership over (a graceful stop); a no-op unless it leads. */
  transfer(i: number): string | undefined {
    if (this.nodes[i].e?.role !== 'leader') return undefined;
    this.log(`${this.ids[i]} hands over`);
    const note = this.step(i, (e) => e.transferLeadership())?.notes.find((x) => x.kind === 'transfer');
    return note?.kind === 'transfer' ? note.to : undefined;
  }

  partition(groups: number[]): void {
    this.group = [...groups];
    this.log(`partition ${groups.join('')}`);
  }

  /** Cut (or restore) the one-way link a -> b. */
  setLink(a: number, b: number, up: boolean): void {
    const k = a * this.ids.length + b;
    if (up) this.cut.delete(k);
    else this.cut.add(k);
    this.log(`link ${this.ids[a]}->${this.ids[b]} ${up ? 'up' : 'cut'}`);
  }

  heal(): void {
    this.group = this.ids.map(() => 0);
    this.cut.clear();
    this.log('heal');
  }

  jumpClock(i: number, deltaMs: number): void {
    const n = this.nodes[i];
    n.clockOffset += deltaMs;
    this.log(`clock ${n.id} ${deltaMs > 0 ? '+' : ''}${Math.round(deltaMs)}ms`);
    if (n.e) this.step(i, (e) => e.tick(this.nodeNow(i)));
  }

  /** The leader every live node agrees on, if they all do (same term, one leader, all followers know it). */
  agreement(): { leader: string; term: number } | null {
    let leader: Election | null = null;
    for (const n of this.nodes) if (n.e?.role === 'leader') leader = n.e;
    if (!leader) return null;
    for (const n of this.nodes) {
      if (!n.e || n.e === leader) continue;
      if (n.e.term !== leader.term || n.e.role !== 'follower' || n.e.leaderId !== leader.id) return null;
    }
    return { leader: leader.id, term: leader.term };
  }

  traceTail(): string {
    return this.trace.map(([t, s]) => `  ${t.toFixed(1)}ms ${s}`).join('\n');
  }

  fail(what: string): never {
    throw new InvariantError(`${what} at t=${this.time.toFixed(1)}ms`);
  }

  // --- internals ------------------------------------------------------------------

  private start(i: number, clockOffset: number): void {
    const n = this.nodes[i];
    const seed = Math.floor(this.rng() * 2 ** 32);
    n.e = new Election({ id: n.id, members: this.ids, random: mulberry32(seed), ...this.params.options }, n.durable);
    n.clockOffset = clockOffset;
    n.busyUntil = this.time;
    n.timerAt = Infinity;
    this.step(i, (e) => e.tick(this.nodeNow(i)));
  }

  private nodeNow(i: number): number {
    return this.time + this.nodes[i].clockOffset;
  }

  private step(i: number, input: (e: Election) => Ready): Ready | null {
    const n = this.nodes[i];
    const e = n.e;
    if (!e) return null;
    let r: Ready;
    try {
      r = input(e);
    } catch (err) {
      return this.fail(`${n.id} threw: ${err instanceof Error ? err.stack : String(err)}`);
    }
    if (r.changed) {
      this.log(`${n.id} ${e.role} term=${e.term} leader=${e.leaderId ?? '-'}`);
      if (e.role === 'leader') {
        const prev = this.leaders.get(e.term);
        if (prev !== undefined && prev !== n.id) this.fail(`two leaders in term ${e.term}: ${prev} and ${n.id}`);
        this.leaders.set(e.term, n.id);
      }
    }
    this.release(i, r);
    this.armTimer(i);
    return r;
  }

  /** The driver's ReadyPipeline: in order, each persist (taking persistMs) before its messages. */
  private release(i: number, r: Ready): void {
    if (r.persist === null && r.messages.length === 0) return;
    const n = this.nodes[i];
    const gen = n.gen;
    const [lo, hi] = this.params.persistMs;
    const start = Math.max(this.time, n.busyUntil);
    const done = r.persist ? start + lo + this.rng() * (hi - lo) : start;
    n.busyUntil = done;
    const go = () => {
      if (n.gen !== gen) return; // crashed before the sync finished: neither disk nor network saw it
      if (r.persist) this.writeDurable(n, r.persist);
      for (const m of r.messages) this.send(n, m);
    };
    if (done <= this.time) go();
    else this.at(done, go);
  }

  private writeDurable(n: SimNode, s: HardState): void {
    const old = n.durable;
    if (old && s.term < old.term) this.fail(`${n.id} persisted term went back from ${old.term} to ${s.term}`);
    if (old && s.term === old.term && old.votedFor !== null && s.votedFor !== old.votedFor) {
      this.fail(`${n.id} voted twice in term ${s.term}: ${old.votedFor} then ${s.votedFor}`);
    }
    n.durable = { ...s };
  }

  /** Persist-before-send, checked on the wire: what a message asserts must already be on disk. */
  private checkDurable(n: SimNode, m: Message): void {
    const d = n.durable ?? { term: 0, votedFor: null };
    const proposal = m.type === 'PreVote' || (m.type === 'PreVoteResponse' && m.granted);
    if (!proposal && m.term > d.term) this.fail(`${n.id} sent ${m.type} at term ${m.term} with term ${d.term} on disk`);
    const vote = m.type === 'Vote' ? m.from : m.type === 'VoteResponse' && m.granted ? m.to : null;
    if (vote !== null && (d.term !== m.term || d.votedFor !== vote)) {
      this.fail(`${n.id} sent ${m.type} for ${vote} in term ${m.term} with ${JSON.stringify(d)} on disk`);
    }
  }

  private armTimer(i: number): void {
    const n = this.nodes[i];
    if (!n.e) return;
    // setTimeout's granularity; it also keeps float rounding from re-arming at the same instant.
    const at = this.time + Math.max(1, n.e.msUntilNextDeadline());
    if (at >= n.timerAt && n.timerAt > this.time) return;
    n.timerAt = at;
    const gen = n.gen;
    this.at(at, () => {
      if (n.gen !== gen || n.timerAt !== at) return;
      n.timerAt = Infinity;
      this.step(i, (e) => e.tick(this.nodeNow(i)));
    });
  }

  private send(n: SimNode, m: Message): void {
    this.checkDurable(n, m);
    this.sent.set(m.type, (this.sent.get(m.type) ?? 0) + 1);
    const net = this.net;
    if (this.rng() < net.dropRate) return;
    const copies = this.rng() < net.dupRate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let delay = net.minDelayMs + this.rng() * (net.maxDelayMs - net.minDelayMs);
      if (this.rng() < net.tailRate) delay += this.rng() * net.tailMs;
      const garbled = this.rng() < net.garbleRate;
      this.at(this.time + delay, () => this.deliver(m, garbled));
    }
  }

  private deliver(m: Message, garbled: boolean): void {
    const from = this.ids.indexOf(m.from);
    const to = this.ids.indexOf(m.to);
    if (!this.nodes[to].e || !this.connected(from, to)) return;
    this.step(to, (e) => e.tick(this.nodeNow(to)));
    if (!garbled) {
      this.step(to, (e) => e.receive(m));
      return;
    }
    const junk = garble(m, Math.floor(this.rng() * GARBLE_KINDS));
    const r = this.step(to, (e) => e.receive(junk));
    if (r && (r.persist || r.messages.length > 0 || r.changed || !r.notes.some((x) => x.kind === 'refused'))) {
      this.fail(`${m.to} acted on garbage derived from ${JSON.stringify(m)}`);
    }
  }

  private connected(a: number, b: number): boolean {
    return this.group[a] === this.group[b] && !this.cut.has(a * this.ids.length + b);
  }

  private log(s: string): void {
    if (this.trace.length >= TRACE) this.trace.shift();
    this.trace.push([this.time, s]);
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && before(h[l + 1], h[l]) ? l + 1 : l;
        if (before(last, h[c])) break;
        h[k] = h[c];
        k = c;
      }
      h[k] = last;
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const GARBLE_KINDS = 14;

/** Garbage a receiver can and must recognise; plausible-looking forgeries are out of scope (mTLS). */
function garble(m: Message, kind: number): unknown {
  switch (kind) {
    case 0: return null;
    case 1: return 'not a message';
    case 2: return { ...m, term: NaN };
    case 3: return { ...m, term: -1 };
    case 4: return { ...m, term: m.term + 0.5 };
    case 5: return { ...m, term: String(m.term) };
    case 6: return { ...m, from: 'ghost' };
    case 7: return { ...m, to: 'ghost' };
    case 8: return { ...m, from: m.to };
    case 9: return { ...m, type: 'Bogus' };
    case 10: return { ...m, term: MAX_TERM };
    case 11: return { type: m.type };
    case 12: return [m];
    default: return new Proxy({}, { get: () => { throw new Error('unreadable'); } });
  }
}
