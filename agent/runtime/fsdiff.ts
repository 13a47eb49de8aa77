/**
 * The file system part of a migration, with GNU tar (on every Debian and Pi OS):
 * - diff layer: the container's overlay upper dir, kept as overlay stores it: whiteouts (char 0:0
 *   devices), opaque directories (`trusted.overlay.opaque` xattr), owners as numbers, modes;
 * - whole file system: a `docker export` tar, extracted into the new container's upper dir, which
 *   makes every file an upper file (the lower layers then only matter for what was not exported).
 * Artifacts stream between tar and disk; nothing is held in memory.
 *
 * An imported tar comes from another node, so it is treated as hostile: before extracting, tar's
 * own listing of it (`tar -tv`, so the check sees names exactly as the extraction will) is checked
 * entry by entry, and the extraction goes into the upper dir only. GNU tar's own refusals (`..`,
 * leading `/`, writing through a symlink) stay on as a second line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { RuntimeError, UnsafeArchiveError, type TransferResult } from './runtime';

const TAR = 'tar';
// All xattrs (trusted.overlay.opaque and friends, security.*, user.*), except the overlay ones that
// name this node's inodes or overlay instance: a lower inode's file handle (origin, and impure,
// which only says children have one), hard link and index bookkeeping, the upper root's uuid.
// Carried to another node they are stale at best; they are dropped on import as well.
export const OVERLAY_LOCAL_XATTRS = ['origin', 'impure', 'nlink', 'uuid', 'upper'];
const XATTRS = ['--xattrs', '--xattrs-include=*', ...OVERLAY_LOCAL_XATTRS.map((x) => `--xattrs-exclude=*.overlay.${x}`)];
// C locale: stable listing format; names are C-quoted, so a name can hold neither a fake line nor a fake "->".
const TAR_ENV = { ...process.env, LC_ALL: 'C', TZ: 'UTC' };

export interface TarEntry {
  /** '-' file, 'd' dir, 'l' symlink, 'h' hard link, 'c'/'b' devices, 'p' fifo, ... */
  type: string;
  name: string;
  /** symlink or hard link target */
  link?: string;
  uid: number;
  gid: number;
  /** "major,minor" for devices */
  device?: string;
}

/** Decodes a --quoting-style=c string body (without its quotes). */
export function decodeCQuoted(s: string): string {
  const bytes: number[] = [];
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '\\') {
      bytes.push(...Buffer.from(ch, 'utf8'));
      continue;
    }
    const nx = s[++i] ?? '';
    const oct = /^[0-7]{1,3}/.exec(s.slice(i))?.[0];
    if (oct) {
      bytes.push(parseInt(oct, 8) & 0xff);
      i += oct.length - 1;
    } else if (nx in simple) bytes.push(simple[nx]);
    else bytes.push(...Buffer.from(nx, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Reads one C-quoted string starting at s[at] === '"'; returns it and the index after its closing quote. */
function readQuoted(s: string, at: number): [string, number] | undefined {
  if (s[at] !== '"') return undefined;
  let i = at + 1;
  while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
  if (i >= s.length) return undefined;
  return [decodeCQuoted(s.slice(at + 1, i)), i + 1];
}

/** One line of `LC_ALL=C tar -tv --quoting-style=c --numeric-owner`, or undefined if it is not one. */
export function parseTarListLine(line: string): TarEntry | undefined {
  const q = line.indexOf('"');
  if (q < 0) return undefined;
  const head = line.slice(0, q).trim().split(/\s+/);
  if (head.length < 3) return undefined;
  const [mode, owner, size] = head;
  const ids = /^(\d+)\/(\d+)$/.exec(owner);
  if (!ids || mode.length < 10) return undefined;
  const name = readQuoted(line, q);
  if (!name) return undefined;
  const entry: TarEntry = { type: mode[0], name: name[0], uid: Number(ids[1]), gid: Number(ids[2]) };
  if (/^\d+,\d+$/.test(size)) entry.device = size;
  const tailStr = line.slice(name[1]);
  const m = /^ (->|link to) /.exec(tailStr);
  if (m) {
    const link = readQuoted(tailStr, m[0].length);
    if (!link) return undefined;
    entry.link = link[0];
  } else if (tailStr.trim() !== '') return undefined;
  return entry;
}

/** "./a//b/" -> "a/b"; the archive root is "". */
export function normalizeMember(name: string): string {
  return name.split('/').filter((p) => p !== '' && p !== '.').join('/');
}

const ALLOWED_TYPES = new Set(['-', 'd', 'l', 'h', 'c', 'b', 'p']);

/**
 * Checks tar entries in archive order against escaping the directory they are extracted into.
 * Symlinks may point anywhere (a container's `/bin/sh -> /bin/busybox` is absolute), but nothing
 * may later be written through one. It keeps the names of symlinks only, not of every entry.
 */
export class TarEntryValidator {
  private readonly symlinks = new Set<string>();
  count = 0;

  /** Why this entry is unsafe, or undefined. */
  check(e: TarEntry): string | undefined {
    this.count++;
    if (!ALLOWED_TYPES.has(e.type)) return `entry type '${e.type}' is not allowed in a file system diff`;
    const bad = this.badPath(e.name, 'name');
    if (bad) return bad;
    const name = normalizeMember(e.name);
    if (name === '' && e.type !== 'd') return 'the archive root is not a directory';
    if (this.symlinks.has(name)) return `replaces the symlink ${name} declared earlier in the archive`;
    if (e.type === 'h') {
      if (!e.link) return 'hard link without a target';
      const badLink = this.badPath(e.link, 'hard link target');
      if (badLink) return badLink;
    }
    if (e.type === 'l') {
      if (e.link === undefined) return 'symlink without a target';
      this.symlinks.add(name);
    }
    return undefined;
  }

  private badPath(raw: string, what: string): string | undefined {
    if (raw.startsWith('/')) return `absolute ${what}`;
    const parts = raw.split('/');
    if (parts.includes('..')) return `${what} contains '..'`;
    const norm = normalizeMember(raw).split('/');
    for (let i = 1; i < norm.length; i++) {
      const prefix = norm.slice(0, i).join('/');
      if (this.symlinks.has(prefix)) return `${what} goes through the symlink ${prefix} declared earlier in the archive`;
    }
    return undefined;
  }
}

interface TarRun { code: number; stderr: string }

/** Runs tar; stdout goes to onLine (listing) or is discarded. stderr is kept (bounded) for the error. */
function runTar(args: string[], onLine?: (line: string) => boolean): Promise<TarRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(TAR, args, { env: TAR_ENV, stdio: ['ignore', onLine ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 16_384) stderr += d.toString(); });
    if (onLine && child.stdout) {
      const rl = readline.createInterface({ input: child.stdout, crlfDelay: Infinity });
      rl.on('line', (line) => { if (!onLine(line)) { rl.close(); child.kill('SIGKILL'); } });
    }
    child.on('error', (e) => reject(new RuntimeError(`cannot run tar: ${e.message}`, 'UNAVAILABLE')));
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : -1), stderr: stderr.trim() }));
  });
}

