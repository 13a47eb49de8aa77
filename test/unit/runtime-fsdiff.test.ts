// The diff layer: tar listing parsing, entry validation, and real GNU tar round trips of overlay
// whiteouts, opaque dirs, owners and hostile archives. Needs root (mknod, chown, trusted.* xattrs).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  TarEntryValidator, decodeCQuoted, exportUpperDir, importUpperDir, normalizeMember, parseTarListLine, scanTar,
} from '../../agent/runtime/fsdiff';
import { UnsafeArchiveError, type RuntimeError } from '../../agent/runtime/runtime';
import { tempDir } from '../helpers/tmp';

// ------------------------------------------------------------------ a tiny ustar/pax writer
interface Opts { type?: string; mode?: number; uid?: number; gid?: number; link?: string; major?: number; minor?: number; data?: string }
function header(name: string, o: Opts, size: number): Buffer {
  const b = Buffer.alloc(512);
  const put = (off: number, len: number, s: string) => b.write(s, off, len, 'utf8');
  const oct = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
  put(0, 100, name); oct(100, 8, o.mode ?? 0o644); oct(108, 8, o.uid ?? 0); oct(116, 8, o.gid ?? 0);
  oct(124, 12, size); oct(136, 12, 1_700_000_000); b.fill(' ', 148, 156); put(156, 1, o.type ?? '0');
  put(157, 100, o.link ?? ''); put(257, 6, 'ustar\0'); put(263, 2, '00'); oct(329, 8, o.major ?? 0); oct(337, 8, o.minor ?? 0);
  put(148, 8, b.reduce((a, x) => a + x, 0).toString(8).padStart(6, '0') + '\0 ');
  return b;
}
const pad = (d: Buffer) => Buffer.concat([d, Buffer.alloc((512 - (d.length % 512)) % 512)]);
function entry(name: string, o: Opts = {}): Buffer {
  const data = Buffer.from(o.data ?? '');
  return Buffer.concat([header(name, o, data.length), pad(data)]);
}
/** A pax extended header (xattrs as GNU tar writes them) for the entry that follows. */
function pax(records: Record<string, string>): Buffer {
  const body = Object.entries(records).map(([k, v]) => {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    return `${len}${rest}`;
  }).join('');
  return Buffer.concat([header('PaxHeader', { type: 'x' }, Buffer.byteLength(body)), pad(Buffer.from(body))]);
}
const tarOf = (...entries: Buffer[]) => Buffer.concat([...entries, Buffer.alloc(1024)]);

describe('tar listing parsing', () => {
  it('parses GNU tar -tv --quoting-style=c lines as tar 1.34 prints them', () => {
    expect(parseTarListLine('drwxr-xr-x 0/0               0 2026-11-24 17:33 "./"')).toEqual({ type: 'd', name: './', uid: 0, gid: 0 });
    expect(parseTarListLine('c--------- 0/0             0,0 2026-11-24 17:33 "./etc/group"')).toEqual({ type: 'c', name: './etc/group', uid: 0, gid: 0, device: '0,0' });
    expect(parseTarListLine('-rw-r--r-- 1000/1000         2 2026-11-24 17:33 "./var/lib/app/z"')).toMatchObject({ type: '-', uid: 1000, gid: 1000 });
    expect(parseTarListLine('lrw-r--r-- 0/0               0 1970-01-01 00:00 "lnk" -> "/tmp/rtx/evil"')).toMatchObject({ type: 'l', name: 'lnk', link: '/tmp/rtx/evil' });
    expect(parseTarListLine('hrw-r--r-- 0/0               0 1970-01-01 00:00 "h" link to "etc/passwd"')).toMatchObject({ type: 'h', name: 'h', link: 'etc/passwd' });
    // a name that tries to look like a link, with quotes and a newline: quoting keeps it one name
    expect(parseTarListLine('-rw-r--r-- 0/0               1 1970-01-01 00:00 "a \\"quoted\\" name -> x\\nnl"')).toMatchObject({ name: 'a "quoted" name -> x\nnl' });
    expect(parseTarListLine('lrw-r--r-- 0/0               0 1970-01-01 00:00 "s" -> "../../x y"')).toMatchObject({ link: '../../x y' });
    expect(parseTarListLine('tar: Removing leading `/\' from member names')).toBeUndefined();
    expect(parseTarListLine('-rw-r--r-- 0/0 1 1970-01-01 00:00 "unterminated')).toBeUndefined();
    expect(parseTarListLine('-rw-r--r-- 0/0 1 1970-01-01 00:00 "x" trailing')).toBeUndefined();
  });

  it('decodes C quoting, octal bytes included', () => {
    expect(decodeCQuoted('caf\\303\\251 \\t\\\\ \\"')).toBe('café \t\\ "');
    expect(normalizeMember('./a//b/')).toBe('a/b');
    expect(normalizeMember('./')).toBe('');
  });
});

