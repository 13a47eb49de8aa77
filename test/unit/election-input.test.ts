import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, Election, ElectionConfigError, type HardState, MAX_TERM } from '../../coordinator/election/election';
import { IDS, Net, node, refusedOnly, run } from '../helpers/election';

describe('election: bad input', () => {
  const settled = () => {
    const net = new Net();
    net.advance(2000);
    return net.get('n2');
  };
  const good = { type: 'Heartbeat', from: 'n1', to: 'n2', term: 1 };
  const throwing = new Proxy(
    {},
    {
      get() {
        throw new Error('boom');
      },
    },
  );
  const garbage: [string, unknown][] = [
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a string', 'Heartbeat'],
    ['an array', [good]],
    ['a throwing proxy', throwing],
    ['unknown type', { ...good, type: 'Coup' }],
    ['missing term', { type: 'Heartbeat', from: 'n1', to: 'n2' }],
    ['NaN term', { ...good, term: NaN }],
    ['negative term', { ...good, term: -1 }],
    ['fractional term', { ...good, term: 1.5 }],
    ['string term', { ...good, term: '1' }],
    ['bigint term', { ...good, term: 1n }],
    ['infinite term', { ...good, term: Infinity }],
    ['unsafe term', { ...good, term: 2 ** 60 }],
    ['MAX_TERM', { ...good, term: MAX_TERM }],
    ['term beyond maxTermLead', { ...good, term: 2 + DEFAULT_OPTIONS.maxTermLead }],
    ['unknown node', { ...good, from: 'mallory' }],
    ['empty from', { ...good, from: '' }],
    ['numeric from', { ...good, from: 1 }],
    ['huge from', { ...good, from: 'x'.repeat(10_000) }],
    ['addressed to another node', { ...good, to: 'n3' }],
    ['claims to be from the receiver', { ...good, from: 'n2' }],
    ['response without granted', { type: 'VoteResponse', from: 'n1', to: 'n2', term: 1 }],
    ['granted as a string', { type: 'PreVoteResponse', from: 'n1', to: 'n2', term: 2, granted: 'yes' }],
    ['a transfer vote with transfer as a string', { type: 'Vote', from: 'n3', to: 'n2', term: 2, transfer: 'yes' }],
    ['a TimeoutNow with a NaN term', { type: 'TimeoutNow', from: 'n1', to: 'n2', term: NaN }],
    ['a TimeoutNow for another node', { type: 'TimeoutNow', from: 'n1', to: 'n3', term: 1 }],
    ['a TimeoutNow from an unknown node', { type: 'TimeoutNow', from: 'mallory', to: 'n2', term: 1 }],
  ];
  for (const [name, raw] of garbage) {
    it(`refuses ${name} without throwing or changing state`, () => {
      const e = settled();
      const before = [e.role, e.term, e.votedFor, e.leaderId];
      refusedOnly(e.receive(raw));
      expect([e.role, e.term, e.votedFor, e.leaderId]).toEqual(before);
    });
  }

  it('accepts a term exactly maxTermLead ahead (a long-partitioned node must be able to catch up)', () => {
    const e = settled();
    const r = e.receive({ type: 'VoteResponse', from: 'n1', to: 'n2', term: 1 + DEFAULT_OPTIONS.maxTermLead, granted: false });
    expect(e.term).toBe(1 + DEFAULT_OPTIONS.maxTermLead);
    expect(r.persist).not.toBeNull();
  });

  it('refuses a second leader in the same term', () => {
    const e = settled();
    const r = e.receive({ type: 'Heartbeat', from: 'n3', to: 'n2', term: 1 });
    expect(r.notes.some((n) => n.kind === 'refused')).toBe(true);
    expect(e.leaderId).toBe('n1');
  });

  it('refuses messages before the first tick and a non-numeric clock', () => {
    const e = node('n1');
    refusedOnly(e.receive(good));
    for (const t of [NaN, Infinity, -Infinity, '5', 2 ** 60]) refusedOnly(e.tick(t as number));
    expect(e.msUntilNextDeadline()).toBe(0);
  });

  it('refuses a bad configuration or persisted state at construction', () => {
    const make = (c: object, hard?: HardState) => () => new Election({ id: 'n1', members: IDS, random: Math.random, ...c }, hard);
    expect(make({ members: ['n2', 'n3'] })).toThrow(ElectionConfigError);
    expect(make({ members: ['n1', 'n1'] })).toThrow(ElectionConfigError);
    expect(make({ heartbeatMs: 0 })).toThrow(ElectionConfigError);
    expect(make({ electionMinMs: 150 })).toThrow(ElectionConfigError);
    expect(make({ electionMaxMs: 500 })).toThrow(ElectionConfigError);
    expect(make({}, { term: -1, votedFor: null })).toThrow(ElectionConfigError);
    expect(make({}, { term: 1, votedFor: 'mallory' })).toThrow(ElectionConfigError);
  });

  it('survives a random source that returns nonsense', () => {
    const e = new Election({ id: 'n1', members: IDS, random: () => NaN });
    e.tick(0);
    expect(e.msUntilNextDeadline()).toBeGreaterThan(0);
    run(e, 0, 2000);
    expect(e.role).toBe('pre-candidate');
  });
});

