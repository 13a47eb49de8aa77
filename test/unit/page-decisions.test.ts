/**
 * The controller's decisions on the cluster page: what the state carries, what
 * /api/decisions answers and how it checks its parameter. The HTTP objects here are stand-ins
 * that record what a route writes; test/integration/page.test.ts runs the same routes over
 * real HTTPS with a real browser.
 */
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../common/decision';
import { pageRoutes } from '../../coordinator/web/routes';
import { PAGE_DECISIONS, pageDecision, parseDecisionsQuery } from '../../coordinator/web/state';

const decision = (i: number, refusals = 0): DecisionRecord => ({
  id: `d-${1000 + i}-1`,
  atMs: 1000 + i,
  term: 2,
  mode: 'auto',
  policies: ['balance'],
  trigger: 'schedule',
  summary: { nodes: 2, containers: 3, judgedNodes: 2, judgedContainers: 3, meanCpu: 0.4, meanDiskActive: 0 },
  proposals: [],
  refusals: Array.from({ length: refusals }, (_, k) => ({ herdId: `h${k}`, to: 'n2', filter: 'cooldown', reason: 'moved 10 s ago' })),
  actions: [{ herdId: 'h1', from: 'n1', to: 'n2', policy: 'balance', reason: 'lowers the spread', status: 'SUCCEEDED', migrationId: 'm1', detail: '' }],
  efficacy: { imbalanceBefore: 0.3, imbalanceAfter: 0.1, movedFraction: 1 / 3 },
  note: 'one move',
  evalMs: 2,
});

const all = Array.from({ length: 30 }, (_, i) => decision(30 - i, 8)); // newest first

function request(routes: ReturnType<typeof pageRoutes>, url: string) {
  const out = { code: 0, body: '' };
  const res = { writeHead: (code: number) => ((out.code = code), res), end: (b?: string) => (out.body = b ?? '') } as unknown as http.ServerResponse;
  routes[new URL(url, 'https://x').pathname]({ url } as http.IncomingMessage, res, 'test');
  return out;
}

const routes = pageRoutes({
  nodeId: 'n1',
  registry: { list: () => [], isConnected: () => false },
  store: { downsample: () => [], getSeries: () => undefined },
  migrations: () => [],
  leader: () => ({ term: 2, leaderId: 'n1' }),
  lead: () => ({ isLeader: true }),
  decisions: (n) => all.slice(0, n),
});

describe('decisions on the page', () => {
  it('the state carries the newest decisions, each with its moves and its first refusals', () => {
    const r = request(routes, '/api/state');
    expect(r.code).toBe(200);
    const state = JSON.parse(r.body);
    expect(state.decisions).toHaveLength(PAGE_DECISIONS);
    expect(state.decisions[0]).toMatchObject({ id: 'd-1030-1', mode: 'auto', trigger: 'schedule', note: 'one move', refusalsTotal: 8, actions: [{ herdId: 'h1', from: 'n1', to: 'n2', reason: 'lowers the spread', status: 'SUCCEEDED' }] });
    expect(state.decisions[0].refusals).toHaveLength(5);
  });

  it('/api/decisions gives up to 200 with every refusal, and names a bad parameter', () => {
    const r = request(routes, '/api/decisions?limit=25');
    expect(r.code).toBe(200);
    const body = JSON.parse(r.body);
    expect(body.decisions).toHaveLength(25);
    expect(body.decisions[0].refusals).toHaveLength(8);
    expect(JSON.parse(request(routes, '/api/decisions').body).decisions).toHaveLength(30); // default 50, 30 exist
    for (const [url, said] of [
      ['/api/decisions?limit=0', /limit must be a whole number from 1 to 200, not "0"/],
      ['/api/decisions?limit=201', /not "201"/],
      ['/api/decisions?limit=1.5', /not "1.5"/],
      ['/api/decisions?limit=', /not ""/],
      ['/api/decisions?limit=5&x=1', /unknown parameter "x": this endpoint takes limit/],
    ] as const) {
      const bad = request(routes, url);
      expect(bad.code, url).toBe(400);
      expect(bad.body, url).toMatch(said);
    }
  });

  it('parses limit alone', () => {
    expect(parseDecisionsQuery(new URLSearchParams('limit=200'))).toEqual({ limit: 200 });
    expect(parseDecisionsQuery(new URLSearchParams(''))).toEqual({ limit: 50 });
    expect(pageDecision(decision(1, 0)).refusals).toEqual([]);
  });

  it('a node without a controller has no decisions section', () => {
    const plain = pageRoutes({ nodeId: 'n1', registry: { list: () => [], isConnected: () => false }, store: { downsample: () => [], getSeries: () => undefined }, migrations: () => [], leader: () => ({ term: 1 }), lead: () => ({ isLeader: true }) });
    expect(JSON.parse(request(plain, '/api/state').body).decisions).toBeUndefined();
    expect(JSON.parse(request(plain, '/api/decisions').body).decisions).toEqual([]);
  });
});
