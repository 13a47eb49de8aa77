/**
 * Ingest throughput: samples/s from 3 agent processes into the coordinator's LMDB, end to
 * end (agent LMDB log -> gRPC Mesh stream -> coordinator validation -> LMDB -> ack), and
 * as a ratio to raw batched lmdb puts of the same keys measured in the same run; then
 * the same over mutual TLS (what every cluster runs by default) as a ratio to plain text.
 *
 *   node bench/run.mjs ingest [samplesPerAgent=400000] [samplesPerBatch=5000]
 */
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEnv } from '../common/db';
import { SampleLog } from '../agent/samplelog';
import { Uplink } from '../agent/uplink';
import { setLogLevel } from '../common/log';
import { startCoordinator } from '../test/helpers/coord';
import { ClusterTls, type TlsMaterial } from '../common/transport';
import { createCa, issueNodeCert } from '../common/pki';

setLogLevel('warn');
const AGENTS = 3;
const ROUNDS = 3;
const perAgent = Number(process.argv[2] === "agent" ? process.argv[6] : process.argv[2] ?? 400_000);
const perBatch = Number(process.argv[2] === "agent" ? process.argv[7] : process.argv[3] ?? 5000);
const BASE = Date.now() - 3_600_000; // within a batch's +-24 day offset range
const METRICS = ['container.cpu.usage', 'container.mem.usage_bytes', 'container.blkio.read_ops', 'container.blkio.write_ops', 'container.pids', 'container.net.rx_bytes', 'container.net.tx_bytes', 'container.cpu.throttled_ms'];

/** The samples of batch b of an agent: containers x metrics at one round's time. */
function batchSamples(agent: number, b: number) {
  const out = [];
  const containers = Math.ceil(perBatch / METRICS.length);
  for (let c = 0; c < containers && out.length < perBatch; c++) {
    for (const m of METRICS) {
      if (out.length >= perBatch) break;
      out.push({ entity: `a${agent}-c${String(c).padStart(4, '0')}`, metric: m, ts: BASE + b * 5000, value: Math.random() * 100 });
    }
  }
  return out;
}

async function agentMain(index: number, dir: string, target: string, tlsDir: string) {
  const env = openEnv(dir, { mapSizeBytes: 4 * 1024 ** 3 });
  const log = new SampleLog(env, `a${index}`);
  const batches = Math.ceil(perAgent / perBatch);
  if (log.lastSeq() === 0) for (let b = 0; b < batches; b++) void log.append(batchSamples(index, b));
  await env.committed;
  process.send!({ ready: true });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const t0 = performance.now();
  const transport = tlsDir ? new ClusterTls({ ca: readFileSync(join(tlsDir, 'ca.crt'), 'utf8'), cert: readFileSync(join(tlsDir, `a${index}.crt`), 'utf8'), key: readFileSync(join(tlsDir, `a${index}.key`), 'utf8') }) : undefined;
  const uplink = new Uplink({ log, transport, targetId: () => 'coord', target: () => target, hello: () => ({ node_id: `a${index}`, address: 'bench:0', log_id: log.logId }), inventory: () => undefined, maxInFlight: 64, keepaliveMs: 2000, deadAfterMs: 30_000 });
  uplink.start();
  const last = log.lastSeq();
  while (uplink.ackedSeq() < last) await new Promise((r) => setTimeout(r, 2));
  process.send!({ done: true, ms: performance.now() - t0 });
  uplink.stop();
  await env.close();
  process.exit(0);
}

async function rawBaseline(total: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-raw-'));
  const env = openEnv(dir, { mapSizeBytes: 4 * 1024 ** 3 });
  const db = env.openDB<number, [string, string, number]>({ name: 'raw' });
  const batches = [];
  for (let a = 0; a < AGENTS; a++) for (let b = 0; b < Math.ceil(perAgent / perBatch); b++) batches.push(batchSamples(a, b));
  const t0 = performance.now();
  let last: Promise<unknown> = Promise.resolve();
  for (const batch of batches) for (const s of batch) last = db.put([s.entity, s.metric, s.ts], s.value);
  await last;
  const ms = performance.now() - t0;
  await env.close();
  rmSync(dir, { recursive: true, force: true });
  return (total / ms) * 1000;
}

