/**
 * The output of every step, and the one correct way to carry it out: persist, then send.
 */
import type { HardState, Message, NodeId } from './messages';

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export type Note =
  /** Bad input (malformed, unknown node, absurd term, bad clock): log at warn. */
  | { kind: 'refused'; reason: string }
  /** Normal protocol noise (stale or lease-suppressed message): log at debug. */
  | { kind: 'ignored'; reason: string }
  | { kind: 'clock-jump'; deltaMs: number }
  | { kind: 'role'; role: Role; term: number; leaderId: NodeId | null; reason: string }
  /** This leader asked `to` to take over (transferLeadership): log at info. */
  | { kind: 'transfer'; to: NodeId; term: number };

/**
 * The result of one input. CONTRACT: when `persist` is not null the driver must write it
 * durably (LMDB, synced) and only then send `messages`; and the messages of later Readys
 * must not overtake it (use ReadyPipeline). A vote or a term that leaves the node before
 * it is on disk can be cast twice after a crash, which can elect two leaders in one term.
 */
export interface Ready {
  persist: HardState | null;
  messages: Message[];
  notes: Note[];
  /** role, term or leaderId changed in this step. */
  changed: boolean;
}

export interface ReadyIO {
  /** Resolve only once `state` is durable (LMDB write + sync). Reject if it could not be written. */
  persist(state: HardState): Promise<void> | void;
  /** Hand one message to the network. Losing it is safe; throwing counts as losing it. */
  send(msg: Message): void;
}

/**
 * Carries out Readys in the order they were produced: each persist completes before that
 * step's messages, and before any message of a later step, leaves. Later steps can depend
 * on an earlier, still unsynced vote (a retried Vote is answered "granted" again without a
 * new persist), so per-step ordering alone would not be enough.
 *
 * A failed persist is fatal: memory is ahead of disk and nothing may be sent from that
 * state again. The pipeline then refuses everything; the driver should exit and restart
 * from what is on disk.
 */
export class ReadyPipeline {
  private tail: Promise<void> = Promise.resolve();
  private fault: { error: unknown } | null = null;

  constructor(private readonly io: ReadyIO) {}

  /** The persist error that stopped the pipeline, if any. */
  get failed(): { error: unknown } | null {
    return this.fault;
  }

  push(ready: Ready): Promise<void> {
    if (ready.persist === null && ready.messages.length === 0) return this.tail;
    const run = async (): Promise<void> => {
      if (this.fault) throw this.fault.error;
      if (ready.persist) {
        try {
          await this.io.persist({ ...ready.persist });
        } catch (error) {
          this.fault = { error };
          throw error;
        }
      }
      for (const m of ready.messages) {
        try {
          this.io.send(m);
        } catch {
          // A message the transport could not take is a dropped message; the protocol retries.
        }
      }
    };
    const done = this.tail.then(run);
    this.tail = done.catch(() => undefined);
    return done;
  }
}
