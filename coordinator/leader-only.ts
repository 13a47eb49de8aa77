import * as grpc from '@grpc/grpc-js';
import { unavailable } from '../common/validate';
import type { Leadership } from './leadership';

/**
 * Admin calls are answered by the coordinator only; elsewhere the reply names it. A
 * server-streaming call (Migrate) has no callback: its refusal is the stream's error.
 */
export function leaderOnly(handlers: grpc.UntypedServiceImplementation, leadership: Pick<Leadership, 'current'>, anyNode: string[]): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(handlers)) {
    if (anyNode.includes(name)) {
      out[name] = fn;
      continue;
    }
    out[name] = ((call: any, callback: any) => {
      const v = leadership.current();
      if (!v.isLeader) {
        const e = unavailable(v.leaderId ? `this node is not the coordinator: ask ${v.leaderId} at ${v.leaderAddress}` : 'no coordinator is elected yet; try again shortly');
        const refusal = { code: e.code, details: e.message };
        return typeof callback === 'function' ? callback(refusal) : call.emit('error', refusal);
      }
      return (fn as any)(call, callback);
    }) as any;
  }
  return out;
}
