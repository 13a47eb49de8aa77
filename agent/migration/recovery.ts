/**
 * The source side's way back (the runner, runner.ts, drives it):
 * - after a restart of this agent, which journaled migrations to resume or to finish;
 * - the answer to a new coordinator about a migration this node never received;
 * - bringing the source container back: from its own checkpoint, or thawed where it stands,
 *   or restarted without its state as a last resort. A checkpoint that outlived the agent
 *   which started it (orphan-dump.ts) is waited for first, so the container is judged by
 *   what the dump left, not by what Docker says while CRIU still holds it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from 'lmdb';
import { newMigrationRecord } from '../../common/migration-record';
import type { ContainerRuntime, InspectedContainer } from '../runtime/runtime';
import type { MigrationFaults } from './faults';
import { CHECKPOINT_NAME, checkpointDirOf, type JournalEntry } from './journal';
import { alive, endOrphanDump, thawCgroupOf, type OrphanDumpOptions } from './orphan-dump';

/** How long a rollback waits for a leftover checkpoint before killing it (a dump takes seconds). */
export const ORPHAN_DUMP_WAIT_MS = 60_000;
/** How long Docker may take to see the task a finished dump stopped (containerd's exit event). */
const DOCKER_CATCH_UP_MS = 10_000;

/** The journal after a restart: migrations to resume, and ended ones whose end was not carried out. */
export function interrupted(journal: Database<JournalEntry, string>): { resume: JournalEntry[]; unfinished: JournalEntry[] } {
  const resume: JournalEntry[] = [];
  const unfinished: JournalEntry[] = [];
  for (const { value } of journal.getRange()) {
    if (value.state.phase !== 'done') resume.push(value);
    // Crashed between journaling the end and finishing it (clean-up, final record).
    else if (value.record.state === 'RUNNING') unfinished.push(value);
  }
  return { resume, unfinished };
}

/**
 * The journal entry of a migration whose command never reached this node, as a new
 * coordinator (term) asked about it: ended, rolled back, the container where it was. Pure
 * but for the clock.
 */
export function neverStarted(q: { migration_id: string; herd_id: string; target_node_id: string }, nodeId: string, term: number): JournalEntry {
  const reason = `never started: the command did not reach ${nodeId} before the coordinator that sent it stepped down or died (asked in term ${term}); the container stayed where it was`;
  const record = newMigrationRecord({
    migration_id: q.migration_id,
    herd_id: q.herd_id,
    source_node_id: nodeId,
    target_node_id: q.target_node_id,
    fs_mode: 'FS_MODE_DIFF',
    step: 'ROLLBACK',
    state: 'ROLLED_BACK',
    term,
    version: 1,
  });
  record.reason = reason;
  record.ended_ms = Date.now();
  return {
    cmd: { migration_id: q.migration_id, herd_id: q.herd_id, target_node_id: q.target_node_id, target_address: '', fs_mode: record.fs_mode, term },
    sourceDockerId: '',
    state: { phase: 'done', outcome: 'ROLLED_BACK', reasons: [reason], sourceFrozen: false, pendingUndo: [] },
    record,
    artifacts: [],
  };
}

export interface SourceDeps {
  runtime: ContainerRuntime;
  faults?: MigrationFaults;
  /** Test seams for the leftover dump's processes (default: this node's /proc). */
  orphan?: Partial<OrphanDumpOptions> & { alive?: (pid: number) => boolean; thawCgroupOf?: (pid: number) => boolean };
}

/**
 * Brings the source container back with its state: a leftover dump is waited for (killed
 * if it will not end, and its freeze undone); then a container that runs is thawed where it
 * stands, one that a dump stopped is restored from that checkpoint. Answers what the record
 * should say about a leftover dump ('' if there was none).
 */
