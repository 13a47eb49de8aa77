/**
 * Transfer.Fetch throughput on loopback against a raw TCP copy of the same bytes
 * (net + fs streams, no checks) measured in the same run, and the receiving side's RSS.
 * The sender runs in a child process, so this process's RSS is the receiver's alone.
 *
 *   node bench/run.mjs transfer [sizesMB=200,1024] [runs=3]
 *   node bench/run.mjs transfer sweep [sizeMB=200] [runs=3]   chunk size x receive window
 *
 * Targets: Fetch >= 70% of raw TCP; receiver RSS < 100 MB above idle.
 */
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import { createReadStream, createWriteStream, openSync, closeSync, writeSync, rmSync, mkdtempSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProtos } from '../common/proto';
import { ArtifactRegistry } from '../agent/transfer/artifacts';
import { createTransferClient, fetchArtifact, FETCH_WINDOW_BYTES } from '../agent/transfer/client';
import { DEFAULT_CHUNK_BYTES, transferService } from '../agent/transfer/server';

const MB = 1 << 20;
const SWEEP_CHUNKS = [256 * 1024, 512 * 1024, MB];
const SWEEP_WINDOWS = [MB, 8 * MB, 16 * MB];

interface Ports {
  tcp: number;
  grpc: Record<number, number>; // chunk size -> port
}

/** The sending node: one gRPC server per chunk size under test, and a raw TCP file server. */
async function serve(dir: string, names: string[], chunks: number[]): Promise<void> {
  const registry = new ArtifactRegistry();
  const t0 = Date.now();
  for (const name of names) await registry.register({ migrationId: 'bench', name, path: join(dir, name) });
  const hashMs = Date.now() - t0;
  const ports: Ports = { tcp: 0, grpc: {} };
  for (const chunkBytes of chunks) {
    const server = new grpc.Server();
    server.addService(loadProtos().herd.Transfer.service, transferService(registry, { chunkBytes, faults: {} }));
    ports.grpc[chunkBytes] = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  }
  // raw copy: the client sends a file name and a newline, then reads the file to EOF
  const tcp = createServer((sock) => {
    let name = '';
    sock.on('data', function onData(d) {
      name += d.toString();
      if (!name.includes('\n')) return;
      sock.off('data', onData);
      createReadStream(join(dir, name.trim())).pipe(sock);
    });
  });
  await new Promise<void>((res) => tcp.listen(0, '127.0.0.1', res));
  ports.tcp = (tcp.address() as { port: number }).port;
  process.on('message', (m) => {
    if (m === 'cpu') {
      const c = process.cpuUsage();
      process.send!({ cpu: (c.user + c.system) / 1e6 });
    }
  });
  process.send!({ ports, hashMs });
  // exit (not die) when the receiver is done, so that --cpu-prof can write its profile
  process.on('disconnect', () => process.exit(0));
}

function rssMb(): number {
  return process.memoryUsage.rss() / MB;
}

/** Runs fn while sampling RSS; returns seconds taken, peak RSS and receiver CPU seconds (and of them in the kernel). */
async function measure(fn: () => Promise<unknown>): Promise<{ s: number; peak: number; cpu: number; sys: number }> {
  let peak = rssMb();
  const timer = setInterval(() => (peak = Math.max(peak, rssMb())), 10);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  clearInterval(timer);
  return { s, peak: Math.max(peak, rssMb()), cpu: (c.user + c.system) / 1e6, sys: c.system / 1e6 };
}

function rawCopy(port: number, name: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(`${name}\n`));
    const out = createWriteStream(dest);
    sock.pipe(out);
    out.on('finish', resolve);
    sock.on('error', reject);
    out.on('error', reject);
  });
}

function makeFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = Buffer.allocUnsafe(MB);
  for (let left = bytes; left > 0; left -= MB) writeSync(fd, randomFillSync(block), 0, Math.min(MB, left));
  closeSync(fd);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Config {
  chunkBytes: number;
  windowBytes: number;
  client?: ReturnType<typeof createTransferClient>;
  ratios: number[];
  rates: number[];
  peaks: number[];
  cpus: number[];
  syss: number[];
  senderCpus: number[];
}

