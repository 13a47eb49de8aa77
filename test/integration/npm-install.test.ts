/**
 * The npm side of the quick start, with the npm on this machine (README "Quick start"):
 *   - `npx herd ...` prints nothing but herd's own output (no npm config warnings);
 *   - a fresh install keeps onnxruntime-node's postinstall from running (it downloads CUDA
 *     providers from api.nuget.org, outside the registries) through package.json's
 *     `allowScripts` deny entry alone: no .npmrc key, no ONNXRUNTIME_NODE_INSTALL; the
 *     scripts herd needs (esbuild, lmdb, ...) are approved there by name, so npm lists no
 *     unreviewed ones.
 * The child npm processes get an environment without npm_* and ONNXRUNTIME_* variables, as a
 * user's shell has (vitest started by npm would otherwise pass its own down).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/herd';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('herd-npm-');
afterAll(() => tmp.cleanup());

function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|ONNXRUNTIME_)/i.test(k)));
}

function npm(cmd: 'npx' | 'npm', args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, env: userEnv(), timeout: 240_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    ),
  );
}

describe('npm', () => {
  it('npx herd --help and --version print no npm warning', async () => {
    for (const args of [['herd', '--help'], ['herd', '--version']]) {
      const r = await npm('npx', args, ROOT);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
      expect(r.stderr, `npx ${args.join(' ')}`).toBe('');
    }
  });

  it('every dependency install script is reviewed in package.json (allowed, or denied as onnxruntime-node\'s)', async () => {
    const r = await npm('npm', ['approve-scripts', '--allow-scripts-pending'], ROOT);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('No packages with unreviewed install scripts.');
    expect(r.stderr).toBe('');
  });

  it('a fresh install of onnxruntime-node with herd\'s allowScripts does not run its download', async () => {
    const herdPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(herdPkg.allowScripts['onnxruntime-node']).toBe(false);
    const spec = herdPkg.dependencies['onnxruntime-node'];
    writeFileSync(join(tmp.dir, 'package.json'), JSON.stringify({ name: 'ort-probe', version: '1.0.0', private: true, allowScripts: herdPkg.allowScripts }));
    const r = await npm('npm', ['install', `onnxruntime-node@${spec}`, '--prefer-offline', '--foreground-scripts', '--no-audit', '--no-fund'], tmp.dir);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).not.toMatch(/onnxruntime-node@[^\s]+ (pre|post)?install/);
    expect(out).not.toMatch(/nuget/i);
    expect(out).not.toMatch(/npm warn/i);
    // the CPU binding herd loads comes with the package itself
    expect(readFileSync(join(tmp.dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', process.arch, 'onnxruntime_binding.node')).length).toBeGreaterThan(0);
  }, 300_000);
});
