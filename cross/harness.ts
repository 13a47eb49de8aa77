/**
 * Shared by the executable tests and the bench: builds the executables once (build/sea.mjs
 * skips a build whose inputs are unchanged), and asks a node whether it serves.
 */
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The checkout: the tests run this file as is, the bench bundled into dist/bench/. */
function findRoot(): string {
  for (let d = typeof __dirname === 'string' ? __dirname : process.cwd(); d !== path.dirname(d); d = path.dirname(d)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')).name === 'herd') return d;
    } catch {
      /* not here */
    }
  }
  throw new Error('cannot find the herd checkout above this file');
}
export const ROOT = findRoot();
export const DIST = path.join(ROOT, 'dist');
export const exePath = (arch: 'x64' | 'arm64') => path.join(DIST, `herd-linux-${arch}`);

/**
 * Builds (or finds up to date) dist/herd-linux-{x64,arm64}; returns their paths. Asynchronous on purpose: a test worker blocked for
 * the minutes a fresh build takes misses vitest's RPC deadline ("Timeout calling onTaskUpdate").
 */
export async function ensureExecutables(): Promise<{ x64: string; arm64: string }> {
  const t0 = Date.now();
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(process.execPath, [path.join(ROOT, 'build/sea.mjs')], { cwd: ROOT, encoding: 'utf8', timeout: 900_000, maxBuffer: 16 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stderr?.pipe(process.stderr);
  });
  process.stdout.write(`build/sea.mjs (${Date.now() - t0} ms):\n${out}`);
  for (const a of ['x64', 'arm64'] as const) if (!fs.existsSync(exePath(a))) throw new Error(`build/sea.mjs did not produce ${exePath(a)}`);
  return { x64: exePath('x64'), arm64: exePath('arm64') };
}

/** Health answers SERVING, over TLS (the default; health needs no certificate) or plain text (--insecure). */
export async function serving(address: string, deadlineMs = 1000): Promise<boolean> {
  const tls = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  return (await servingOver(address, deadlineMs, tls, { 'grpc.ssl_target_name_override': 'herd' })) || servingOver(address, deadlineMs, grpc.credentials.createInsecure(), {});
}

async function servingOver(address: string, deadlineMs: number, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): Promise<boolean> {
  const Client = grpc.makeGenericClientConstructor({}, 'Health');
  const c = new Client(address, credentials, options);
  const name = Buffer.from('herd.v1.Mesh');
  try {
    const res = await new Promise<Buffer>((resolve, reject) => c.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b,
      Buffer.concat([Buffer.from([0x0a, name.length]), name]), { deadline: Date.now() + deadlineMs }, (e, r) => (e || !r ? reject(e) : resolve(r))));
    return res.length >= 2 && res[0] === 0x08 && res[1] === 1;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

/** Polls until address serves; resolves the ms it took, rejects after timeoutMs. */
export async function waitServing(address: string, timeoutMs: number, stepMs = 10, gone?: () => string | undefined): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await serving(address, 500)) return performance.now() - t0;
    const why = gone?.();
    if (why) throw new Error(`gave up waiting for ${address} to serve: ${why}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${address} did not serve within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.once('error', reject);
  });
}
