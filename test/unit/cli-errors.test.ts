/**
 * What the herd commands print when a call fails (cli/connect.ts rpcErrorText): what was
 * tried and what to do, with grpc-js's scaffolding ("Last error: Error: ...", an empty
 * "Resolution note: ") taken out. The failures are real grpc-js failures, not made-up objects.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanDetails } from '../../common/grpc-text';
import { loadProtos } from '../../common/proto';
import { rpcErrorText } from '../../cli/connect';
import { status } from '../../cli/status';

const servers: grpc.Server[] = [];
afterAll(() => servers.forEach((s) => s.forceShutdown()));

/** The error of one GetLeader call to `address` with `credentials`. */
function failureOf(address: string, credentials = grpc.credentials.createInsecure()): Promise<grpc.ServiceError> {
  const admin = new (loadProtos().herd.Admin)(address, credentials);
  return new Promise((resolve, reject) =>
    admin.GetLeader({}, { deadline: Date.now() + 3000 }, (err: grpc.ServiceError | null) => {
      admin.close();
      return err ? resolve(err) : reject(new Error('the call succeeded'));
    }),
  );
}

async function serverAnswering(code: grpc.status, details: string): Promise<string> {
  const server = new grpc.Server();
  server.addService(loadProtos().herd.Admin.service, { GetLeader: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code, details }) });
  servers.push(server);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return `127.0.0.1:${port}`;
}

describe('cleanDetails', () => {
  it('drops the scaffolding and an empty resolution note, keeps one that says something', () => {
    expect(cleanDetails('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7400. Resolution note: ')).toBe('connect ECONNREFUSED 127.0.0.1:7400');
    expect(cleanDetails('No connection established. Last error: null. Resolution note: DNS resolution failed for nohost:7400')).toBe('null (name resolution: DNS resolution failed for nohost:7400)');
    expect(cleanDetails('node "n2" is not the coordinator')).toBe('node "n2" is not the coordinator');
  });
});

describe('rpcErrorText', () => {
  it('nothing listening: says so, and how to start an agent', async () => {
    const text = rpcErrorText('127.0.0.1:1', await failureOf('127.0.0.1:1'));
    expect(text).toBe(
      'cannot reach 127.0.0.1:1: connection refused, nothing listens there (connect ECONNREFUSED 127.0.0.1:1). Is herd agent running there? Start it with `herd agent` (`npx herd agent` in a checkout), or name a running node with -s HOST:PORT.',
    );
  });

  it('herd status against a port nobody serves ends cleanly', async () => {
    const err = await status('127.0.0.1:1', 2000).then(() => undefined, (e) => e);
    const text = rpcErrorText('127.0.0.1:1', err);
    expect(text).toMatch(/^cannot reach 127\.0\.0\.1:1: connection refused/);
    expect(text).not.toMatch(/Resolution note|Last error|Error: |\.\s*$(?<!\.)/);
    expect(text.endsWith('HOST:PORT.')).toBe(true);
  });

  it('a name that does not resolve', async () => {
    const text = rpcErrorText('nohost.invalid:7400', await failureOf('nohost.invalid:7400'));
    expect(text).toMatch(/^cannot reach nohost\.invalid:7400: /);
    expect(text).not.toMatch(/Resolution note: $|Last error/);
  });

  it('an answer of the node is told as its answer, with its own words', async () => {
    const at = await serverAnswering(grpc.status.UNAVAILABLE, 'node "n2" is not the coordinator; ask n1 at 10.0.0.11:7400');
    expect(rpcErrorText(at, await failureOf(at))).toBe(`${at} answered UNAVAILABLE: node "n2" is not the coordinator; ask n1 at 10.0.0.11:7400`);
    const denied = await serverAnswering(grpc.status.PERMISSION_DENIED, 'operator "bob" has the read-only role');
    expect(rpcErrorText(denied, await failureOf(denied))).toBe(`${denied} answered PERMISSION_DENIED: operator "bob" has the read-only role`);
  });

  it('a TLS client against a plain-text server: the handshake failed, and which files to use', async () => {
    const at = await serverAnswering(grpc.status.OK, '');
    const text = rpcErrorText(at, await failureOf(at, grpc.credentials.createSsl()));
    expect(text).toMatch(new RegExp(`^cannot (talk to|reach) ${at}: `));
    expect(text).not.toMatch(/Resolution note|Last error/);
  });

  it('something that is not a gRPC error', () => {
    expect(rpcErrorText('a:1', new Error('boom'))).toBe('asking a:1 failed: boom');
  });
});
