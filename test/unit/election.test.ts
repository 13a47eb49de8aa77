import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, MAX_TERM, type Message, ReadyPipeline } from '../../coordinator/election/election';
import { TermFence, fence } from '../../common/fencing';
import { IDS, Net, node, run } from '../helpers/election';

describe('election: basics', () => {
  it('a one-node cluster elects itself on the first tick, and again after a restart', () => {
    const e = node('solo', ['solo']);
    const r = e.tick(1234);
    expect(e.role).toBe('leader');
    expect(e.term).toBe(1);
    expect(e.leaderId).toBe('solo');
    expect(e.leaderSince).toBe(1234);
    expect(r.persist).toEqual({ term: 1, votedFor: 'solo' });
    expect(r.messages).toEqual([]);
    const again = node('solo', ['solo'], r.persist);
    again.tick(0);
    expect([again.role, again.term]).toEqual(['leader', 2]);
  });

  it('three nodes elect exactly one leader, and every node follows it', () => {
    const net = new Net();
    net.advance(2000);
    expect(net.leaders()).toEqual(['n1']);
    for (const id of IDS) expect([net.get(id).term, net.get(id).leaderId]).toEqual([1, 'n1']);
    expect(net.disk.get('n1')).toEqual({ term: 1, votedFor: 'n1' });
    expect(net.get('n1').leaderSince).toBeGreaterThanOrEqual(500);
  });

  it('grants at most one vote per term, and the vote survives a restart', () => {
    const e = node('n1');
    e.tick(0);
    const a = e.receive({ type: 'Vote', from: 'n2', to: 'n1', term: 1 });
    expect(a.persist).toEqual({ term: 1, votedFor: 'n2' });
    expect(a.messages).toEqual([{ type: 'VoteResponse', from: 'n1', to: 'n2', term: 1, granted: true }]);
    expect(e.receive({ type: 'Vote', from: 'n3', to: 'n1', term: 1 }).messages[0]).toMatchObject({ granted: false });
    const retry = e.receive({ type: 'Vote', from: 'n2', to: 'n1', term: 1 });
    expect(retry.messages[0]).toMatchObject({ granted: true });
    expect(retry.persist).toBeNull();
    const restarted = node('n1', IDS, a.persist);
    restarted.tick(0);
    expect(restarted.receive({ type: 'Vote', from: 'n3', to: 'n1', term: 1 }).messages[0]).toMatchObject({ granted: false });
  });

  it('refuses a stale term and tells the sender the current one', () => {
    const e = node('n1', IDS, { term: 5, votedFor: null });
    e.tick(0);
    expect(e.receive({ type: 'Vote', from: 'n2', to: 'n1', term: 3 }).messages).toEqual([
      { type: 'VoteResponse', from: 'n1', to: 'n2', term: 5, granted: false },
    ]);
    const hb = e.receive({ type: 'Heartbeat', from: 'n2', to: 'n1', term: 4 });
    expect(hb.messages).toEqual([{ type: 'HeartbeatResponse', from: 'n1', to: 'n2', term: 5 }]);
    expect(e.leaderId).toBeNull();
  });

  it('a stale leader steps down when a heartbeat response carries a higher term', () => {
    const solo = new Net();
    solo.advance(1000);
    const leader = solo.get('n1');
    const r = leader.receive({ type: 'HeartbeatResponse', from: 'n2', to: 'n1', term: 9 });
    expect([leader.role, leader.term, leader.votedFor]).toEqual(['follower', 9, null]);
    expect(r.persist).toEqual({ term: 9, votedFor: null });
  });

  it('does not count a vote granted in an earlier term', () => {
    const e = node('n1', ['n1', 'n2', 'n3', 'n4', 'n5']);
    run(e, 0, 500); // pre-candidate for term 1
    for (const p of ['n2', 'n3']) e.receive({ type: 'PreVoteResponse', from: p, to: 'n1', term: 1, granted: true });
    expect([e.role, e.term]).toEqual(['candidate', 1]);
    run(e, 510, 1000); // that round timed out: pre-vote for term 2
    for (const p of ['n2', 'n3']) e.receive({ type: 'PreVoteResponse', from: p, to: 'n1', term: 2, granted: true });
    expect([e.role, e.term]).toEqual(['candidate', 2]);
    e.receive({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 1, granted: true });
    e.receive({ type: 'VoteResponse', from: 'n3', to: 'n1', term: 1, granted: true });
    expect(e.role).toBe('candidate');
    e.receive({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, granted: true });
    e.receive({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, granted: true }); // duplicate
    expect(e.role).toBe('candidate');
    e.receive({ type: 'VoteResponse', from: 'n3', to: 'n1', term: 2, granted: true });
    expect(e.role).toBe('leader');
  });

  it('a two-node cluster cannot elect a leader while one node is down (documented caveat)', () => {
    const net = new Net(['n1', 'n2']);
    net.down.add('n2');
    net.advance(10_000);
    expect(net.leaders()).toEqual([]);
    net.restart('n2');
    net.advance(3000);
    expect(net.leaders()).toHaveLength(1);
  });

  it('asks to be ticked at least every heartbeat', () => {
    const net = new Net();
    for (const id of IDS) expect(net.get(id).msUntilNextDeadline()).toBeLessThanOrEqual(DEFAULT_OPTIONS.heartbeatMs);
    net.advance(2000);
    for (const id of IDS) expect(net.get(id).msUntilNextDeadline()).toBeLessThanOrEqual(DEFAULT_OPTIONS.heartbeatMs);
  });
});

