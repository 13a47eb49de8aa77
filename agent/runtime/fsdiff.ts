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
 * entry by entry (no absolute name, no `..`, nothing written through or replacing a symlink of the
 * archive or of the directory, no hard link leaving it, no device node but overlay whiteouts, only
 * the entry types a diff holds), and the extraction goes into the upper dir only. GNU tar's own
 * refusals (`..`, leading `/`, escaping symlinks made last) stay on as a second line.
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
  else if (entry.type === 'c' || entry.type === 'b') return undefined; // a device always lists "major,minor"

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
/** A CRIU checkpoint holds image files in directories, nothing else. */
export const CHECKPOINT_TYPES = new Set(['-', 'd']);
/** Longest member name or link target accepted (Linux PATH_MAX), and longest component (NAME_MAX). */
export const MAX_NAME_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

export interface TarCheckOptions {
  /** Entry types accepted (listing letters); default: what a file system diff holds. */
  types?: ReadonlySet<string>;
  /**
   * Device nodes accepted: 'whiteout' (scanTar's default) only overlay whiteouts (character
   * device 0,0); 'none' none at all; 'any' (TarEntryValidator's default) no device check. A
   * container's diff layer has no other device nodes (its /dev is a tmpfs); one arriving from a
   * peer would be a host device node planted in the container's file system.
   */
  devices?: 'any' | 'whiteout' | 'none';
  /** Symlinks already present where the archive is extracted (relative names): nothing may be written through them either. */
  existingSymlinks?: Iterable<string>;
}

/**
 * The symlinks met so far, as a tree of path components: checking whether any prefix of a name
 * is one costs one map lookup per component (linear in the name), whatever the number of links.
 */
class SymlinkTree {
  private readonly root: TreeNode = { kids: new Map(), link: false };
  size = 0;

  add(parts: string[]): void {
    let n = this.root;
    for (const p of parts) {
      let k = n.kids.get(p);
      if (!k) n.kids.set(p, (k = { kids: new Map(), link: false }));
      n = k;
    }
    if (!n.link) this.size++;
    n.link = true;
  }

  /** The first proper prefix of parts that is a symlink ('a/b'), or undefined. */
  prefixLink(parts: string[]): string | undefined {
    let n = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const k = n.kids.get(parts[i]);
      if (!k) return undefined;
      if (k.link) return parts.slice(0, i + 1).join('/');
      n = k;
    }
    return undefined;
  }

  has(parts: string[]): boolean {
    let n: TreeNode | undefined = this.root;
    for (const p of parts) if (!(n = n.kids.get(p))) return false;
    return n.link;
  }
}
interface TreeNode { kids: Map<string, TreeNode>; link: boolean }

const parts = (normalized: string) => (normalized === '' ? [] : normalized.split('/'));

/**
 * Checks tar entries in archive order against escaping the directory they are extracted into.
 * Symlinks may point anywhere (a container's `/bin/sh -> /bin/busybox` is absolute), but nothing
 * may later be written through one. It keeps the names of symlinks only, not of every entry.
 * A hard link to a symlink is a symlink too (link(2) does not follow it), and is tracked as one.
 */
export class TarEntryValidator {
  private readonly symlinks = new SymlinkTree();
  private readonly types: ReadonlySet<string>;
  private readonly devices: 'any' | 'whiteout' | 'none';
  count = 0;

  constructor(opts: TarCheckOptions = {}) {
    this.types = opts.types ?? ALLOWED_TYPES;
    this.devices = opts.devices ?? 'any';
    for (const s of opts.existingSymlinks ?? []) this.symlinks.add(parts(normalizeMember(s)));
  }

