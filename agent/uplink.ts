/**
 * The agent's end of the Mesh stream. Sends a hello, learns from the welcome what the
 * coordinator already holds, then streams batches from the SampleLog with at most
 * maxInFlight unacknowledged. Batches are read back from LMDB as the window opens, so
 * memory stays bounded however long the coordinator is slow or away. Any error or
 * silence ends the stream; it is reopened with backoff, to whatever target() names then.
 */
import * as grpc from '@grpc/grpc-js';
import { Insecure, type Transport } from '../common/transport';
import { meshCodec } from '../common/proto';
import { logger } from '../common/log';
import type { SampleLog } from './samplelog';
import { TermFence } from '../common/fencing';

const log = logger('uplink');

export interface UplinkOptions {
  log: SampleLog;
  /** Coordinator address right now (undefined while none is known). */
  target: () => string | undefined;
  hello: () => Record<string, unknown>;
  inventory: () => Record<string, unknown> | undefined;
  maxInFlight: number;
  keepaliveMs: number;
  /** No message from the coordinator for this long: the stream is dead, reconnect. */
  deadAfterMs: number;
  /** How to dial (default plain text); the coordinator must be the node `targetId` names. */
  transport?: Transport;
  targetId?: () => string | undefined;
  /** The highest election term this node has seen; a coordinator of a lower term is refused. */
  fence?: TermFence;
  /** A command from the coordinator (already checked against the fence). */
  onCommand?: (command: any) => void;
}

const INSECURE = new Insecure();

export const DEFAULT_UPLINK = { maxInFlight: 64, keepaliveMs: 2000, deadAfterMs: 6000 };

export class Uplink {
  private client?: grpc.Client;
  private readonly codec = meshCodec();
  private clientTarget?: string;
  private clientGeneration = -1;
  private call?: grpc.ClientDuplexStream<any, any>;
  private welcomed = false;
  private sent = 0;
  private acked = 0;
  private maxInFlight: number;
  private stopped = true;
  private backoffMs = 100;
  private reconnectTimer?: NodeJS.Timeout;
  private keepaliveTimer?: NodeJS.Timeout;
  private lastHeard = 0;
  private lastWrite = 0;
  private waitingDrain = false;
  private unsubscribe?: () => void;
  /** Coordinator id from the last welcome. */
  coordinatorId?: string;
  coordinatorTerm = 0;
  /** Batches resent after a (re)connection because the coordinator lacked them (for /metrics). */
  replayedBatches = 0;
  /** Batches a coordinator acknowledged over this process's life (for /metrics). */
  acknowledgedBatches = 0;

  constructor(private readonly opts: UplinkOptions) {
    this.maxInFlight = opts.maxInFlight;
  }

  /** Highest seq the current coordinator has acknowledged (0 while disconnected). */
  ackedSeq(): number {
    return this.acked;
  }

