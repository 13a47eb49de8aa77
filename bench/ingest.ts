/**
 * Ingest throughput as a cluster meets it: 3 agent processes each write collection rounds
 * to their own durable sample log (one batch per round, awaited as the daemon's scheduler
 * awaits it), their uplinks stream them to a real coordinator daemon (`herd agent`, a
 * one-node cluster that elected itself, started from dist/herd.cjs), which commits them
 * to its LMDB and acknowledges. The clock runs from the first write to the last ack.
 *
 * Baseline, alternated with the runs: raw batched LMDB puts of the same samples under the
 * coordinator's keys in one process, LMDB free to group them into few commits: the least
 * any durable store of these samples costs on this disk. Each round of the bench runs
 * raw, then over mutual TLS (the default), then in plain text.
 *
 *   node bench/run.mjs ingest [rounds=300] [containers=100] [runs=3]
 *   (a round is one container collection: containers x 11 metrics + the batch's seq sample)
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { openEnv } from '../common/db';
import { SampleLog } from '../agent/samplelog';
import { DEFAULT_UPLINK, Uplink } from '../agent/uplink';
import { CONTAINER_METRICS } from '../agent/collectors/cgroup';
import { setLogLevel } from '../common/log';
import { loadProtos } from '../common/proto';
import { ClusterTls } from '../common/transport';
import type { Sample } from '../common/types';
import { freePort } from '../cross/harness';
import { HERD } from '../test/helpers/herd';
import { testPki } from '../test/helpers/pki';
import { report, sleep } from './stats';

setLogLevel('warn');
const AGENTS = 3;
const isAgent = process.argv[2] === 'agent';
const args = isAgent ? process.argv.slice(7) : process.argv.slice(2);
const rounds = Number(args[0] ?? 300);
const containers = Number(args[1] ?? 100);
const runs = Number(args[2] ?? 3);
const BASE = Date.now() - 3_600_000; // within a batch's +-24 day offset range
const METRICS = Object.values(CONTAINER_METRICS);
const perRound = containers * METRICS.length;

/** Agent `agent`'s collection round r, as the cgroup collector returns it. */
function roundSamples(agent: number, r: number): Sample[] {
  const out: Sample[] = [];
  for (let c = 0; c < containers; c++) {
    for (const m of METRICS) out.push({ entity: `a${agent}-c${String(c).padStart(4, '0')}`, metric: m, ts: BASE + r * 5000, value: Math.random() * 100 });
  }
  return out;
}

async function agentMain(index: number, dir: string, target: string, tlsDir: string): Promise<void> {
  const env = openEnv(dir, { mapSizeBytes: 4 * 1024 ** 3 });
  const log = new SampleLog(env, `a${index}`);
  const work = Array.from({ length: rounds }, (_, r) => roundSamples(index, r));
  const transport = tlsDir ? new ClusterTls({ ca: readFileSync(join(tlsDir, 'ca.crt'), 'utf8'), cert: readFileSync(join(tlsDir, 'node.crt'), 'utf8'), key: readFileSync(join(tlsDir, 'node.key'), 'utf8') }) : undefined;
  const uplink = new Uplink({ log, transport, targetId: () => 'coord', target: () => target, hello: () => ({ node_id: `a${index}`, address: 'bench:0', log_id: log.logId }), inventory: () => undefined, ...DEFAULT_UPLINK });
  process.send!({ ready: true });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  uplink.start();
  let last = 0;
  for (const samples of work) last = await log.append(samples);
  while (uplink.ackedSeq() < last) await sleep(1);
  process.send!({ done: true, batches: last });
  uplink.stop();
  await env.close();
  process.exit(0);
}

/**
 * Raw puts of the same samples under the coordinator's key layout, issued back to back and
 * awaited once at the end, so LMDB groups them into as few commits as it likes: the least
 * a durable store of these samples costs on this disk. (The agents cannot do that: each
 * round is on disk before it is sent, and the daemon's rounds are seconds apart.)
 */
async function rawBaseline(dir: string): Promise<number> {
  const env = openEnv(dir, { mapSizeBytes: 4 * 1024 ** 3 });
  const db = env.openDB<number, [string, string, number]>({ name: 'raw' });
  const work = Array.from({ length: AGENTS }, (_, a) => Array.from({ length: rounds }, (_, r) => roundSamples(a, r)));
  const t0 = performance.now();
  let last: Promise<unknown> = Promise.resolve();
  for (let r = 0; r < rounds; r++) for (const agentRounds of work) for (const s of agentRounds[r]) last = db.put([s.entity, s.metric, s.ts], s.value);
  await last;
  const ms = performance.now() - t0;
  await env.close();
  rmSync(dir, { recursive: true, force: true });
  return ((AGENTS * rounds * perRound) / ms) * 1000;
}

