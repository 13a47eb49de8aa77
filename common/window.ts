/**
 * grpc-js has no option for a server's HTTP/2 receive window (grpc-node's
 * `grpc-node.flow_control_window` is client-only), and the default 64 KiB makes every
 * large client-streamed message wait on WINDOW_UPDATE round trips through a busy event
 * loop. Agents stream sample batches *to* the coordinator, so its server needs a large
 * window. This sets it through grpc-js internals (checked by test/unit/window.test.ts
 * for the pinned grpc-js version); if they change, it logs and leaves the default.
 */
import type * as grpc from '@grpc/grpc-js';
import { logger } from './log';

const log = logger('grpc');

export const SERVER_WINDOW_BYTES = 8 * 1024 * 1024;

/** Call before bindAsync. Returns whether the window could be set. */
export function enlargeServerWindow(server: grpc.Server, bytes = SERVER_WINDOW_BYTES): boolean {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (!internals.commonServerOptions) {
    log.warn('cannot enlarge the HTTP/2 receive window: grpc-js internals changed; mesh ingest will be slower');
    return false;
  }
  internals.commonServerOptions.settings = { ...(internals.commonServerOptions.settings ?? {}), initialWindowSize: bytes };
  return true;
}

/** Call after bindAsync: the connection-level window of each new session. */
export function enlargeSessionWindows(server: grpc.Server, bytes = SERVER_WINDOW_BYTES): boolean {
  const servers = (server as unknown as { http2Servers?: Map<{ on(ev: string, fn: (s: any) => void): void }, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return false;
  for (const h2 of servers.keys()) {
    h2.on('session', (session: { setLocalWindowSize?(n: number): void }) => {
      try {
        session.setLocalWindowSize?.(bytes);
      } catch {
        /* the session may already be closing */
      }
    });
  }
  return true;
}
