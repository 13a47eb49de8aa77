/** Argument checks shared by the RPC handlers; each returns a message a person can act on, or undefined. */
import * as grpc from '@grpc/grpc-js';
import { join, resolve, sep } from 'node:path';

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

// ----------------------------------------------------------------- names that become paths

/**
 * Docker's rule for container and checkpoint names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), capped at
 * 255 characters so that a name is always one valid file name (Docker stores checkpoints
 * under `<root>/containers/<id>/checkpoints/<name>`). No '/', and no name that is '.' or '..'.
 */
export const DOCKER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{1,254}$/;

export function checkDockerName(what: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return `${what} is required`;
  if (!DOCKER_NAME_PATTERN.test(value)) {
    return `${what} "${truncate(value)}" is not valid: use 2-255 letters, digits, '.', '_' or '-', starting with a letter or digit (Docker's rule; no '/')`;
  }
  return undefined;
}

/** "host:port" as the agent's --advertise and --peer settings take it (no scheme, no unix: socket). */
export const HOST_PORT_PATTERN = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function checkHostPort(what: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return `${what} is required`;
  const m = HOST_PORT_PATTERN.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `${what} "${truncate(value)}" is not valid: use host:port with a port from 1 to 65535, e.g. 10.0.0.5:7400`;
  return undefined;
}

/**
 * Whether `p` (absolute, or relative to `root`) stays inside `root` once `.` and `..` are
 * resolved. Lexical: it does not follow symlinks, so build paths from validated single
 * components (checkId, checkDockerName) and use this as the second check.
 */
export function insideDir(root: string, p: string): boolean {
  const r = resolve(root);
  const x = resolve(r, p);
  if (x === r) return true;
  return x.startsWith(r.endsWith(sep) ? r : r + sep);
}

/**
 * `join(root, ...parts)`, refused (an Error naming both) if the result is not strictly below
 * `root`: every part must be a plain name, never '', '.', '..' or something with a '/'.
 */
export function pathInside(root: string, ...parts: string[]): string {
  for (const part of parts) {
    if (typeof part !== 'string' || part === '' || part === '.' || part === '..' || part.includes('/') || part.includes('\0')) {
      throw new Error(`refusing the path component ${JSON.stringify(truncate(String(part)))} below ${root}: it must be a plain name`);
    }
  }
  const p = join(resolve(root), ...parts);
  if (p === resolve(root) || !insideDir(root, p)) throw new Error(`refusing the path ${p}: it is not inside ${root}`);
  return p;
}

export const permissionDenied = (msg: string) => new RpcError(grpc.status.PERMISSION_DENIED, msg);