describe('TarEntryValidator', () => {
  const e = (type: string, name: string, link?: string) => ({ type, name, link, uid: 0, gid: 0 });
  it('accepts a container file system: absolute symlink targets, whiteouts, fifos, hard links inside', () => {
    const v = new TarEntryValidator();
    for (const x of [e('d', './'), e('l', 'bin/sh', '/bin/busybox'), e('c', 'etc/group'), e('p', 'run/fifo'), e('-', 'a'), e('h', 'b', 'a'), e('l', 'rel', '../x')]) {
      expect(v.check(x), x.name).toBeUndefined();
    }
  });

  it('refuses escapes', () => {
    const bad: Array<[ReturnType<typeof e>[], RegExp]> = [
      [[e('-', '/etc/passwd')], /absolute name/],
      [[e('-', 'a/../../x')], /'\.\.'/],
      [[e('h', 'h', '/etc/shadow')], /absolute hard link target/],
      [[e('h', 'h', '../up')], /hard link target contains '\.\.'/],
      [[e('l', 'lnk', '/'), e('-', 'lnk/etc/cron.d/x')], /goes through the symlink lnk/],
      [[e('l', 'd/lnk', '/'), e('h', 'x', 'd/lnk/etc/shadow')], /hard link target goes through the symlink d\/lnk/],
      [[e('l', 'lnk', '/'), e('d', 'lnk')], /replaces the symlink lnk/],
      [[e('V', 'label')], /entry type 'V'/],
      [[e('-', './')], /root is not a directory/],
    ];
    for (const [entries, why] of bad) {
      const v = new TarEntryValidator();
      const reasons = entries.map((x) => v.check(x));
      expect(reasons.pop(), JSON.stringify(entries)).toMatch(why);
      expect(reasons.every((r) => r === undefined)).toBe(true);
    }
  });
});

