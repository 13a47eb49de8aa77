/** An in-process coordinator (real gRPC on loopback, real LMDB) for mesh protocol tests. */
import * as grpc from '@grpc/grpc-js';
import { openEnv, type Env } from '../../common/db';
import { loadProtos } from '../../common/proto';
import { adminHandlers } from '../../coordinator/admin';
import { drainHandlers } from '../../coordinator/drain';
import { DEFAULT_INGEST, Ingest, type IngestOptions } from '../../coordinator/ingest';
import { Registry } from '../../coordinator/registry';
import { SampleStore } from '../../coordinator/samplestore';
import { enlargeServerWindow, enlargeSessionWindows } from '../../common/window';
import { Insecure, type Transport } from '../../common/transport';
import { authorizer } from '../../agent/security/authorize';

export interface TestCoordinator {
  address: string;
  env: Env;
  store: SampleStore;
  registry: Registry;
  ingest: Ingest;
  admin: any;
  stop(): Promise<void>;
}

/**
 * With `transport`, the server is secured and authorised as a node's is (mutual TLS, the
 * same interceptor); the returned `admin` client is then plain text and unusable.
 */
export async function startCoordinator(dataDir: string, port = 0, opts: Partial<IngestOptions> = {}, transport?: Transport): Promise<TestCoordinator> {
  const env = openEnv(dataDir, { mapSizeBytes: 1024 ** 3 });
  const store = new SampleStore(env);
  const registry = new Registry(env);
  const ingest = new Ingest(store, registry, {
    ...DEFAULT_INGEST,
    coordinatorId: 'coord',
    term: () => 0,
    leadership: () => ({ isLeader: true }),
    ...opts,
  });
  const { herd } = loadProtos();
  const server = new grpc.Server(transport ? { interceptors: [authorizer(transport, { nodeId: 'coord', audit: () => {} })] } : {});
  server.addService(herd.Mesh.service, { Connect: ingest.connect });
  server.addService(herd.Admin.service, {
    ...adminHandlers({ store, registry, leader: () => ({ leader_id: 'coord', address: '', term: 0, since_ms: 0 }) }),
    ...drainHandlers({ registry, store, command: (node, cmd) => ingest.command(node, cmd), term: () => 0, answerMs: 1500 }),
  });
  enlargeServerWindow(server);
  const bound = await new Promise<number>((res, rej) => server.bindAsync(`127.0.0.1:${port}`, (transport ?? new Insecure()).serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
  enlargeSessionWindows(server);
  const address = `127.0.0.1:${bound}`;
  const admin = new herd.Admin(address, grpc.credentials.createInsecure());
  return {
    address,
    env,
    store,
    registry,
    ingest,
    admin,
    stop: async () => {
      admin.close();
      ingest.closeAll('test stop');
      server.forceShutdown();
      await env.close();
    },
  };
}

/** Promisified unary call: resolves the reply or rejects with the ServiceError. */
export function call<T = any>(client: any, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => client[method](req, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))));
}