/** The coordinator daemon, as a user starts it; resolves once it leads (a one-node cluster elects itself). */
async function startDaemon(dataDir: string, port: number, tlsTemplate: string | undefined): Promise<ChildProcess> {
  mkdirSync(dataDir, { recursive: true });
  if (tlsTemplate) cpSync(tlsTemplate, join(dataDir, 'tls'), { recursive: true });
  const flags = ['agent', '--node-id', 'coord', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--pmproxy-url', '', '--log-level', 'error'];
  const child = spawn(process.execPath, [HERD, ...flags, ...(tlsTemplate ? [] : ['--insecure'])], { stdio: ['ignore', 'ignore', 'inherit'] });
  const { herd } = loadProtos();
  const creds = tlsTemplate ? testPki().credentials() : { credentials: grpc.credentials.createInsecure(), options: {} };
  const admin = new herd.Admin(`127.0.0.1:${port}`, creds.credentials, creds.options);
  try {
    for (let i = 0; i < 600; i++) {
      const leader = await new Promise<any>((res) => admin.GetLeader({}, { deadline: Date.now() + 1000 }, (e: unknown, r: any) => res(e ? undefined : r)));
      if (leader?.leader_id === 'coord') return child;
      if (child.exitCode !== null) break;
      await sleep(50);
    }
  } finally {
    admin.close();
  }
  child.kill('SIGKILL');
  throw new Error('the coordinator daemon did not become leader within 30 s');
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** One end-to-end run: samples/s written, streamed, stored and acknowledged. */
async function run(work: string, port: number, tls: { daemon: string; agents: string[] } | undefined): Promise<number> {
  const dir = mkdtempSync(join(work, 'run-'));
  const daemon = await startDaemon(join(dir, 'coord'), port, tls?.daemon);
  try {
    const children = Array.from({ length: AGENTS }, (_, i) => fork(__filename, ['agent', String(i), join(dir, `a${i}`), `127.0.0.1:${port}`, tls?.agents[i] ?? '', String(rounds), String(containers)], { stdio: 'inherit' }));
    const next = () => Promise.all(children.map((c) => new Promise<any>((r, j) => (c.once('message', r), c.once('exit', (code) => j(new Error(`an agent exited with ${code}`)))))));
    await next();
    const t0 = performance.now();
    for (const c of children) c.send('go');
    const done = await next();
    const ms = performance.now() - t0;
    if (done.some((d) => d.batches !== rounds)) throw new Error(`agents wrote ${done.map((d) => d.batches)} batches, expected ${rounds} each`);
    return ((AGENTS * rounds * (perRound + 1)) / ms) * 1000;
  } finally {
    await stopDaemon(daemon);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'herd-bench-ingest-'));
  const port = await freePort();
  const pki = testPki();
  const daemonTls = join(work, 'tls-coord');
  pki.provision(daemonTls, 'coord', `127.0.0.1:${port}`);
  const agentTls = Array.from({ length: AGENTS }, (_, i) => {
    pki.provision(join(work, `tls-a${i}`), `a${i}`, '127.0.0.1:1');
    return join(work, `tls-a${i}`, 'tls');
  });
  const tls = { daemon: join(daemonTls, 'tls'), agents: agentTls };
  const raw: number[] = [];
  const secure: number[] = [];
  const plain: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      raw.push(await rawBaseline(join(work, 'raw')));
      secure.push(await run(work, port, tls));
      plain.push(await run(work, port, undefined));
      process.stderr.write(`run ${i + 1}: raw ${Math.round(raw[i])}/s, mTLS ${Math.round(secure[i])}/s, plain ${Math.round(plain[i])}/s\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`ingest: ${AGENTS} agents x ${rounds} rounds of ${containers} containers (${perRound + 1} samples per batch), ${runs} alternated runs`);
  report({ name: 'ingest, 3 agents -> coordinator daemon over mutual TLS, end to end', unit: 'samples/s', higherIsBetter: true, herd: secure, baselineName: 'raw batched LMDB puts', baseline: raw, target: '>= 100,000 samples/s and >= 0.50 of raw' });
  report({ name: 'ingest over mutual TLS vs plain text', unit: 'samples/s', higherIsBetter: true, herd: secure, baselineName: 'the same in plain text (--insecure)', baseline: plain, target: 'TLS costs <= 15% (ratio >= 0.85)' });
}

// agent <index> <data dir> <coordinator> <tls dir or ''> <rounds> <containers>
if (isAgent) void agentMain(Number(process.argv[3]), process.argv[4], process.argv[5], process.argv[6]);
else void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
