/**
 * Carries out migrations of this node's containers (the source side): feeds the pure
 * machine (machine.ts) with the results of real actions, journals every state in LMDB
 * before acting on it, and publishes the migration's record (progress, timings, outcome)
 * into the sample log, which carries it to the coordinator. After a crash, unfinished
 * journal entries are resumed: finished forward if the target runs the container, else
 * undone. A call the target did not answer is asked again with back-off (the record's
 * reason and the log say so meanwhile) until it answers.
 */
import * as grpc from '@grpc/grpc-js';
import type { Transport } from '../../common/transport';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Database } from 'lmdb';
import type { Env } from '../../common/db';
import { logger } from '../../common/log';
import { checkId } from '../../common/validate';
import { checkpointFiles, IMAGE_ARTIFACT, imageArtifact, splitCheckpoint } from '../runtime/fast-checkpoint';
import { nodeTlsFiles, type PageServerTls } from '../runtime/page-server';
import { isIP } from 'node:net';
import type { ContainerRuntime } from '../runtime/runtime';
import type { ArtifactRegistry } from '../transfer/artifacts';
import type { MigrationFaults } from './faults';
import { CHECKPOINT_NAME, checkpointDirOf, outDirOf, type JournalEntry } from './journal';
import { start, step, stepOf, type Action, type Event, type MigrationState, type Step } from './machine';
import { PeerClients } from './peer';
import { checkpointDirs, interrupted, neverStarted, restartSource, restoreSource, type SourceDeps } from './recovery';
import { errorText } from './errors';
import { choosePagePath } from './page-path';
import { newMigrationRecord, type MigrationRecord } from '../../common/migration-record';

const log = logger('migration');
const run = promisify(execFile);

/** The record as it travels (herd.v1.Migration). */
type Record_ = MigrationRecord;

export interface RunnerDeps {
  /** Send memory pages to the target's CRIU page server while dumping (default on; settings.pageServer). */
  pageServer?: boolean;
  /** The page server only from this much memory in use on (settings.pageServerMinBytes; default 0: always). */
  pageServerMinBytes?: number;
  nodeId: string;
  address: () => string;
  env: Env;
  runtime: ContainerRuntime;
  artifacts: ArtifactRegistry;
  dataDir: string;
  /** Docker id of the container with this herd id on this node, if it runs here. */
  findContainer: (herdId: string) => { dockerId: string; name: string; memoryInUse?: number } | undefined;
  /** Puts the record in the sample log (durable, replayed to every coordinator). */
  publish: (record: Record_) => Promise<unknown>;
  faults?: MigrationFaults;
  /** How to dial the target (default plain text); it must present the target node's certificate. */
  transport?: Transport;
  /** Test seams for finding a checkpoint left running by a restart (recovery.ts). */
  orphan?: SourceDeps['orphan'];
}

export class MigrationRunner {
  private readonly journal: Database<JournalEntry, string>;
  private readonly active = new Map<string, JournalEntry>();
  private readonly peers = new PeerClients(() => this.deps.transport);
  /** The target's page server for a migration being prepared (in memory: after a crash the migration is undone anyway). */
  private readonly pageServers = new Map<string, Deferred<{ port: number; refusal: string }>>();
  private stopped = false;

  constructor(private readonly deps: RunnerDeps) {
    this.journal = deps.env.openDB({ name: 'migration.journal' });
  }

  /**
   * Resumes what a crash interrupted. What the target did meanwhile is not asked here: the
   * machine asks it where it matters, with AbortMigration(keep_running), which answers and
   * fences in one step (a separate question could be overtaken by a restore landing).
   */
  async recover(): Promise<void> {
    const { resume, unfinished } = interrupted(this.journal);
    // (a failure here, e.g. a full disk under the store, is logged; the next restart tries again)
    const failed = (e: JournalEntry) => (err: unknown) => log.error('resuming a migration failed', { migration: e.cmd.migration_id, error: errorText(err) });
    for (const e of unfinished) void this.finish(e, e.state.outcome!, e.state.reasons.join('; ')).catch(failed(e));
    for (const e of resume) {
      log.warn('resuming a migration interrupted by a restart of this agent', { migration: e.cmd.migration_id, phase: e.state.phase });
      this.active.set(e.cmd.migration_id, e);
      void this.apply(e, step(e.state, { type: 'recover' })).catch(failed(e));
    }
  }

