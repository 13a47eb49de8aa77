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
    const r = run([{ type: 'checkpointed' }, { type: 'prepare-failed', reason: 'no such image', refused: true }, { type: 'source-restored' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'restore-source', 'finish:ROLLED_BACK']);
  });

  it('a restart during the dump: the source restored after the leftover dump, and the record says so', () => {
    const r = run([{ type: 'recover' }, { type: 'source-restored', note: 'a checkpoint left running by the restart of this agent ended 812 ms later; the container was then stopped' }, { type: 'target-aborted' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'restore-source', 'abort-target', 'finish:ROLLED_BACK']);
    expect(r.state.reasons).toEqual(['the source agent restarted during the migration', 'a checkpoint left running by the restart of this agent ended 812 ms later; the container was then stopped']);
  });

  it('both halves fail -> nothing to undo', () => {
    const r = run([{ type: 'prepare-failed', reason: 'a', refused: true }, { type: 'checkpoint-failed', reason: 'b' }]);
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

  it('packing fails -> undo both sides, the source first (the target was never told to restore)', () => {
    const r = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'package-failed', reason: 'disk full' }, { type: 'source-restored' }, { type: 'target-aborted' }]);
    expect(r.actions.slice(-3)).toEqual(['restore-source', 'abort-target', 'finish:ROLLED_BACK']);
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
    const done = run([{ type: 'prepare-failed', reason: 'a', refused: true }, { type: 'checkpoint-failed', reason: 'b' }]).state;
    expect(step(done, { type: 'completed' })).toEqual({ state: done, actions: [] });
    expect(step(done, { type: 'recover' }).actions).toEqual([]);
  });

  it('a prepare whose answer was lost may have made a container: the source comes back first, then the target is cleaned up', () => {
    const r = run([{ type: 'checkpointed' }, { type: 'prepare-failed', reason: 'n2: Connection dropped' }, { type: 'source-restored' }, { type: 'target-abort-failed', reason: 'unreachable' }, { type: 'target-aborted' }]);
    expect(r.actions).toEqual(['prepare-target', 'checkpoint', 'restore-source', 'abort-target', 'abort-target', 'finish:ROLLED_BACK']);
  });

  it('a dropped CompleteMigration is a question: asked until answered, finished forward when the target runs the container', () => {
    const completing = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }]).state;
    expect(completing.completeSent).toBe(true);
    let t = step(completing, { type: 'complete-failed', reason: 'n2: Connection dropped' });
    expect(t.actions).toEqual([{ type: 'abort-target' }]); // the source stays frozen until the target answers
    t = step(t.state, { type: 'target-abort-failed', reason: 'n2: No connection established' });
    t = step(t.state, { type: 'target-abort-failed', reason: 'n2: No connection established' });
    expect(t.state.unanswered).toBe(2);
    expect(t.state.waitingOn).toMatch(/No connection established/);
    expect(t.actions).toEqual([{ type: 'abort-target' }]);
    t = step(t.state, { type: 'target-runs' });
    expect(t.actions).toEqual([{ type: 'remove-source' }]); // never restore-source: the target's copy is kept
    expect(t.state.waitingOn).toBeUndefined();
    t = step(t.state, { type: 'source-removed' });
    expect(t.state.outcome).toBe('SUCCEEDED');
    expect(t.state.reasons.join('; ')).toMatch(/Connection dropped; the target runs the container: finished forward/);
  });

  it('recovers after a source crash without knowing what the target did: asks it (abort with keep_running) before the source comes back', () => {
    const completing = run([{ type: 'prepared' }, { type: 'checkpointed' }, { type: 'packaged' }]).state;
    const r = step(completing, { type: 'recover' });
    expect(r.actions).toEqual([{ type: 'abort-target' }]);
    expect(step(r.state, { type: 'target-runs' }).actions).toEqual([{ type: 'remove-source' }]);
    expect(step(r.state, { type: 'target-aborted' }).actions).toEqual([{ type: 'restore-source' }]);
    // before CompleteMigration went out the target cannot run it: the source first
    const packaging = run([{ type: 'prepared' }, { type: 'checkpointed' }]).state;
    expect(step(packaging, { type: 'recover' }).actions).toEqual([{ type: 'restore-source' }]);
    expect(step(start().state, { type: 'recover' }).actions).toEqual([{ type: 'restore-source' }]);
    // a journal written before completeSent existed: 'completing' still asks the target first
    const { completeSent: _, ...old } = completing;
    expect(step(old as MigrationState, { type: 'recover' }).actions).toEqual([{ type: 'abort-target' }]);
    expect(stepOf(completing)).toBe('TRANSFER');
  });

  it('never rolls forward onto a target it never told to restore (a contradictory answer is asked again)', () => {
    const r = run([{ type: 'checkpointed' }, { type: 'prepare-failed', reason: 'dropped' }, { type: 'source-restored' }, { type: 'target-runs' }]);
    expect(r.actions.slice(-1)).toEqual(['abort-target']);
    expect(r.state.phase).toBe('aborting-target');
  });
});

