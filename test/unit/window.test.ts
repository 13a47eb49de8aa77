import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { loadProtos } from '../../common/proto';
import { enlargeServerWindow, enlargeSessionWindows, SERVER_WINDOW_BYTES } from '../../common/window';

// The server-side HTTP/2 window is set through grpc-js internals: this pins that they still work.
describe('server receive window', () => {
  it('is enlarged on the sessions a grpc-js server accepts', async () => {
    const server = new grpc.Server();
    const { herd } = loadProtos();
    const sessions: any[] = [];
    server.addService(herd.Admin.service, {
      GetLeader: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { leader_id: 'x' }),
    });
    expect(enlargeServerWindow(server)).toBe(true);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    expect(enlargeSessionWindows(server)).toBe(true);
    for (const h2 of (server as any).http2Servers.keys()) h2.on('session', (s: any) => sessions.push(s));
    const client = new herd.Admin(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    await new Promise((res, rej) => client.GetLeader({}, (e: unknown, r: unknown) => (e ? rej(e) : res(r))));
    expect(sessions.length).toBe(1);
    expect(sessions[0].state.localWindowSize).toBeGreaterThanOrEqual(SERVER_WINDOW_BYTES - 65_535);
    expect((server as any).commonServerOptions.settings.initialWindowSize).toBe(SERVER_WINDOW_BYTES);
    client.close();
    server.forceShutdown();
  });
});