  stop(): void {
    this.stopped = true;
    this.peers.close();
  }

  /** A MigrateCommand from the coordinator (already fenced by term). */
  async start(cmd: any, term: number): Promise<void> {
    const id = String(cmd.migration_id);
    const record = newMigrationRecord({
      migration_id: id,
      herd_id: String(cmd.herd_id),
      source_node_id: this.deps.nodeId,
      target_node_id: String(cmd.target_node_id),
      fs_mode: String(cmd.fs_mode || 'FS_MODE_DIFF'),
      tcp_established: Boolean(cmd.tcp_established),
      step: 'PREPARE',
      state: 'RUNNING',
      term,
      version: 1,
    });
    const refuse = (reason: string) => this.deps.publish({ ...record, state: 'ROLLED_BACK', step: 'ROLLBACK', reason, ended_ms: Date.now() });
    const bad = checkId('migration_id', id) ?? checkId('herd_id', cmd.herd_id) ?? checkId('target_node_id', cmd.target_node_id);
    if (bad) return void refuse(bad);
    if (this.journal.get(id) || this.active.has(id)) return; // a command delivered twice (the coordinator sends it again after a broken stream)
    const c = this.deps.findContainer(record.herd_id);
    if (!c) return void refuse(`container ${record.herd_id} does not run on ${this.deps.nodeId}`);
    if ([...this.active.values()].some((e) => e.cmd.herd_id === record.herd_id)) return void refuse(`container ${record.herd_id} is already migrating`);
    const entry: JournalEntry = {
      cmd: { migration_id: id, herd_id: record.herd_id, target_node_id: record.target_node_id, target_address: String(cmd.target_address), fs_mode: record.fs_mode, term, tcp_established: record.tcp_established },
      sourceDockerId: c.dockerId,
      state: start().state,
      record,
      artifacts: [],
    };
    this.active.set(id, entry);
    // (not with tcp-established: a source left stopped keeps its sockets, and removing it could reset
    // the peer's connection that the target now holds; that dump ends the source as before)
    if (this.deps.pageServer && this.deps.transport?.secure && nodeTlsFiles(this.deps.dataDir) && !record.tcp_established) {
      const path = choosePagePath(c.memoryInUse, this.deps.pageServerMinBytes ?? 0);
      record.page_path = path.reason;
      if (path.pageServer) this.pageServers.set(id, deferred());
    }
    log.info('migration starting', { migration: id, herd_id: record.herd_id, to: record.target_node_id, fs_mode: record.fs_mode, page_path: record.page_path || undefined });
    await this.apply(entry, start());
  }

  /**
   * A coordinator asks how a migration an earlier coordinator commanded ended (its record
   * there never did). The answer goes where every record goes, into the sample log: this
   * node's own record of it, or, if the command never arrived, a record that it never
   * started, journaled so that the command is ignored should it still arrive.
   */
  async settle(q: any, term: number): Promise<void> {
    const id = String(q?.migration_id ?? '');
    const bad = checkId('migration_id', id) ?? checkId('herd_id', q?.herd_id) ?? checkId('target_node_id', q?.target_node_id);
    if (bad) return void log.warn('ignoring a question about a migration', { reason: bad });
    const known = this.active.get(id) ?? this.journal.get(id);
    if (known) {
      log.info('a new coordinator asked about a migration: answering with its record', { migration: id, state: known.record.state, term });
      if (!this.active.has(id)) await this.journal.put(id, { ...known, record: { ...known.record, version: known.record.version + 1 } });
      return this.publish(known);
    }
    const entry = neverStarted({ migration_id: id, herd_id: String(q.herd_id), target_node_id: String(q.target_node_id) }, this.deps.nodeId, term);
    const record = entry.record;
    log.warn('a new coordinator asked about a migration this node never received: recorded as never started', { migration: id, herd_id: record.herd_id, term });
    await Promise.all([this.journal.put(id, entry), this.deps.publish({ ...record })]);
  }

  private async apply(entry: JournalEntry, t: { state: MigrationState; actions: Action[] }): Promise<void> {
    entry.state = t.state;
    if (t.state.phase !== 'done') {
      entry.record.step = stepOf(t.state);
      // While a call is asked again, the record says what it waits for (cleared once answered).
      entry.record.reason = t.state.waitingOn ? `waiting for ${this.waitingFor(entry, t.state)} (attempt ${t.state.unanswered! + 1}, next in ${Math.round(retryDelayMs(t.state.unanswered!) / 100) / 10} s): ${t.state.waitingOn}` : '';
    }
    // Journaled before acting on it; the report goes with it (one LMDB commit for both).
    await Promise.all([this.journal.put(entry.cmd.migration_id, entry), this.publish(entry)]);
    for (const a of t.actions) void this.act(entry, a);
  }

