/**
 * CRIU as the node sees it: the capability check behind the "criu" node capability, and CRIU's
 * own log of a failed dump or restore. Docker only ever says "criu failed: type NOTIFY errno 0";
 * the reason is in CRIU's log, which Docker names for a dump and containerd deletes for a restore.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dockerMessage, toRuntimeError } from './engine';
import { CriuError, type CriuCapability, type RuntimeError } from './runtime';

// ------------------------------------------------------------------ capability

/** "Version: 4.2.1" (criu --version) -> "4.2.1". */
export function parseCriuVersion(out: string): string {
  return /Version:\s*(\d+(?:\.\d+)*)/.exec(out)?.[1] ?? '';
}

function versionAtLeast(v: string, min: number[]): boolean {
  const p = v.split('.').map(Number);
  for (let i = 0; i < min.length; i++) {
    const a = p[i] ?? 0;
    if (a !== min[i]) return a > min[i];
  }
  return true;
}

/**
 * The verdict from what the commands said. `criu check` passing is not enough: CRIU < 4.2 passes
 * it on kernels >= 6.16 yet cannot dump any process owning an inet socket ("Can't get 1:16 opt").
 */
export function criuVerdict(r: { path: string; version: string; checkCode: number; checkOutput: string; kernel: string }): CriuCapability {
  const base = { version: r.version, path: r.path };
  if (!r.path) return { ...base, ok: false, message: 'criu is not in PATH (runc runs `criu` from the PATH dockerd was started with)' };
  const out = r.checkOutput.trim();
  if (r.checkCode !== 0) {
    const why = out.split('\n').filter((l) => /error|fail|not/i.test(l)).slice(-3).join('; ') || out.split('\n').slice(-3).join('; ');
    return { ...base, ok: false, message: `criu check failed (exit ${r.checkCode}): ${why || 'no output'}` };
  }
  const [maj = 0, min = 0] = r.kernel.split(/[.-]/).map(Number);
  if ((maj > 6 || (maj === 6 && min >= 16)) && !versionAtLeast(r.version, [4, 2])) {
    return { ...base, ok: false, message: `CRIU ${r.version || '(unknown version)'} cannot dump processes owning inet sockets on kernel ${r.kernel} (>= 6.16): CRIU 4.2 or newer is needed` };
  }
  return { ...base, ok: true, message: /Looks good/.test(out) ? 'Looks good.' : out.split('\n').pop() || 'criu check passed' };
}

/** The executable PATH resolves `name` to, '' if none. */
export function whichSync(name: string, envPath = process.env.PATH ?? ''): string {
  for (const dir of envPath.split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch { /* next */ }
  }
  return '';
}

function runCmd(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
      const code = !e ? 0 : typeof e.code === 'number' ? e.code : -1;
      const extra = e?.killed ? `\n(killed after ${timeoutMs} ms)` : e && typeof e.code === 'string' ? `\n${e.message}` : '';
      resolve({ code, out: `${stdout}${stderr}${extra}` });
    });
  });
}

/** statfs(2) f_type of a tmpfs. */
export const TMPFS_MAGIC = 0x01021994;

/**
 * Whether CRIU can keep its kernel probe between runs: it writes /run/criu.kdat only when
 * /run is a tmpfs (systemd hosts); otherwise every dump and restore probes the kernel
 * again (15-20 ms each on the dev VM). `herd doctor` reports the same as `criu-cache`.
 */
