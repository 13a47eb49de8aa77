/**
 * Admin.Migrate, ListMigrations and GetContainer: checks a requested move against what
 * the coordinator knows, commands the source agent over its Mesh stream (with the term),
 * and streams the migration's record to the caller as the source reports it.
 */
import { isDraining } from '../common/labels';
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { logger } from '../common/log';
import { checkId, failedPrecondition, invalid, notFound, RpcError, unary, unavailable } from '../common/validate';
import type { Ingest } from './ingest';
import { FINAL_STATES, newMigrationRecord, type MigrationRecord } from '../common/migration-record';
import type { Migrations } from './migrations';
import type { ContainerRecord, Registry } from './registry';

const log = logger('migrate');

export const FS_MODES = ['FS_MODE_UNSPECIFIED', 'FS_MODE_NONE', 'FS_MODE_DIFF', 'FS_MODE_FULL'];

export interface MigrateDeps {
  registry: Registry;
  migrations: Migrations;
  ingest: Pick<Ingest, 'command' | 'settle'>;
  term: () => number;
  /** The open Migrate streams, ended when this node stops coordinating. */
  streams?: MigrateStreams;
}

/**
 * The Migrate streams this coordinator serves. A coordinator that steps down no longer
 * hears the records (the agents stream to the new one), so each stream is ended with
 * UNAVAILABLE and where to ask instead, rather than left silent.
 */
export class MigrateStreams {
  private readonly open = new Set<(leader?: LeaderHint) => void>();

  /** Registers a stream's end; returns its removal (the stream ended by itself). */
  add(end: (leader?: LeaderHint) => void): () => void {
    this.open.add(end);
    return () => this.open.delete(end);
  }

  get size(): number {
    return this.open.size;
  }

  /** Ends every stream; `leader`: who coordinates now, if known. */
  stepDown(leader?: LeaderHint): void {
    const ends = [...this.open];
    this.open.clear();
    for (const end of ends) end(leader);
  }
}

export interface LeaderHint {
  id?: string;
  address?: string;
  /** Another node to ask while no new coordinator is known (any node names it). */
  askAt?: string;
}

/** What a client whose Migrate stream ends at a step-down is told. */
export function steppedDownText(leader: LeaderHint | undefined, herdId: string, migrationId: string): string {
  const now = leader?.id ? `${leader.id} at ${leader.address} coordinates now` : 'a new one is being elected';
  const at = leader?.address || leader?.askAt;
  return `coordinator stepped down (${now}); the migration ${migrationId} continues between the agents, ask the new coordinator: herd migrations ${herdId}${at ? ` -s ${at}` : ''}`;
}

/**
 * The records to ask a connecting source agent about: not ended, commanded by it (as the
 * source) in an earlier term. Those of this term are this coordinator's own, whose commands
 * it redelivers; an earlier coordinator's may never have reached the agent, or their end
 * may have gone to another coordinator. Pure.
 */
export function unsettled(records: MigrationRecord[], nodeId: string, term: number): MigrationRecord[] {
  return records.filter((m) => m.source_node_id === nodeId && !FINAL_STATES.has(m.state) && Number(m.term) < term);
}

/** Asks a source agent that just connected about the records an earlier coordinator left open. */
export function settleUnfinished(deps: Pick<MigrateDeps, 'migrations' | 'ingest' | 'term'>, nodeId: string): number {
  const term = deps.term();
  const open = unsettled(deps.migrations.list('', 10_000), nodeId, term);
  for (const m of open) {
    deps.ingest.command(nodeId, {
      term,
      command_id: `settle-${m.migration_id}-${term}`,
      settle_migration: { migration_id: m.migration_id, herd_id: m.herd_id, target_node_id: m.target_node_id, state: m.state },
    });
    log.info('asking a source agent how a migration of an earlier coordinator ended', { migration: m.migration_id, node: nodeId, state: m.state, commanded_in_term: m.term, term });
  }
  return open.length;
}

/**
 * Where a container is now, by herd id. During a migration two nodes report it (the
 * target's created copy, the source's running or stopped one): the running one wins.
 */
export function findContainer(registry: Registry, herdId: string): ContainerRecord | undefined {
  let found: ContainerRecord | undefined;
  for (const n of registry.list()) {
    for (const c of n.containers) {
      if (c.herd_id !== herdId) continue;
      if (c.state === 'running') return c;
      found ??= c;
    }
  }
  return found;
}

