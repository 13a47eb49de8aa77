/** Argument checks shared by the RPC handlers; each returns a message a person can act on, or undefined. */
import * as grpc from '@grpc/grpc-js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const METRIC_PATTERN = /^[A-Za-z0-9_.:\-\[\]/@=, ]{1,200}$/;

export function checkId(what: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return `${what} is required`;
  if (!ID_PATTERN.test(value)) {
    return `${what} "${truncate(value)}" is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`;
  }
  return undefined;
}

export function checkMetric(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return 'metric is required';
  if (!METRIC_PATTERN.test(value)) return `metric "${truncate(value)}" is not valid: 1-200 characters of letters, digits and . _ - : [ ] / @ = , space`;
  return undefined;
}

export function truncate(s: string, n = 60): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}

export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (msg: string) => new RpcError(grpc.status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new RpcError(grpc.status.NOT_FOUND, msg);
export const failedPrecondition = (msg: string) => new RpcError(grpc.status.FAILED_PRECONDITION, msg);
export const unavailable = (msg: string) => new RpcError(grpc.status.UNAVAILABLE, msg);

/**
 * Wraps a unary handler: RpcErrors become their status, anything else INTERNAL with its
 * message (and a log line), so no handler can crash the daemon or leave a call hanging.
 */
export function unary<Req, Res>(
  name: string,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  onInternal: (name: string, err: unknown) => void,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (res) => callback(null, res),
        (err) => {
          if (err instanceof RpcError) return callback({ code: err.code, details: err.message });
          onInternal(name, err);
          callback({ code: grpc.status.INTERNAL, details: `${name} failed: ${err instanceof Error ? err.message : String(err)}` });
        },
      );
  };
}
