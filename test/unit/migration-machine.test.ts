import { describe, expect, it } from 'vitest';
import { start, step, stepOf, type Action, type Event, type MigrationState, type Outcome } from '../../agent/migration/machine';
import { mulberry32 } from '../../coordinator/election/sim';

/** Runs events through the machine, returning the final state and every action in order. */
function run(events: Event[]): { state: MigrationState; actions: string[] } {
  let t = start();
  const actions = t.actions.map((a) => a.type as string);
  for (const e of events) {
    t = step(t.state, e);
    actions.push(...t.actions.map((a) => (a.type === 'finish' ? `finish:${a.outcome}` : a.type)));
  }
  return { state: t.state, actions };
}

describe('migration state machine: every path', () => {
  it('happy path: prepare and checkpoint in parallel, then package, complete, remove the source', () => {
    const r = run([{ type: 'checkpointed' }, { type: 'prepared' }, { type: 'packaged' }, { type: 'completed' }, { type: 'source-removed' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'package', 'complete', 'remove-source', 'finish:SUCCEEDED']);
    expect(r.state.outcome).toBe('SUCCEEDED');
  });

  it('checkpoint fails -> the target container is removed; the source keeps running', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpoint-failed', reason: 'criu: Unknown shit 600' }, { type: 'target-aborted' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'abort-target', 'finish:ROLLED_BACK']);
    expect(r.state.reasons.join()).toMatch(/checkpoint failed: criu: Unknown shit 600/);
  });

  it('prepare fails after the checkpoint -> the source is restored from its own checkpoint', () => {
    const r = run([{ type: 'checkpointed' }, { type: 'prepare-failed', reason: 'no such image' }, { type: 'source-restored' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'restore-source', 'finish:ROLLED_BACK']);
  });

  it('both halves fail -> nothing to undo', () => {
    const r = run([{ type: 'prepare-failed', reason: 'a' }, { type: 'checkpoint-failed', reason: 'b' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'finish:ROLLED_BACK']);
  });

  it('transfer or remote restore fails -> target removed first, then the source restored from its checkpoint', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }, { type: 'complete-failed', reason: 'sha256 mismatch' }, { type: 'target-aborted' }, { type: 'source-restored' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'package', 'complete', 'abort-target', 'restore-source', 'finish:ROLLED_BACK']);
    expect(r.state.reasons.join()).toMatch(/the target could not take over: sha256 mismatch/);
  });

  it('local restore fails too -> the source is restarted and the migration FAILED (state lost)', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }, { type: 'complete-failed', reason: 'x' }, { type: 'target-aborted' }, { type: 'source-restore-failed', reason: 'criu restore' }, { type: 'source-restarted' }]);
    expect(r.actions.slice(-2)).toEqual(['restart-source', 'finish:FAILED']);
    expect(r.state.reasons.join('; ')).toMatch(/x.*restoring the source from its own checkpoint failed: criu restore/);
  });

  it('packing fails -> undo both sides', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'package-failed', reason: 'disk full' }, { type: 'target-aborted' }, { type: 'source-restored' }]);
    expect(r.actions.slice(-3)).toEqual(['abort-target', 'restore-source', 'finish:ROLLED_BACK']);
  });

  it('retries an abort that failed (never restores the source while a target copy may run) and a source removal', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }, { type: 'complete-failed', reason: 'timeout' }, { type: 'target-abort-failed', reason: 'unreachable' }, { type: 'target-aborted' }, { type: 'source-restored' }]);
    expect(r.actions.slice(4)).toEqual(['abort-target', 'abort-target', 'restore-source', 'finish:ROLLED_BACK']);
    const s = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }, { type: 'completed' }, { type: 'source-remove-failed', reason: 'busy' }, { type: 'source-removed' }]);
    expect(s.actions.slice(-3)).toEqual(['remove-source', 'remove-source', 'finish:SUCCEEDED']);
  });

  it('ignores events that do not belong to the phase, and everything once done', () => {
    const t = start();
    expect(step(t.state, { type: 'completed' }).actions).toEqual([]);
    const done = run([{ type: 'prepare-failed', reason: 'a' }, { type: 'checkpoint-failed', reason: 'b' }]).state;
    expect(step(done, { type: 'completed' })).toEqual({ state: done, actions: [] });
    expect(step(done, { type: 'recover', targetRunning: true }).actions).toEqual([]);
  });

  it('recovers after a source crash: forward when the target runs the container, else undo', () => {
    const completing = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }]).state;
    expect(step(completing, { type: 'recover', targetRunning: true }).actions).toEqual([{ type: 'remove-source' }]);
    expect(step(completing, { type: 'recover', targetRunning: false }).actions).toEqual([{ type: 'abort-target' }]);
    const starting = start().state;
    expect(step(starting, { type: 'recover', targetRunning: false }).actions).toEqual([{ type: 'abort-target' }]);
    expect(stepOf(completing)).toBe('TRANSFER');
  });
});

