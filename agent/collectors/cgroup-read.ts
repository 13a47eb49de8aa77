/**
 * Allocation-free reading and parsing of small kernel text files (cgroupfs, procfs).
 *
 * Why not fs.readFileSync: it fstat()s, allocates a Buffer per call and we would then
 * decode and split strings. At 3600 containers x ~8 files every 5 s that garbage and the
 * extra syscalls dominate. Here every file is opened, read into one shared Buffer at
 * offset 0 and closed; parsers scan the bytes in place and return numbers.
 *
 * The shared buffer is only valid until the next readInto(); everything is synchronous,
 * so no caller can interleave.
 */
import { closeSync, openSync, readSync } from 'node:fs';

let buf = Buffer.allocUnsafe(64 * 1024);
let len = 0;

/**
 * seq_file (all of /proc and cgroupfs) hands out at most one internal page of records per
 * read(), so a short read is not EOF for multi-record files like /proc/net/dev. A page is
 * >= 4096 bytes and no record we read is near 2048 bytes, so a first read shorter than
 * this is complete: that saves the extra read() that would just return 0.
 */
const SURELY_COMPLETE = 2048;

/**
 * Reads a whole file into the shared buffer. Returns its length, or -1 when it cannot be
 * opened or read (missing file, vanished cgroup: ENOENT/ENODEV); never throws.
 */
export function readInto(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return (len = -1);
  }
  try {
    let total = 0;
    for (;;) {
      if (total === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, total);
        buf = bigger;
      }
      const n = readSync(fd, buf, total, buf.length - total, total);
      if (n <= 0) break;
      total += n;
      if (total === n && n < SURELY_COMPLETE) break;
    }
    return (len = total);
  } catch {
    return (len = -1);
  } finally {
    closeSync(fd);
  }
}

const SP = 0x20;
const NL = 0x0a;
const ZERO = 0x30;
const NINE = 0x39;

/** Parses the unsigned integer at pos (leading blanks skipped); NaN when there is none. */
export function uintAt(pos: number, end = len): number {
  while (pos < end && (buf[pos] === SP || buf[pos] === 0x09)) pos++;
  let v = 0;
  let digits = 0;
  while (pos < end) {
    const c = buf[pos];
    if (c < ZERO || c > NINE) break;
    v = v * 10 + (c - ZERO);
    digits++;
    pos++;
  }
  return digits > 0 ? v : NaN;
}

/** The whole file as one number (cpuacct.usage, pids.current, memory.current). */
export function readUint(path: string): number {
  return readInto(path) > 0 ? uintAt(0) : NaN;
}

/**
 * Keys are looked up with Buffer.indexOf (native, no allocation). Each key is stored as
 * "\nname " so it only matches at a line start and never as a suffix of a longer name
 * ("inactive_file" inside "total_inactive_file").
 */
export class Key {
  readonly withNl: Buffer;
  readonly bare: Buffer;
  constructor(name: string) {
    this.withNl = Buffer.from(`\n${name} `, 'latin1');
    this.bare = this.withNl.subarray(1);
  }
}

/** Value of "name value" line in the last file read; NaN when absent. */
export function keyValue(key: Key): number {
  if (len <= 0) return NaN;
  const b = key.bare;
  if (len >= b.length && buf.compare(b, 0, b.length, 0, b.length) === 0) return uintAt(b.length);
  const w = key.withNl;
  // Search a view of this file only: the buffer holds stale bytes of earlier files past len.
  const i = buf.subarray(0, len).indexOf(w);
  return i < 0 ? NaN : uintAt(i + w.length);
}

/** Number of lines in the last file read (v1 `tasks`, v2 `cgroup.threads`). */
export function countLines(): number {
  let n = 0;
  for (let i = 0; i < len; i++) if (buf[i] === NL) n++;
  return n;
}

/**
 * Sums the Read and Write lines of a v1 blkio file ("8:0 Read 123"), over all devices.
 * Returns false when the file could not be read.
 */