describe('election: pre-vote, stickiness, check-quorum', () => {
  it('pre-vote does not bump anyone’s term', () => {
    const e = node('n1');
    const r = run(e, 0, 500);
    expect(e.role).toBe('pre-candidate');
    expect(e.term).toBe(0);
    expect(r.persist).toBeNull();
    expect(r.messages.map((m) => [m.type, m.term])).toEqual([['PreVote', 1], ['PreVote', 1]]);
    const voter = node('n2');
    voter.tick(0);
    const answer = voter.receive({ type: 'PreVote', from: 'n1', to: 'n2', term: 1 });
    expect(answer.messages).toEqual([{ type: 'PreVoteResponse', from: 'n2', to: 'n1', term: 1, granted: true }]);
    expect([answer.persist, voter.term, voter.votedFor]).toEqual([null, 0, null]);
  });

  it('a node isolated for a long time neither raises its term nor disrupts the leader when it returns', () => {
    const net = new Net();
    net.advance(2000);
    net.blocked = (m) => m.from === 'n3' || m.to === 'n3';
    net.advance(10_000);
    expect(net.get('n3').term).toBe(1);
    expect(net.get('n3').role).not.toBe('leader');
    net.blocked = () => false;
    net.advance(3000);
    expect(net.leaders()).toEqual(['n1']);
    for (const id of IDS) expect([net.get(id).term, net.get(id).leaderId]).toEqual([1, 'n1']);
  });

  it('a follower that hears a live leader ignores votes at a higher term (leader stickiness)', () => {
    const net = new Net();
    net.advance(2000);
    const f = net.get('n2');
    const r = f.receive({ type: 'Vote', from: 'n3', to: 'n2', term: 7 });
    expect([r.messages, r.persist, f.term, f.leaderId]).toEqual([[], null, 1, 'n1']);
    const pv = f.receive({ type: 'PreVote', from: 'n3', to: 'n2', term: 2 });
    expect(pv.messages[0]).toMatchObject({ type: 'PreVoteResponse', granted: false });
    expect(net.get('n1').receive({ type: 'PreVote', from: 'n3', to: 'n1', term: 2 }).messages[0]).toMatchObject({ granted: false });
  });

  it('a leader cut off into a minority steps down within checkQuorumMs; the majority elects another', () => {
    const net = new Net();
    net.advance(2000);
    net.blocked = (m) => m.from === 'n1' || m.to === 'n1';
    const cut = net.now;
    while (net.get('n1').role === 'leader') net.advance(10);
    expect(net.now - cut).toBeLessThanOrEqual(DEFAULT_OPTIONS.checkQuorumMs + 20);
    net.advance(3000);
    expect(net.leaders()).toHaveLength(1);
    const [next] = net.leaders();
    expect(next).not.toBe('n1');
    expect(net.get(next).term).toBe(2);
    net.blocked = () => false;
    net.advance(1000);
    expect(net.leaders()).toEqual([next]);
    expect([net.get('n1').term, net.get('n1').leaderId]).toEqual([2, next]);
  });
});