  connected(): boolean {
    return this.welcomed;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.opts.log.onCommit(() => this.pump());
    this.keepaliveTimer = setInterval(() => this.keepalive(), Math.max(100, this.opts.keepaliveMs / 2));
    this.keepaliveTimer.unref();
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.reconnectTimer);
    clearInterval(this.keepaliveTimer);
    this.closeCall();
    this.client?.close();
    this.client = undefined;
  }

  /** Drops the current stream and reconnects now (e.g. the coordinator changed). */
  retarget(): void {
    if (this.stopped) return;
    this.closeCall();
    clearTimeout(this.reconnectTimer);
    this.backoffMs = 100;
    this.open();
  }

  /** Sends the node's labels after a change; a stream opened later carries them in its hello. */
  sendLabels(labels: Array<{ key: string; value: string }>): boolean {
    if (!this.call || !this.welcomed) return false;
    this.write({ node_update: { labels } });
    return true;
  }

  /** Sends the current inventory (on connect and whenever the tracker reports a change). */
  sendInventory(): void {
    const inv = this.opts.inventory();
    if (this.call && this.welcomed && inv) this.write({ inventory: inv });
  }

  private open(): void {
    if (this.stopped) return;
    const target = this.opts.target();
    if (!target) return this.scheduleReconnect('no coordinator known yet');
    const transport = this.opts.transport ?? INSECURE;
    if (!this.client || this.clientTarget !== target || this.clientGeneration !== transport.generation) {
      this.client?.close();
      this.clientGeneration = transport.generation;
      this.client = new grpc.Client(target, transport.credentials(this.opts.targetId?.()), {
        ...transport.channelOptions,
        'grpc.keepalive_time_ms': 5000,
        'grpc.keepalive_timeout_ms': 3000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      });
      this.clientTarget = target;
    }
    // Stored batches are already-encoded AgentMessages: pass Buffers through as they are.
    const encode = this.codec.encodeAgent;
    const call = this.client!.makeBidiStreamRequest('/herd.v1.Mesh/Connect', (m: unknown) => (Buffer.isBuffer(m) ? m : encode(m)), this.codec.decodeCoordinator);
    this.call = call;
    this.welcomed = false;
    this.lastHeard = Date.now();
    call.on('data', (msg: any) => this.onMessage(call, msg));
    call.on('error', (err: grpc.ServiceError) => this.onClose(call, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => this.onClose(call, 'the coordinator ended the stream'));
    call.on('drain', () => {
      this.waitingDrain = false;
      this.pump();
    });
    this.write({ hello: this.opts.hello() });
  }

  private onMessage(call: grpc.ClientDuplexStream<any, any>, msg: any): void {
    if (call !== this.call) return;
    this.lastHeard = Date.now();
    switch (msg?.body) {
      case 'welcome': {
        const w = msg.welcome;
        const fenced = this.opts.fence?.check(Number(w.term));
        if (fenced && !fenced.ok) {
          log.warn('refusing a coordinator from an older term', { coordinator: w.coordinator_id, reason: fenced.reason });
          this.onClose(call, `coordinator ${w.coordinator_id} is fenced off: ${fenced.reason}`);
          return;
        }
        const first = this.opts.log.firstSeq();
        // Replay from what the coordinator holds; if our retention already dropped older
        // batches, start at the oldest we still have.
        this.acked = Number(w.acked_seq);
        this.sent = Math.max(this.acked, first > 0 ? first - 1 : 0);
        if (this.acked > this.opts.log.lastSeq()) {
          log.warn('coordinator claims more of this log than the agent has written; resending from what the agent has', { acked: this.acked, last: this.opts.log.lastSeq() });
          this.acked = 0;
          this.sent = first > 0 ? first - 1 : 0;
        }
        this.maxInFlight = Math.max(1, Math.min(this.opts.maxInFlight, Number(w.max_in_flight) || this.opts.maxInFlight));
        this.coordinatorId = w.coordinator_id;
        this.coordinatorTerm = Number(w.term);
        this.welcomed = true;
        this.backoffMs = 100;
        const replay = Math.max(0, this.opts.log.committedSeq() - this.sent);
        this.replayedBatches += replay;
        log.info('streaming to coordinator', { coordinator: w.coordinator_id, target: this.clientTarget, acked_seq: this.acked, replay });
        this.sendInventory();
        this.pump();
        return;
      }
      case 'ack': {
        const seq = Number(msg.ack.seq);
        if (seq > this.acked) {
          const now = Math.min(seq, this.sent);
          this.acknowledgedBatches += now - this.acked;
          this.acked = now;
        }
        this.pump();
        return;
      }
      case 'command': {
        const cmd = msg.command;
        const fenced = this.opts.fence?.check(Number(cmd?.term));
        if (fenced && !fenced.ok) {
          log.warn('refusing a command from an older term', { command: cmd?.command_id, reason: fenced.reason });
          return;
        }
        this.opts.onCommand?.(cmd);
        return;
      }
      default:
        return; // keepalive or a message kind this version does not know
    }
  }

  private pump(): void {
    const call = this.call;
    if (!call || !this.welcomed || this.waitingDrain) return;
    while (this.sent - this.acked < this.maxInFlight) {
      const batches = this.opts.log.read(this.sent, this.maxInFlight - (this.sent - this.acked));
      if (batches.length === 0) return;
      for (const b of batches) {
        this.sent = b.seq;
        if (!this.write(b.message)) {
          this.waitingDrain = true;
          return;
        }
      }
    }
  }

  private write(msg: unknown): boolean {
    this.lastWrite = Date.now();
    try {
      return this.call!.write(msg);
    } catch (err) {
      this.onClose(this.call!, `write failed: ${(err as Error).message}`);
      return false;
    }
  }

  private keepalive(): void {
    if (!this.call) return;
    const now = Date.now();
    if (now - this.lastHeard > this.opts.deadAfterMs) {
      this.onClose(this.call, `no message from the coordinator for ${now - this.lastHeard} ms`);
      // A silent stream may sit on a connection that will never work (seen: a TLS handshake
      // stalled for minutes on an emulated node): the next attempt dials a new one.
      this.client?.close();
      this.client = undefined;
      return;
    }
    if (this.welcomed && now - this.lastWrite >= this.opts.keepaliveMs) this.write({ keepalive: { sent_ms: now } });
  }

  private onClose(call: grpc.ClientDuplexStream<any, any>, reason: string): void {
    if (call !== this.call) return;
    const wasWelcomed = this.welcomed;
    this.closeCall();
    if (this.stopped) return;
    if (wasWelcomed) log.warn('lost the coordinator stream; will replay unacknowledged batches on reconnect', { reason });
    this.scheduleReconnect(reason);
  }

  private closeCall(): void {
    const call = this.call;
    this.call = undefined;
    this.welcomed = false;
    this.waitingDrain = false;
    this.acked = 0;
    this.sent = 0;
    if (call) {
      call.removeAllListeners('data');
      call.on('error', () => {});
      call.cancel();
    }
  }

  private scheduleReconnect(reason: string): void {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    const delay = this.backoffMs * (0.75 + Math.random() * 0.5);
    this.backoffMs = Math.min(this.backoffMs * 2, 2000);
    log.debug('reconnecting', { in_ms: Math.round(delay), reason });
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }
}