/** The checks of a Migrate request; returns the container, or throws the RpcError to answer. */
export function checkMigrate(deps: MigrateDeps, req: any): { container: ContainerRecord; fsMode: string } {
  const bad = checkId('herd_id', req.herd_id) ?? checkId('target_node_id', req.target_node_id);
  if (bad) throw invalid(bad);
  const fsMode = req.fs_mode === 'FS_MODE_UNSPECIFIED' || !req.fs_mode ? 'FS_MODE_DIFF' : req.fs_mode;
  if (!FS_MODES.includes(fsMode)) throw invalid(`fs_mode ${req.fs_mode} is not one of ${FS_MODES.slice(1).join(', ')}`);
  const running = deps.migrations.active(req.herd_id);
  if (running) throw failedPrecondition(`container ${req.herd_id} is already migrating (migration ${running.migration_id}, ${running.step})`);
  const c = findContainer(deps.registry, req.herd_id);
  if (!c) throw notFound(`no container with herd id "${req.herd_id}"; ListContainers shows them`);
  if (c.node_id === req.target_node_id) throw invalid(`container ${req.herd_id} already runs on ${req.target_node_id}`);
  const target = deps.registry.get(req.target_node_id);
  if (!target) throw notFound(`no node "${req.target_node_id}" has ever connected; ListNodes shows the known nodes`);
  const source = deps.registry.get(c.node_id)!;
  if (c.state !== 'running') throw failedPrecondition(`container ${req.herd_id} is ${c.state}, not running: only a running container can be live-migrated`);
  for (const [role, n] of [['source', source], ['target', target]] as const) {
    if (!deps.registry.isConnected(n.node_id)) throw unavailable(`the ${role} node ${n.node_id} is not connected to the coordinator`);
    if (!n.capabilities.includes('criu')) throw failedPrecondition(`the ${role} node ${n.node_id} cannot checkpoint or restore: CRIU is missing or "criu check" fails there (run herd doctor on it)`);
    if (!n.docker_reachable) throw failedPrecondition(`the ${role} node ${n.node_id} cannot reach its Docker engine`);
  }
  // A draining node takes no containers; moving them off it is what draining is for.
  if (isDraining(target.labels)) throw failedPrecondition(`the target node ${target.node_id} is draining (herd node undrain ${target.node_id} takes it back)`);
  if (source.arch !== target.arch) throw failedPrecondition(`a checkpoint cannot move between architectures (${source.node_id} is ${source.arch}, ${target.node_id} is ${target.arch})`);
  return { container: c, fsMode };
}

/**
 * Records a checked migration and commands its source agent. `progress` sees every version
 * of the record, the first included, until the final one. Used by Admin.Migrate and by the
 * controller, so both take the one path.
 */
export function startMigration(
  deps: MigrateDeps,
  container: ContainerRecord,
  targetId: string,
  fsMode: string,
  progress: (m: MigrationRecord) => void,
  opts: { tcpEstablished?: boolean } = {},
): { record: MigrationRecord; sent: boolean; unwatch: () => void } {
  const target = deps.registry.get(targetId)!;
  const id = randomUUID();
  const record = newMigrationRecord({
    migration_id: id,
    herd_id: container.herd_id,
    source_node_id: container.node_id,
    target_node_id: target.node_id,
    fs_mode: fsMode,
    tcp_established: Boolean(opts.tcpEstablished),
    step: 'MIGRATION_STEP_UNSPECIFIED',
    state: 'PENDING',
    term: deps.term(),
    version: 0,
  });
  deps.migrations.update(record);
  const unwatch = deps.migrations.watch(id, (m) => {
    if (m.state !== 'PENDING') deps.ingest.settle(container.node_id, id); // the source has it: no more redelivery
    if (FINAL_STATES.has(m.state)) unwatch();
    progress(m);
  });
  progress(record);
  const sent = deps.ingest.command(container.node_id, {
    term: record.term,
    command_id: id,
    migrate: { migration_id: id, herd_id: container.herd_id, target_node_id: target.node_id, target_address: target.address, fs_mode: fsMode, tcp_established: record.tcp_established },
  }, { redeliver: true });
  if (!sent) {
    unwatch();
    deps.migrations.update({ ...record, state: 'ROLLED_BACK', step: 'ROLLBACK', reason: `the source node ${container.node_id} disconnected before the command reached it`, ended_ms: Date.now(), version: 1 });
    return { record, sent, unwatch };
  }
  log.info('migration commanded', { migration: id, herd_id: container.herd_id, from: container.node_id, to: target.node_id, fs_mode: fsMode });
  return { record, sent, unwatch };
}

export function migrateHandlers(deps: MigrateDeps): grpc.UntypedServiceImplementation {
  const internal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  return {
    Migrate: (call: grpc.ServerWritableStream<any, any>) => {
      let container: ContainerRecord;
      let fsMode: string;
      try {
        ({ container, fsMode } = checkMigrate(deps, call.request));
      } catch (err) {
        const e = err instanceof RpcError ? err : new RpcError(grpc.status.INTERNAL, String(err));
        call.emit('error', { code: e.code, details: e.message });
        return;
      }
      let ended = false;
      let forget = () => {};
      const started = startMigration(deps, container, call.request.target_node_id, fsMode, (m) => {
        if (ended) return;
        call.write(m);
        if (FINAL_STATES.has(m.state)) {
          ended = true;
          forget();
          call.end();
        }
      }, { tcpEstablished: Boolean(call.request.tcp_established) });
      if (!ended && started.sent) {
        forget = deps.streams?.add((leader) => {
          ended = true;
          started.unwatch();
          call.emit('error', { code: grpc.status.UNAVAILABLE, details: steppedDownText(leader, container.herd_id, started.record.migration_id) });
        }) ?? forget;
      }
      call.on('cancelled', () => {
        ended = true;
        forget();
        started.unwatch();
      });
      if (!started.sent) call.emit('error', { code: grpc.status.UNAVAILABLE, details: `the source node ${container.node_id} is not connected` });
    },

    ListMigrations: unary('ListMigrations', (req: any) => {
      if (req.herd_id) {
        const bad = checkId('herd_id', req.herd_id);
        if (bad) throw invalid(bad);
      }
      const limit = Number(req.limit || 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid(`limit must be 1-10000, got ${req.limit}`);
      return { migrations: deps.migrations.list(req.herd_id, limit) };
    }, internal),

    GetContainer: unary('GetContainer', (req: any) => {
      const bad = checkId('herd_id', req.herd_id);
      if (bad) throw invalid(bad);
      const c = findContainer(deps.registry, req.herd_id);
      const history = deps.migrations.visits(req.herd_id);
      if (!c && history.length === 0) throw notFound(`no container with herd id "${req.herd_id}" is known; ListContainers shows them`);
      return { container: c ?? { herd_id: req.herd_id }, history };
    }, internal),
  };
}