describe('diff layer with GNU tar', () => {
  let t: { dir: string; cleanup: () => void };
  let upper: string;
  const outside = () => path.join(t.dir, 'outside');
  beforeEach(() => {
    t = tempDir('herd-fsdiff-');
    upper = path.join(t.dir, 'upper');
    fs.mkdirSync(upper);
  });
  afterEach(() => t.cleanup());
  const write = (name: string, buf: Buffer) => { const p = path.join(t.dir, name); fs.writeFileSync(p, buf); return p; };

  it('round-trips whiteouts, opaque dirs, owners, modes, links and fifos; drops node-local overlay xattrs', async () => {
    const src = write('in.tar', tarOf(
      entry('./', { type: '5', mode: 0o755 }),
      entry('etc/', { type: '5', mode: 0o755 }),
      entry('etc/group', { type: '3', mode: 0, major: 0, minor: 0 }), // an overlay whiteout
      pax({ 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.trusted.overlay.origin': 'stale-handle' }),
      entry('usr/sbin/', { type: '5', mode: 0o755 }),
      entry('usr/sbin/only-this', { data: 'x' }),
      entry('var/app/z', { uid: 1000, gid: 1001, mode: 0o640, data: 'hello' }),
      entry('var/app/hard', { type: '1', link: 'var/app/z' }),
      entry('bin/sh', { type: '2', link: '/bin/busybox' }),
      entry('run/fifo', { type: '6' }),
    ));
    await importUpperDir(src, upper);
    const wh = fs.lstatSync(path.join(upper, 'etc/group'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    const z = fs.lstatSync(path.join(upper, 'var/app/z'));
    expect([z.uid, z.gid, z.mode & 0o777]).toEqual([1000, 1001, 0o640]);
    expect(fs.lstatSync(path.join(upper, 'var/app/hard')).ino).toBe(z.ino);
    expect(fs.readlinkSync(path.join(upper, 'bin/sh'))).toBe('/bin/busybox');
    expect(fs.lstatSync(path.join(upper, 'run/fifo')).isFIFO()).toBe(true);

    const out = path.join(t.dir, 'out.tar');
    const r = await exportUpperDir(upper, out);
    expect(r.bytes).toBe(fs.statSync(out).size);
    const listing = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-tvv', '-f', out], { encoding: 'utf8' });
    expect(listing).toMatch(/usr\/sbin\/\n\s+x: 1 trusted\.overlay\.opaque/);
    expect(listing).not.toContain('trusted.overlay.origin');
    expect(listing).toMatch(/c---------\s+0\/0\s+0,0 .*etc\/group/);
    expect(listing).toMatch(/-rw-r-----\s+1000\/1001 .*var\/app\/z/);
  });

  const hostile: Array<[string, () => Buffer]> = [
    ['an absolute name', () => tarOf(entry('PLACEHOLDER/abs', { data: 'x' }))],
    ['a .. name', () => tarOf(entry('a/../../outside/dotdot', { data: 'x' }))],
    ['a write through a symlink', () => tarOf(entry('lnk', { type: '2', link: 'PLACEHOLDER' }), entry('lnk/sym', { data: 'x' }))],
    ['a hard link to an absolute path', () => tarOf(entry('h', { type: '1', link: '/etc/passwd' }))],
    ['a hard link through a symlink', () => tarOf(entry('lnk', { type: '2', link: '/etc' }), entry('h', { type: '1', link: 'lnk/passwd' }))],
  ];
  for (const [what, make] of hostile) {
    it(`refuses ${what} and extracts nothing`, async () => {
      fs.mkdirSync(outside());
      const buf = make();
      // point the payloads at this test's own "outside" dir, an absolute path
      const src = write('evil.tar', tarOf(...splitEntries(buf).map((b) => rewrite(b, 'PLACEHOLDER', outside()))));
      const err = await importUpperDir(src, upper).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafeArchiveError);
      expect((err as RuntimeError).code).toBe('INVALID_ARGUMENT');
      expect(fs.readdirSync(upper)).toEqual([]);
      expect(fs.readdirSync(outside())).toEqual([]);
    });
  }

  it('says what is wrong with a file that is not a tar, or missing', async () => {
    const junk = write('junk.tar', Buffer.from('this is not a tar archive at all'.repeat(40)));
    await expect(scanTar(junk)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/not a readable tar/) });
    await expect(importUpperDir(path.join(t.dir, 'nope.tar'), upper)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(importUpperDir(junk, path.join(t.dir, 'no-dir'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(exportUpperDir(path.join(t.dir, 'no-dir'), path.join(t.dir, 'x.tar'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

/** The 512-byte-aligned entries of a tar built by tarOf (header + data), trailer removed. */
function splitEntries(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(h.subarray(124, 135).toString(), 8);
    const len = 512 + Math.ceil(size / 512) * 512;
    out.push(Buffer.from(buf.subarray(off, off + len)));
    off += len;
  }
  return out;
}

/** Replaces text in a header's name and link fields and fixes its checksum. */
function rewrite(entryBuf: Buffer, from: string, to: string): Buffer {
  const h = Buffer.from(entryBuf.subarray(0, 512));
  for (const [off, len] of [[0, 100], [157, 100]]) {
    const field = h.subarray(off, off + len).toString('utf8').replace(/\0.*$/s, '');
    if (!field.includes(from)) continue;
    h.fill(0, off, off + len);
    h.write(field.replace(from, to), off, len, 'utf8');
  }
  h.fill(' ', 148, 156);
  h.write(h.reduce((a, x) => a + x, 0).toString(8).padStart(6, '0') + '\0 ', 148, 8, 'utf8');
  return Buffer.concat([h, entryBuf.subarray(512)]);
}
