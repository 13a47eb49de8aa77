/** A migration step's failure as a sentence (CRIU's own lines included) and as a gRPC status. */
import * as grpc from '@grpc/grpc-js';
import { RpcError } from '../../common/validate';

export function errorText(err: unknown): string {
  const e = err as { message?: string; criuLog?: string[] };
  const criu = Array.isArray(e?.criuLog) && e.criuLog.length ? ` (CRIU: ${e.criuLog.slice(0, 6).join(' | ')})` : '';
  return `${e?.message ?? String(err)}${criu}`;
}

export function toStatus(err: unknown): { code: grpc.status; details: string } {
  if (err instanceof RpcError) return { code: err.code, details: err.message };
  const code = (err as { code?: string }).code;
  const map: Record<string, grpc.status> = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, UNAVAILABLE: 14 };
  return { code: (code && map[code]) || grpc.status.INTERNAL, details: errorText(err) };
}
