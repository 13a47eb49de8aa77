// The bed's processes: commands run in a node's network namespace, each with a pid record
// (pid + start time) in <node dir>/pids, so a later run or stopBed() can kill exactly what a
// crashed run left behind and never a process that reused its pid. Split out of bed.ts.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BedNode, BedProcess, ExecResult, SpawnOptions } from './bed';

// runc execs `criu` from PATH (dockerd -> containerd -> shim): the 4.2 wrapper must come first.
export const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PidRecord { pid: number; start: string; cmd: string; group: boolean }

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: string | null; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : -1;
        const why = e.killed ? `\n(killed after ${opts.timeoutMs ?? 60_000} ms)` : typeof e.code === 'string' ? `\n${e.message}` : '';
        resolve({ code, stdout, stderr: stderr + why, signal: e.signal ?? undefined });
      });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(ok: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await ok()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}

/** Start time (clock ticks since boot) of a live, non-zombie pid: with the pid it names one process. */
export function procStart(pid: number): string | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? null : f[19];
  } catch {
    return null;
  }
}
export const alive = (r: PidRecord) => procStart(r.pid) === r.start;
export function signal(pid: number, sig: NodeJS.Signals) {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

export async function killRecord(r: PidRecord, timeoutMs: number): Promise<void> {
  const cur = procStart(r.pid);
  if (cur !== null && cur !== r.start) return; // the pid now belongs to someone else
  // Without its leader a group id cannot be reused while members live, so -pid is still ours.
  const target = r.group ? -r.pid : r.pid;
  signal(target, 'SIGTERM');
  await until(() => !alive(r), timeoutMs);
  if (r.group || alive(r)) signal(target, 'SIGKILL');
  await until(() => !alive(r), 2000);
}

export function readRecords(dir: string): Map<string, PidRecord> {
  const out = new Map<string, PidRecord>();
  const pids = path.join(dir, 'pids');
  for (const f of fs.existsSync(pids) ? fs.readdirSync(pids) : []) {
    try { out.set(f.replace(/\.json$/, ''), JSON.parse(fs.readFileSync(path.join(pids, f), 'utf8')) as PidRecord); } catch { /* torn write */ }
  }
  return out;
}

/** Starts cmd in node.netns with a pid record in node.dir/pids (stopBed kills it); also test/bed/vm.ts. */
export function spawnIn(node: BedNode, name: string, cmd: string, args: string[], group: boolean, opts: SpawnOptions): BedProcess {
  const pidFile = path.join(node.dir, 'pids', `${name}.json`);
  const old = readRecords(node.dir).get(name);
  if (old && alive(old)) throw new Error(`${node.id}: a process named ${name} (pid ${old.pid}) is still running`);
  fs.mkdirSync(path.dirname(pidFile), { recursive: true });
  const logFile = path.join(node.dir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  // HERD_BED_RAW_PATH=1 keeps the given PATH as it is (a test of a node without criu on its PATH)
  if (!env.HERD_BED_RAW_PATH) env.PATH = `/usr/local/sbin:${env.PATH ?? SBIN_PATH}`;
  if (node.dockerSock) env.DOCKER_HOST = `unix://${node.dockerSock}`;
  // nsenter --net keeps the host's mount namespace (ip netns exec would not: it remounts /sys in a
  // private one, hiding the node's docker mounts) and execs, so the pid is the command's own.
  // detached: its own session and process group, so stop() can signal the whole group.
  const child = spawn('nsenter', [`--net=/run/netns/${node.netns}`, '--', cmd, ...args],
    { detached: true, stdio: ['ignore', fd, fd], env, cwd: opts.cwd });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`${node.id}: cannot spawn ${cmd}`);
  const rec: PidRecord = { pid: child.pid, start: procStart(child.pid) ?? '', cmd: [cmd, ...args].join(' '), group };
  fs.writeFileSync(pidFile, JSON.stringify(rec));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => { fs.appendFileSync(logFile, `\n[bed] spawn error: ${e.message}\n`); resolve({ code: -1, signal: null }); });
    child.on('exit', (code, sig) => resolve({ code, signal: sig }));
  });
  return {
    node: node.id, name, pid: child.pid, child, logFile, exited,
    stop: (timeoutMs = 5000) => killRecord(rec, timeoutMs),
    log: () => fs.readFileSync(logFile, 'utf8'),
  };
}