// ---------------------------------------------------------------- model check

/** A tiny world: where the container runs, and what exists. Actions succeed or fail at random. */
interface World {
  sourceRunning: boolean;
  sourceExists: boolean;
  sourceHasState: boolean; // false once restarted without its checkpoint
  targetExists: boolean;
  targetRunning: boolean;
  checkpointTaken: boolean;
}


function simulate(seed: number): { outcome: Outcome; world: World } {
  const rnd = mulberry32(seed);
  const fail = (p: number) => rnd() < p;
  const w: World = { sourceRunning: true, sourceExists: true, sourceHasState: true, targetExists: false, targetRunning: false, checkpointTaken: false };
  let t = start();
  const queue: Action[] = [...t.actions];
  let crashes = 0;
  for (let guard = 0; guard < 1000; guard++) {
    // A crash of the source agent between any two actions: the journal survives, in-flight work is lost.
    if (crashes < 2 && fail(0.05) && t.state.phase !== 'done') {
      crashes++;
      queue.length = 0;
      t = step(t.state, { type: 'recover', targetRunning: w.targetRunning });
      queue.push(...t.actions);
      continue;
    }
    const a = queue.shift();
    if (!a) break;
    let e: Event | undefined;
    switch (a.type) {
      case 'prepare-target':
        if (fail(0.2)) e = { type: 'prepare-failed', reason: 'p' };
        else {
          w.targetExists = true;
          e = { type: 'prepared' };
        }
        break;
      case 'checkpoint':
        if (fail(0.2)) e = { type: 'checkpoint-failed', reason: 'c' };
        else {
          w.sourceRunning = false;
          w.checkpointTaken = true;
          e = { type: 'checkpointed' };
        }
        break;
      case 'package':
        e = fail(0.1) ? { type: 'package-failed', reason: 'k' } : { type: 'packaged' };
        break;
      case 'complete':
        if (fail(0.3)) {
          // A failure seen by the source may still have started the target (timeout after restore).
          if (fail(0.3) && w.targetExists) w.targetRunning = true;
          e = { type: 'complete-failed', reason: 't' };
        } else {
          w.targetRunning = true;
          e = { type: 'completed' };
        }
        break;
      case 'remove-source':
        if (fail(0.2)) e = { type: 'source-remove-failed', reason: 'r' };
        else {
          w.sourceExists = false;
          w.sourceRunning = false;
          e = { type: 'source-removed' };
        }
        break;
      case 'abort-target':
        if (fail(0.2)) e = { type: 'target-abort-failed', reason: 'a' };
        else {
          w.targetExists = false;
          w.targetRunning = false;
          e = { type: 'target-aborted' };
        }
        break;
      case 'restore-source':
        if (w.sourceRunning) e = { type: 'source-restored' }; // the runner treats a running source as restored
        else if (!w.checkpointTaken || fail(0.3)) e = { type: 'source-restore-failed', reason: 's' };
        else {
          w.sourceRunning = true;
          e = { type: 'source-restored' };
        }
        break;
      case 'restart-source':
        if (!w.sourceRunning) {
          w.sourceRunning = true;
          w.sourceHasState = false;
        }
        e = { type: 'source-restarted' };
        break;
      case 'finish':
        return { outcome: a.outcome, world: w };
    }
    t = step(t.state, e!);
    queue.push(...t.actions);
  }
  throw new Error(`seed ${seed}: the migration never finished (phase ${t.state.phase})`);
}

describe('migration state machine: model check over random failures and crashes', () => {
  it('always ends with the container running exactly once and nothing left behind (5000 seeds)', () => {
    const outcomes: Record<string, number> = {};
    for (let seed = 1; seed <= 5000; seed++) {
      const { outcome, world: w } = simulate(seed);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      const where = `seed ${seed}: ${outcome} ${JSON.stringify(w)}`;
      expect(Number(w.sourceRunning) + Number(w.targetRunning), where).toBe(1);
      if (outcome === 'SUCCEEDED') expect(w.targetRunning && !w.sourceExists, where).toBe(true);
      if (outcome === 'ROLLED_BACK') expect(w.sourceRunning && w.sourceHasState && !w.targetExists, where).toBe(true);
      if (outcome === 'FAILED') expect(w.sourceRunning && !w.targetExists, where).toBe(true);
    }
    // every outcome is reached by some schedule
    expect(Object.keys(outcomes).sort()).toEqual(['FAILED', 'ROLLED_BACK', 'SUCCEEDED']);
  });
});