  private async feed(entry: JournalEntry, e: Event): Promise<void> {
    await this.apply(entry, step(entry.state, e));
  }

  private timed(entry: JournalEntry, name: Step, ms: number): void {
    entry.record.timings.push({ step: name, ms: Math.round(ms) });
  }

  private waitingFor(entry: JournalEntry, s: MigrationState): string {
    if (s.phase === 'removing-source') return `the source container to be removed on ${this.deps.nodeId}`;
    const t = entry.cmd.target_node_id;
    return s.completeSent ? `${t} to say whether it runs the container (kept if so, else removed)` : `${t} to remove what it prepared`;
  }

  private async act(entry: JournalEntry, a: Action): Promise<void> {
    if (this.stopped) return;
    // A call asked again waits longer each time (0.5 s doubling up to 5 s).
    if (entry.state.unanswered) await new Promise((r) => setTimeout(r, retryDelayMs(entry.state.unanswered!)));
    if (this.stopped) return;
    const id = entry.cmd.migration_id;
    const t0 = performance.now();
    const outDir = outDirOf(this.deps.dataDir, id);
    try {
      switch (a.type) {
        case 'prepare-target': {
          const pages = this.pageServers.get(id);
          try {
            const c = await this.deps.runtime.inspect(entry.sourceDockerId);
            const r = await this.peers.for(entry).call('PrepareMigration', {
              migration_id: id,
              herd_id: entry.cmd.herd_id,
              source_node_id: this.deps.nodeId,
              source_address: this.deps.address(),
              fs_mode: entry.cmd.fs_mode,
              create_json: JSON.stringify(c.createSpec),
              name: c.name.replace(/^\//, ''),
              term: entry.cmd.term,
              page_server: Boolean(pages),
            });
            entry.record.target_docker_id = r.target_docker_id;
            entry.upperDir = c.upperDir; // journaled with the next state; saves a lookup inside the downtime
            pages?.resolve({ port: Number(r.page_server_port ?? 0), refusal: String(r.page_server_refusal || `${entry.cmd.target_node_id} started no page server`) });
          } catch (err) {
            pages?.reject(err);
            throw err;
          }
          this.timed(entry, 'PREPARE', performance.now() - t0);
          return this.feed(entry, { type: 'prepared' });
        }
        case 'checkpoint': {
          await mkdir(outDir, { recursive: true });
          // Pages straight to the target: its page server must listen before the freeze (prepare answers its port).
          const pages = await this.pageServerFor(entry);
          const frozeAt = performance.now();
          entry.freezeMs = Date.now();
          const cp = await this.deps.runtime.checkpoint(entry.sourceDockerId, outDir, CHECKPOINT_NAME, { tcpEstablished: entry.cmd.tcp_established, pageServer: pages.to });
          entry.checkpointDir = cp.dir;
          entry.sentDir = cp.sentDir;
          entry.leftStopped = cp.method === 'page-server';
          entry.record.checkpoint_method = cp.method;
          entry.record.checkpoint_fallback_reason = cp.fallbackReason || pages.refusal;
          this.timed(entry, 'CHECKPOINT', performance.now() - frozeAt);
          return this.feed(entry, { type: 'checkpointed' });
        }
        case 'package': {
          // The checkpoint tar and the filesystem artifact are made side by side.
          const files = ['checkpoint.tar'];
          // (page-server: the first dump's images, whose pages the target has; the second dump stays for a rollback)
          const cpDir = entry.sentDir ?? checkpointDirOf(entry, outDir);
          // the memory images travel as they are (one artifact each), the small rest as a tar
          const parts = splitCheckpoint(cpDir);
          files.push(...parts.big.map(imageArtifact));
          const work: Array<Promise<unknown>> = [run('tar', ['-C', cpDir, '-cf', `${cpDir}.tar`, '--', ...parts.small])];
          if (entry.cmd.fs_mode !== 'FS_MODE_NONE') {
            files.push('fs.tar');
            if (entry.cmd.fs_mode === 'FS_MODE_FULL') work.push(this.deps.runtime.exportFull(entry.sourceDockerId, join(outDir, 'fs.tar')));
            else work.push((entry.upperDir ? Promise.resolve(entry.upperDir) : this.deps.runtime.inspect(entry.sourceDockerId).then((c) => c.upperDir)).then((dir) => this.deps.runtime.exportUpperDir(dir, join(outDir, 'fs.tar'))));
          }
          // The container's log so far: the target puts it under its new container, so
          // `docker logs` there shows one history across the move.
          const logCopied = this.deps.runtime.dockerRootDir().then((root) => copyIfExists(join(root, 'containers', entry.sourceDockerId, `${entry.sourceDockerId}-json.log`), join(outDir, 'log.json')));
          await Promise.all([...work, logCopied]); // Promise.all handles every rejection, also after the first
          if (await logCopied) files.push('log.json');
          entry.artifacts = await Promise.all(
            files.map(async (name) => {
              // the checkpoint tar sits beside its images (on the image tmpfs on the fast path: never on disk)
              const image = IMAGE_ARTIFACT.exec(name)?.[1];
              const file = name === 'checkpoint.tar' ? `${cpDir}.tar` : image ? join(cpDir, image) : join(outDir, name);
              const art = await this.deps.artifacts.register({ migrationId: id, name, path: file, allowedNodeId: entry.cmd.target_node_id });
              return { name, size: art.size, sha256: art.sha256 };
            }),
          );
          entry.record.bytes_total = entry.artifacts.reduce((s, x) => s + x.size, 0);
          this.timed(entry, 'PACKAGE', performance.now() - t0);
          return this.feed(entry, { type: 'packaged' });
        }
        case 'complete': {
          if (this.deps.faults?.pauseBeforeCompleteMs) await new Promise((r) => setTimeout(r, this.deps.faults!.pauseBeforeCompleteMs));
          const last = await this.peers.for(entry).stream('CompleteMigration', { migration_id: id, artifacts: entry.artifacts, checkpoint_name: CHECKPOINT_NAME, tcp_established: entry.cmd.tcp_established ?? false, pages_on_target: Boolean(entry.leftStopped) }, (p: any) => {
            entry.record.bytes_done = Number(p.bytes_done);
            entry.record.step = p.step;
            void this.publish(entry, true);
          });
          if (!last?.done) throw new Error('the target ended the stream without a result');
          for (const t of last.timings ?? []) entry.record.timings.push({ step: t.step, ms: Number(t.ms) });
          if (!last.ok) return this.feed(entry, { type: 'complete-failed', reason: last.reason || 'the target could not restore' });
          entry.record.restore_method = String(last.restore_method ?? '');
          entry.record.downtime_ms = Date.now() - (entry.freezeMs ?? Date.now());
          return this.feed(entry, { type: 'completed' });
        }
        case 'remove-source': {
          await this.deps.runtime.remove(entry.sourceDockerId, { force: true }).catch((err) => {
            if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
          });
          this.timed(entry, 'REMOVE_SOURCE', performance.now() - t0);
          return this.feed(entry, { type: 'source-removed' });
        }
        case 'abort-target': {
          // The question and the fence in one: a container that runs there is kept and said so.
          const r = await this.peers.for(entry).call('AbortMigration', { migration_id: id, reason: entry.state.reasons.join('; '), keep_running: true });
          return this.feed(entry, { type: r.running ? 'target-runs' : 'target-aborted' });
        }
        case 'restore-source': {
          const note = await restoreSource(this.deps, entry, outDir);
          this.timed(entry, 'ROLLBACK', performance.now() - t0);
          return this.feed(entry, { type: 'source-restored', note });
        }
        case 'restart-source':
          await restartSource(this.deps, entry);
          return this.feed(entry, { type: 'source-restarted' });
        case 'finish':
          return this.finish(entry, a.outcome, a.reason);
      }
    } catch (err) {
      const reason = errorText(err);
      const failed: Record<string, Event> = {
        // Refused by the target itself (it made nothing), or lost on the way (it may have).
        'prepare-target': { type: 'prepare-failed', reason, refused: REFUSALS.has((err as { code?: number }).code!) },
        checkpoint: { type: 'checkpoint-failed', reason },
        package: { type: 'package-failed', reason },
        complete: { type: 'complete-failed', reason },
        'remove-source': { type: 'source-remove-failed', reason },
        'abort-target': { type: 'target-abort-failed', reason },
        'restore-source': { type: 'source-restore-failed', reason },
        'restart-source': { type: 'source-restart-failed', reason },
      };
      log.warn('migration step failed', { migration: id, action: a.type, reason });
      if (failed[a.type]) await this.feed(entry, failed[a.type]);
    }
  }

  /**
   * Whether the pages go to the target's page server, and where: this node must have its TLS
   * files (CRIU's page server is verified only under TLS) and the target must have started one.
   */
  private async pageServerFor(entry: JournalEntry): Promise<{ to?: { host: string; port: number; tls: PageServerTls }; refusal: string }> {
    const wait = this.pageServers.get(entry.cmd.migration_id);
    if (!wait) return { refusal: '' };
    const tls = nodeTlsFiles(this.deps.dataDir);
    let answer: { port: number; refusal: string };
    try {
      answer = await wait.promise;
    } catch {
      throw new Error('not taken: the target was not prepared');
    } finally {
      this.pageServers.delete(entry.cmd.migration_id);
    }
    const host = hostOf(entry.cmd.target_address);
    if (!answer.port) return { refusal: `the pages were sent as artifacts: ${answer.refusal}` };
    if (!tls || !isIP(host)) return { refusal: `the pages were sent as artifacts: ${tls ? `the target's address ${entry.cmd.target_address} is not an IP address` : 'this node has no TLS files'}` };
    return { to: { host, port: answer.port, tls }, refusal: '' };
  }

  private async finish(entry: JournalEntry, outcome: string, reason: string): Promise<void> {
    const id = entry.cmd.migration_id;
    entry.record.state = outcome;
    entry.record.reason = reason;
    entry.record.ended_ms = Date.now();
    this.pageServers.delete(id);
    this.deps.artifacts.remove(id);
    await rm(outDirOf(this.deps.dataDir, id), { recursive: true, force: true });
    // a fast-path checkpoint lives on the image tmpfs: memory, until removed (also one whose
    // dump finished after a restart of this agent, so it was never journaled)
    const dirs = entry.checkpointDir ? [entry.checkpointDir] : await checkpointDirs(this.deps.runtime, outDirOf(this.deps.dataDir, id)).catch(() => []);
    await Promise.all(dirs.flatMap(checkpointFiles).map((p) => rm(p, { recursive: true, force: true })));
    // The final record first, the journal's end after: a restart between the two finds the
    // end unjournaled (record RUNNING) and finishes again. The other order lost the final
    // record for good when the agent died between them (the nemesis bench, seed 31337, round 108).
    await this.publish(entry);
    await this.journal.put(id, entry);
    this.active.delete(id);
    log.info('migration finished', { migration: id, herd_id: entry.cmd.herd_id, outcome, reason: reason || '-', downtime_ms: entry.record.downtime_ms, timings: entry.record.timings });
  }

  private lastProgress = new Map<string, number>();

  private async publish(entry: JournalEntry, progressOnly = false): Promise<void> {
    const now = Date.now();
    if (progressOnly && now - (this.lastProgress.get(entry.cmd.migration_id) ?? 0) < 250) return;
    this.lastProgress.set(entry.cmd.migration_id, now);
    entry.record.version++;
    await this.deps.publish({ ...entry.record, timings: [...entry.record.timings] });
  }
}

interface Deferred<T> { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void }
function deferred<T>(): Deferred<T> {
  const d = {} as Deferred<T>;
  d.promise = new Promise<T>((res, rej) => Object.assign(d, { resolve: res, reject: rej }));
  d.promise.catch(() => undefined); // awaited by the checkpoint; a rejection nobody waits for is not an error
  return d;
}

/** The host of a host:port address ([v6]:port too). */
function hostOf(address: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(address) ?? /^([^:]+):\d+$/.exec(address);
  return m ? m[1] : address;
}

/** Answers by which the target refused a prepare itself: nothing was made there. */
const REFUSALS = new Set<number>([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION]);

/** Back-off before asking again: 0.5 s, doubling, at most 5 s. */
export function retryDelayMs(unanswered: number): number {
  return Math.min(500 * 2 ** Math.max(0, unanswered - 1), 5000);
}

async function copyIfExists(from: string, to: string): Promise<boolean> {
  try {
    await copyFile(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
