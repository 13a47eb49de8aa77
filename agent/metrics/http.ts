/**
 * The node's HTTP side: `/metrics` for Prometheus, and whatever routes the node adds (the
 * cluster page, coordinator/web/, which only the coordinator answers).
 *
 * Who may scrape: the same people who may read the API. The port speaks HTTPS with mutual
 * TLS against the cluster CA, and any certificate of the cluster is let in (an operator's,
 * read-only is enough, or a node's); Prometheus presents one with `tls_config`
 * (docs/observability.md). A certificate of another cluster, an expired or a revoked one
 * gets 401 with the reason, like a gRPC caller gets UNAUTHENTICATED. For a Prometheus on the
 * same machine that cannot hold a certificate, `web.plainMetrics` opens a plain-text port
 * that serves /metrics only, bound to an address the operator chooses (127.0.0.1 by
 * default in the docs' example). With `--insecure` the main port is plain text too.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { logger } from '../../common/log';
import { ClusterTls, type Transport } from '../../common/transport';

const log = logger('web');

export interface WebOptions {
  /** host:port for HTTPS (HTTP with an insecure transport); '' = off. */
  listen: string;
  /** host:port for plain-text /metrics only; '' = off. */
  plainMetrics: string;
  transport: Transport;
  metrics: { text(): Promise<string>; contentType: string };
  /** More routes by path (exact match; the query string is theirs to check). */
  routes?: Record<string, Handler>;
}

export interface WebServer {
  /** Bound ports (0 when that server is off). */
  port: number;
  plainPort: number;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, who: string) => void;

export async function startWeb(opts: WebOptions): Promise<WebServer> {
  const routes: Record<string, Handler> = {
    ...opts.routes,
    '/metrics': (_req, res) => {
      opts.metrics.text().then(
        (body) => send(res, 200, body, opts.metrics.contentType),
        (err) => {
          log.error('rendering /metrics failed', { error: err });
          send(res, 500, `rendering the metrics failed: ${(err as Error).message}\n`);
        },
      );
    },
  };
  const tls = opts.transport instanceof ClusterTls ? opts.transport : undefined;
  const main = tls ? secureServer(tls, routes) : http.createServer((req, res) => route(routes, req, res, 'insecure'));
  const plain = opts.plainMetrics ? http.createServer((req, res) => route({ '/metrics': routes['/metrics'] }, req, res, 'plain')) : undefined;

  const port = opts.listen ? await listen(main, opts.listen) : 0;
  const plainPort = plain ? await listen(plain, opts.plainMetrics) : 0;
  // A renewed certificate reaches new connections (polled: ClusterTls has no reload event).
  let generation = tls?.generation ?? 0;
  const timer = tls
    ? setInterval(() => {
        if (tls.generation === generation) return;
        generation = tls.generation;
        (main as https.Server).setSecureContext(contextOf(tls));
      }, 30_000)
    : undefined;
  timer?.unref();
  if (port) log.info('serving /metrics', { listen: opts.listen, port, security: tls ? 'mutual TLS (any certificate of the cluster)' : 'INSECURE plain text' });
  if (plainPort) log.warn('serving /metrics in plain text: anyone who reaches this address reads the node\'s metrics', { listen: opts.plainMetrics, port: plainPort });
  return {
    port,
    plainPort,
    close: async () => {
      if (timer) clearInterval(timer);
      await Promise.all([main, plain].map((s) => s && closeServer(s)));
    },
  };
}

function contextOf(tls: ClusterTls) {
  const m = tls.current;
  return { ca: m.ca, cert: m.cert, key: m.key };
}

function secureServer(tls: ClusterTls, routes: Record<string, Handler>): https.Server {
  // requestCert without rejectUnauthorized: the handshake asks for a certificate, and each
  // request is judged by the same check the gRPC server uses, so a refusal says why.
  return https.createServer({ ...contextOf(tls), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const pc = socket.getPeerCertificate();
    const auth = tls.authenticate(pc && pc.raw ? { sslPeerCertificate: pc } : undefined, `${socket.remoteAddress}:${socket.remotePort}`);
    if (!auth.ok) {
      log.warn('web request refused', { path: req.url, peer: socket.remoteAddress, reason: auth.message });
      return send(res, 401, `${auth.message}\n`);
    }
    route(routes, req, res, auth.who);
  });
}

function route(routes: Record<string, Handler>, req: http.IncomingMessage, res: http.ServerResponse, who: string): void {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, `only GET is served here, not ${req.method}\n`, undefined, { allow: 'GET, HEAD' });
    const path = (req.url ?? '/').split('?')[0];
    const h = routes[path];
    if (!h) return send(res, 404, `no page at ${path.slice(0, 100)}: this node serves ${Object.keys(routes).join(', ')}\n`);
    h(req, res, who);
  } catch (err) {
    log.error('web request failed', { path: req.url, error: err });
    send(res, 500, 'the request failed; the node logs say why\n');
  }
}

function send(res: http.ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function listen(server: http.Server, hostPort: string): Promise<number> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen on ${hostPort} for /metrics: ${err.message}`)));
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