export function criuKdatCacheable(runDir = '/run'): boolean {
  try {
    return fs.statfsSync(runDir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** `criu --version` and `criu check` through PATH. Never throws. */
export async function criuCheck(timeoutMs = 30_000): Promise<CriuCapability> {
  const bin = whichSync('criu');
  if (!bin) return criuVerdict({ path: '', version: '', checkCode: -1, checkOutput: '', kernel: os.release() });
  const [ver, check] = await Promise.all([runCmd(bin, ['--version'], timeoutMs), runCmd(bin, ['check'], timeoutMs)]);
  return criuVerdict({ path: bin, version: parseCriuVersion(ver.out), checkCode: check.code, checkOutput: check.out, kernel: os.release() });
}

// ------------------------------------------------------------------ logs

const ERROR_LINE = /\bError \([^)]*\):/;
const PREFIX = /^\(\s*[\d.]+\)\s+(?:\d+:\s+)?Error \([^)]*\):\s*/;
/** Error lines CRIU prints on every run here, or after the real failure: not the reason. */
const NOISE = [/Can't setup RLIMIT_NOFILE for self/, /cgroupd: recv req error/];

/** CRIU's `Error (file:line):` lines of a log text, verbatim. */
export function criuErrorLines(log: string): string[] {
  return log.split('\n').filter((l) => ERROR_LINE.test(l)).map((l) => l.trimEnd());
}

/** The reasons among the error lines, without CRIU's prefix and without the known noise. */
export function criuReasons(lines: string[], max = 6): string[] {
  const reasons = lines.filter((l) => !NOISE.some((n) => n.test(l))).map((l) => l.replace(PREFIX, '').trim());
  return [...new Set(reasons)].slice(0, max);
}

/**
 * The log Docker's error names: "criu failed: type NOTIFY errno 0 path= /.../criu-dump.log" (dump)
 * or "... log file: /.../work/restore.log" (restore, already deleted by then).
 */
export function criuLogPathFromMessage(msg: string): string | undefined {
  return /(?:path=|log file:)\s*(\/\S+?\.log)\b/.exec(msg)?.[1];
}

/**
 * `log-file` of runc's CRIU config (/etc/criu/runc.conf): when set, CRIU writes every runc-driven
 * dump and restore there instead of the path Docker names. Only an absolute path is usable.
 */
export function runcConfLogFile(conf = '/etc/criu/runc.conf'): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(conf, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*(?:--)?log-file(?:\s+|\s*=\s*)["']?(\/[^"'\s]+)/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Adds an option line to runc's CRIU config for one operation, and gives back the undo. runc
 * passes no tcp-established to CRIU at restore (containerd 1.6's shim has no such option), but
 * runc hands CRIU this file on every dump and restore; CRIU operations are serialized per engine
 * (invariant 5), so a line there for the length of one restore applies to that restore. On a
 * host where several engines share /etc (the test bed), a concurrent restore of another engine
 * sees it too: for tcp-established that only permits restoring connections it would refuse.
 */
export function withRuncConfOption(option: string, conf = '/etc/criu/runc.conf'): () => void {
  let before: string | undefined;
  try {
    before = fs.readFileSync(conf, 'utf8');
  } catch {
    before = undefined;
  }
  if (before?.split('\n').some((l) => l.trim() === option || l.trim() === `--${option}`)) return () => undefined;
  fs.mkdirSync(path.dirname(conf), { recursive: true });
  fs.writeFileSync(conf, `${before ?? ''}${before && !before.endsWith('\n') ? '\n' : ''}${option}\n`);
  return () => {
    if (before === undefined) fs.rmSync(conf, { force: true });
    else fs.writeFileSync(conf, before);
  };
}

/**
 * Reads a CRIU log from an open fd (the file may be unlinked already) in chunks: its error lines,
 * and optionally a copy of the whole log to keepPath. Logs of big processes run to megabytes.
 */
export function readCriuLogFd(fd: number, keepPath?: string): { lines: string[]; kept?: string } {
  const lines: string[] = [];
  const buf = Buffer.alloc(64 << 10);
  let keepFd: number | undefined;
  let kept: string | undefined;
  try {
    if (keepPath) {
      fs.mkdirSync(path.dirname(keepPath), { recursive: true });
      keepFd = fs.openSync(keepPath, 'w');
      kept = keepPath;
    }
  } catch { kept = undefined; }
  let pos = 0;
  let rest = '';
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      if (keepFd !== undefined) fs.writeSync(keepFd, buf, 0, n);
      const text = rest + buf.subarray(0, n).toString('latin1');
      const cut = text.lastIndexOf('\n');
      lines.push(...criuErrorLines(text.slice(0, cut + 1)));
      rest = text.slice(cut + 1);
    }
    lines.push(...criuErrorLines(rest));
  } finally {
    if (keepFd !== undefined) fs.closeSync(keepFd);
  }
  return { lines, kept };
}

/** Error lines of a CRIU log file that still exists (a failed dump's), or undefined. */
export function readCriuLog(file: string, keepPath?: string): { lines: string[]; kept?: string } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return readCriuLogFd(fd, keepPath);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Holds CRIU's restore log open from the moment it appears: containerd deletes the bundle (and
 * the log with it) as soon as the restore fails, but an open fd still reads the unlinked file.
 * Polls, because the directory itself does not exist before the restore starts.
 */
export class LogCatcher {
  private fd: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string, everyMs = 5) {
    this.tryOpen();
    if (this.fd === undefined) this.timer = setInterval(() => this.tryOpen(), everyMs);
  }

  private tryOpen(): void {
    if (this.fd !== undefined) return;
    try {
      this.fd = fs.openSync(this.file, 'r');
      if (this.timer) clearInterval(this.timer);
    } catch { /* not there yet */ }
  }

  /** Stops watching; the log's error lines if it was caught, else undefined. */
  finish(keepPath?: string): { lines: string[]; kept?: string } | undefined {
    if (this.timer) clearInterval(this.timer);
    this.tryOpen(); // a log that appeared after the last tick (the restore failed slowly) is still there
    if (this.fd === undefined) return undefined;
    try {
      return readCriuLogFd(this.fd, keepPath);
    } finally {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  /** Stops watching without reading (a restore that succeeded). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Where a failed operation's whole CRIU log is kept (undefined: not kept). */
export function keptLogPath(keepLogsDir: string | undefined, id: string, op: string): string | undefined {
  if (!keepLogsDir) return undefined;
  return path.join(keepLogsDir, `${id.slice(0, 12)}-${op}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
}

/** A CriuError with CRIU's own error lines when its log can be read, else a RuntimeError. */
export function criuFailure(op: 'checkpoint' | 'restore', id: string, err: unknown, ms: number, keepLogsDir?: string, caught?: { lines: string[]; kept?: string }): RuntimeError {
  const msg = dockerMessage(err);
  if (!caught && op === 'checkpoint') {
    const file = criuLogPathFromMessage(msg);
    caught = file ? readCriuLog(file, keptLogPath(keepLogsDir, id, op)) : undefined;
  }
  if (!caught?.lines.length) {
    const conf = runcConfLogFile(); // a node that redirected CRIU's logs (docs/runtime.md)
    if (conf) caught = readCriuLog(conf, keptLogPath(keepLogsDir, id, op)) ?? caught;
  }
  const what = `${op} of ${id.slice(0, 12)} failed after ${ms} ms`;
  if (!caught || caught.lines.length === 0) return toRuntimeError(err, what, { 500: 'FAILED_PRECONDITION' });
  const reasons = criuReasons(caught.lines);
  return new CriuError(`${what}: CRIU: ${reasons.join('; ') || caught.lines[caught.lines.length - 1]}`, op, caught.lines, caught.kept, msg);
}
