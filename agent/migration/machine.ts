/**
 * The source side of a migration as a pure state machine: an event in, the next state
 * and the actions to carry out out (etcd-io/raft style). The runner (runner.ts) does the
 * I/O, journals every state in LMDB before acting on it, and feeds results back as
 * events; after a crash it feeds `recover` and the machine decides to finish or undo.
 *
 * Invariant 3 lives here: every path ends with the container running exactly once:
 * on the target (SUCCEEDED), or on the source with its state (ROLLED_BACK), or on the
 * source restarted without it (FAILED).
 */

export type FsMode = 'none' | 'diff' | 'full';
export type Step = 'PREPARE' | 'CHECKPOINT' | 'PACKAGE' | 'TRANSFER' | 'APPLY_FS' | 'RESTORE' | 'REMOVE_SOURCE' | 'ROLLBACK';
export type Outcome = 'SUCCEEDED' | 'ROLLED_BACK' | 'FAILED';

export type Phase =
  | 'starting' // prepare (remote) and checkpoint (local) under way, in parallel
  | 'packaging'
  | 'completing' // the target fetches, applies, restores
  | 'removing-source'
  | 'aborting-target' // undo: remove the target container
  | 'restoring-source' // undo: restore the source from its own checkpoint
  | 'restarting-source' // last resort: restart the source without its state
  | 'done';

export interface MigrationState {
  phase: Phase;
  /** Remote prepare: undefined = under way; then done or failed. */
  prepared?: 'done' | 'failed';
  /** Local checkpoint: undefined = under way. */
  checkpointed?: 'done' | 'failed';
  /** Whether the source container is frozen (checkpointed, not yet restored anywhere). */
  sourceFrozen: boolean;
  /** Undo steps still owed once the current one finishes. */
  pendingUndo: Array<'abort-target' | 'restore-source'>;
  outcome?: Outcome;
  reasons: string[];
}

export type Event =
  | { type: 'prepared' }
  | { type: 'prepare-failed'; reason: string }
  | { type: 'checkpointed' }
  | { type: 'checkpoint-failed'; reason: string }
  | { type: 'packaged' }
  | { type: 'package-failed'; reason: string }
  | { type: 'completed' }
  | { type: 'complete-failed'; reason: string }
  | { type: 'source-removed' }
  | { type: 'source-remove-failed'; reason: string }
  | { type: 'target-aborted' }
  | { type: 'target-abort-failed'; reason: string }
  | { type: 'source-restored' }
  | { type: 'source-restore-failed'; reason: string }
  | { type: 'source-restarted' }
  | { type: 'source-restart-failed'; reason: string }
  /** After an agent crash; `targetRunning` is what the target says of the migration. */
  | { type: 'recover'; targetRunning: boolean };

export type Action =
  | { type: 'prepare-target' }
  | { type: 'checkpoint' }
  | { type: 'package' }
  | { type: 'complete' }
  | { type: 'remove-source' }
  | { type: 'abort-target' }
  | { type: 'restore-source' }
  | { type: 'restart-source' }
  | { type: 'finish'; outcome: Outcome; reason: string };

export interface Transition {
  state: MigrationState;
  actions: Action[];
}

export function start(): Transition {
  return {
    state: { phase: 'starting', sourceFrozen: false, pendingUndo: [], reasons: [] },
    actions: [{ type: 'prepare-target' }, { type: 'checkpoint' }],
  };
}

/** The step a phase is reported as (for progress and timings). */
export function stepOf(s: MigrationState): Step {
  switch (s.phase) {
    case 'starting':
      return s.checkpointed ? 'PREPARE' : 'CHECKPOINT';
    case 'packaging':
      return 'PACKAGE';
    case 'completing':
      return 'TRANSFER';
    case 'removing-source':
      return 'REMOVE_SOURCE';
    case 'done':
      return s.outcome === 'SUCCEEDED' ? 'REMOVE_SOURCE' : 'ROLLBACK';
    default:
      return 'ROLLBACK';
  }
}

const clone = (s: MigrationState): MigrationState => ({ ...s, pendingUndo: [...s.pendingUndo], reasons: [...s.reasons] });

/** Starts the undo: the target goes first (so the container never runs twice), then the source. */
function undo(s: MigrationState, reason: string): Transition {
  const next = clone(s);
  next.reasons.push(reason);
  const steps: Array<'abort-target' | 'restore-source'> = [];
  if (s.prepared !== 'failed') steps.push('abort-target');
  if (s.sourceFrozen) steps.push('restore-source');
  next.pendingUndo = steps;
  return advanceUndo(next);
}

function advanceUndo(s: MigrationState): Transition {
  const next = clone(s);
  const step = next.pendingUndo.shift();
  if (step === 'abort-target') {
    next.phase = 'aborting-target';
    return { state: next, actions: [{ type: 'abort-target' }] };
  }
  if (step === 'restore-source') {
    next.phase = 'restoring-source';
    return { state: next, actions: [{ type: 'restore-source' }] };
  }
  return finish(next, 'ROLLED_BACK');
}

