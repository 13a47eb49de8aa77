import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RAW_POINTS, MAX_STEPS } from '../../coordinator/admin';
import { call, startCoordinator, type TestCoordinator } from '../helpers/coord';
import { tempDir } from '../helpers/tmp';

let c: TestCoordinator;
let cleanup: () => void;
beforeAll(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  c = await startCoordinator(t.dir);
  const n = MAX_STEPS + 10;
  await c.store.ingest('n1', 'L', 1, 0, [
    { entity: 'n1', metric: 'dense', offsets_ms: Array.from({ length: n }, (_, i) => 1_000_000 + i), values: Array.from({ length: n }, (_, i) => i % 7) },
    { entity: 'n1', metric: 'sparse', offsets_ms: [1000, 2000, 3000], values: [1, 2, 3] },
  ]);
});
afterAll(async () => {
  await c.stop();
  cleanup();
});

async function status(method: string, req: unknown): Promise<[grpc.status, string]> {
  try {
    await call(c.admin, method, req);
  } catch (err: any) {
    return [err.code, err.details];
  }
  throw new Error(`${method} ${JSON.stringify(req)} succeeded`);
}

describe('Admin', () => {
  it('queries raw samples and downsampled steps', async () => {
    const raw = await call(c.admin, 'QuerySamples', { entity: 'n1', metric: 'sparse', from_ms: 1500, to_ms: 3001 });
    expect(raw.points.map((p: any) => [p.ts_ms, p.value, p.count])).toEqual([[2000, 2, 1], [3000, 3, 1]]);
    const ds = await call(c.admin, 'QuerySamples', { entity: 'n1', metric: 'dense', step_ms: 10_000 });
    expect(ds.points.reduce((a: number, p: any) => a + p.count, 0)).toBe(MAX_STEPS + 10);
  });

  it('lists series with their time bounds', async () => {
    const r = await call(c.admin, 'ListSeries', { entity: 'n1' });
    expect(r.series.find((s: any) => s.metric === 'sparse')).toMatchObject({ first_ms: 1000, last_ms: 3000, node_id: 'n1' });
  });

  it('answers bad input with the right status and a reason', async () => {
    expect(await status('QuerySamples', { entity: 'n1', metric: 'nope' })).toEqual([grpc.status.NOT_FOUND, expect.stringMatching(/no series n1\/nope; ListSeries/)]);
    expect(await status('QuerySamples', { entity: 'n1', metric: 'sparse', from_ms: 5000, to_ms: 1000 })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/empty or inverted/)]);
    expect(await status('QuerySamples', { entity: 'n1', metric: 'dense' })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/more than 50000 samples.*step_ms/)]);
    expect(await status('QuerySamples', { entity: 'n1', metric: 'dense', step_ms: 1 })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/more than 100000 points; use step_ms >=/)]);
    expect(await status('QuerySamples', { entity: '', metric: 'x' })).toEqual([grpc.status.INVALID_ARGUMENT, 'entity is required']);
    expect(await status('QuerySamples', { entity: 'n1', metric: '' })).toEqual([grpc.status.INVALID_ARGUMENT, 'metric is required']);
    expect(await status('QuerySamples', { entity: 'n1', metric: 'sparse', from_ms: -5 })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/from_ms must be a non-negative/)]);
    expect(await status('ListContainers', { node_id: 'ghost' })).toEqual([grpc.status.NOT_FOUND, expect.stringMatching(/no node "ghost"/)]);
    expect(await status('ListContainers', { node_id: 'a/b' })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/node_id .* is not valid/)]);
    expect(await status('ListSeries', { entity: '../x' })).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/entity .* is not valid/)]);
  });

  it('still serves after all of that', async () => {
    expect((await call(c.admin, 'GetLeader', {})).leader_id).toBe('coord');
  });
});
