/**
 * The cluster page's HTTP routes, served on every node's web port: the coordinator answers
 * them, any other node redirects the page to the coordinator (its web port is its gRPC port
 * + 1 unless --web-listen moved it; docs/observability.md) and answers the API with 503
 * naming it. Every query parameter is checked; nothing here changes state.
 */
import type http from 'node:http';
import { logger } from '../../common/log';
import { PAGE_HTML } from './page';
import type { DecisionRecord } from '../../common/decision';
import { clusterSeries, clusterState, PAGE_DECISIONS, pageDecision, parseDecisionsQuery, parseSeriesQuery, type PageDeps } from './state';

const log = logger('web');

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, who: string) => void;

export interface PageRouteDeps extends PageDeps {
  /** Is this node the coordinator; where is it otherwise (its gRPC address). */
  lead: () => { isLeader: boolean; leaderId?: string; leaderAddress?: string };
  /** How often the event stream looks for a change (ms). */
  pushMs?: number;
  /** Most event streams open at once: each holds a connection and a timer. */
  maxStreams?: number;
  /** The controller's newest decisions (newest first), when this node has a controller. */
  decisions?: (limit: number) => DecisionRecord[];
}

const json = (res: http.ServerResponse, code: number, body: unknown) => {
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};
const text = (res: http.ServerResponse, code: number, body: string, headers: Record<string, string> = {}) => {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${body}\n`);
};

const query = (req: http.IncomingMessage) => new URL(req.url ?? '/', 'https://x').searchParams;

/** A route that takes no parameters refuses any, naming it. */
function noParams(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const first = [...query(req).keys()][0];
  if (first === undefined) return true;
  text(res, 400, `unknown parameter "${first.slice(0, 40)}": ${new URL(req.url ?? '/', 'https://x').pathname} takes none`);
  return false;
}

/** The coordinator's web address, by the default port rule (gRPC port + 1). */
export function coordinatorWebUrl(grpcAddress: string): string {
  const i = grpcAddress.lastIndexOf(':');
  return `https://${grpcAddress.slice(0, i)}:${Number(grpcAddress.slice(i + 1)) + 1}/`;
}

export function pageRoutes(routeDeps: PageRouteDeps): Record<string, Route> {
  const recent = routeDeps.decisions;
  // The state carries the newest decisions, so the page's event stream shows a new one at once.
  const deps: PageRouteDeps = recent ? { ...routeDeps, extra: () => ({ ...routeDeps.extra?.(), decisions: recent(PAGE_DECISIONS).map((d) => pageDecision(d)) }) } : routeDeps;
  let streams = 0;
  const elsewhere = (res: http.ServerResponse, page: boolean): boolean => {
    const l = deps.lead();
    if (l.isLeader) return false;
    if (!l.leaderAddress) {
      text(res, 503, 'no coordinator is elected yet; reload in a few seconds');
      return true;
    }
    const url = coordinatorWebUrl(l.leaderAddress);
    if (page) text(res, 307, `the cluster page is served by the coordinator, ${l.leaderId}: ${url}`, { location: url });
    else text(res, 503, `this node is not the coordinator: ask ${l.leaderId} at ${url}`);
    return true;
  };
  return {
    '/': (req, res) => {
      if (!noParams(req, res) || elsewhere(res, true)) return;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'" });
      res.end(PAGE_HTML);
    },
    '/api/state': (req, res) => {
      if (!noParams(req, res) || elsewhere(res, false)) return;
      json(res, 200, clusterState(deps));
    },
    '/api/series': (req, res) => {
      if (elsewhere(res, false)) return;
      const q = parseSeriesQuery(query(req));
      if (typeof q === 'string') return text(res, 400, q);
      json(res, 200, clusterSeries(deps, q));
    },
    '/api/decisions': (req, res) => {
      if (elsewhere(res, false)) return;
      const q = parseDecisionsQuery(query(req));
      if (typeof q === 'string') return text(res, 400, q);
      json(res, 200, { decisions: (recent?.(q.limit) ?? []).map((d) => pageDecision(d, Infinity)) });
    },
    '/api/events': (req, res, who) => {
      if (!noParams(req, res) || elsewhere(res, false)) return;
      if (streams >= (deps.maxStreams ?? 32)) return text(res, 503, `${streams} event streams are open, the most this node serves; close a page and retry`);
      streams++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      let last = '';
      let quiet = 0;
      const push = () => {
        try {
          if (!deps.lead().isLeader) return res.end('event: moved\ndata: {}\n\n');
          const body = JSON.stringify(clusterState(deps));
          // The clock moves now_ms every time: compare without it.
          const key = body.replace(/"now_ms":\d+,/, '');
          if (key !== last) {
            last = key;
            quiet = 0;
            res.write(`event: state\ndata: ${body}\n\n`);
          } else if (++quiet * (deps.pushMs ?? 1000) >= 15_000) {
            quiet = 0;
            res.write(': still here\n\n'); // keeps proxies from closing an idle stream
          }
        } catch (err) {
          log.error('event stream failed', { error: err, who });
          res.end();
        }
      };
      push();
      const timer = setInterval(push, deps.pushMs ?? 1000);
      res.on('close', () => {
        clearInterval(timer);
        streams--;
      });
    },
  };
}
