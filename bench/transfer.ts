/**
 * Transfer.Fetch throughput on loopback, plain text and over mutual TLS, against a raw
 * TCP copy of the same bytes measured in the same run, and the receiving side's RSS and
 * CPU. The sender runs in a child process, so this process's RSS is the receiver's alone.
 *
 *   node bench/run.mjs transfer [sizesMB=200,1024] [runs=5]
 *   node bench/run.mjs transfer sweep [sizeMB=200] [runs=3]   chunk size x receive window (plain)
 *
 * What each does with the bytes (the same except Fetch's checks, which are its job):
 *   - raw TCP copy: the sender pipes the file into a socket (fs read stream with the same
 *     512 KiB reads as Fetch), the receiver pipes the socket into a file (fs write stream).
 *     No checks, no hashing, no framing.
 *   - Fetch: CRC32C per chunk, SHA-256 of the whole file, positional writes of 64 KiB
 *     pieces on a writer thread (client.ts, writer.ts).
 *   - neither fsyncs (fetchArtifact runs with fsync: false, as the migration target
 *     does), so both end in the page cache; an fsync would cost both about the same.
 *   - both read the same source file, which is in the page cache: it was fsynced after
 *     it was written (so that its writeback does not land in a measurement) and the
 *     sender read it whole when registering it (hashing).
 * Every Fetch run (plain or TLS) comes right after a raw copy of its own and is compared
 * with that one: the machine's load drifts, and on the dev VM a run's cost depends on
 * what ran just before it (a write of 1 GB right after another one reuses the page-cache
 * memory that one freed; see docs/transfer.md), so each Fetch gets the same predecessor
 * and its own baseline. Plain and TLS alternate in which goes first. The ratios are
 * taken per pair, then the median.
 *
 * Targets: Fetch >= 70% of raw TCP; TLS costs <= 15% of Fetch's throughput; receiver
 * RSS < 100 MB above idle.
 */
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import { createReadStream, createWriteStream, openSync, closeSync, fsyncSync, writeSync, rmSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProtos } from '../common/proto';
import { preferFastCipher } from '../common/ciphers';
import { createCa, issueNodeCert } from '../common/pki';
import { ArtifactRegistry } from '../agent/transfer/artifacts';
import { createTransferClient, fetchArtifact, FETCH_WINDOW_BYTES } from '../agent/transfer/client';
import { DEFAULT_CHUNK_BYTES, transferService } from '../agent/transfer/server';

// the suite order a node uses (ClusterTls applies it; the bench builds its credentials itself)
const PREFERRED_CIPHER = preferFastCipher();
const MB = 1 << 20;
const SWEEP_CHUNKS = [256 * 1024, 512 * 1024, MB];
const SWEEP_WINDOWS = [MB, 8 * MB, 16 * MB];

interface Ports {
  tcp: number;
  grpc: Record<number, number>; // chunk size -> port (plain text)
  tls: number; // default chunk size, mutual TLS
}

interface TlsFiles {
  ca: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
}

