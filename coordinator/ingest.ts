/**
 * The coordinator's end of the Mesh stream. Per agent stream: a hello, then batches that
 * are written to the SampleStore and acknowledged once durable. Writes are issued as
 * batches arrive (LMDB groups them into few commits); acks follow commit order.
 * Anything malformed ends that stream with INVALID_ARGUMENT and a reason; it never
 * touches other streams or stored samples.
 */
import { StorageFullError } from '../common/storage';
import * as grpc from '@grpc/grpc-js';
import { logger } from '../common/log';
import { checkId, checkMetric, truncate } from '../common/validate';
import type { SeriesPoints } from '../common/samples';
import type { Registry, ContainerRecord } from './registry';
import type { SampleStore } from './samplestore';
import type { MigrationRecord } from '../common/migration-record';
import type { Migrations } from './migrations';
import type { AuditTrail } from './audit';
import type { ControlRecords } from './controller/records';
import type { ModelStore } from './forecast/models';
import type { RevocationStore, Revocation } from '../common/revocations';
import { peerIdentity } from '../common/identity';

const log = logger('mesh');

export interface IngestOptions {
  coordinatorId: string;
  term: () => number;
  /** Is this node the coordinator right now? Others refuse streams, naming the leader. */
  leadership: () => { isLeader: boolean; leaderId?: string; leaderAddress?: string };
  maxInFlight: number;
  /** An agent silent for this long is considered gone and its stream is closed. */
  idleTimeoutMs: number;
  maxSeriesPerBatch: number;
  maxPointsPerBatch: number;
}

export const DEFAULT_INGEST: Omit<IngestOptions, 'coordinatorId' | 'term' | 'leadership'> = {
  maxInFlight: 64,
  idleTimeoutMs: 15_000,
  maxSeriesPerBatch: 100_000,
  maxPointsPerBatch: 1_000_000,
};

type Duplex = grpc.ServerDuplexStream<any, any>;

export class Ingest {
  private readonly streams = new Map<string, Duplex>();
  /** Samples stored since start (for logs and benches). */
  storedSamples = 0;

  constructor(
    private readonly store: SampleStore,
    private readonly registry: Registry,
    private readonly opts: IngestOptions,
    private readonly migrations?: Migrations,
    private readonly security: { revocations?: RevocationStore; audit?: AuditTrail; control?: Pick<ControlRecords, 'recordBatch'>; models?: Pick<ModelStore, 'recordBatch'>; connected?: (nodeId: string) => void } = {},
  ) {
    // A revocation learnt from anywhere goes to every agent, and a removed node's stream ends.
    security.revocations?.onAdded((added) => this.spread(added));
  }