/** Certificates of a throwaway cluster: the coordinator's and one per agent. */
async function makeCerts(dir: string): Promise<TlsMaterial> {
  mkdirSync(dir, { recursive: true });
  const ca = await createCa('bench');
  writeFileSync(join(dir, 'ca.crt'), ca.cert);
  for (let i = 0; i < AGENTS; i++) {
    const a = await issueNodeCert(ca, `a${i}`, '127.0.0.1:0');
    writeFileSync(join(dir, `a${i}.crt`), a.cert);
    writeFileSync(join(dir, `a${i}.key`), a.key);
  }
  const c = await issueNodeCert(ca, 'coord', '127.0.0.1:0');
  return { ca: ca.cert, cert: c.cert, key: c.key };
}

/** One end-to-end run: samples/s stored and acknowledged. */
async function run(work: string, tls: TlsMaterial | undefined, tlsDir: string): Promise<{ rate: number; stored: number; ms: number }> {
  const coord = await startCoordinator(join(work, 'coord'), 0, {}, tls ? new ClusterTls(tls) : undefined);
  const children = Array.from({ length: AGENTS }, (_, i) => fork(__filename, ['agent', String(i), join(work, `a${i}`), coord.address, String(perAgent), String(perBatch), tls ? tlsDir : ''], { stdio: 'inherit' }));
  await Promise.all(children.map((c) => new Promise((r) => c.once('message', r))));
  const t0 = performance.now();
  for (const c of children) c.send('go');
  await Promise.all(children.map((c) => new Promise((r) => c.once('message', r))));
  const ms = performance.now() - t0;
  const stored = coord.ingest.storedSamples;
  await coord.stop();
  for (const d of readdirSync(work)) if (d !== 'tls') rmSync(join(work, d), { recursive: true, force: true });
  return { rate: (stored / ms) * 1000, stored, ms };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'herd-bench-ingest-'));
  const tlsDir = join(work, 'tls');
  const tls = await makeCerts(tlsDir);
  const total = AGENTS * Math.ceil(perAgent / perBatch) * perBatch;
  // Alternate plain and TLS runs so that drift (page cache, CPU frequency) hits both alike.
  const plain: number[] = [];
  const secure: number[] = [];
  let last = { stored: 0, ms: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const p = await run(work, undefined, tlsDir);
    plain.push(p.rate);
    last = p;
    secure.push((await run(work, tls, tlsDir)).rate);
  }
  rmSync(work, { recursive: true, force: true });
  const e2e = median(plain);
  const e2eTls = median(secure);
  const raw = await rawBaseline(total);
  console.log(`ingest: ${AGENTS} agents x ${perAgent} samples in batches of ${perBatch}, median of ${ROUNDS} runs each`);
  console.log(`  end to end (agents' LMDB -> gRPC -> coordinator LMDB, acked): ${Math.round(e2e).toLocaleString('en')} samples/s  (last run: ${last.stored} samples in ${last.ms.toFixed(0)} ms)`);
  console.log(`  the same over mutual TLS:                                    ${Math.round(e2eTls).toLocaleString('en')} samples/s  (runs: ${secure.map((r) => Math.round(r / 1000) + 'k').join(', ')}; plain: ${plain.map((r) => Math.round(r / 1000) + 'k').join(', ')})`);
  console.log(`  baseline, raw batched lmdb puts of the same keys:            ${Math.round(raw).toLocaleString('en')} samples/s`);
  console.log(`  ratio end-to-end / raw: ${(e2e / raw).toFixed(2)}  (target >= 100,000 samples/s and >= 0.50)`);
  console.log(`  TLS / plain: ${(e2eTls / e2e).toFixed(2)}, TLS cost ${((1 - e2eTls / e2e) * 100).toFixed(1)}%  (target: cost <= 15%)`);
}

if (process.argv[2] === 'agent') void agentMain(Number(process.argv[3]), process.argv[4], process.argv[5], process.argv[8] ?? '');
else void main();
