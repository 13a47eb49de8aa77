/**
 * Admin.DrainNode: marks a node as draining (Migrate refuses it as a target) or takes it back
 * into service. The node itself keeps the mark (agent/drain.ts), so the coordinator only
 * relays the order and answers once the node has reported its new labels: an answer of OK
 * means the mark is on the node's disk, whoever coordinates next.
 */
import * as grpc from '@grpc/grpc-js';
import { peerIdentity, principal } from '../common/identity';
import { isDraining } from '../common/labels';
import { logger } from '../common/log';
import { checkId, invalid, notFound, RpcError, unary } from '../common/validate';
import { nodeInfo } from './admin';
import type { Registry } from './registry';
import type { SampleStore } from './samplestore';

const log = logger('admin');

/** How long DrainNode waits for the node to report the change. */
export const DRAIN_ANSWER_MS = 5000;

export interface DrainDeps {
  registry: Registry;
  store: Pick<SampleStore, 'ackedSeq'>;
  /** Sends a command down a node's Mesh stream; false if it is not connected. */
  command: (nodeId: string, command: Record<string, unknown>) => boolean;
  term: () => number;
  answerMs?: number;
}

export function drainHandlers(deps: DrainDeps): grpc.UntypedServiceImplementation {
  return {
    DrainNode: unary<any, any>('DrainNode', async (req, call) => {
      const bad = checkId('node_id', req.node_id);
      if (bad) throw invalid(bad);
      if (req.draining !== undefined && typeof req.draining !== 'boolean') throw invalid('draining must be true or false');
      const want = Boolean(req.draining);
      const node = deps.registry.get(req.node_id);
      if (!node) throw notFound(`no node "${req.node_id}" has ever connected; ListNodes shows the known nodes`);
      if (!deps.registry.isConnected(req.node_id)) {
        throw new RpcError(grpc.status.UNAVAILABLE, `node ${req.node_id} is not connected: it keeps its drain mark itself, so it must be up to change it`);
      }
      const id = peerIdentity(call);
      const by = id ? principal(id) : `insecure:${call.getPeer()}`;
      const sent = deps.command(req.node_id, { term: deps.term(), command_id: `drain-${Date.now()}`, drain: { draining: want, by } });
      if (!sent) throw new RpcError(grpc.status.UNAVAILABLE, `node ${req.node_id} disconnected before the order reached it`);
      const end = Date.now() + (deps.answerMs ?? DRAIN_ANSWER_MS);
      while (isDraining(deps.registry.get(req.node_id)?.labels ?? []) !== want) {
        if (Date.now() > end) {
          throw new RpcError(grpc.status.DEADLINE_EXCEEDED, `node ${req.node_id} did not report the change within ${deps.answerMs ?? DRAIN_ANSWER_MS} ms; ListNodes shows its labels when it does`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      log.info(want ? 'node drained' : 'node undrained', { node: req.node_id, by });
      return { node: nodeInfo(deps.registry.get(req.node_id)!, deps.registry, deps.store) };
    }, (name, err) => log.error(`${name} failed`, { error: err })),
  };
}