  private spread(added: Revocation[]): void {
    const entries = this.security.revocations!.list();
    for (const [node, call] of this.streams) {
      if (added.some((r) => r.kind === 'IDENTITY_KIND_NODE' && r.name === node)) {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `node ${node} was removed from the cluster: its certificates are revoked` });
        this.streams.delete(node);
        continue;
      }
      call.write({ command: { term: this.opts.term(), command_id: `revocations-${Date.now()}`, revocations: { entries } } });
    }
  }

  /** Sends a command down a node's stream; false when the node is not connected. */
  command(nodeId: string, command: Record<string, unknown>, opts: { redeliver?: boolean } = {}): boolean {
    const call = this.streams.get(nodeId);
    if (!call) return false;
    try {
      call.write({ command });
    } catch (err) {
      // the stream is going away under us (the node died a moment ago)
      log.warn('could not write a command to a node\'s stream', { node: nodeId, reason: (err as Error).message });
      if (!opts.redeliver) return false;
    }
    // A stream that breaks may lose what was written to it: sent again on the node's next
    // stream until settled (the agent ignores a command it already has).
    if (opts.redeliver) {
      const id = String(command.command_id);
      const pending = this.undelivered.get(nodeId) ?? new Map<string, Record<string, unknown>>();
      pending.set(id, command);
      this.undelivered.set(nodeId, pending);
    }
    return true;
  }

  /** Sends a command to every connected node but `except`; returns the nodes it reached. */
  commandAll(command: Record<string, unknown>, except = ''): string[] {
    const reached: string[] = [];
    for (const [node, call] of this.streams) {
      if (node === except) continue;
      call.write({ command });
      reached.push(node);
    }
    return reached;
  }

  /** The node has shown it got the command (e.g. reported the migration): no more redelivery. */
  settle(nodeId: string, commandId: string): void {
    this.undelivered.get(nodeId)?.delete(commandId);
  }

  private readonly undelivered = new Map<string, Map<string, Record<string, unknown>>>();

  /** grpc-js handler for Mesh.Connect. */
  readonly connect = (call: Duplex): void => {
    let nodeId: string | undefined;
    let logId = '';
    let issued = 0; // highest seq whose write has been issued
    let ackChain: Promise<unknown> = Promise.resolve();
    let closed = false;
    let lastHeard = Date.now();

    const fail = (code: grpc.status, details: string) => {
      if (closed) return;
      closed = true;
      log.warn('closing agent stream', { node: nodeId ?? '(no hello)', code: grpc.status[code], reason: details });
      call.emit('error', { code, details });
    };
    const idle = setInterval(() => {
      if (Date.now() - lastHeard > this.opts.idleTimeoutMs) fail(grpc.status.UNAVAILABLE, `no message from the agent for ${this.opts.idleTimeoutMs} ms`);
    }, Math.min(1000, this.opts.idleTimeoutMs));
    idle.unref();

    const lead = this.opts.leadership();
    if (!lead.isLeader) {
      clearInterval(idle);
      const where = lead.leaderId ? `the coordinator is ${lead.leaderId} at ${lead.leaderAddress}` : 'no coordinator is elected yet';
      fail(grpc.status.UNAVAILABLE, `this node is not the coordinator: ${where}`);
      return;
    }

    call.on('data', (msg: any) => {
      if (closed) return;
      lastHeard = Date.now();
      try {
        if (nodeId === undefined) {
          if (msg?.body !== 'hello') return fail(grpc.status.INVALID_ARGUMENT, `the first message on a Mesh stream must be a hello, got ${msg?.body ?? 'an empty message'}`);
          const h = msg.hello;
          const bad = checkId('hello.node_id', h.node_id) ?? (typeof h.log_id === 'string' && h.log_id.length > 0 && h.log_id.length <= 64 ? undefined : 'hello.log_id is required (1-64 characters)');
          if (bad) return fail(grpc.status.INVALID_ARGUMENT, bad);
          // Over mTLS a node speaks only for itself: the hello must name the certificate's node.
          const caller = peerIdentity(call);
          if (caller && (caller.kind !== 'node' || caller.nodeId !== h.node_id)) {
            return fail(grpc.status.PERMISSION_DENIED, `the hello claims node "${h.node_id}" but the certificate names ${caller.kind === 'node' ? `node "${caller.nodeId}"` : `operator "${caller.name}"`}`);
          }
          const agentTerm = Number(h.term ?? 0);
          if (agentTerm > this.opts.term()) {
            return fail(grpc.status.FAILED_PRECONDITION, `this coordinator (${this.opts.coordinatorId}) is at term ${this.opts.term()} but node ${h.node_id} has seen term ${agentTerm}: a newer coordinator exists`);
          }
          nodeId = h.node_id as string;
          logId = h.log_id;
          const prev = this.streams.get(nodeId);
          if (prev) prev.emit('error', { code: grpc.status.ABORTED, details: `replaced by a newer stream from node ${nodeId}` });
          this.streams.set(nodeId, call);
          this.registry.hello({
            node_id: nodeId,
            address: String(h.address ?? ''),
            arch: String(h.arch ?? ''),
            cores: Number(h.cores ?? 0),
            memory_bytes: Number(h.memory_bytes ?? 0),
            labels: Array.isArray(h.labels) ? h.labels : [],
            capabilities: Array.isArray(h.capabilities) ? h.capabilities : [],
            version: String(h.version ?? ''),
            last_seen_ms: lastHeard,
          });
          const state = this.store.logState(nodeId, logId);
          issued = state.ackedSeq;
          call.write({ welcome: { coordinator_id: this.opts.coordinatorId, term: this.opts.term(), acked_seq: state.ackedSeq, max_in_flight: this.opts.maxInFlight } });
          log.info('agent connected', { node: nodeId, address: h.address, acked_seq: state.ackedSeq });
          this.security.connected?.(nodeId);
          for (const command of this.undelivered.get(nodeId)?.values() ?? []) {
            log.info('sending a command again: the stream it went down may have lost it', { node: nodeId, command: command.command_id });
            call.write({ command });
          }
          const revocations = this.security.revocations;
          if (revocations) {
            const node = nodeId;
            // Whatever the agent knows and this coordinator does not (it may be new) is
            // merged, which spreads it; then the agent gets the whole list.
            void revocations
              .merge(Array.isArray(h.revocations) ? h.revocations : [])
              .then(() => {
                const entries = revocations.list();
                if (!closed && entries.length && this.streams.get(node) === call) call.write({ command: { term: this.opts.term(), command_id: `revocations-${Date.now()}`, revocations: { entries } } });
              })
              .catch((err) => log.error('merging revocations failed', { error: err, node }));
          }
          return;
        }
        this.registry.seen(nodeId, lastHeard);
        switch (msg?.body) {
          case 'batch': {
            const b = msg.batch;
            const seq = Number(b.seq);
            if (!Number.isSafeInteger(seq) || seq <= 0) return fail(grpc.status.INVALID_ARGUMENT, `batch.seq must be a positive integer, got ${b.seq}`);
            const base = Number(b.created_ms);
            if (!Number.isSafeInteger(base) || base <= 0) return fail(grpc.status.INVALID_ARGUMENT, `batch ${seq}: created_ms must be a positive ms timestamp, got ${b.created_ms}`);
            const bad = checkBatch(b.series, base, this.opts) ?? checkRecords(b.migrations);
            if (bad) return fail(grpc.status.INVALID_ARGUMENT, `batch ${seq} from ${nodeId}: ${bad}`);
            if (seq <= issued) {
              // A replay of something already stored: acknowledge again, store nothing.
              const ackSeq = issued;
              ackChain = ackChain.then(() => !closed && call.write({ ack: { seq: ackSeq } }));
              return;
            }
            if (seq > issued + 1 && issued > 0) log.warn('gap in agent sequence (batches dropped by the agent\'s retention)', { node: nodeId, from: issued + 1, to: seq - 1 });
            issued = seq;
            const node = nodeId;
            // Records first: their puts then commit no later than the batch's acked seq.
            for (const m of (Array.isArray(b.migrations) ? b.migrations : []) as MigrationRecord[]) this.migrations?.update(m);
            this.security.audit?.record(b.audit);
            this.security.control?.recordBatch(b.decisions, b.policy);
            this.security.models?.recordBatch(b.models);
            const written = this.store.ingest(node, logId, seq, base, b.series as SeriesPoints[]);
            let points = 0;
            for (const sp of b.series) points += sp.offsets_ms.length;
            ackChain = ackChain
              .then(() => written)
              .then(() => {
                this.storedSamples += points;
                if (!closed) call.write({ ack: { seq } });
              })
              // Not stored, not acknowledged: the agent keeps the batch and sends it again on its next stream.
              .catch((err) => fail(err instanceof StorageFullError ? grpc.status.UNAVAILABLE : grpc.status.INTERNAL, `storing batch ${seq} failed: ${err?.message ?? err}`));
            return;
          }
          case 'inventory': {
            const inv = msg.inventory;
            const containers = (Array.isArray(inv.containers) ? inv.containers : []) as ContainerRecord[];
            for (const c of containers) {
              const bad = checkId('inventory.containers.herd_id', c.herd_id);
              if (bad) return fail(grpc.status.INVALID_ARGUMENT, bad);
            }
            this.registry.inventory(nodeId, containers, Boolean(inv.docker_reachable));
            for (const c of containers) this.migrations?.seen(c.herd_id, nodeId, c.docker_id, Number(c.created_ms) || Date.now());
            return;
          }
          case 'node_update': {
            const labels = msg.node_update?.labels;
            const bad = checkLabels(labels);
            if (bad) return fail(grpc.status.INVALID_ARGUMENT, `node_update: ${bad}`);
            this.registry.labels(nodeId, labels);
            return;
          }
          case 'keepalive':
            call.write({ keepalive: { sent_ms: Date.now() } });
            return;
          case 'hello':
            return fail(grpc.status.INVALID_ARGUMENT, 'hello may only be the first message of a stream');
          default:
            return fail(grpc.status.INVALID_ARGUMENT, `unknown or empty message (${truncate(String(msg?.body))})`);
        }
      } catch (err) {
        fail(grpc.status.INTERNAL, `mesh stream error: ${(err as Error)?.message ?? err}`);
      }
    });
    const done = () => {
      clearInterval(idle);
      if (!closed) {
        closed = true;
        try {
          call.end();
        } catch {
          /* already closed by the peer */
        }
      }
      if (nodeId && this.streams.get(nodeId) === call) {
        this.streams.delete(nodeId);
        this.registry.disconnected(nodeId);
        log.info('agent disconnected', { node: nodeId });
      }
    };
    call.on('end', done);
    call.on('error', done);
    call.on('cancelled', done);
    call.on('close', done);
  };

  /** Ends every agent stream (on shutdown, or when this node stops being coordinator). */
  closeAll(reason: string): void {
    for (const call of this.streams.values()) call.emit('error', { code: grpc.status.UNAVAILABLE, details: reason });
    this.streams.clear();
  }
}