describe('election: handing leadership over (graceful stop)', () => {
  it('the leader asks the peer heard from most recently, or the one named; it refuses when it cannot', () => {
    const net = new Net();
    net.advance(2000);
    const leader = net.get('n1');
    expect(net.get('n2').transferLeadership().notes[0]).toMatchObject({ kind: 'refused', reason: 'transferLeadership: n2 is not the leader' });
    expect(leader.transferLeadership('ghost').notes[0]).toMatchObject({ kind: 'refused', reason: 'transferLeadership: ghost is not a peer of n1' });
    expect(leader.transferLeadership('n1').notes[0]).toMatchObject({ kind: 'refused' });
    const named = leader.transferLeadership('n3');
    expect(named.messages).toEqual([{ type: 'TimeoutNow', from: 'n1', to: 'n3', term: 1 }]);
    expect(named.notes).toEqual([{ kind: 'transfer', to: 'n3', term: 1 }]);
    expect([named.persist, named.changed, leader.role]).toEqual([null, false, 'leader']); // it leads until someone wins
    // without a name: the peer whose heartbeat response came last
    leader.receive({ type: 'HeartbeatResponse', from: 'n2', to: 'n1', term: 1 });
    expect(leader.transferLeadership().messages[0]).toMatchObject({ type: 'TimeoutNow', to: 'n2' });
    // cut off: it has stepped down (check-quorum) by the time nobody is heard, so it has nothing to hand over
    const lone = new Net();
    lone.advance(2000);
    lone.blocked = (m) => m.to === 'n1' || m.from === 'n1';
    lone.advance(DEFAULT_OPTIONS.checkQuorumMs + 20);
    const cut = lone.get('n1').transferLeadership();
    expect([cut.messages, cut.notes[0]]).toEqual([[], { kind: 'refused', reason: 'transferLeadership: n1 is not the leader' }]);
  });

  it('the successor campaigns at once, without pre-vote; voters that still hear the leader vote for it; the old leader steps down', () => {
    const net = new Net();
    net.advance(2000);
    const old = net.get('n1');
    const before = net.log.length;
    net.apply('n1', old.transferLeadership('n3'));
    net.flush();
    const sent = net.log.slice(before).map((m) => `${m.type} ${m.from}->${m.to}${'transfer' in m ? ' transfer' : ''}${'granted' in m ? ` ${m.granted}` : ''}`);
    expect(sent).toEqual([
      'TimeoutNow n1->n3',
      'Vote n3->n1 transfer',
      'Vote n3->n2 transfer',
      'VoteResponse n1->n3 true',
      'VoteResponse n2->n3 true',
      'Heartbeat n3->n1',
      'Heartbeat n3->n2',
      'HeartbeatResponse n1->n3',
      'HeartbeatResponse n2->n3',
    ]);
    expect(net.leaders()).toEqual(['n3']);
    expect([net.get('n3').term, old.role, old.leaderId, net.get('n2').leaderId]).toEqual([2, 'follower', 'n3', 'n3']);
    expect(net.disk.get('n3')).toEqual({ term: 2, votedFor: 'n3' }); // the vote is persisted like any other
    expect(net.disk.get('n2')).toEqual({ term: 2, votedFor: 'n3' });
    net.advance(3000);
    expect(net.leaders()).toEqual(['n3']);
    expect(net.get('n3').term).toBe(2);
  });

  it('ignores a TimeoutNow that is not from its leader in its term, and a plain vote still meets the lease', () => {
    const net = new Net();
    net.advance(2000);
    const f = net.get('n2');
    const forged = f.receive({ type: 'TimeoutNow', from: 'n3', to: 'n2', term: 1 });
    const stale = f.receive({ type: 'TimeoutNow', from: 'n1', to: 'n2', term: 0 });
    const ahead = f.receive({ type: 'TimeoutNow', from: 'n1', to: 'n2', term: 2 });
    for (const r of [forged, stale, ahead]) {
      expect([r.messages, r.persist, r.changed]).toEqual([[], null, false]);
      expect(r.notes[0]).toMatchObject({ kind: 'ignored', reason: expect.stringContaining('not from the leader') });
    }
    expect([f.role, f.term, f.leaderId]).toEqual(['follower', 1, 'n1']);
    // the lease holds against an ordinary vote, not against a transfer vote
    expect(f.receive({ type: 'Vote', from: 'n3', to: 'n2', term: 2 }).messages).toEqual([]);
    expect(f.receive({ type: 'Vote', from: 'n3', to: 'n2', term: 2, transfer: true }).messages).toEqual([{ type: 'VoteResponse', from: 'n2', to: 'n3', term: 2, granted: true }]);
    // and the vote rule is the same: one per term
    expect(f.receive({ type: 'Vote', from: 'n1', to: 'n2', term: 2, transfer: true }).messages[0]).toMatchObject({ granted: false });
  });
});

