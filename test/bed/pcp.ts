/**
 * Real pmcd + pmproxy for integration tests, through their init.d scripts (no systemd here),
 * on loopback only. test/bed/install.sh installs PCP; this file only configures and runs it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PMPROXY_URL = 'http://127.0.0.1:44322';

const BIN_DIRS = ['/usr/lib/pcp/bin', '/usr/libexec/pcp/bin'];
const DEFAULTS: [string, string][] = [
  ['/etc/default/pmcd', 'PMCD_LOCAL'],
  ['/etc/default/pmproxy', 'PMPROXY_LOCAL'],
];

function assertInstalled(): void {
  const missing: string[] = [];
  for (const d of ['pmcd', 'pmproxy']) {
    if (!existsSync(`/etc/init.d/${d}`)) missing.push(`/etc/init.d/${d}`);
    if (!BIN_DIRS.some((b) => existsSync(join(b, d)))) missing.push(d);
  }
  if (missing.length) {
    throw new Error(
      `PCP is not installed (missing: ${missing.join(', ')}). Run test/bed/install.sh as root ` +
        `(it installs the pcp package with a systemctl shim) before the integration tests.`,
    );
  }
}

/** Runs an init.d script; its output goes to a file, as the daemons it starts keep inherited pipes open. */
async function initd(service: 'pmcd' | 'pmproxy', action: 'start' | 'stop' | 'status'): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'herd-pcp-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const p = spawn(`/etc/init.d/${service}`, [action], { stdio: ['ignore', fd, fd] });
      p.on('error', reject);
      p.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    });
    return { code, out: readFileSync(file, 'utf8').trim() };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** KEY=1 in /etc/default/<daemon>; true when the file had to change. */
function ensureLocalOnly(file: string, key: string): boolean {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (new RegExp(`^${key}=1\\s*$`, 'm').test(text)) return false;
  const re = new RegExp(`^${key}=.*$`, 'm');
  writeFileSync(file, re.test(text) ? text.replace(re, `${key}=1`) : `${text}${text.endsWith('\n') || !text ? '' : '\n'}${key}=1\n`);
  return true;
}

async function contextAnswers(url = PMPROXY_URL): Promise<boolean> {
  try {
    const res = await fetch(`${url}/pmapi/context?hostspec=localhost&polltimeout=5`, { signal: AbortSignal.timeout(1000) });
    const body = await res.text();
    return res.status === 200 && /"context":\d+/.test(body);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function pmcdRunning(): Promise<boolean> {
  return (await initd('pmcd', 'status')).code === 0;
}

export async function pcpRunning(): Promise<boolean> {
  return existsSync('/etc/init.d/pmproxy') && (await contextAnswers());
}

async function start(service: 'pmcd' | 'pmproxy'): Promise<void> {
  if ((await initd(service, 'status')).code === 0) return;
  const r = await initd(service, 'start');
  if (r.code !== 0) throw new Error(`/etc/init.d/${service} start failed (exit ${r.code}): ${r.out}`);
}

export async function startPmcd(): Promise<void> {
  assertInstalled();
  await start('pmcd');
}

export async function stopPmcd(): Promise<void> {
  const r = await initd('pmcd', 'stop');
  if (r.code !== 0) throw new Error(`/etc/init.d/pmcd stop failed (exit ${r.code}): ${r.out}`);
}

/**
 * Starts pmcd and pmproxy if they are not running (idempotent) and waits until pmproxy
 * creates a context, i.e. both answer. Throws with a clear message when PCP is missing.
 */
export async function startPcp(timeoutMs = 30_000): Promise<{ url: string }> {
  assertInstalled();
  const changed = DEFAULTS.map(([f, k]) => ensureLocalOnly(f, k));
  // a daemon started before the setting listens on every address: restart it
  if (changed[0] && (await initd('pmcd', 'status')).code === 0) await initd('pmcd', 'stop');
  if (changed[1] && (await initd('pmproxy', 'status')).code === 0) await initd('pmproxy', 'stop');
  await start('pmcd');
  await start('pmproxy');
  const deadline = Date.now() + timeoutMs;
  while (!(await contextAnswers())) {
    if (Date.now() > deadline) {
      const st = [await initd('pmcd', 'status'), await initd('pmproxy', 'status')].map((s) => s.out).join('; ');
      throw new Error(`pmproxy at ${PMPROXY_URL} did not create a context within ${timeoutMs} ms (${st})`);
    }
    await sleep(100);
  }
  return { url: PMPROXY_URL };
}

export async function stopPcp(): Promise<void> {
  if (!existsSync('/etc/init.d/pmproxy')) return;
  await initd('pmproxy', 'stop');
  await initd('pmcd', 'stop');
}
