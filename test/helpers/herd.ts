/** Runs the real herd program (dist/herd.cjs, built by the global setup) for integration tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');
export const HERD = join(ROOT, 'dist', 'herd.cjs');
export const PYGRPCURL = join(ROOT, 'test', 'tools', 'pygrpcurl.py');

export function startHerd(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [HERD, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCmd(cmd: string, args: string[], timeoutMs = 30_000, cwd?: string): Promise<CmdResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, cwd }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/**
 * grpcurl-style call through the strict Python reflection client: flags, address, then
 * the verb/method. Without -plaintext or -cacert in the flags it uses TLS with the test
 * cluster's admin certificate (test/helpers/pki.ts).
 */
export async function grpcurl(address: string, verb: string[], flags: string[] = []): Promise<CmdResult> {
  const { testPki } = await import('./pki');
  const tls = flags.includes('-plaintext') || flags.includes('-cacert') ? [] : testPki().adminFlags;
  return runCmd(PYGRPCURL, [...tls, ...flags, address, ...verb]);
}
