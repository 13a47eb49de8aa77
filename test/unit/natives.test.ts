// The extraction of the executable's embedded files (common/natives.ts), with a made-up
// manifest: cache dir choice, atomic hash-keyed extraction, refusal of foreign or shared
// dirs, damaged assets, and the dlopen failure a too-old glibc gives (a real addon, patched).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheCandidates, chooseCacheDir, explainDlopenError, Extractor, InstallError, type Manifest } from '../../common/natives';
import { tempDir } from '../helpers/tmp';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const cleanups: Array<() => void> = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });
function tmp() {
  const t = tempDir('herd-natives-');
  cleanups.push(t.cleanup);
  return t.dir;
}

function fixture(files: Record<string, Buffer>) {
  const assets = new Map<string, Uint8Array>();
  const entries: Manifest['groups'][string]['files'] = {};
  for (const [rel, data] of Object.entries(files)) {
    const asset = `files/g/${rel}`;
    assets.set(asset, zlib.brotliCompressSync(data));
    entries[rel] = { asset, sha256: sha(data), size: data.length, encoding: 'br', mode: 0o755 };
  }
  const manifest: Manifest = { version: '0.0.0', platform: 'linux', arch: 'x64', groups: { g: { key: 'abc123', files: entries } } };
  let reads = 0;
  const read = (a: string) => { reads++; return assets.get(a)!; };
  return { manifest, assets, read, reads: () => reads };
}