export async function restoreSource(d: SourceDeps, entry: JournalEntry, outDir: string): Promise<string> {
  const { c, note } = await afterLeftoverDump(d, entry);
  // (paused: frozen between the two dumps of a page-server checkpoint)
  if (c.state === 'running' || c.state === 'paused') {
    // A page-server dump left it stopped and its second dump never ended the task (it failed, or
    // this agent restarted meanwhile, also before that was journaled): it goes on where it was.
    if (entry.leftStopped && d.faults?.failSourceRestore) throw new Error('thaw failed (fault injected: migration.fail_source_restore)');
    if ((await d.runtime.thaw(entry.sourceDockerId, entry.checkpointDir ?? (await checkpointDirs(d.runtime, outDir))[0])) > 0) entry.record.downtime_ms = Date.now() - (entry.freezeMs ?? Date.now());
  } else {
    if (d.faults?.failSourceRestore) throw new Error('restore failed (fault injected: migration.fail_source_restore)');
    await d.runtime.restoreFromDir(entry.sourceDockerId, await foundCheckpoint(d.runtime, entry, outDir), CHECKPOINT_NAME, { keepSource: true, tcpEstablished: entry.cmd.tcp_established });
    entry.record.downtime_ms = Date.now() - (entry.freezeMs ?? Date.now());
  }
  return note;
}

/** The last resort: the source container started again without its state. */
export async function restartSource(d: SourceDeps, entry: JournalEntry): Promise<void> {
  const { c } = await afterLeftoverDump(d, entry);
  // stopped by a page-server dump and not thawed: restarted from scratch like any other
  if (c.state === 'running' && entry.leftStopped) await d.runtime.stop(entry.sourceDockerId, { timeoutS: 0 });
  if (c.state !== 'running' || entry.leftStopped) await d.runtime.start(entry.sourceDockerId);
  entry.record.downtime_ms = Date.now() - (entry.freezeMs ?? Date.now());
}

/**
 * The container as a leftover dump left it. Docker lists a container running until
 * containerd's exit event of the task reaches it, so a running one whose task is gone is
 * looked at again until Docker has caught up.
 */
async function afterLeftoverDump(d: SourceDeps, entry: JournalEntry): Promise<{ c: InspectedContainer; note: string }> {
  const waitMs = d.faults?.orphanDumpWaitMs ?? ORPHAN_DUMP_WAIT_MS;
  const dump = await endOrphanDump(entry.sourceDockerId, { waitMs, ...d.orphan });
  let c = await d.runtime.inspect(entry.sourceDockerId);
  let thawed = false;
  if (dump.killed && c.state === 'running') thawed = (d.orphan?.thawCgroupOf ?? thawCgroupOf)(c.pid);
  const until = Date.now() + DOCKER_CATCH_UP_MS;
  while (c.state === 'running' && !(d.orphan?.alive ?? alive)(c.pid) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    c = await d.runtime.inspect(entry.sourceDockerId);
  }
  if (!dump.found) return { c, note: '' };
  const how = dump.killed ? `did not end within ${waitMs} ms and was killed${thawed ? ' (its freeze undone)' : ''}` : `ended ${dump.waitedMs} ms later`;
  return { c, note: `a checkpoint left running (by a restart of this agent or a call that timed out) ${how}; the container was then ${c.state === 'running' ? 'running' : 'stopped'}` };
}

/**
 * The checkpoint to roll back to. Journaled once the dump returned; a restart of this agent
 * while it ran loses that answer, but the dump may have finished (and stopped the container)
 * all the same: then it is where the runtime puts one, looked for by its inventory.
 */
async function foundCheckpoint(runtime: ContainerRuntime, entry: JournalEntry, outDir: string): Promise<string> {
  if (entry.checkpointDir) return entry.checkpointDir;
  const dirs = await checkpointDirs(runtime, outDir);
  return dirs.find((d) => existsSync(join(d, 'inventory.img'))) ?? checkpointDirOf(entry, outDir);
}

/** Where the runtime puts a migration's checkpoint (the image tmpfs on the fast path, else under outDir). */
export function checkpointDirs(runtime: ContainerRuntime, outDir: string): Promise<string[]> {
  return runtime.checkpointDirs?.(outDir, CHECKPOINT_NAME) ?? Promise.resolve([join(outDir, CHECKPOINT_NAME)]);
}
