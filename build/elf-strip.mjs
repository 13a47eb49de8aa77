// Drops the symbol table and DWARF debug info of an ELF64 little-endian file (executable or
// shared object), as `strip` does. Debian's x86-64 binutils cannot strip an arm64 file, and
// needing binutils-aarch64-linux-gnu on every build machine for 14 MB is not worth it: these
// sections are never loaded, so removing them only means cutting the file tail and rewriting
// the section header table. Anything unexpected fails the build instead of guessing.
import { readFileSync, writeFileSync } from 'node:fs';

const SHF_ALLOC = 0x2;
const SHF_INFO_LINK = 0x40;
const SHT_NOBITS = 8;
const SHT_RELA = 4;
const SHT_REL = 9;
const DROP = (name) => name === '.symtab' || name === '.strtab' || name.startsWith('.debug_') || name === '.gnu.build.attributes';

/** @param {Buffer} buf @returns {{ out: Buffer, dropped: string[] }} */
export function stripElf(buf, what = 'file') {
  const fail = (m) => { throw new Error(`elf-strip ${what}: ${m}`); };
  if (buf.readUInt32BE(0) !== 0x7f454c46) fail('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) fail('only ELF64 little-endian is handled');
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shentsize !== 64 || shnum === 0) fail('unexpected section header table');

  // Everything a loader maps ends here; what lies behind it is for tools only.
  let loadEnd = 0;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    loadEnd = Math.max(loadEnd, Number(buf.readBigUInt64LE(p + 8)) + Number(buf.readBigUInt64LE(p + 32)));
  }
  const sh = (i) => {
    const o = shoff + i * 64;
    return {
      name: buf.readUInt32LE(o), type: buf.readUInt32LE(o + 4), flags: Number(buf.readBigUInt64LE(o + 8)),
      offset: Number(buf.readBigUInt64LE(o + 24)), size: Number(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40), info: buf.readUInt32LE(o + 44), align: Number(buf.readBigUInt64LE(o + 48)), raw: o,
    };
  };
  const strtab = sh(shstrndx);
  const nameOf = (s) => buf.toString('latin1', strtab.offset + s.name, buf.indexOf(0, strtab.offset + s.name));
  const all = Array.from({ length: shnum }, (_, i) => ({ ...sh(i), index: i }));
  for (const s of all) s.str = nameOf(s);
  const drop = all.filter((s) => s.index > 0 && DROP(s.str) && !(s.flags & SHF_ALLOC));
  if (drop.length === 0) return { out: buf, dropped: [] };
  // Dropping must not renumber a section the dynamic symbols or relocations refer to.
  const firstDropped = Math.min(...drop.map((s) => s.index));
  if (all.some((s) => s.index > firstDropped && s.flags & SHF_ALLOC)) fail('an allocated section follows a dropped one');
  const tail = all.filter((s) => s.index > 0 && !(s.flags & SHF_ALLOC) && s.type !== SHT_NOBITS && s.size > 0 && s.offset >= loadEnd);
  if (all.some((s) => !(s.flags & SHF_ALLOC) && s.type !== SHT_NOBITS && s.size > 0 && s.offset < loadEnd && DROP(s.str))) {
    fail('a section to drop lies inside the loaded part of the file');
  }

  const keep = all.filter((s) => !drop.includes(s));
  const newIndex = new Map(keep.map((s, i) => [s.index, i]));
  const parts = [buf.subarray(0, loadEnd)];
  let pos = loadEnd;
  const newOffset = new Map();
  for (const s of tail.filter((x) => keep.includes(x)).sort((a, b) => a.offset - b.offset)) {
    const pad = (Math.max(1, s.align) - (pos % Math.max(1, s.align))) % Math.max(1, s.align);
    if (pad) parts.push(Buffer.alloc(pad));
    pos += pad;
    newOffset.set(s.index, pos);
    parts.push(buf.subarray(s.offset, s.offset + s.size));
    pos += s.size;
  }
  const shPad = (8 - (pos % 8)) % 8;
  if (shPad) parts.push(Buffer.alloc(shPad));
  const newShoff = pos + shPad;
  const table = Buffer.alloc(keep.length * 64);
  keep.forEach((s, i) => {
    buf.copy(table, i * 64, s.raw, s.raw + 64);
    if (newOffset.has(s.index)) table.writeBigUInt64LE(BigInt(newOffset.get(s.index)), i * 64 + 24);
    table.writeUInt32LE(newIndex.get(s.link) ?? 0, i * 64 + 40);
    if (s.type === SHT_REL || s.type === SHT_RELA || s.flags & SHF_INFO_LINK) table.writeUInt32LE(newIndex.get(s.info) ?? 0, i * 64 + 44);
  });
  parts.push(table);
  const out = Buffer.concat(parts);
  out.writeBigUInt64LE(BigInt(newShoff), 0x28);
  out.writeUInt16LE(keep.length, 0x3c);
  out.writeUInt16LE(newIndex.get(shstrndx) ?? fail('the section name table was dropped'), 0x3e);
  return { out, dropped: drop.map((s) => s.str) };
}

// node build/elf-strip.mjs IN OUT
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const [, , input, output] = process.argv;
  const { out, dropped } = stripElf(readFileSync(input), input);
  writeFileSync(output ?? input, out, { mode: 0o755 });
  console.log(`${input}: dropped ${dropped.length} sections, ${readFileSync(input).length} -> ${out.length} bytes`);
}