export function sumBlkioRw(path: string, out: Float64Array, readIdx: number, writeIdx: number): boolean {
  if (readInto(path) < 0) return false;
  let r = 0;
  let w = 0;
  let pos = 0;
  while (pos < len) {
    let sp = pos;
    while (sp < len && buf[sp] !== SP && buf[sp] !== NL) sp++;
    // Device lines look like "MAJ:MIN Op N"; the final "Total N" line has no second word.
    if (sp < len && buf[sp] === SP) {
      const op = sp + 1;
      if (buf[op] === 0x52 /* R */ && buf[op + 4] === SP && buf[op + 1] === 0x65 /* e */) r += uintAt(op + 5) || 0;
      else if (buf[op] === 0x57 /* W */ && buf[op + 5] === SP && buf[op + 1] === 0x72 /* r */) w += uintAt(op + 6) || 0;
    }
    while (pos < len && buf[pos] !== NL) pos++;
    pos++;
  }
  out[readIdx] = r;
  out[writeIdx] = w;
  return true;
}

// io.stat field names, matched by first letters: rbytes wbytes rios wios (dbytes/dios skipped).
const R = 0x72;
const W = 0x77;
const B = 0x62;
const I = 0x69;
const EQ = 0x3d;

/**
 * Sums a v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0") over devices
 * into out[at..at+3] = rios, wios, rbytes, wbytes. Returns false when unreadable.
 */
export function sumIoStat(path: string, out: Float64Array, at: number): boolean {
  if (readInto(path) < 0) return false;
  let rios = 0;
  let wios = 0;
  let rbytes = 0;
  let wbytes = 0;
  for (let pos = 0; pos < len; pos++) {
    // Every field starts after a blank; the device number ("8:0") is not followed by '='.
    if (buf[pos] !== SP) continue;
    const c = buf[pos + 1];
    if (c !== R && c !== W) continue;
    const d = buf[pos + 2];
    if (d === B && buf[pos + 7] === EQ) {
      const v = uintAt(pos + 8) || 0;
      if (c === R) rbytes += v;
      else wbytes += v;
    } else if (d === I && buf[pos + 5] === EQ) {
      const v = uintAt(pos + 6) || 0;
      if (c === R) rios += v;
      else wios += v;
    }
  }
  out[at] = rios;
  out[at + 1] = wios;
  out[at + 2] = rbytes;
  out[at + 3] = wbytes;
  return true;
}

/**
 * Sums received and transmitted bytes of a /proc/.../net/dev over all interfaces but lo
 * into out[at], out[at+1]. Returns false when unreadable.
 */
export function sumNetDev(path: string, out: Float64Array, at: number): boolean {
  if (readInto(path) < 0) return false;
  let rx = 0;
  let tx = 0;
  let pos = 0;
  let line = 0;
  while (pos < len) {
    const start = pos;
    while (pos < len && buf[pos] !== NL) pos++;
    const end = pos;
    pos++;
    if (line++ < 2) continue; // two header lines
    let p = start;
    while (p < end && buf[p] === SP) p++;
    const nameStart = p;
    while (p < end && buf[p] !== 0x3a /* : */) p++;
    if (p >= end) continue;
    if (p - nameStart === 2 && buf[nameStart] === 0x6c && buf[nameStart + 1] === 0x6f) continue; // "lo"
    p++;
    // Fields: rx bytes packets errs drop fifo frame compressed multicast | tx bytes ...
    for (let field = 0; field < 9 && p < end; field++) {
      while (p < end && buf[p] === SP) p++;
      if (field === 0) rx += uintAt(p, end) || 0;
      else if (field === 8) tx += uintAt(p, end) || 0;
      while (p < end && buf[p] !== SP) p++;
    }
  }
  out[at] = rx;
  out[at + 1] = tx;
  return true;
}

/** Iterates the lines of the last file read; the callback gets [start, end) offsets. */
export function forEachLine(fn: (start: number, end: number) => void): void {
  let pos = 0;
  while (pos < len) {
    const start = pos;
    while (pos < len && buf[pos] !== NL) pos++;
    fn(start, pos);
    pos++;
  }
}

/** True when the bytes at [start, start+s.length) equal the ASCII string s. */
export function startsWith(start: number, s: string): boolean {
  if (start + s.length > len) return false;
  for (let i = 0; i < s.length; i++) if (buf[start + i] !== s.charCodeAt(i)) return false;
  return true;
}

/** Offset of the next blank-separated field after pos (skipping the current word). */
export function nextField(pos: number, end: number): number {
  while (pos < end && buf[pos] !== SP) pos++;
  while (pos < end && buf[pos] === SP) pos++;
  return pos;
}

/** The byte at pos of the last file read. */
export function byteAt(pos: number): number {
  return buf[pos];
}

/** Decodes [start, end) of the last file read (for rare, non-hot-path use). */
export function text(start: number, end: number): string {
  return buf.toString('latin1', start, end);
}
