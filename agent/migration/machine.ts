/**
 * The source side of a migration as a pure state machine: an event in, the next state
 * and the actions to carry out out (etcd-io/raft style). The runner (runner.ts) does the
 * I/O, journals every state in LMDB before acting on it, and feeds results back as
 * events; after a crash it feeds `recover` and the machine decides to finish or undo.
 *
 * Invariant 3 lives here: every path ends with the container running exactly once:
 * on the target (SUCCEEDED), or on the source with its state (ROLLED_BACK), or on the
 * source restarted without it (FAILED).
 *
 * A call to the target that fails without the target's own answer (dropped, unreachable,
 * the target's agent restarting) and whatever the target did while this agent was down
 * are questions, not failures. Once the target may have been told to restore, the only
 * way back is AbortMigration with `keep_running` (the question and the fence in one step
 * on the target): it answers that it runs the container (roll forward: the container is
 * never thrown away there) or that it removed it and will not start it (roll back). It is
 * asked again, with back-off, until it answers.
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
  /**
   * Whether CompleteMigration may have reached the target (journaled before it is sent):
   * from then on the target may run the container, so it is asked before the source comes back.
   */
  completeSent?: boolean;
  /** Whether prepare may have made a target container (false only when the target refused it). */
  targetMayExist?: boolean;
  /** How many times in a row the current action went unanswered (for back-off and the record). */
  unanswered?: number;
  /** The last unanswered call, while it is asked again. */
  waitingOn?: string;
  /** The source lost its state (restarted without its checkpoint): the undo ends FAILED. */
  stateLost?: boolean;
  outcome?: Outcome;
  reasons: string[];
}

export type Event =
  | { type: 'prepared' }
  /** `refused`: the target itself answered no (INVALID_ARGUMENT, ...), so it made nothing. */
  | { type: 'prepare-failed'; reason: string; refused?: boolean }
  | { type: 'checkpointed' }
  | { type: 'checkpoint-failed'; reason: string }
  | { type: 'packaged' }
  | { type: 'package-failed'; reason: string }
  | { type: 'completed' }
  | { type: 'complete-failed'; reason: string }
  | { type: 'source-removed' }
  | { type: 'source-remove-failed'; reason: string }
  /** The target removed what it had (or had nothing) and will not start it. */
  | { type: 'target-aborted' }
  /** The target runs the container and kept it. */
  | { type: 'target-runs' }
  /** No answer (dropped, unreachable, still restoring): ask again. */
  | { type: 'target-abort-failed'; reason: string }
  /** `note`: what the record should say about how (a checkpoint left running by a restart, ...). */
  | { type: 'source-restored'; note?: string }
  | { type: 'source-restore-failed'; reason: string }
  | { type: 'source-restarted' }
  | { type: 'source-restart-failed'; reason: string }
  /** After a crash of this agent: in-flight calls are lost, what the target did is unknown. */
  | { type: 'recover' };

export type Action =
  | { type: 'prepare-target' }
  | { type: 'checkpoint' }
  | { type: 'package' }
  | { type: 'complete' }
  | { type: 'remove-source' }
  /** AbortMigration with keep_running: answered target-aborted or target-runs. */
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
    state: { phase: 'starting', sourceFrozen: false, pendingUndo: [], reasons: [], completeSent: false, targetMayExist: true },
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

/**
 * Starts the undo. Once CompleteMigration may have reached the target, the target goes
 * first: it is asked (and fenced) before the source restores, so the container never runs
 * twice, and if it runs there the migration rolls forward. Before that the target cannot
 * run it, so the source comes back first (shorter downtime) and the target is cleaned up
 * after (a prepare whose answer was lost may still have made a container).
 */
function undo(s: MigrationState, reason: string): Transition {
  const next = clone(s);
  next.reasons.push(reason);
  const steps: Array<'abort-target' | 'restore-source'> = [];
  if (s.completeSent) {
    steps.push('abort-target');
    if (s.sourceFrozen) steps.push('restore-source');
  } else {
    if (s.sourceFrozen) steps.push('restore-source');
    if (s.targetMayExist !== false) steps.push('abort-target');
  }
  next.pendingUndo = steps;
  return advanceUndo(next);
}

function advanceUndo(s: MigrationState): Transition {
  const next = clone(s);
  next.unanswered = 0;
  delete next.waitingOn;
  const step = next.pendingUndo.shift();
  if (step === 'abort-target') {
    next.phase = 'aborting-target';
    return { state: next, actions: [{ type: 'abort-target' }] };
  }
  if (step === 'restore-source') {
    next.phase = 'restoring-source';
    return { state: next, actions: [{ type: 'restore-source' }] };
  }
  return finish(next, next.stateLost ? 'FAILED' : 'ROLLED_BACK');
}

