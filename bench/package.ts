/**
 * The single executables: sizes; start-up time to a serving agent (gRPC health SERVING) and
 * idle RSS, for x64 natively and for arm64 under qemu-user (emulated: slower than a Pi, and
 * RSS includes qemu). Each run takes, in turn, `node -e 0` (the least any Node program costs
 * to start: the baseline), a first start (a fresh HOME: the executable extracts its native
 * addons and protos before it serves, as on a new machine) and a later start (the same HOME:
 * the extracted files are found by their hash).
 *
 *   node bench/run.mjs package [runs=5] [settleSeconds=20] [arches=x64,arm64]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureExecutables, freePort, waitServing } from '../cross/harness';
import { arm64Command } from '../cross/qemu';
import { report } from './stats';

const runs = Number(process.argv[2] ?? 5);
const settleMs = Number(process.argv[3] ?? 20) * 1000;
const arches = (process.argv[4] ?? 'x64,arm64').split(',');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}, n=${xs.length})`;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function idleRss(child: ChildProcess): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    xs.push(rssMb(child.pid!));
    await new Promise((r) => setTimeout(r, 300));
  }
  return median(xs);
}

interface Cmd { cmd: string; args: string[]; env: NodeJS.ProcessEnv }
const nativeCmd = (exe: string, args: string[], env: NodeJS.ProcessEnv): Cmd => ({ cmd: exe, args, env });

/** Starts an agent, returns ms to serving; the first run of each arch extracts the addons. */
async function startAgent(make: (args: string[], env: NodeJS.ProcessEnv) => Cmd, home: string, dir: string) {
  const port = await freePort();
  const args = ['agent', '--node-id', 'bench', '--data-dir', path.join(dir, 'data'), '--listen', `127.0.0.1:${port}`, '--pmproxy-url', '', '--log-level', 'error'];
  const c = make(args, { PATH: process.env.PATH, HOME: home });
  const t0 = performance.now();
  const child = spawn(c.cmd, c.args, { env: c.env, stdio: ['ignore', 'ignore', 'inherit'] });
  let exited: string | undefined;
  child.on('exit', (code, sig) => (exited = `exited ${code ?? sig}`));
  await waitServing(`127.0.0.1:${port}`, 120_000, 5, () => exited);
  return { ms: performance.now() - t0, child };
}

async function stop(child: ChildProcess) {
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

function nodeZero(): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  return performance.now() - t0;
}

async function bench(name: string, make: (args: string[], env: NodeJS.ProcessEnv) => Cmd, n: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `herd-bench-${name}-`));
  const version: number[] = [];
  const zero: number[] = [];
  const first: number[] = [];
  const starts: number[] = [];
  let last: ChildProcess | undefined;
  for (let i = 0; i < n; i++) {
    const home = path.join(dir, `home${i}`);
    fs.mkdirSync(home);
    zero.push(nodeZero());
    // --version in a HOME of its own, so whatever it extracts cannot help the first start below.
    const versionHome = path.join(dir, `version${i}`);
    fs.mkdirSync(versionHome);
    const c = make(['--version'], { PATH: process.env.PATH, HOME: versionHome });
    const t0 = performance.now();
    const r = spawnSync(c.cmd, c.args, { env: c.env });
    if (r.status !== 0) throw new Error(`${name} --version failed: ${r.stderr}`);
    version.push(performance.now() - t0);
    const f = await startAgent(make, home, path.join(dir, `first${i}`));
    first.push(f.ms);
    await stop(f.child);
    const s = await startAgent(make, home, path.join(dir, `later${i}`));
    starts.push(s.ms);
    if (i < n - 1) await stop(s.child);
    else last = s.child;
  }
  const rss = await idleRss(last!);
  await stop(last!);
  fs.rmSync(dir, { recursive: true, force: true });
  return { version, zero, first, starts, rss };
}

async function main() {
  const exe = await ensureExecutables();
  console.log('\n== sizes');
  for (const a of ['x64', 'arm64'] as const) console.log(`  herd-linux-${a}: ${(fs.statSync(exe[a]).size / 1e6).toFixed(1)} MB (${(fs.statSync(exe[a]).size / 2 ** 20).toFixed(1)} MiB)`);

  if (arches.includes('x64')) {
    const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const [x64, bareRss] = await Promise.all([bench('x64', (args, env) => nativeCmd(exe.x64, args, env), runs), idleRss(bare)]);
    bare.kill();
    console.log(`\n== x64, native (${os.cpus()[0].model}, ${os.cpus().length} cores)`);
    console.log(`  node -e 0:                    ${fmt(x64.zero)}`);
    console.log(`  herd --version:               ${fmt(x64.version)} (${(median(x64.version) / median(x64.zero)).toFixed(2)}x node -e 0)`);
    console.log(`  idle RSS after ${settleMs / 1000} s:          agent ${x64.rss.toFixed(1)} MB, bare idling node ${bareRss.toFixed(1)} MB (${(x64.rss / bareRss).toFixed(2)}x); target <= 90 MB`);
    report({ name: 'start to serving, packaged x64, first start (extracts the native addons)', unit: 'ms', herd: x64.first, baselineName: 'node -e 0', baseline: x64.zero, target: '<= 500 ms' });
    report({ name: 'start to serving, packaged x64, later starts', unit: 'ms', herd: x64.starts, baselineName: 'node -e 0', baseline: x64.zero, target: '<= 500 ms' });
  }

  if (arches.includes('arm64')) {
    const armRuns = Math.max(1, Math.min(runs, 3)); // emulation is slow: fewer runs
    const arm = await bench('arm64', (args, env) => arm64Command(exe.arm64, args, env), armRuns);
    console.log('\n== arm64 under qemu-user 7.2 (emulated on the x64 host: a Pi 4/5 is faster; RSS includes qemu itself)');
    console.log(`  herd --version:               ${fmt(arm.version)}`);
    console.log(`  agent start to serving:       first start (extracting addons) ${fmt(arm.first)}; later starts ${fmt(arm.starts)}`);
    console.log(`  idle RSS after ${settleMs / 1000} s:          ${arm.rss.toFixed(1)} MB (qemu + agent)`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