describe('election: clock jumps', () => {
  it('a leader whose clock jumps forward keeps office when its followers still answer', () => {
    const net = new Net();
    net.advance(2000);
    const leader = net.get('n1');
    const r = leader.tick(net.now + 60_000);
    expect(r.notes).toContainEqual({ kind: 'clock-jump', deltaMs: 60_000 });
    expect(leader.role).toBe('leader');
    expect(r.messages.filter((m) => m.type === 'Heartbeat')).toHaveLength(2);
    net.apply('n1', r);
    net.flush();
    // Followers' clocks did not jump; keep everyone ticking on the leader's new timeline.
    const offset = 60_000;
    for (let i = 0; i < 300; i++) {
      net.now += 10;
      net.apply('n1', leader.tick(net.now + offset));
      for (const id of ['n2', 'n3']) net.apply(id, net.get(id).tick(net.now));
      net.flush();
    }
    expect(net.leaders()).toEqual(['n1']);
    expect(leader.term).toBe(1);
  });

  it('a leader whose clock jumps forward and that hears nobody steps down once, after a grace', () => {
    const net = new Net();
    net.advance(2000);
    const leader = net.get('n1');
    expect(leader.tick(net.now + 10_000).changed).toBe(false);
    expect(leader.role).toBe('leader');
    leader.tick(net.now + 10_000 + 2 * DEFAULT_OPTIONS.heartbeatMs);
    expect([leader.role, leader.term]).toEqual(['follower', 1]);
  });

  it('a follower whose clock jumps forward does not campaign while its leader is alive', () => {
    const net = new Net();
    net.advance(2000);
    const f = net.get('n3');
    const r = f.tick(net.now + 30_000);
    expect(f.role).toBe('follower');
    expect(r.messages).toEqual([]);
  });

  it('a backward jump counts as no time: timers keep running from there', () => {
    const net = new Net();
    net.advance(2000);
    const leader = net.get('n1');
    const r = leader.tick(net.now - 50_000);
    expect(r.notes).toContainEqual({ kind: 'clock-jump', deltaMs: -50_000 });
    let sent = 0;
    // Alone now (nobody answers), so check-quorum ends it after 500 ms; until then, one heartbeat per peer per 100 ms.
    for (let t = 10; t <= 400; t += 10) sent += leader.tick(net.now - 50_000 + t).messages.filter((m) => m.type === 'Heartbeat').length;
    expect(sent).toBe(8);
    const f = node('n2'); // times out 750 ms after start
    f.tick(1_000_000);
    run(f, 0, 740);
    expect(f.role).toBe('follower');
    run(f, 740, 760);
    expect(f.role).toBe('pre-candidate');
  });
});