/**
 * Checks every entry of a tar file before it is extracted; throws UnsafeArchiveError naming the
 * first offending entry. Returns the number of entries.
 */
export async function scanTar(tarPath: string): Promise<number> {
  const v = new TarEntryValidator();
  let unsafe: UnsafeArchiveError | undefined;
  const r = await runTar(['-tv', '--quoting-style=c', '--numeric-owner', '-f', tarPath], (line) => {
    if (unsafe) return false; // lines already buffered after the first bad one
    const e = parseTarListLine(line);
    if (!e) unsafe = new UnsafeArchiveError(`${tarPath}: cannot parse tar listing line ${JSON.stringify(line.slice(0, 200))}`, line);
    else {
      const why = v.check(e);
      if (why) unsafe = new UnsafeArchiveError(`${tarPath}: unsafe entry ${JSON.stringify(e.name)}: ${why}; nothing was extracted`, e.name);
    }
    return !unsafe;
  });
  if (unsafe) throw unsafe;
  // tar rewrites some names silently in its listing (hard link targets lose their leading '/')
  const rewrite = /Removing leading [^\n]*/.exec(r.stderr);
  if (rewrite) throw new UnsafeArchiveError(`${tarPath}: unsafe archive: tar says "${rewrite[0]}"; nothing was extracted`, rewrite[0]);
  if (r.code !== 0) throw new RuntimeError(`${tarPath} is not a readable tar archive: ${r.stderr || `tar exited ${r.code}`}`, 'INVALID_ARGUMENT', r.stderr);
  return v.count;
}

function sizeOf(p: string): number {
  try { return fs.statSync(p).size; } catch { return 0; }
}

function mustBeDir(dir: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch {
    throw new RuntimeError(`${what} ${dir} does not exist`, 'NOT_FOUND');
  }
  if (!st.isDirectory()) throw new RuntimeError(`${what} ${dir} is not a directory`, 'INVALID_ARGUMENT');
}

/** The upper dir to a tar file. Run it while the container is stopped (after the checkpoint). */
export async function exportUpperDir(upperDir: string, destTarPath: string): Promise<TransferResult> {
  const t0 = Date.now();
  mustBeDir(upperDir, 'upper dir');
  const r = await runTar(['-C', upperDir, ...XATTRS, '--numeric-owner', '-cf', destTarPath, '.']);
  if (r.code !== 0) {
    fs.rmSync(destTarPath, { force: true });
    throw new RuntimeError(`cannot archive upper dir ${upperDir}: ${r.stderr || `tar exited ${r.code}`}`, 'INTERNAL', r.stderr);
  }
  return { bytes: sizeOf(destTarPath), ms: Date.now() - t0 };
}

/**
 * Extracts a checked tar into an upper dir (of a created, never started container), keeping
 * owners, modes, xattrs and device nodes. Used for the diff layer and for a `docker export` tar.
 */
export async function importUpperDir(srcTarPath: string, upperDir: string): Promise<TransferResult> {
  const t0 = Date.now();
  mustBeDir(upperDir, 'upper dir');
  if (!fs.existsSync(srcTarPath)) throw new RuntimeError(`archive ${srcTarPath} does not exist`, 'NOT_FOUND');
  await scanTar(srcTarPath);
  const r = await runTar(['-C', upperDir, '-x', ...XATTRS, '--numeric-owner', '-p', '--same-owner', '-f', srcTarPath]);
  if (r.code !== 0) {
    throw new RuntimeError(`cannot extract ${srcTarPath} into ${upperDir}: ${r.stderr || `tar exited ${r.code}`}`, 'INTERNAL', r.stderr);
  }
  return { bytes: sizeOf(srcTarPath), ms: Date.now() - t0 };
}
