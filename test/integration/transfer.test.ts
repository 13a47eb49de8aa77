import { spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchArtifact } from '../../agent/transfer/client';
import { tempDir } from '../helpers/tmp';

const MB = 1 << 20;

// The sending node, in its own process, so that this process's RSS is the receiver's alone.
const SENDER = `
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../common/proto';
import { ArtifactRegistry } from '../../agent/transfer/artifacts';
import { transferService } from '../../agent/transfer/server';
(async () => {
  const registry = new ArtifactRegistry();
  const [big, small] = process.argv.slice(2);
  const a = await registry.register({ migrationId: 'big', name: 'checkpoint', path: big });
  await registry.register({ migrationId: 'big', name: 'warm-up', path: small });
  const server = new grpc.Server();
  server.addService(loadProtos().herd.Transfer.service, transferService(registry, { faults: {} }));
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(JSON.stringify({ port, sha256: a.sha256 }) + '\\n');
  });
})();
`;

function randomFile(path: string, mb: number): void {
  const fd = openSync(path, 'w');
  const block = Buffer.allocUnsafe(MB);
  for (let i = 0; i < mb; i++) writeSync(fd, randomFillSync(block));
  closeSync(fd);
}

describe('Transfer.Fetch of a large artifact', () => {
  const t = tempDir('herd-transfer-big-');
  let sender: ChildProcess | undefined;
  afterAll(() => {
    sender?.kill();
    t.cleanup();
  });

  it("keeps the receiver's memory bounded: 500 MB grow its RSS by less than 50 MB", async () => {
    const big = join(t.dir, 'checkpoint.tar');
    const small = join(t.dir, 'small.tar');
    randomFile(big, 500);
    randomFile(small, 1);
    const script = join(t.dir, 'sender.cjs');
    await build({ stdin: { contents: SENDER, resolveDir: __dirname, loader: 'ts' }, outfile: script, bundle: true, platform: 'node', format: 'cjs', packages: 'external', logLevel: 'warning' });
    sender = spawn(process.execPath, [script, big, small], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_PATH: join(__dirname, '..', '..', 'node_modules') } });
    const { port, sha256 } = await new Promise<{ port: number; sha256: string }>((resolve, reject) => {
      sender!.stdout!.once('data', (d) => resolve(JSON.parse(String(d))));
      sender!.once('exit', (code) => reject(new Error(`sender exited with ${code}`)));
    });
    const address = `127.0.0.1:${port}`;
    const req = { migration_id: 'big', artifact: 'checkpoint', requester_node_id: 'target' };
    // warm up (WebAssembly, proto codecs, the connection) before the baseline
    await fetchArtifact(address, { ...req, artifact: 'warm-up' }, join(t.dir, 'warm'));

    // Garbage is collected at every sample, so that this measures what the transfer
    // holds (receive window, read-ahead, write-behind), not how lazily V8 frees dead
    // Buffers: at these rates node's HTTP/2 and grpc-js allocate about twice the data
    // rate in Buffers that die within milliseconds, and V8 lets tens of MB of them pile
    // up before collecting (RSS +45-65 MB without this, whatever the artifact's size;
    // bench/transfer.ts reports that figure).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage.rss();
    let peak = before;
    let buffers = 0;
    const sample = () => {
      gc();
      const m = process.memoryUsage();
      peak = Math.max(peak, m.rss);
      buffers = Math.max(buffers, m.arrayBuffers);
    };
    const sampler = setInterval(sample, 20);
    const started = Date.now();
    const r = await fetchArtifact(address, req, join(t.dir, 'restored.tar'));
    clearInterval(sampler);
    const growth = (peak - before) / MB;
    console.log(`500 MB in ${Date.now() - started} ms; receiver RSS ${(before / MB).toFixed(0)} MB -> peak ${(peak / MB).toFixed(0)} MB (+${growth.toFixed(1)} MB); Buffers at most ${(buffers / MB).toFixed(0)} MB`);
    expect(r.sha256).toBe(sha256);
    expect(statSync(r.path).size).toBe(500 * MB);
    expect(growth).toBeLessThan(50);
  }, 180_000);
});