// ---------------------------------------------------------------- model check

/**
 * A tiny world: the source container, and the target as target.ts behaves (its record, its
 * container, a CompleteMigration under way, AbortMigration with keep_running). Calls
 * succeed, are refused, or are dropped before or after their effect; a prepare or a restore
 * may land late; the target goes away for a while and its agent restarts; the source agent
 * crashes between any two steps, even between an effect and its answer; old answers are
 * delivered again.
 */
interface World {
  sourceRunning: boolean;
  sourceExists: boolean;
  sourceHasState: boolean; // false once restarted without its checkpoint
  checkpointTaken: boolean;
  record: 'none' | 'prepared' | 'restoring' | 'running' | 'failed' | 'aborted';
  targetExists: boolean;
  targetRunning: boolean;
  /** A restore sent to dockerd whose answer the source lost: lands later unless fenced first. */
  lateRestore: boolean;
  /** A PrepareMigration still on its way. */
  latePrepare: boolean;
  targetUp: boolean;
  targetEverRan: boolean;
  /** Both copies ran at one instant (checked after every change). */
  twice: boolean;
}

function simulate(seed: number): { outcome: Outcome; world: World; steps: string[] } {
  const rnd = mulberry32(seed);
  const p = (x: number) => rnd() < x;
  const w: World = { sourceRunning: true, sourceExists: true, sourceHasState: true, checkpointTaken: false, record: 'none', targetExists: false, targetRunning: false, lateRestore: false, latePrepare: false, targetUp: true, targetEverRan: false, twice: false };
  const steps: string[] = [];
  const observe = () => {
    if (w.sourceRunning && w.targetRunning) w.twice = true;
    if (w.targetRunning) w.targetEverRan = true;
  };
  const landRestore = (lands: boolean) => {
    w.lateRestore = false;
    if (lands && w.targetExists) {
      w.targetRunning = true;
      w.record = 'running';
    } else if (w.record === 'restoring') w.record = 'failed';
  };
  const landPrepare = () => {
    w.latePrepare = false;
    if (w.record === 'none') {
      w.record = 'prepared'; // an aborted record (tombstone) refuses it
      w.targetExists = true;
    }
  };
  let t = start();
  const queue: Action[] = [...t.actions];
  const history: Event[] = [];
  let crashes = 0;
  const deliver = (e: Event) => {
    history.push(e);
    t = step(t.state, e);
    queue.push(...t.actions);
  };
  for (let guard = 0; guard < 3000; guard++) {
    // The world moves on its own between steps.
    if (w.targetUp ? p(0.04) : p(0.3)) w.targetUp = !w.targetUp;
    if (w.latePrepare && p(0.1)) landPrepare();
    if (w.lateRestore && p(0.1)) landRestore(true);
    observe();
    // A late or repeated answer: the machine must not be led astray by it.
    if (history.length && p(0.03)) {
      const old = history[Math.floor(rnd() * history.length)];
      steps.push(`late ${old.type}`);
      t = step(t.state, old);
      queue.push(...t.actions);
      continue;
    }
    // A crash of the source agent between any two actions: the journal survives, in-flight work is lost.
    if (crashes < 3 && p(0.04) && t.state.phase !== 'done') {
      crashes++;
      steps.push('crash');
      queue.length = 0;
      t = step(t.state, { type: 'recover' });
      queue.push(...t.actions);
      continue;
    }
    const a = queue.shift();
    // A crash after the final state was journaled, before its finish ran: recovery runs it (runner.ts).
    if (!a && t.state.phase === 'done') queue.push({ type: 'finish', outcome: t.state.outcome!, reason: '' });
    else if (!a) break;
    else steps.push(a.type);
    if (!a) continue;
    let e: Event | undefined;
    switch (a.type) {
      case 'prepare-target': {
        const r = rnd();
        if (!w.targetUp) e = { type: 'prepare-failed', reason: 'unreachable' };
        else if (r < 0.15) e = { type: 'prepare-failed', reason: 'no such image', refused: true };
        else if (r < 0.25) {
          landPrepare(); // made, answer lost
          e = { type: 'prepare-failed', reason: 'dropped' };
        } else if (r < 0.32) {
          w.latePrepare = true;
          e = { type: 'prepare-failed', reason: 'deadline' };
        } else {
          landPrepare();
          e = w.record === 'prepared' ? { type: 'prepared' } : { type: 'prepare-failed', reason: 'already exists', refused: true };
        }
        break;
      }
      case 'checkpoint':
        if (p(0.2)) e = { type: 'checkpoint-failed', reason: 'c' };
        else {
          w.sourceRunning = false;
          w.checkpointTaken = true;
          e = { type: 'checkpointed' };
        }
        break;
      case 'package':
        e = p(0.1) ? { type: 'package-failed', reason: 'k' } : { type: 'packaged' };
        break;
      case 'complete': {
        const r = rnd();
        if (!w.targetUp || w.record !== 'prepared') e = { type: 'complete-failed', reason: 'unreachable or not prepared' };
        else if (r < 0.15) {
          w.record = 'failed';
          e = { type: 'complete-failed', reason: 'restore failed' };
        } else if (r < 0.3) {
          landRestore(true); // restored, answer lost
          e = { type: 'complete-failed', reason: 'Connection dropped' };
        } else if (r < 0.5) {
          w.record = 'restoring'; // dropped while restoring: the restore lands later, or not
          w.lateRestore = true;
          e = { type: 'complete-failed', reason: 'Connection dropped' };
        } else {
          landRestore(true);
          e = { type: 'completed' };
        }
        break;
      }
      case 'remove-source':
        if (p(0.2)) e = { type: 'source-remove-failed', reason: 'r' };
        else {
          w.sourceExists = false;
          w.sourceRunning = false;
          e = { type: 'source-removed' };
        }
        break;
      case 'abort-target': {
        if (!w.targetUp) {
          e = { type: 'target-abort-failed', reason: 'unreachable' };
          break;
        }
        // A restore under way is fenced and waited for (it may have started before the fence).
        if (w.lateRestore) landRestore(p(0.5));
        let answer: Event;
        if (w.record === 'none' || w.record === 'aborted') {
          w.record = 'aborted';
          answer = { type: 'target-aborted' };
        } else if (w.targetRunning) answer = { type: 'target-runs' };
        else {
          w.targetExists = false;
          w.record = 'aborted';
          answer = { type: 'target-aborted' };
        }
        e = p(0.15) ? { type: 'target-abort-failed', reason: 'answer lost' } : answer;
        break;
      }
      case 'restore-source':
        if (w.sourceRunning) e = { type: 'source-restored' }; // the runner treats a running source as restored
        else if (!w.checkpointTaken || p(0.3)) e = { type: 'source-restore-failed', reason: 's' };
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
        // Whatever is still on its way lands now: it must change nothing.
        if (w.latePrepare) landPrepare();
        if (w.lateRestore) landRestore(true);
        observe();
        return { outcome: a.outcome, world: w, steps };
    }
    observe();
    // Crashing after the effect, before the answer is journaled.
    if (crashes < 3 && p(0.03)) {
      crashes++;
      steps.push('crash after effect');
      queue.length = 0;
      t = step(t.state, { type: 'recover' });
      queue.push(...t.actions);
      continue;
    }
    deliver(e!);
  }
  throw new Error(`seed ${seed}: the migration never finished (phase ${t.state.phase}): ${steps.join(' ')}`);
}