function finish(s: MigrationState, outcome: Outcome): Transition {
  const next = clone(s);
  next.phase = 'done';
  next.outcome = outcome;
  next.sourceFrozen = false;
  return { state: next, actions: [{ type: 'finish', outcome, reason: next.reasons.join('; ') }] };
}

export function step(s: MigrationState, e: Event): Transition {
  if (s.phase === 'done') return { state: s, actions: [] }; // late events change nothing
  if (e.type === 'recover') return recover(s, e.targetRunning);
  const next = clone(s);
  switch (s.phase) {
    case 'starting': {
      if (e.type === 'prepared') next.prepared = 'done';
      else if (e.type === 'prepare-failed') {
        next.prepared = 'failed';
        next.reasons.push(`prepare on the target failed: ${e.reason}`);
      } else if (e.type === 'checkpointed') {
        next.checkpointed = 'done';
        next.sourceFrozen = true;
      } else if (e.type === 'checkpoint-failed') {
        next.checkpointed = 'failed';
        next.reasons.push(`checkpoint failed: ${e.reason}`);
      } else return ignore(s);
      // Wait until both halves have answered; then go on or undo what was done.
      if (next.prepared === undefined || next.checkpointed === undefined) return { state: next, actions: [] };
      if (next.prepared === 'done' && next.checkpointed === 'done') {
        next.phase = 'packaging';
        return { state: next, actions: [{ type: 'package' }] };
      }
      const reason = next.reasons.pop() ?? 'migration failed';
      return undo(next, reason);
    }
    case 'packaging':
      if (e.type === 'packaged') {
        next.phase = 'completing';
        return { state: next, actions: [{ type: 'complete' }] };
      }
      if (e.type === 'package-failed') return undo(next, `packing the artifacts failed: ${e.reason}`);
      return ignore(s);
    case 'completing':
      if (e.type === 'completed') {
        next.phase = 'removing-source';
        next.sourceFrozen = false; // it now runs on the target
        return { state: next, actions: [{ type: 'remove-source' }] };
      }
      if (e.type === 'complete-failed') return undo(next, `the target could not take over: ${e.reason}`);
      return ignore(s);
    case 'removing-source':
      if (e.type === 'source-removed') return finish(next, 'SUCCEEDED');
      // The container runs on the target; a source copy that will not go away is retried, not undone.
      if (e.type === 'source-remove-failed') return { state: next, actions: [{ type: 'remove-source' }] };
      return ignore(s);
    case 'aborting-target':
      if (e.type === 'target-aborted') return advanceUndo(next);
      // Never restore the source while a target copy may still run: retry the abort.
      if (e.type === 'target-abort-failed') return { state: next, actions: [{ type: 'abort-target' }] };
      return ignore(s);
    case 'restoring-source':
      if (e.type === 'source-restored') return advanceUndo({ ...next, sourceFrozen: false });
      if (e.type === 'source-restore-failed') {
        next.reasons.push(`restoring the source from its own checkpoint failed: ${e.reason}`);
        next.phase = 'restarting-source';
        return { state: next, actions: [{ type: 'restart-source' }] };
      }
      return ignore(s);
    case 'restarting-source':
      if (e.type === 'source-restarted') return finish(next, 'FAILED');
      if (e.type === 'source-restart-failed') {
        next.reasons.push(`restarting the source failed too: ${e.reason}`);
        return finish(next, 'FAILED');
      }
      return ignore(s);
  }
}

function ignore(s: MigrationState): Transition {
  return { state: s, actions: [] };
}

/**
 * After a crash of the source agent: what the journal says, plus what the target says.
 * If the target runs the container, finish forward (remove the source); otherwise undo.
 */
function recover(s: MigrationState, targetRunning: boolean): Transition {
  const next = clone(s);
  next.reasons.push('the source agent restarted during the migration');
  if (targetRunning && (s.phase === 'completing' || s.phase === 'removing-source')) {
    next.phase = 'removing-source';
    next.sourceFrozen = false;
    next.reasons.pop();
    return { state: next, actions: [{ type: 'remove-source' }] };
  }
  switch (s.phase) {
    case 'starting':
      // The checkpoint may or may not have completed before the crash: restore if frozen.
      return undo({ ...next, sourceFrozen: s.sourceFrozen || s.checkpointed === undefined }, next.reasons.pop()!);
    case 'packaging':
    case 'completing':
    case 'aborting-target':
      return undo(next, next.reasons.pop()!);
    case 'restoring-source':
      return { state: next, actions: [{ type: 'restore-source' }] };
    case 'restarting-source':
      return { state: next, actions: [{ type: 'restart-source' }] };
    case 'removing-source':
      return { state: next, actions: [{ type: 'remove-source' }] };
    default:
      return { state: s, actions: [] };
  }
}
