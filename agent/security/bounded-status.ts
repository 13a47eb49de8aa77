/**
 * Caps the message of every status this node answers. A handler may echo a caller's input
 * into its error (grpc-health-check puts the requested service name there, unbounded);
 * past ~64 KiB grpc-js cannot send the trailers, the call never ends and the caller's
 * whole connection stalls. Found by the fuzz test (test/integration/fuzz.test.ts).
 */
import * as grpc from '@grpc/grpc-js';

export const MAX_STATUS_DETAILS = 1024;

export function boundedStatus(): grpc.ServerInterceptor {
  return (_descriptor, call) =>
    new grpc.ServerInterceptingCall(call, {
      sendStatus(status, next) {
        const d = status.details;
        next(d && d.length > MAX_STATUS_DETAILS ? { ...status, details: `${d.slice(0, MAX_STATUS_DETAILS)}... (${d.length} characters)` } : status);
      },
    });
}