describe('migration state machine: model check over failures, dropped calls, late answers and crashes', () => {
  it('never runs the container twice, never throws away a target that ran it, ends with it running once and nothing left (10000 seeds)', () => {
    const outcomes: Record<string, number> = {};
    let forwardAfterDrop = 0;
    for (let seed = 1; seed <= 10000; seed++) {
      const { outcome, world: w, steps } = simulate(seed);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      const where = `seed ${seed}: ${outcome} ${JSON.stringify(w)} ${steps.join(' ')}`;
      expect(w.twice, where).toBe(false);
      expect(Number(w.sourceRunning) + Number(w.targetRunning), where).toBe(1);
      // a container that ran on the target is never discarded: the migration finished forward
      if (w.targetEverRan) expect(outcome === 'SUCCEEDED' && w.targetRunning, where).toBe(true);
      if (outcome === 'SUCCEEDED') expect(w.targetRunning && !w.sourceExists, where).toBe(true);
      if (outcome === 'ROLLED_BACK') expect(w.sourceRunning && w.sourceHasState && !w.targetExists, where).toBe(true);
      if (outcome === 'FAILED') expect(w.sourceRunning && !w.targetExists, where).toBe(true);
      if (outcome === 'SUCCEEDED' && steps.includes('abort-target')) forwardAfterDrop++;
    }
    // every outcome is reached, and so is the roll-forward after a lost answer
    expect(Object.keys(outcomes).sort()).toEqual(['FAILED', 'ROLLED_BACK', 'SUCCEEDED']);
    expect(forwardAfterDrop).toBeGreaterThan(100);
  });
});