function finish(s: MigrationState, outcome: Outcome): Transition {
  const next = clone(s);
  next.phase = 'done';
  next.outcome = outcome;
  next.sourceFrozen = false;
  next.unanswered = 0;
  delete next.waitingOn;
  return { state: next, actions: [{ type: 'finish', outcome, reason: next.reasons.join('; ') }] };
}

export function step(s: MigrationState, e: Event): Transition {
  if (s.phase === 'done') return { state: s, actions: [] }; // late events change nothing
  if (e.type === 'recover') return recover(s);
  const next = clone(s);
  switch (s.phase) {
    case 'starting': {
      if (e.type === 'prepared') next.prepared = 'done';
      else if (e.type === 'prepare-failed') {
        next.prepared = 'failed';
        next.targetMayExist = !e.refused;
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
        next.completeSent = true; // journaled before the call goes out
        return { state: next, actions: [{ type: 'complete' }] };
      }
      if (e.type === 'package-failed') return undo(next, `packing the artifacts failed: ${e.reason}`);
      return ignore(s);
    case 'completing':
      if (e.type === 'completed') return rollForward(next);
      if (e.type === 'complete-failed') return undo(next, `the target could not take over: ${e.reason}`);
      return ignore(s);
    case 'removing-source':
      if (e.type === 'source-removed') return finish(next, 'SUCCEEDED');
      // The container runs on the target; a source copy that will not go away is retried, not undone.
      if (e.type === 'source-remove-failed') return askAgain(next, e.reason);
      return ignore(s);
    case 'aborting-target':
      if (e.type === 'target-aborted') return advanceUndo(next);
      // It runs there (the restore landed although its answer was lost): keep it, finish forward.
      if (e.type === 'target-runs' && s.completeSent && s.sourceFrozen) return rollForward(next);
      // No answer is not a no: never restore the source while a target copy may run. Ask again.
      if (e.type === 'target-abort-failed' || e.type === 'target-runs') return askAgain(next, e.type === 'target-runs' ? 'the target says it runs a container it was never told to restore' : e.reason);
      return ignore(s);
    case 'restoring-source':
      if (e.type === 'source-restored') {
        if (e.note) next.reasons.push(e.note);
        return advanceUndo({ ...next, sourceFrozen: false });
      }
      if (e.type === 'source-restore-failed') {
        next.reasons.push(`restoring the source from its own checkpoint failed: ${e.reason}`);
        next.phase = 'restarting-source';
        return { state: next, actions: [{ type: 'restart-source' }] };
      }
      return ignore(s);
    case 'restarting-source':
      // What is still owed (cleaning the target up) is done before it ends FAILED.
      if (e.type === 'source-restarted') return advanceUndo({ ...next, sourceFrozen: false, stateLost: true });
      if (e.type === 'source-restart-failed') {
        next.reasons.push(`restarting the source failed too: ${e.reason}`);
        return advanceUndo({ ...next, stateLost: true });
      }
      return ignore(s);
  }
}

function ignore(s: MigrationState): Transition {
  return { state: s, actions: [] };
}

/** Repeats the current action; the runner waits longer each time (unanswered counts them). */
function askAgain(s: MigrationState, reason: string): Transition {
  const next = clone(s);
  next.unanswered = (s.unanswered ?? 0) + 1;
  next.waitingOn = reason;
  const action: Action = s.phase === 'removing-source' ? { type: 'remove-source' } : { type: 'abort-target' };
  return { state: next, actions: [action] };
}

/** The container runs on the target: what is left is removing the stopped source copy. */
function rollForward(s: MigrationState): Transition {
  const next = clone(s);
  next.phase = 'removing-source';
  next.sourceFrozen = false;
  next.pendingUndo = [];
  next.unanswered = 0;
  delete next.waitingOn;
  // The reasons it was going back are kept: SUCCEEDED says it got there the long way.
  if (s.phase === 'aborting-target') next.reasons.push('the target runs the container: finished forward');
  return { state: next, actions: [{ type: 'remove-source' }] };
}

/**
 * After a crash of the source agent: the journal says how far it got; what the target did
 * meanwhile is unknown, and is asked (abort-target with keep_running) wherever it matters.
 */
function recover(s: MigrationState): Transition {
  const next = clone(s);
  next.unanswered = 0;
  delete next.waitingOn;
  switch (s.phase) {
    case 'starting':
      // The checkpoint may or may not have completed before the crash: restore if frozen
      // (restore-source treats a running source as restored); prepare may have made a container.
      return undo(
        { ...next, sourceFrozen: s.sourceFrozen || s.checkpointed === undefined, targetMayExist: s.targetMayExist !== false || s.prepared === undefined },
        'the source agent restarted during the migration',
      );
    case 'packaging':
      return undo(next, 'the source agent restarted during the migration');
    case 'completing': // (a journal from before completeSent existed has the phase only)
      return undo({ ...next, completeSent: true }, 'the source agent restarted during the migration');
    case 'aborting-target':
      return { state: next, actions: [{ type: 'abort-target' }] };
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
