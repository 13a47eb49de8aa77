/**
 * Files the single executable carries (native addons, .proto files) and must put on disk:
 * a shared object can only be dlopen()ed from a real file, and proto-loader reads files.
 * Each group of files is extracted once into a private cache directory, under a name
 * keyed by the hash of its contents, through a temporary directory renamed into place,
 * so a crash or a concurrent start never leaves a half-written addon that later loads.
 * Outside the executable (a checkout, the tests) nothing here is used.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export interface ManifestFile { asset: string; sha256: string; size: number; encoding: 'br' | 'gz' | 'raw'; mode: number }
export interface ManifestGroup { key: string; files: Record<string, ManifestFile> }
/** Written by build/sea.mjs as the SEA asset `manifest.json`. */
export interface Manifest { version: string; platform: string; arch: string; groups: Record<string, ManifestGroup> }

/** A problem of this installation (not of a request): says what is wrong and how to fix it. */
export class InstallError extends Error {
  /** EX_CONFIG: herd.service's RestartPreventExitStatus stops systemd from restarting into it. */
  readonly exitCode = 78;
}

type SeaApi = { isSea(): boolean; getRawAsset(key: string): ArrayBuffer };
let seaApi: SeaApi | null | undefined;
function sea(): SeaApi | null {
  if (seaApi === undefined) {
    try {
      // getBuiltinModule: works in the CJS bundle and in the tests' ESM alike (no require there)
      const s = process.getBuiltinModule?.('node:sea') as SeaApi | undefined;
      seaApi = s?.isSea() ? s : null;
    } catch {
      seaApi = null;
    }
  }
  return seaApi;
}

/** True inside the single executable built by build/sea.mjs. */
export const isSea = (): boolean => sea() !== null;

/**
 * Where extracted files live. HERD_CACHE_DIR, when set, is the only candidate (an explicit
 * choice must not silently move elsewhere); otherwise systemd's CacheDirectory=, the XDG
 * cache, then the temp dir. A candidate that cannot be created or written is passed over;
 * one owned by someone else, or writable by others, is refused outright: someone could have
 * planted a library there for this process to load.
 */
