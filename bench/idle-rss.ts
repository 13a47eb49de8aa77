/**
 * Idle agent RSS: a one-node `herd agent` (the bundled dist/herd.cjs, default sampling
 * rates) after it has settled, against a bare `node` process idling in the same run.
 *
 *   node bench/run.mjs idle-rss [settleSeconds=20]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const settle = Number(process.argv[2] ?? 20) * 1000;
const root = join(__dirname, '..', '..');

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function sampleRss(child: ChildProcess): Promise<{ median: number; max: number }> {
  await new Promise((r) => setTimeout(r, settle));
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    xs.push(rssMb(child.pid!));
    await new Promise((r) => setTimeout(r, 500));
  }
  xs.sort((a, b) => a - b);
  return { median: xs[5], max: xs[9] };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herd-bench-rss-'));
  const agent = spawn(process.execPath, [join(root, 'dist', 'herd.cjs'), 'agent', '--data-dir', dir, '--node-id', 'bench', '--listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const [a, b] = await Promise.all([sampleRss(agent), sampleRss(bare)]);
  agent.kill('SIGTERM');
  bare.kill();
  await new Promise((r) => agent.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  console.log(`idle RSS after ${settle / 1000} s (median of 10 readings, MB):`);
  console.log(`  herd agent (one-node cluster, default rates): ${a.median.toFixed(1)} (max ${a.max.toFixed(1)})`);
  console.log(`  baseline, bare node idling:                   ${b.median.toFixed(1)}`);
  console.log(`  ratio: ${(a.median / b.median).toFixed(2)}x; target <= 80 MB`);
}

void main();