/** The sending node: one plain gRPC server per chunk size under test, one with mutual TLS, and a raw TCP file server. */
async function serve(dir: string, names: string[], chunks: number[]): Promise<void> {
  const registry = new ArtifactRegistry();
  const t0 = Date.now();
  for (const name of names) await registry.register({ migrationId: 'bench', name, path: join(dir, name) });
  const hashMs = Date.now() - t0;
  const bind = async (chunkBytes: number, creds: grpc.ServerCredentials) => {
    const server = new grpc.Server();
    server.addService(loadProtos().herd.Transfer.service, transferService(registry, { chunkBytes, faults: {} }));
    return new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
  };
  const ports: Ports = { tcp: 0, grpc: {}, tls: 0 };
  for (const chunkBytes of chunks) ports.grpc[chunkBytes] = await bind(chunkBytes, grpc.ServerCredentials.createInsecure());
  const tls = JSON.parse(readFileSync(join(dir, 'tls.json'), 'utf8')) as TlsFiles;
  ports.tls = await bind(DEFAULT_CHUNK_BYTES, grpc.ServerCredentials.createSsl(Buffer.from(tls.ca), [{ cert_chain: Buffer.from(tls.server.cert), private_key: Buffer.from(tls.server.key) }], true));
  // raw copy: the client sends a file name and a newline, then reads the file to EOF.
  // Same read size as Fetch's chunks, so both read the source the same way.
  const tcp = createServer((sock) => {
    let name = '';
    sock.on('data', function onData(d) {
      name += d.toString();
      if (!name.includes('\n')) return;
      sock.off('data', onData);
      createReadStream(join(dir, name.trim()), { highWaterMark: DEFAULT_CHUNK_BYTES }).pipe(sock);
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

interface Measured {
  s: number;
  peak: number;
  cpu: number;
  sys: number;
  /** CPU seconds the whole machine spent (all processes and kernel threads), if /proc/stat is readable */
  machine?: number;
}

/** Busy CPU seconds of the whole machine since boot (Linux), to tell how much else ran during a measurement. */
function machineBusy(): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
  } catch {
    return undefined;
  }
}

/** Runs fn while sampling RSS; returns seconds taken, peak RSS and receiver CPU seconds (and of them in the kernel). */
async function measure(fn: () => Promise<unknown>): Promise<Measured> {
  let peak = rssMb();
  const timer = setInterval(() => (peak = Math.max(peak, rssMb())), 10);
  const cpu0 = process.cpuUsage();
  const busy0 = machineBusy();
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const busy1 = machineBusy();
  clearInterval(timer);
  return { s, peak: Math.max(peak, rssMb()), cpu: (c.user + c.system) / 1e6, sys: c.system / 1e6, machine: busy0 !== undefined && busy1 !== undefined ? busy1 - busy0 : undefined };
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

/** A file of random bytes (incompressible, like nothing in particular), fsynced so that its writeback is over before the measurements. */
function makeFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = Buffer.allocUnsafe(MB);
  for (let left = bytes; left > 0; left -= MB) writeSync(fd, randomFillSync(block), 0, Math.min(MB, left));
  fsyncSync(fd);
  closeSync(fd);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

/** One way of moving the file, with its results over the rounds. */
interface Series {
  label: string;
  run: (name: string, dest: string) => Promise<unknown>;
  rates: number[];
  peaks: number[];
  cpus: number[];
  syss: number[];
  senderCpus: number[];
  /** seconds per run */
  secs: number[];
  /** per run: the raw copy's time just before / this one's */
  vsRaw: number[];
  /** cores' worth of CPU used by everything but the two ends (other jobs, kernel threads) */
  others: number[];
}

const series = (label: string, run: Series['run']): Series => ({ label, run, rates: [], peaks: [], cpus: [], syss: [], senderCpus: [], secs: [], vsRaw: [], others: [] });

function describe(s: Series): string {
  const others = s.others.length ? `; everything else on the machine meanwhile: ${median(s.others).toFixed(2)} cores (max ${Math.max(...s.others).toFixed(2)})` : '';
  return `${median(s.rates).toFixed(0)} MB/s (runs ${s.rates.map((x) => x.toFixed(0)).join('/')}); receiver RSS +${Math.max(...s.peaks).toFixed(0)} MB over idle at most; CPU per GB: receiver ${median(s.cpus).toFixed(2)} s (kernel ${median(s.syss).toFixed(2)} s), sender ${median(s.senderCpus).toFixed(2)} s${others}`;
}

/** Median over rounds of a's throughput relative to b's in the same round. */
function ratio(a: Series, b: Series): { median: number; runs: number[] } {
  const runs = a.secs.map((s, i) => b.secs[i] / s);
  return { median: median(runs), runs };
}

const vsRaw = (f: Series) => ({ median: median(f.vsRaw), runs: f.vsRaw });

async function main(): Promise<void> {
  const sweep = process.argv[2] === 'sweep';
  const sizes = sweep ? [Number(process.argv[3] ?? 200)] : (process.argv[2] ?? '200,1024').split(',').map(Number);
  const runs = Number(process.argv[sweep ? 4 : 3] ?? (sweep ? 3 : 5));
  const chunks = sweep ? SWEEP_CHUNKS : [DEFAULT_CHUNK_BYTES];
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-transfer-'));
  const names = sizes.map((mb) => `artifact-${mb}MB.bin`);
  sizes.forEach((mb, i) => makeFile(join(dir, names[i]), mb * MB));
  // the cluster's own PKI: a CA, the sender's node certificate, the receiver's (its client certificate)
  const ca = await createCa('bench');
  const tlsFiles: TlsFiles = { ca: ca.cert, server: await issueNodeCert(ca, 'source', '127.0.0.1:0'), client: await issueNodeCert(ca, 'target', '127.0.0.1:0') };
  writeFileSync(join(dir, 'tls.json'), JSON.stringify(tlsFiles), { mode: 0o600 });
  const child = fork(__filename, ['serve', dir, names.join(','), chunks.join(',')], { stdio: 'inherit' });
  try {
    const { ports, hashMs } = await new Promise<{ ports: Ports; hashMs: number }>((res) => child.once('message', res as (m: unknown) => void));
    const senderCpu = () =>
      new Promise<number>((res) => {
        child.once('message', (m: { cpu: number }) => res(m.cpu));
        child.send('cpu');
      });
    loadProtos();
    const req = (artifact: string) => ({ migration_id: 'bench', artifact, requester_node_id: 'target' });
    const tlsCreds = grpc.credentials.createSsl(Buffer.from(tlsFiles.ca), Buffer.from(tlsFiles.client.key), Buffer.from(tlsFiles.client.cert), { checkServerIdentity: () => undefined });
    // 'herd' as the TLS server name: Node warns (DEP0123) when it is an IP address
    const tlsClient = createTransferClient(`127.0.0.1:${ports.tls}`, tlsCreds, FETCH_WINDOW_BYTES, { 'grpc.ssl_target_name_override': 'herd' });
    const clients = new Map<string, ReturnType<typeof createTransferClient>>();
    const plainClient = (chunkBytes: number, windowBytes: number) => {
      const key = `${chunkBytes}/${windowBytes}`;
      if (!clients.has(key)) clients.set(key, createTransferClient(`127.0.0.1:${ports.grpc[chunkBytes]}`, undefined, windowBytes));
      return clients.get(key)!;
    };
    // warm up every path (connections and TLS sessions, WebAssembly, JIT) before taking the idle RSS
    const warm = join(dir, 'warm.out');
    await rawCopy(ports.tcp, names[0], warm);
    await fetchArtifact(plainClient(chunks[0], FETCH_WINDOW_BYTES), req(names[0]), warm, { fsync: false });
    await fetchArtifact(tlsClient, req(names[0]), warm, { fsync: false });
    rmSync(warm);
    await new Promise((r) => setTimeout(r, 500));
    const idle = rssMb();
    console.log(`receiver idle RSS ${idle.toFixed(0)} MB; sender registered (hashed) ${sizes.join(' + ')} MB in ${hashMs} ms; load average before: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log(`${runs} rounds of Fetch${sweep ? ' (per chunk size and window)' : ' and Fetch over mutual TLS'}, each run right after a raw TCP copy of its own; medians. Neither fsyncs; the raw copy does no checks (see bench/transfer.ts)`);
    for (const [i, mb] of sizes.entries()) {
      const dest = join(dir, 'out.bin');
      const raw = series('raw TCP copy', (name, d) => rawCopy(ports.tcp, name, d));
      const fetches: Series[] = [];
      for (const chunkBytes of chunks) {
        for (const windowBytes of sweep ? SWEEP_WINDOWS : [FETCH_WINDOW_BYTES]) {
          fetches.push(series(`Fetch, chunk ${chunkBytes / 1024} KiB, window ${windowBytes / 1024} KiB`, (name, d) => fetchArtifact(plainClient(chunkBytes, windowBytes), req(name), d, { fsync: false })));
        }
      }
      const tls = sweep ? undefined : series(`Fetch over mutual TLS (${PREFERRED_CIPHER} preferred)`, (name, d) => fetchArtifact(tlsClient, req(name), d, { fsync: false }));
      const measured = [...fetches, ...(tls ? [tls] : [])];
      const runOne = async (s: Series) => {
        const s0 = await senderCpu();
        const m = await measure(() => s.run(names[i], dest));
        const sent = (await senderCpu()) - s0;
        rmSync(dest);
        s.senderCpus.push(sent / (mb / 1024));
        if (m.machine !== undefined) s.others.push(Math.max(0, m.machine - m.cpu - sent) / m.s);
        s.secs.push(m.s);
        s.rates.push(mb / m.s);
        s.peaks.push(m.peak - idle);
        s.cpus.push(m.cpu / (mb / 1024));
        s.syss.push(m.sys / (mb / 1024));
        return m.s;
      };
      for (let r = 0; r < runs; r++) {
        const order = r % 2 === 0 ? measured : [...measured].reverse();
        for (const f of order) {
          const rawS = await runOne(raw);
          f.vsRaw.push(rawS / (await runOne(f)));
        }
      }
      console.log(`\n${mb} MB:\n  raw TCP copy: ${describe(raw)}`);
      for (const f of fetches) {
        const q = vsRaw(f);
        console.log(`  ${f.label}: ${pct(q.median)} of raw TCP (runs ${q.runs.map(pct).join('/')}); ${describe(f)}`);
      }
      if (tls) {
        const vsPlain = ratio(tls, fetches[0]);
        const toRaw = vsRaw(tls);
        console.log(
          `  ${tls.label}: ${pct(vsPlain.median)} of plain Fetch (runs ${vsPlain.runs.map(pct).join('/')}), i.e. TLS costs ${pct(1 - vsPlain.median)}; ${pct(toRaw.median)} of raw TCP (runs ${toRaw.runs.map(pct).join('/')}); ${describe(tls)}`,
        );
      }
    }
    console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    for (const c of clients.values()) c.close();
    tlsClient.close();
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
