/**
 * Deterministic simulation of the election core: thousands of seeded chaos schedules, and
 * failover/traffic figures measured in simulated time (so they are exact and repeatable,
 * not timing-dependent). A failure message carries the seed and a replay(...) call.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS } from '../../coordinator/election/election';
import {
  SimFailure,
  Sim,
  LAN,
  LAN_PERSIST_MS,
  isolatedLeader,
  measureFailover,
  measureHandover,
  measureTraffic,
  replay,
  returningNode,
  runSchedule,
} from '../../coordinator/election/sim';

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x: number) => Math.round(x);

describe('election simulation: chaos schedules', () => {
  for (const [nodes, count] of [
    [3, 5000],
    [5, 3000],
  ] as const) {
    it(`${count} seeded schedules with ${nodes} nodes: one leader per term, recovery after healing`, () => {
      const converge: number[] = [];
      let terms = 0;
      for (let seed = 1; seed <= count; seed++) {
        // Throws SimFailure naming the seed and replay(...) call on the first broken invariant.
        const r = runSchedule(seed, { nodes });
        converge.push(r.convergedAfterMs);
        terms += r.terms;
      }
      console.log(
        `election sim: ${count} schedules x ${nodes} nodes (drops, delays, reordering, duplication, garbage, partitions, one-way cuts, ` +
          `crashes, restarts, clock jumps): ${terms} elected terms; agreed leader after healing median ${ms(quantile(converge, 0.5))} ms, ` +
          `p99 ${ms(quantile(converge, 0.99))} ms, worst ${ms(Math.max(...converge))} ms`,
      );
      expect(Math.max(...converge)).toBeLessThan(10_000);
    });
  }

  it('a seed replays to the identical run', () => {
    expect(replay(4242, { nodes: 5 })).toEqual(runSchedule(4242, { nodes: 5 }));
  });

  it('a failure names the seed, the parameters and the replay call', () => {
    let err: unknown;
    try {
      runSchedule(7, { nodes: 3, convergeMs: 1 }); // an impossible bound, to see the report
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimFailure);
    const msg = (err as Error).message;
    expect(msg).toContain('seed=7');
    expect(msg).toContain('"dropRate"');
    expect(msg).toContain('replay(7, {"nodes":3,"convergeMs":1})');
    expect(msg).toContain('last events');
  });
});

describe('election simulation: figures with default settings', () => {
  for (const nodes of [3, 5]) {
    it(`failover after kill -9 of the leader, ${nodes} nodes, 1000 seeds: median <= 1.5 s, worst <= 3 s`, () => {
      const elected: number[] = [];
      const agreed: number[] = [];
      for (let seed = 1; seed <= 1000; seed++) {
        const r = measureFailover(seed, { nodes });
        elected.push(r.electedMs);
        agreed.push(r.agreedMs);
      }
      const median = quantile(agreed, 0.5);
      const worst = Math.max(...agreed);
      console.log(
        `election failover (${nodes} nodes, LAN ${LAN.minDelayMs}-${LAN.maxDelayMs} ms, ${LAN.dropRate * 100}% loss, fsync ${LAN_PERSIST_MS.join('-')} ms): ` +
          `new leader elected median ${ms(quantile(elected, 0.5))} ms; all nodes following it median ${ms(median)} ms, ` +
          `p90 ${ms(quantile(agreed, 0.9))} ms, p99 ${ms(quantile(agreed, 0.99))} ms, worst ${ms(worst)} ms`,
      );
      expect(median).toBeLessThanOrEqual(1500);
      expect(worst).toBeLessThanOrEqual(3000);
    });
  }

  for (const nodes of [3, 5]) {
    it(`graceful stop of the leader, ${nodes} nodes, 1000 seeds: it hands over, and the successor leads before any election timeout could fire`, () => {
      const elected: number[] = [];
      const agreed: number[] = [];
      let handedOver = 0;
      for (let seed = 1; seed <= 1000; seed++) {
        const r = measureHandover(seed, { nodes });
        if (!r.handedOver) continue; // the TimeoutNow or the votes were lost (1% loss): an ordinary failover follows
        handedOver++;
        elected.push(r.electedMs);
        agreed.push(r.agreedMs);
      }
      console.log(
        `election handover (${nodes} nodes, same LAN): handed over in ${handedOver}/1000; new leader median ${ms(quantile(elected, 0.5))} ms, ` +
          `worst ${ms(Math.max(...elected))} ms; all nodes following it median ${ms(quantile(agreed, 0.5))} ms, worst ${ms(Math.max(...agreed))} ms`,
      );
      expect(handedOver).toBeGreaterThanOrEqual(950);
      // Faster than the earliest election timeout: no follower had to time out.
      expect(Math.max(...elected)).toBeLessThan(DEFAULT_OPTIONS.electionMinMs);
      // On a loss-free LAN every handover goes through.
      for (let seed = 1; seed <= 100; seed++) expect(measureHandover(seed, { nodes, net: { dropRate: 0, tailRate: 0 } }).handedOver, `seed ${seed}`).toBe(true);
    });
  }

  it('a two-node cluster does not fail over: a majority of two is two (documented)', () => {
    expect(() => measureFailover(1, { nodes: 2 })).toThrow(/no new leader within 30 s/);
    expect(runSchedule(1, { nodes: 2 }).params.keepDown).toBe(0);
  });

  it('election traffic: one heartbeat per peer per heartbeat interval (plus its response)', () => {
    for (const nodes of [3, 5]) {
      const t = measureTraffic(1, { nodes, durationMs: 60_000 });
      console.log(`election traffic (${nodes} nodes, ${t.intervals} intervals): ${t.heartbeatsPerPeer.toFixed(3)} heartbeats and ${t.messagesPerPeer.toFixed(3)} messages per peer per interval`);
      expect(t.heartbeatsPerPeer).toBeLessThanOrEqual(1);
      expect(t.messagesPerPeer).toBeLessThanOrEqual(2.01);
    }
  });
});

describe('election simulation: disruption', () => {
  for (const nodes of [3, 5]) {
    it(`a node back from isolation or deafness never deposes a healthy leader (${nodes} nodes, 200 seeds)`, () => {
      let rounds = 0;
      for (let seed = 1; seed <= 200; seed++) {
        rounds += returningNode(seed, { nodes, awayMs: 500 + (seed % 20) * 500, deafOnly: seed % 2 === 0 }).rounds;
      }
      expect(rounds).toBeGreaterThan(200); // it did campaign while away: the test exercised pre-vote
    });

    it(`a leader isolated alone steps down within checkQuorumMs + heartbeatMs, the majority elects another (${nodes} nodes, 200 seeds)`, () => {
      const stepDown: number[] = [];
      for (let seed = 1; seed <= 200; seed++) stepDown.push(isolatedLeader(seed, { nodes }).stepDownMs);
      expect(Math.max(...stepDown)).toBeLessThanOrEqual(DEFAULT_OPTIONS.checkQuorumMs + DEFAULT_OPTIONS.heartbeatMs);
    });
  }

  it('clock jumps on a settled cluster (forward and back, leader and follower) change nothing', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const sim = new Sim({ seed, nodes: 3, net: LAN, persistMs: LAN_PERSIST_MS });
      sim.runUntil(30_000, () => sim.agreement() !== null);
      sim.runUntil(sim.time + 1000);
      const before = sim.agreement();
      expect(before).not.toBeNull();
      const leader = sim.ids.indexOf(before!.leader);
      for (const [who, delta] of [
        [leader, 30_000],
        [(leader + 1) % 3, 5_000],
        [leader, -20_000],
        [(leader + 2) % 3, -3_000],
      ]) {
        sim.jumpClock(who, delta);
        sim.runUntil(sim.time + 1500);
      }
      expect(sim.agreement()).toEqual(before);
    }
  });
});