describe('ReadyPipeline', () => {
  it('sends nothing before the persist completes, keeps order across steps, stops after a failed persist', async () => {
    const events: string[] = [];
    let release!: () => void;
    let fail = false;
    const pipe = new ReadyPipeline({
      persist: (s) => {
        events.push(`persist ${s.term}`);
        if (fail) return Promise.reject(new Error('disk full'));
        return new Promise<void>((res) => (release = res));
      },
      send: (m) => {
        events.push(`send ${m.type}`);
        if (m.type === 'Heartbeat') throw new Error('socket closed');
      },
    });
    const msg = (type: 'Vote' | 'Heartbeat'): Message => ({ type, from: 'n1', to: 'n2', term: 1 });
    const a = pipe.push({ persist: { term: 1, votedFor: 'n1' }, messages: [msg('Vote')], notes: [], changed: true });
    const b = pipe.push({ persist: null, messages: [msg('Heartbeat'), msg('Vote')], notes: [], changed: false });
    await new Promise((r) => setTimeout(r, 5));
    expect(events).toEqual(['persist 1']);
    release();
    await a;
    await b;
    expect(events).toEqual(['persist 1', 'send Vote', 'send Heartbeat', 'send Vote']);
    fail = true;
    await expect(pipe.push({ persist: { term: 2, votedFor: null }, messages: [msg('Vote')], notes: [], changed: true })).rejects.toThrow('disk full');
    await expect(pipe.push({ persist: null, messages: [msg('Vote')], notes: [], changed: false })).rejects.toThrow('disk full');
    expect(events.filter((e) => e === 'send Vote')).toHaveLength(2);
    expect(pipe.failed).not.toBeNull();
  });
});

describe('fencing', () => {
  it('refuses commands from a term lower than the highest seen', () => {
    const f = new TermFence({ highest: 3 });
    expect(f.check(3)).toEqual({ ok: true });
    expect(f.check(5)).toEqual({ ok: true });
    expect(f.highest).toBe(5);
    const old = f.check(4);
    expect(old.ok).toBe(false);
    expect(!old.ok && old.reason).toMatch(/term 4 refused: term 5/);
    expect(f.observe(9)).toEqual({ ok: true });
    expect(f.observe(2)).toEqual({ ok: true });
    expect(f.highest).toBe(9);
    expect(f.check(5).ok).toBe(false);
  });

  it('refuses garbage and absurd terms without raising the fence', () => {
    const f = new TermFence({ highest: 2 });
    for (const t of [NaN, -1, 1.5, '7', null, undefined, Infinity, MAX_TERM + 1, {}]) {
      expect(f.check(t).ok).toBe(false);
      expect(f.observe(t).ok).toBe(false);
    }
    expect(f.check(2 + 1_000_001).ok).toBe(false);
    expect(f.highest).toBe(2);
    expect(new TermFence({ highest: 2, maxLead: 10 }).check(13).ok).toBe(false);
    expect(() => new TermFence({ highest: NaN })).toThrow(RangeError);
  });

  it('fence() is the stateless form', () => {
    expect(fence(4, 4)).toEqual({ ok: true });
    expect(fence(3, 4).ok).toBe(false);
    expect(fence('4', 4).ok).toBe(false);
    expect(fence(4, NaN).ok).toBe(false);
  });
});
