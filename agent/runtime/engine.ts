/**
 * The Docker Engine API as this layer calls it: one request helper, and Docker's failures turned
 * into RuntimeErrors with the daemon's own message and a gRPC-minded code.
 */
import type Dockerode from 'dockerode';
import { RuntimeError, type RuntimeErrorCode } from './runtime';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/; // Docker's rule for container and checkpoint names

// One CRIU operation at a time per engine (invariant 5), across every runtime object on it.
const criuQueues = new Map<string, Promise<unknown>>();
export function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = criuQueues.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  criuQueues.set(key, tail);
  void tail.then(() => { if (criuQueues.get(key) === tail) criuQueues.delete(key); });
  return next;
}

export interface DialOptions { query?: Record<string, string>; body?: unknown; timeoutMs?: number; ok?: number[]; stream?: boolean }
interface Modem { dial(opts: Record<string, unknown>, cb: (err: unknown, data: unknown) => void): void }
export interface DockerErr { statusCode?: number; json?: { message?: string }; message?: string; code?: string; name?: string }

export function dockerMessage(err: unknown): string {
  const e = err as DockerErr;
  const m = e?.json?.message ?? (typeof e?.json === 'string' ? e.json : undefined) ?? e?.message ?? String(err);
  return String(m).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

export function toRuntimeError(err: unknown, what: string, codes: Partial<Record<number, RuntimeErrorCode>> = {}): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const e = err as DockerErr;
  const msg = dockerMessage(err);
  if (e?.statusCode === undefined) {
    const timedOut = e?.name === 'AbortError' || e?.name === 'TimeoutError';
    return new RuntimeError(`${what}: Docker ${timedOut ? 'did not answer in time' : `is unreachable (${e?.code ?? msg})`}`, 'UNAVAILABLE', msg);
  }
  const byStatus: Record<number, RuntimeErrorCode> = { 400: 'INVALID_ARGUMENT', 404: 'NOT_FOUND', 409: 'FAILED_PRECONDITION', ...codes };
  return new RuntimeError(`${what}: ${msg}`, byStatus[e.statusCode] ?? 'INTERNAL', msg);
}

export function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name)) throw new RuntimeError(`${what} ${JSON.stringify(name)} must match ${NAME_RE.source}`, 'INVALID_ARGUMENT');
}

/**
 * One Engine API call, without dockerode's habit of sending options both as query string and
 * body (Docker >= API 1.24 refuses a body on /start, which a checkpoint restore needs).
 */
export function dial<T>(client: Dockerode, method: string, apiPath: string, o: DialOptions & { timeoutMs: number }): Promise<T> {
  const statusCodes: Record<number, boolean | string> = { 200: true, 201: true, 204: true, 304: true, 400: 'bad parameter', 404: 'not found', 409: 'conflict', 500: 'server error' };
  for (const s of o.ok ?? []) statusCodes[s] = true;
  // modem: a path ending in '?' takes options._query as the query string; _body {} sends no body
  const options = { _query: o.query ?? {}, _body: o.body ?? {} };
  return new Promise<T>((resolve, reject) => (client.modem as unknown as Modem).dial({
    path: o.query ? `${apiPath}?` : apiPath, method, options, statusCodes, isStream: o.stream ?? false,
    abortSignal: AbortSignal.timeout(o.timeoutMs),
  }, (err, data) => (err ? reject(err) : resolve(data as T))));
}