  /** Why this entry is unsafe, or undefined. */
  check(e: TarEntry): string | undefined {
    this.count++;
    if (!this.types.has(e.type)) return `entry type '${e.type}' (${TYPE_NAMES[e.type] ?? 'unknown'}) is not allowed here`;
    const bad = this.badPath(e.name, 'name');
    if (bad) return bad;
    const name = normalizeMember(e.name);
    if (name === '' && e.type !== 'd') return 'the archive root is not a directory';
    if (this.symlinks.has(parts(name))) return `replaces the symlink ${name} declared earlier in the archive (or already in the directory)`;
    if ((e.type === 'c' || e.type === 'b') && this.devices !== 'any') {
      if (this.devices === 'none') return `device node (${e.type === 'c' ? 'character' : 'block'} ${e.device ?? '?'}) is not allowed here`;
      if (e.type !== 'c' || e.device !== '0,0') {
        return `device node (${e.type === 'c' ? 'character' : 'block'} ${e.device ?? '?'}): only overlay whiteouts (character 0,0) are accepted`;
      }
    }
    if (e.type === 'h') {
      if (!e.link) return 'hard link without a target';
      const badLink = this.badPath(e.link, 'hard link target');
      if (badLink) return badLink;
      const target = normalizeMember(e.link);
      if (target === '') return 'hard link to the archive root';
      if (this.symlinks.has(parts(target))) this.symlinks.add(parts(name)); // a second name for the same symlink
    }
    if (e.type === 'l') {
      if (e.link === undefined) return 'symlink without a target';
      if (Buffer.byteLength(e.link) > MAX_NAME_BYTES) return `symlink target is longer than ${MAX_NAME_BYTES} bytes`;
      this.symlinks.add(parts(name));
    }
    return undefined;
  }

  private badPath(raw: string, what: string): string | undefined {
    if (Buffer.byteLength(raw) > MAX_NAME_BYTES) return `${what} is longer than ${MAX_NAME_BYTES} bytes`;
    if (raw.startsWith('/')) return `absolute ${what}`;
    const parts = raw.split('/');
    if (parts.includes('..')) return `${what} contains '..'`;
    const norm = normalizeMember(raw).split('/');
    if (norm.some((p) => Buffer.byteLength(p) > MAX_COMPONENT_BYTES)) return `${what} has a component longer than ${MAX_COMPONENT_BYTES} bytes`;
    if (this.symlinks.size === 0) return undefined;
    const link = this.symlinks.prefixLink(norm);
    if (link !== undefined) return `${what} goes through the symlink ${link} declared earlier in the archive (or already in the directory)`;
    return undefined;
  }
}

const TYPE_NAMES: Record<string, string> = {
  '-': 'regular file', d: 'directory', l: 'symlink', h: 'hard link', c: 'character device', b: 'block device', p: 'fifo',
  C: 'contiguous file', V: 'volume label', M: 'multi-volume continuation', D: 'dump directory', N: 'old GNU long name', s: 'socket',
};

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
 * first offending entry. Returns the number of entries. The default options are the diff
 * layer's; a checkpoint passes `{ types: CHECKPOINT_TYPES, devices: 'none' }`.
 */
export async function scanTar(tarPath: string, opts: TarCheckOptions = {}): Promise<number> {
  const v = new TarEntryValidator({ ...opts, devices: opts.devices ?? 'whiteout' });
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

/** Relative names of the symlinks below dir (not followed), for TarCheckOptions.existingSymlinks. */
export function symlinksUnder(dir: string): string[] {
  const out: string[] = [];
  const todo = [''];
  while (todo.length) {
    const rel = todo.pop()!;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(rel ? `${dir}/${rel}` : dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const d of ents) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isSymbolicLink()) out.push(r);
      else if (d.isDirectory()) todo.push(r);
    }
  }
  return out;
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
  // A new container's upper dir is empty; if not, its symlinks are as dangerous as the archive's.
  await scanTar(srcTarPath, { existingSymlinks: symlinksUnder(upperDir) });
  const r = await runTar(['-C', upperDir, '-x', ...XATTRS, '--numeric-owner', '-p', '--same-owner', '-f', srcTarPath]);
  if (r.code !== 0) {
    throw new RuntimeError(`cannot extract ${srcTarPath} into ${upperDir}: ${r.stderr || `tar exited ${r.code}`}`, 'INTERNAL', r.stderr);
  }
  return { bytes: sizeOf(srcTarPath), ms: Date.now() - t0 };
}