function checkBatch(series: unknown, base: number, opts: IngestOptions): string | undefined {
  if (!Array.isArray(series)) return 'series must be a list';
  if (series.length > opts.maxSeriesPerBatch) return `too many series (${series.length} > ${opts.maxSeriesPerBatch})`;
  let points = 0;
  for (const sp of series as SeriesPoints[]) {
    const bad = checkId('series.entity', sp.entity) ?? checkMetric(sp.metric);
    if (bad) return bad;
    if (sp.offsets_ms.length !== sp.values.length) return `series ${sp.entity}/${sp.metric} has ${sp.offsets_ms.length} times but ${sp.values.length} values`;
    for (let i = 0; i < sp.values.length; i++) {
      if (base + sp.offsets_ms[i] < 0) return `series ${sp.entity}/${sp.metric}: time ${base + sp.offsets_ms[i]} is before the epoch`;
      if (!Number.isFinite(sp.values[i])) return `series ${sp.entity}/${sp.metric}: value at ${base + sp.offsets_ms[i]} is not a finite number`;
    }
    points += sp.values.length;
  }
  if (points > opts.maxPointsPerBatch) return `too many points (${points} > ${opts.maxPointsPerBatch})`;
  return undefined;
}

function checkRecords(records: unknown): string | undefined {
  if (records === undefined || records === null) return undefined;
  if (!Array.isArray(records)) return 'migrations must be a list';
  for (const m of records as MigrationRecord[]) {
    const bad = checkId('migrations.migration_id', m?.migration_id) ?? checkId('migrations.herd_id', m?.herd_id);
    if (bad) return bad;
  }
  return undefined;
}

const MAX_LABELS = 64;
const MAX_LABEL_CHARS = 256;

/** Node labels from an agent: a bounded list of short strings. */
export function checkLabels(labels: unknown): string | undefined {
  if (!Array.isArray(labels)) return 'labels must be a list';
  if (labels.length > MAX_LABELS) return `at most ${MAX_LABELS} labels, got ${labels.length}`;
  for (const l of labels) {
    const ok = (x: unknown) => typeof x === 'string' && x.length <= MAX_LABEL_CHARS;
    if (!l || !ok(l.key) || !ok(l.value) || l.key === '') return `a label must have a key and a value of at most ${MAX_LABEL_CHARS} characters`;
  }
  return undefined;
}