describe('cache directory', () => {
  it('prefers HERD_CACHE_DIR alone, then systemd, XDG or HOME, then the temp dir', () => {
    expect(cacheCandidates({ HERD_CACHE_DIR: '/x/y', HOME: '/h' }, 7)).toEqual(['/x/y']);
    expect(cacheCandidates({ CACHE_DIRECTORY: '/var/cache/herd:/other', HOME: '/h', TMPDIR: '/t' }, 7)).toEqual(['/var/cache/herd', '/h/.cache/herd', '/t/herd-7']);
    expect(cacheCandidates({ XDG_CACHE_HOME: '/xdg', HOME: '/h', TMPDIR: '/t' }, 7)).toEqual(['/xdg/herd', '/t/herd-7']);
  });

  it('creates the directory level by level, private, and passes over one it cannot create', () => {
    const root = tmp();
    const blocked = path.join(root, 'file');
    fs.writeFileSync(blocked, 'not a dir');
    const dir = chooseCacheDir({ HOME: blocked, TMPDIR: path.join(root, 'a', 'b') }, process.getuid!());
    expect(dir).toBe(path.join(root, 'a', 'b', `herd-${process.getuid!()}`));
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('refuses a directory owned by another user, or writable by others, instead of falling back', () => {
    const root = tmp();
    const foreign = path.join(root, 'foreign');
    fs.mkdirSync(foreign, { mode: 0o700 });
    fs.chownSync(foreign, 12345, 12345); // the tests run as root
    expect(() => chooseCacheDir({ HERD_CACHE_DIR: foreign }, 0)).toThrow(/owned by uid 12345, not by this user \(uid 0\)/);
    // a planted /tmp/herd-<uid> is the classic: not skipped, refused
    fs.mkdirSync(path.join(root, 'tmp'));
    fs.mkdirSync(path.join(root, 'tmp', 'herd-0'));
    fs.chownSync(path.join(root, 'tmp', 'herd-0'), 12345, 12345);
    expect(() => chooseCacheDir({ HOME: path.join(root, 'file-home'), TMPDIR: path.join(root, 'tmp') }, 0)).not.toThrow(); // HOME usable: first wins
    fs.writeFileSync(path.join(root, 'f'), '');
    expect(() => chooseCacheDir({ HOME: path.join(root, 'f'), TMPDIR: path.join(root, 'tmp') }, 0)).toThrow(InstallError);
    const shared = path.join(root, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o777);
    expect(() => chooseCacheDir({ HERD_CACHE_DIR: shared }, 0)).toThrow(/writable by other users \(mode 777\)/);
    fs.symlinkSync(shared, path.join(root, 'link'));
    expect(() => chooseCacheDir({ HERD_CACHE_DIR: path.join(root, 'link') }, 0)).toThrow(/symbolic link/);
  });

  it('says which directories it tried when none is usable', () => {
    const root = tmp();
    fs.writeFileSync(path.join(root, 'f'), '');
    const err = (() => { try { chooseCacheDir({ HERD_CACHE_DIR: path.join(root, 'f', 'cache') }, 0); } catch (e) { return e as InstallError; } })();
    expect(err).toBeInstanceOf(InstallError);
    expect(err!.exitCode).toBe(78);
    expect(err!.message).toMatch(/no usable cache directory .* tried .*f\/cache \(ENOTDIR/);
  });
});

describe('extraction', () => {
  it('extracts a group once, into a dir named by its hash, with the files checked', () => {
    const base = tmp();
    const f = fixture({ 'a.node': Buffer.from('addon bytes'), 'sub/lib.so.1': Buffer.alloc(100_000, 7) });
    const x = new Extractor({ manifest: f.manifest, read: f.read, env: { HERD_CACHE_DIR: base } });
    const dir = x.group('g');
    expect(dir).toBe(path.join(base, 'g-linux-x64-abc123'));
    expect(fs.readFileSync(path.join(dir, 'a.node'), 'utf8')).toBe('addon bytes');
    expect(fs.readFileSync(path.join(dir, 'sub/lib.so.1'))).toEqual(Buffer.alloc(100_000, 7));
    expect(fs.statSync(path.join(dir, 'a.node')).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(base)).toEqual(['g-linux-x64-abc123']); // no temp dir left behind
    // a second process (a new Extractor) finds it and reads no asset
    const reads = f.reads();
    expect(new Extractor({ manifest: f.manifest, read: f.read, env: { HERD_CACHE_DIR: base } }).group('g')).toBe(dir);
    expect(f.reads()).toBe(reads);
  });

  it('keeps the winner when two processes extract at once', () => {
    const base = tmp();
    const f = fixture({ 'a.node': Buffer.from('x') });
    const first = new Extractor({ manifest: f.manifest, read: f.read, env: { HERD_CACHE_DIR: base } });
    // the second extractor decides to extract, then the first one wins the rename
    const second = new Extractor({
      manifest: f.manifest, env: { HERD_CACHE_DIR: base },
      read: (a) => { if (!fs.existsSync(path.join(base, 'g-linux-x64-abc123'))) first.group('g'); return f.read(a); },
    });
    expect(second.group('g')).toBe(path.join(base, 'g-linux-x64-abc123'));
    expect(fs.readdirSync(base)).toEqual(['g-linux-x64-abc123']);
  });

  it('refuses damaged assets and leaves nothing a later start would trust', () => {
    const base = tmp();
    const f = fixture({ 'a.node': Buffer.alloc(5000, 1) });
    const bad = Buffer.from(f.assets.get('files/g/a.node')!);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    const x = new Extractor({ manifest: f.manifest, read: () => bad, env: { HERD_CACHE_DIR: base } });
    expect(() => x.group('g')).toThrow(/is damaged: the embedded file a\.node (cannot be unpacked|does not match its checksum).*sha256sum -c SHA256SUMS/);
    // a valid compressed stream of other bytes: caught by the checksum
    const other = zlib.brotliCompressSync(Buffer.alloc(5000, 2));
    expect(() => new Extractor({ manifest: f.manifest, read: () => other, env: { HERD_CACHE_DIR: base } }).group('g')).toThrow(/does not match its checksum/);
    expect(fs.readdirSync(base)).toEqual([]);
  });

  it('refuses an extracted dir that someone else owns', () => {
    const base = tmp();
    const f = fixture({ 'a.node': Buffer.from('x') });
    fs.mkdirSync(path.join(base, 'g-linux-x64-abc123'));
    fs.chownSync(path.join(base, 'g-linux-x64-abc123'), 4242, 4242);
    expect(() => new Extractor({ manifest: f.manifest, read: f.read, env: { HERD_CACHE_DIR: base }, uid: 0 }).group('g')).toThrow(/owned by uid 4242/);
  });
});

describe('loading an addon built for a newer glibc', () => {
  it('names the glibc it needs and the distributions that have it', () => {
    // The real lmdb addon with its GLIBC_2.34 requirement renamed to a version no glibc has:
    // the dynamic linker fails exactly as it does on bullseye (2.31).
    const require = createRequire(import.meta.url);
    const pkgDir = path.dirname(require.resolve(`@lmdb/lmdb-linux-${process.arch}/package.json`));
    const bytes = fs.readFileSync(path.join(pkgDir, 'node.napi.glibc.node'));
    const at = bytes.indexOf('GLIBC_2.34\0');
    expect(at).toBeGreaterThan(0);
    bytes.write('GLIBC_9.99', at, 'latin1');
    const file = path.join(tmp(), 'lmdb.node');
    fs.writeFileSync(file, bytes);
    let err: unknown;
    try {
      process.dlopen({ exports: {} }, file);
    } catch (e) {
      err = explainDlopenError(file, e);
    }
    expect(err).toBeInstanceOf(InstallError);
    expect((err as Error).message).toMatch(/lmdb\.node needs glibc >= 9\.99, and this system has 2\.\d+\. .*glibc >= 2\.34: Debian 12 bookworm, Raspberry Pi OS bookworm/);
  });
});