export function cacheCandidates(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string[] {
  if (env.HERD_CACHE_DIR) return [path.resolve(env.HERD_CACHE_DIR)];
  const out: string[] = [];
  if (env.CACHE_DIRECTORY) out.push(path.resolve(env.CACHE_DIRECTORY.split(':')[0]));
  const home = env.HOME || safeHomedir();
  if (env.XDG_CACHE_HOME) out.push(path.join(path.resolve(env.XDG_CACHE_HOME), 'herd'));
  else if (home) out.push(path.join(path.resolve(home), '.cache', 'herd'));
  out.push(path.join(env.TMPDIR || os.tmpdir(), `herd-${uid}`));
  return out;
}

function safeHomedir(): string | undefined {
  try {
    return os.homedir();
  } catch {
    return undefined;
  }
}

// fs.mkdirSync(p, { recursive: true }) can spin forever on some paths (under /proc): one level at a time.
function mkdirLevels(dir: string, mode: number): void {
  const parts = dir.split(path.sep);
  for (let i = 2; i <= parts.length; i++) {
    try {
      fs.mkdirSync(parts.slice(0, i).join(path.sep), { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

const errText = (e: unknown) => ((e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}` : String(e));

/** Checks that dir is ours alone; throws InstallError if not. */
export function checkPrivateDir(dir: string, uid: number, lst?: fs.Stats): void {
  const st = lst ?? fs.lstatSync(dir);
  const fix = `remove it (or set HERD_CACHE_DIR to a directory of this user, mode 0700)`;
  if (st.isSymbolicLink()) throw new InstallError(`the cache directory ${dir} is a symbolic link; herd only loads its native code from a real directory of its own: ${fix}`);
  if (!st.isDirectory()) throw new InstallError(`the cache directory ${dir} is not a directory: ${fix}`);
  if (st.uid !== uid) throw new InstallError(`the cache directory ${dir} is owned by uid ${st.uid}, not by this user (uid ${uid}); herd will not load native code from it: ${fix}`);
  if (st.mode & 0o022) throw new InstallError(`the cache directory ${dir} is writable by other users (mode ${(st.mode & 0o777).toString(8)}); herd will not load native code from it: chmod 700 ${dir}, or ${fix}`);
}

export function chooseCacheDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  const tried: string[] = [];
  for (const dir of cacheCandidates(env, uid)) {
    try {
      mkdirLevels(dir, 0o700);
      checkPrivateDir(dir, uid);
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
      return dir;
    } catch (e) {
      if (e instanceof InstallError) throw e;
      tried.push(`${dir} (${errText(e)})`);
    }
  }
  throw new InstallError(`no usable cache directory for the native files herd carries; tried ${tried.join(', ')}. Set HERD_CACHE_DIR to a writable directory of this user (under systemd: CacheDirectory=herd)`);
}

function decode(raw: Uint8Array, encoding: ManifestFile['encoding']): Buffer {
  if (encoding === 'br') return zlib.brotliDecompressSync(raw);
  if (encoding === 'gz') return zlib.gunzipSync(raw);
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

export interface ExtractorOptions {
  manifest: Manifest;
  /** The bytes of an asset, as stored (compressed). */
  read: (asset: string) => Uint8Array;
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

export class Extractor {
  private base?: string;
  private readonly done = new Map<string, string>();
  constructor(private readonly o: ExtractorOptions) {}

  cacheDir(): string {
    return (this.base ??= chooseCacheDir(this.o.env, this.o.uid ?? process.getuid?.() ?? 0));
  }

  /** The directory holding a group's files, extracting them first if needed. */
  group(name: string): string {
    const known = this.done.get(name);
    if (known) return known;
    const g = this.o.manifest.groups[name];
    if (!g) throw new Error(`this herd executable carries no "${name}" files`);
    const uid = this.o.uid ?? process.getuid?.() ?? 0;
    const base = this.cacheDir();
    const dir = path.join(base, `${name}-${this.o.manifest.platform}-${this.o.manifest.arch}-${g.key}`);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(dir);
    } catch {
      /* not extracted yet */
    }
    if (st) {
      checkPrivateDir(dir, uid, st);
    } else {
      this.extract(g, base, dir);
    }
    this.done.set(name, dir);
    return dir;
  }

  private extract(g: ManifestGroup, base: string, dir: string): void {
    const tmp = fs.mkdtempSync(path.join(base, `.${path.basename(dir)}.`));
    try {
      for (const [rel, f] of Object.entries(g.files)) {
        let data: Buffer;
        try {
          data = decode(this.o.read(f.asset), f.encoding);
        } catch (e) {
          throw damaged(`${rel} cannot be unpacked (${errText(e)})`);
        }
        const got = crypto.createHash('sha256').update(data).digest('hex');
        if (data.length !== f.size || got !== f.sha256) throw damaged(`${rel} does not match its checksum`);
        const dest = path.join(tmp, rel);
        mkdirLevels(path.dirname(dest), 0o700);
        // fsync before the rename: after a power cut (a Pi) the directory exists only with whole files
        const fd = fs.openSync(dest, 'wx', f.mode);
        try {
          fs.writeSync(fd, data);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
      try {
        fs.renameSync(tmp, dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        // another herd process extracted the same files first: use theirs
        fs.rmSync(tmp, { recursive: true, force: true });
        checkPrivateDir(dir, this.o.uid ?? process.getuid?.() ?? 0);
      }
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (e instanceof InstallError) throw e;
      throw new InstallError(`cannot extract the native files herd carries into ${base}: ${errText(e)}. Free some space or set HERD_CACHE_DIR to another writable directory`);
    }
  }
}

function damaged(what: string): InstallError {
  const exe = process.execPath;
  return new InstallError(`this herd executable (${exe}) is damaged: the embedded file ${what}. Download it again and check it with sha256sum -c SHA256SUMS before installing it`);
}

/** The glibc version this process runs on ('' when not glibc, e.g. musl). */
export function glibcVersion(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ?? '';
}

/** Turns a dlopen failure into what the operator has to do about it. */
export function explainDlopenError(file: string, err: unknown): Error {
  const msg = (err as Error).message ?? String(err);
  const ver = /version [`']GLIBC_([\d.]+)' not found/.exec(msg);
  if (ver) {
    const have = glibcVersion() || 'not glibc';
    return new InstallError(`${path.basename(file)} needs glibc >= ${ver[1]}, and this system has ${have}. Herd's executables need a distribution with glibc >= 2.34: Debian 12 bookworm, Raspberry Pi OS bookworm (64-bit), Ubuntu 22.04 or later (${msg})`);
  }
  if (/failed to map segment|Operation not permitted/.test(msg)) {
    return new InstallError(`cannot load ${file}: the cache directory is probably on a filesystem mounted noexec; set HERD_CACHE_DIR to a directory on an exec filesystem (${msg})`);
  }
  if (/cannot open shared object file/.test(msg)) {
    return new InstallError(`cannot load ${file}: a library it needs is missing (${msg}); on Debian: apt-get install libstdc++6`);
  }
  return new InstallError(`cannot load the native addon ${file}: ${msg}`);
}

let extractor: Extractor | undefined;
/** The executable's own extractor; throws outside a SEA. */
export function seaExtractor(): Extractor {
  if (!extractor) {
    const s = sea();
    if (!s) throw new Error('not running as the herd single executable');
    let manifest: Manifest;
    try {
      manifest = JSON.parse(Buffer.from(s.getRawAsset('manifest.json')).toString('utf8')) as Manifest;
    } catch (e) {
      throw damaged(`manifest.json cannot be read (${errText(e)})`);
    }
    if (manifest.arch !== process.arch || manifest.platform !== process.platform) {
      throw new InstallError(`this herd executable was built for ${manifest.platform}-${manifest.arch}, but runs on ${process.platform}-${process.arch}: install herd-${process.platform}-${process.arch}`);
    }
    extractor = new Extractor({ manifest, read: (a) => new Uint8Array(s.getRawAsset(a)) });
  }
  return extractor;
}

const loaded = new Map<string, unknown>();
/** Loads a native addon of the executable (group/file, e.g. lmdb/lmdb.node). */
export function loadAddon(group: string, file: string): any {
  const key = `${group}/${file}`;
  if (!loaded.has(key)) {
    const full = path.join(seaExtractor().group(group), file);
    const mod = { exports: {} };
    try {
      process.dlopen(mod, full, os.constants.dlopen.RTLD_NOW);
    } catch (e) {
      throw explainDlopenError(full, e);
    }
    loaded.set(key, mod.exports);
  }
  return loaded.get(key);
}

/**
 * Runs before the CLI inside the executable: for the commands that need them, puts the
 * native files in place now, so an installation problem is one clear line and exit 78
 * instead of a stack trace from deep inside a library.
 */
export function preflight(argv: string[]): void {
  if (!isSea()) return;
  const cmd = argv.slice(2).find((a) => !a.startsWith('-'));
  if (cmd !== 'agent') return;
  try {
    // no glibc check first: process.report costs ~10 ms, and dlopen's own error names the version
    seaExtractor().group('proto');
    loadAddon('lmdb', 'lmdb.node');
  } catch (e) {
    process.stderr.write(`herd: ${(e as Error).message}\n`);
    process.exit(e instanceof InstallError ? e.exitCode : 1);
  }
}

