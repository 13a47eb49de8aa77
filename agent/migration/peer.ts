/**
 * The source's calls to a migration's target (herd.v1.Peer): one client per target node,
 * address and transport generation (a renewed certificate dials anew), reused across calls.
 */
import * as grpc from '@grpc/grpc-js';
import { Insecure, type Transport } from '../../common/transport';
import { loadProtos } from '../../common/proto';
import type { JournalEntry } from './journal';

export interface PeerCalls {
  /** A unary call; rejects with the target's id in the message and the gRPC code. */
  call: (method: string, req: unknown) => Promise<any>;
  /** A server stream: `on` sees every message; resolves with the one marked done (or the last). */
  stream: (method: string, req: unknown, on: (p: any) => void) => Promise<any>;
}

const INSECURE = new Insecure();

export class PeerClients {
  private readonly clients = new Map<string, any>();

  constructor(private readonly transport: () => Transport | undefined) {}

  for(entry: JournalEntry): PeerCalls {
    const transport = this.transport() ?? INSECURE;
    const key = `${entry.cmd.target_node_id}@${entry.cmd.target_address}#${transport.generation}`;
    let client = this.clients.get(key);
    if (!client) {
      const { herd } = loadProtos();
      client = new herd.Peer(entry.cmd.target_address, transport.credentials(entry.cmd.target_node_id), { ...transport.channelOptions, 'grpc.max_reconnect_backoff_ms': 1000 });
      this.clients.set(key, client);
    }
    return {
      call: (m, req) => new Promise((res, rej) => client[m](req, { deadline: Date.now() + 60_000 }, (e: grpc.ServiceError | null, r: any) => (e ? rej(Object.assign(new Error(`${entry.cmd.target_node_id}: ${e.details || e.message}`), { code: e.code })) : res(r)))),
      stream: (m, req, on) =>
        new Promise((res, rej) => {
          let last: any;
          const s = client[m](req, { deadline: Date.now() + 30 * 60_000 });
          s.on('data', (p: any) => {
            last = p;
            on(p);
            if (p?.done) res(p); // the result: acted on now, not when the target's cleanup ends the call
          });
          s.on('error', (e: grpc.ServiceError) => rej(new Error(`${entry.cmd.target_node_id}: ${e.details || e.message}`)));
          s.on('status', (st: grpc.StatusObject) => (st.code === grpc.status.OK ? res(last) : rej(new Error(`${entry.cmd.target_node_id}: ${st.details}`))));
        }),
    };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}