async function main(): Promise<void> {
  const sweep = process.argv[2] === 'sweep';
  const sizes = sweep ? [Number(process.argv[3] ?? 200)] : (process.argv[2] ?? '200,1024').split(',').map(Number);
  const runs = Number(process.argv[sweep ? 4 : 3] ?? 3);
  const chunks = sweep ? SWEEP_CHUNKS : [DEFAULT_CHUNK_BYTES];
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-transfer-'));
  const names = sizes.map((mb) => `artifact-${mb}MB.bin`);
  sizes.forEach((mb, i) => makeFile(join(dir, names[i]), mb * MB));
  const child = fork(__filename, ['serve', dir, names.join(','), chunks.join(',')], { stdio: 'inherit' });
  try {
    const { ports, hashMs } = await new Promise<{ ports: Ports; hashMs: number }>((res) => child.once('message', res as (m: unknown) => void));
    const senderCpu = () =>
      new Promise<number>((res) => {
        child.once('message', (m: { cpu: number }) => res(m.cpu));
        child.send('cpu');
      });
    loadProtos();
    // warm up both paths (connections, WebAssembly, JIT) before taking the idle RSS
    const warm = join(dir, 'warm.out');
    await rawCopy(ports.tcp, names[0], warm);
    await fetchArtifact(`127.0.0.1:${ports.grpc[chunks[0]]}`, { migration_id: 'bench', artifact: names[0], requester_node_id: 'r' }, warm, { fsync: false });
    rmSync(warm);
    await new Promise((r) => setTimeout(r, 500));
    const idle = rssMb();
    console.log(`receiver idle RSS ${idle.toFixed(0)} MB; sender registered (hashed) ${sizes.join(' + ')} MB in ${hashMs} ms`);
    console.log(`each Fetch run is paired with a raw TCP copy just before it (the machine's load drifts); ${runs} rounds, medians`);
    for (const [i, mb] of sizes.entries()) {
      const dest = join(dir, 'out.bin');
      const configs: Config[] = [];
      for (const chunkBytes of chunks) {
        for (const windowBytes of sweep ? SWEEP_WINDOWS : [FETCH_WINDOW_BYTES]) configs.push({ chunkBytes, windowBytes, ratios: [], rates: [], peaks: [], cpus: [], syss: [], senderCpus: [] });
      }
      const raw: number[] = [];
      const rawPeaks: number[] = [];
      const rawCpus: Array<[number, number, number]> = [];
      // round robin, so that load changes on the machine spread over all configurations
      for (let r = 0; r < runs; r++) {
        for (const c of configs) {
          const rs0 = await senderCpu();
          const rawM = await measure(() => rawCopy(ports.tcp, names[i], dest));
          rawCpus.push([rawM.cpu / (mb / 1024), ((await senderCpu()) - rs0) / (mb / 1024), rawM.sys / (mb / 1024)]);
          const rawS = rawM.s;
          rawPeaks.push(rawM.peak - idle);
          rmSync(dest);
          c.client ??= createTransferClient(`127.0.0.1:${ports.grpc[c.chunkBytes]}`, undefined, c.windowBytes);
          const s0 = await senderCpu();
          const m = await measure(() => fetchArtifact(c.client!, { migration_id: 'bench', artifact: names[i], requester_node_id: 'r' }, dest, { fsync: false }));
          c.senderCpus.push(((await senderCpu()) - s0) / (mb / 1024));
          rmSync(dest);
          raw.push(mb / rawS);
          c.rates.push(mb / m.s);
          c.ratios.push(rawS / m.s);
          c.peaks.push(m.peak - idle);
          c.cpus.push(m.cpu / (mb / 1024));
          c.syss.push(m.sys / (mb / 1024));
        }
      }
      console.log(`\n${mb} MB: raw TCP copy ${median(raw).toFixed(0)} MB/s (median of ${raw.length}); receiver RSS +${Math.max(...rawPeaks).toFixed(0)} MB over idle at most; CPU per GB: receiver ${median(rawCpus.map((x) => x[0])).toFixed(2)} s (kernel ${median(rawCpus.map((x) => x[2])).toFixed(2)} s), sender ${median(rawCpus.map((x) => x[1])).toFixed(2)} s`);
      for (const c of configs) {
        c.client?.close();
        console.log(
          `  Fetch, chunk ${c.chunkBytes / 1024} KiB, window ${c.windowBytes / 1024} KiB: ${median(c.rates).toFixed(0)} MB/s, ${(100 * median(c.ratios)).toFixed(0)}% of raw TCP` +
            ` (runs ${c.ratios.map((x) => (100 * x).toFixed(0)).join('/')}); receiver RSS +${Math.max(...c.peaks).toFixed(0)} MB over idle at most; CPU per GB: receiver ${median(c.cpus).toFixed(2)} s (kernel ${median(c.syss).toFixed(2)} s), sender ${median(c.senderCpus).toFixed(2)} s`,
        );
      }
    }
  } finally {
    child.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') {
  void serve(process.argv[3], process.argv[4].split(','), process.argv[5].split(',').map(Number));
} else {
  void main();
}
