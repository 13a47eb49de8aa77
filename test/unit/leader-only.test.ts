import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaderOnly } from '../../coordinator/leader-only';
import { loadProtos } from '../../common/proto';

// A follower's Admin service over real gRPC on loopback: every call but the any-node ones is
// refused with UNAVAILABLE naming the coordinator, unary and server-streaming alike.
describe('Admin on a node that is not the coordinator', () => {
  const { herd } = loadProtos();
  const server = new grpc.Server();
  let client: any;
  const follower = { current: () => ({ isLeader: false, leaderId: 'n2', leaderAddress: '10.0.0.12:7400' }) } as any;

  beforeAll(async () => {
    const never = () => {
      throw new Error('a follower must not run the handler');
    };
    server.addService(herd.Admin.service, leaderOnly({ Migrate: never, ListNodes: never }, follower, []));
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    client = new herd.Admin(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    client?.close();
    server.forceShutdown();
  });

  it('ends a Migrate stream with UNAVAILABLE naming the coordinator (not UNKNOWN from a missing callback)', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const s = client.Migrate({ herd_id: 'h1', target_node_id: 'n3', fs_mode: 'FS_MODE_DIFF' });
      s.on('data', () => {});
      s.on('error', resolve);
    });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toBe('this node is not the coordinator: ask n2 at 10.0.0.12:7400');
  });

  it('answers a unary call with the same refusal', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => client.ListNodes({}, (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toMatch(/ask n2 at 10\.0\.0\.12:7400/);
  });
});
