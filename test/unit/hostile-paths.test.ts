// Hostile names and archives from another node: real tar files (built with Python's tarfile, the
// way a hostile peer could), real GNU tar, a real file system, a real LMDB and a real Transfer
// server. Each escape must be refused with a message naming the entry, and nothing may appear
// outside the directory (nor, for archives, inside it). Needs root (device nodes, chown).
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openEnv, type Env } from '../../common/db';
import { peerIdentity, type PeerIdentity } from '../../common/identity';
import { createCa, issueAdminCert, issueNodeCert } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { checkDockerName, checkHostPort, checkId, insideDir, pathInside, RpcError } from '../../common/validate';
import { TermFence } from '../../common/fencing';
import { MigrationTarget } from '../../agent/migration/target';
import { extractCheckpoint } from '../../agent/runtime/checkpoint-files';
import { importUpperDir, scanTar, TarEntryValidator } from '../../agent/runtime/fsdiff';
import { UnsafeArchiveError, type ContainerRuntime, type RuntimeError } from '../../agent/runtime/runtime';
import { ArtifactRegistry } from '../../agent/transfer/artifacts';
import { transferService } from '../../agent/transfer/server';
import { tempDir } from '../helpers/tmp';

// ------------------------------------------------------------------ crafting tars with Python

interface Member {
  name: string;
  type?: 'file' | 'dir' | 'sym' | 'link' | 'chr' | 'blk' | 'fifo' | 'cont';
  link?: string;
  data?: string;
  major?: number;
  minor?: number;
  /** pax records for this member (e.g. { path: '../x' } overrides the header's name) */
  pax?: Record<string, string>;
}

const PY = `
import io, json, sys, tarfile
out, fmt, members = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
T = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'sym': tarfile.SYMTYPE, 'link': tarfile.LNKTYPE,
     'chr': tarfile.CHRTYPE, 'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE, 'cont': tarfile.CONTTYPE}
with tarfile.open(out, 'w', format={'gnu': tarfile.GNU_FORMAT, 'pax': tarfile.PAX_FORMAT}[fmt]) as t:
    for m in members:
        ti = tarfile.TarInfo(m['name'])
        ti.type = T[m.get('type', 'file')]
        ti.linkname = m.get('link', '')
        ti.mode = 0o755 if ti.type == tarfile.DIRTYPE else 0o644
        ti.devmajor, ti.devminor = m.get('major', 0), m.get('minor', 0)
        if 'pax' in m: ti.pax_headers = m['pax']
        data = m.get('data', 'x').encode() if ti.type in (tarfile.REGTYPE, tarfile.CONTTYPE) else b''
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data) if data else None)
`;

function makeTar(file: string, members: Member[], format: 'gnu' | 'pax' = 'gnu'): string {
  execFileSync('python3', ['-c', PY, file, format, JSON.stringify(members)]);
  return file;
}

/** Every path below dir (relative; symlinks listed, not followed), for "nothing changed" checks. */
function tree(dir: string, rel = ''): string[] {
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const d of ents) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    out.push(r);
    if (d.isDirectory()) out.push(...tree(dir, r));
  }
  return out.sort();
}

// ------------------------------------------------------------------ diff layer import

describe('diff layer import refuses every escape, before writing anything', () => {
  let t: { dir: string; cleanup: () => void };
  let upper: string;
  let outside: string;
  let secret: string;
  beforeEach(() => {
    t = tempDir('herd-hostile-');
    upper = path.join(t.dir, 'upper');
    outside = path.join(t.dir, 'outside');
    fs.mkdirSync(upper);
    fs.mkdirSync(outside);
    secret = path.join(outside, 'secret');
    fs.writeFileSync(secret, 'do not touch\n');
  });
  afterEach(() => t.cleanup());

  /** name -> [members, format, expected reason] (OUT stands for the absolute outside dir) */
  const cases: Array<[string, (out: string) => Member[], 'gnu' | 'pax', RegExp]> = [
    ['an absolute name', (o) => [{ name: `${o}/abs` }], 'gnu', /unsafe entry "\/.*\/outside\/abs": absolute name/],
    ['a .. name', () => [{ name: '../outside/dotdot' }], 'gnu', /unsafe entry "\.\.\/outside\/dotdot": name contains '\.\.'/],
    ['a .. in the middle of a name', () => [{ name: 'a/' , type: 'dir' }, { name: 'a/../../outside/mid' }], 'gnu', /"a\/\.\.\/\.\.\/outside\/mid": name contains '\.\.'/],
    ['a .. hidden in a pax path record', () => [{ name: 'harmless', pax: { path: '../outside/pax' } }], 'pax', /"\.\.\/outside\/pax": name contains '\.\.'/],
    ['a .. hidden in a GNU long name', () => [{ name: `${'d/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../outside/long` }], 'gnu', /name contains '\.\.'/],
    ['an absolute symlink, then a file written through it ("a -> /etc", "a/passwd")', (o) => [{ name: 'a', type: 'sym', link: o }, { name: 'a/passwd' }], 'gnu', /unsafe entry "a\/passwd": name goes through the symlink a/],
    ['a relative symlink climbing out, then a file through it', () => [{ name: 'up', type: 'sym', link: '..' }, { name: 'up/outside/rel' }], 'gnu', /"up\/outside\/rel": name goes through the symlink up/],
    ['a symlink in a subdir, then a dir and a file through it', (o) => [{ name: 'd/', type: 'dir' }, { name: 'd/s', type: 'sym', link: o }, { name: 'd/s/sub/', type: 'dir' }, { name: 'd/s/sub/f' }], 'gnu', /"d\/s\/sub\/": name goes through the symlink d\/s/],
    ['a symlink reached through ./ and // spellings', (o) => [{ name: './s', type: 'sym', link: o }, { name: 's//x' }], 'gnu', /"s\/\/x": name goes through the symlink s/],
    ['a symlink replaced by a directory, then filled', (o) => [{ name: 's', type: 'sym', link: o }, { name: 's/', type: 'dir' }, { name: 's/f' }], 'gnu', /"s\/": replaces the symlink s/],
    ['a hard link to an absolute path outside', (o) => [{ name: 'h', type: 'link', link: `${o}/secret` }], 'gnu', /unsafe archive: tar says "Removing leading `\/' from hard link targets"/],
    // tar lists this target already stripped ("outside/secret"), and says so: that is what refuses it
    ['a hard link with .. to a file outside', () => [{ name: 'h', type: 'link', link: '../outside/secret' }], 'gnu', /unsafe archive: tar says "Removing leading `\.\.\/' from hard link targets"/],
    ['a hard link with .. inside its target', () => [{ name: 'd/', type: 'dir' }, { name: 'h', type: 'link', link: 'd/../../outside/secret' }], 'gnu', /tar says "Removing leading `d\/\.\.\/\.\.\/' from hard link targets"|hard link target contains '\.\.'/],
    ['a hard link through a symlink', (o) => [{ name: 's', type: 'sym', link: o }, { name: 'h', type: 'link', link: 's/secret' }], 'gnu', /"h": hard link target goes through the symlink s/],
    ['a hard link to a symlink (a second name for it), then a file through that name', (o) => [{ name: 's', type: 'sym', link: o }, { name: 'h', type: 'link', link: 's' }, { name: 'h/pwned' }], 'gnu', /"h\/pwned": name goes through the symlink h/],
    ['a block device node', () => [{ name: 'sda', type: 'blk', major: 8, minor: 0 }], 'gnu', /"sda": device node \(block 8,0\): only overlay whiteouts/],
    ['a character device node other than a whiteout', () => [{ name: 'mem', type: 'chr', major: 1, minor: 1 }], 'gnu', /"mem": device node \(character 1,1\)/],
    ['an entry type a diff never holds (contiguous file)', () => [{ name: 'c' , type: 'cont' }], 'gnu', /"c": entry type 'C'/],
    ['a name longer than PATH_MAX', () => [{ name: `${'n'.repeat(200)}/`.repeat(21) + 'f', pax: {} }], 'pax', /name is longer than 4096 bytes/],
    ['a symlink whose target would pass only after later entries are ignored (bad entry last of many)', (o) => [
      ...Array.from({ length: 200 }, (_, i) => ({ name: `ok/${i}` })),
      { name: 'ok/zz', type: 'sym', link: o },
      { name: 'ok/zz/late' },
    ], 'gnu', /"ok\/zz\/late": name goes through the symlink ok\/zz/],
  ];

  for (const [what, members, format, why] of cases) {
    it(`refuses ${what}; nothing is written anywhere`, async () => {
      const before = tree(outside);
      const tar = makeTar(path.join(t.dir, 'evil.tar'), members(outside), format);
      const err = await importUpperDir(tar, upper).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafeArchiveError);
      expect((err as RuntimeError).code).toBe('INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).toMatch(/nothing was extracted/);
      expect(tree(upper)).toEqual([]); // nothing at all, not only nothing outside
      expect(tree(outside)).toEqual(before);
      expect(fs.readFileSync(secret, 'utf8')).toBe('do not touch\n');
      expect(fs.statSync(secret).nlink).toBe(1); // no hard link was made to it
      expect(tree(t.dir).filter((p) => !p.startsWith('upper') && !p.startsWith('outside'))).toEqual(['evil.tar']);
    });
  }

  it('refuses a file written through a symlink that was already in the upper dir', async () => {
    fs.symlinkSync(outside, path.join(upper, 'pre'));
    const tar = makeTar(path.join(t.dir, 'evil.tar'), [{ name: 'pre/x' }]);
    await expect(importUpperDir(tar, upper)).rejects.toThrow(/"pre\/x": name goes through the symlink pre .*already in the directory/);
    expect(tree(outside)).toEqual(['secret']);
    expect(tree(upper)).toEqual(['pre']);
  });

  it('still accepts what a real diff layer holds: whiteouts, absolute symlinks, relative links, hard links inside, fifos, deep paths', async () => {
    const deep = `${'deep/'.repeat(300)}leaf`; // 1504 bytes, 301 levels
    const tar = makeTar(path.join(t.dir, 'ok.tar'), [
      { name: './', type: 'dir' },
      { name: 'etc/', type: 'dir' },
      { name: 'etc/gone', type: 'chr', major: 0, minor: 0 },
      { name: 'bin/', type: 'dir' },
      { name: 'bin/busybox', data: 'elf' },
      { name: 'bin/sh', type: 'sym', link: '/bin/busybox' },
      { name: 'bin/up', type: 'sym', link: '../../../../etc' },
      { name: 'bin/hard', type: 'link', link: 'bin/busybox' },
      { name: 'run/', type: 'dir' },
      { name: 'run/fifo', type: 'fifo' },
      { name: deep, data: 'bottom' },
    ], 'pax');
    await importUpperDir(tar, upper);
    expect(fs.readlinkSync(path.join(upper, 'bin/sh'))).toBe('/bin/busybox');
    expect(fs.lstatSync(path.join(upper, 'etc/gone')).rdev).toBe(0);
    expect(fs.statSync(path.join(upper, 'bin/hard')).ino).toBe(fs.statSync(path.join(upper, 'bin/busybox')).ino);
    expect(fs.readFileSync(path.join(upper, deep), 'utf8')).toBe('bottom');
    expect(tree(outside)).toEqual(['secret']);
  });

  it('checks a symlink-heavy name in linear time (no quadratic prefix scan)', () => {
    const v = new TarEntryValidator();
    for (let i = 0; i < 2000; i++) expect(v.check({ type: 'l', name: `s${i}`, link: '/', uid: 0, gid: 0 })).toBeUndefined();
    const name = 'a/'.repeat(2040) + 'f'; // 4081 bytes, 2041 components
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) expect(v.check({ type: '-', name, uid: 0, gid: 0 })).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

// ------------------------------------------------------------------ checkpoint extraction

describe('checkpoint extraction accepts only files and directories', () => {
  let t: { dir: string; cleanup: () => void };
  let dest: string;
  let outside: string;
  beforeEach(() => {
    t = tempDir('herd-hostile-cp-');
    dest = path.join(t.dir, 'staged');
    outside = path.join(t.dir, 'outside');
    fs.mkdirSync(outside);
  });
  afterEach(() => t.cleanup());

  it('extracts a CRIU image dir', async () => {
    const tar = makeTar(path.join(t.dir, 'cp.tar'), [{ name: './', type: 'dir' }, { name: './inventory.img' }, { name: './pages-1.img' }, { name: './herd-checkpoint.json', data: '{}' }]);
    expect(await extractCheckpoint(tar, dest)).toBe(4);
    expect(tree(dest)).toEqual(['herd-checkpoint.json', 'inventory.img', 'pages-1.img']);
  });

  const bad: Array<[string, (o: string) => Member[], RegExp]> = [
    ['a symlink', (o) => [{ name: 'inventory.img', type: 'sym', link: `${o}/x` }], /"inventory\.img": entry type 'l' \(symlink\) is not allowed/],
    ['a hard link', () => [{ name: 'a.img' }, { name: 'b.img', type: 'link', link: 'a.img' }], /"b\.img": entry type 'h' \(hard link\)/],
    ['a device node, even a whiteout', () => [{ name: 'n', type: 'chr', major: 0, minor: 0 }], /"n": entry type 'c' \(character device\)/],
    ['a fifo', () => [{ name: 'p', type: 'fifo' }], /"p": entry type 'p' \(fifo\)/],
    ['a .. name', () => [{ name: '../outside/cp-dotdot' }], /name contains '\.\.'/],
    ['an absolute name', (o) => [{ name: `${o}/cp-abs` }], /absolute name/],
  ];
  for (const [what, members, why] of bad) {
    it(`refuses ${what}; nothing is extracted`, async () => {
      const tar = makeTar(path.join(t.dir, 'cp.tar'), members(outside));
      const err = await extractCheckpoint(tar, dest).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafeArchiveError);
      expect((err as Error).message).toMatch(why);
      expect(fs.existsSync(dest)).toBe(false);
      expect(tree(outside)).toEqual([]);
    });
  }

  it('scanTar with the checkpoint options agrees (the listing is what is checked)', async () => {
    const tar = makeTar(path.join(t.dir, 'cp.tar'), [{ name: 'x', type: 'sym', link: 'y' }]);
    await expect(scanTar(tar)).resolves.toBe(1); // fine in a diff layer
    await expect(extractCheckpoint(tar, dest)).rejects.toBeInstanceOf(UnsafeArchiveError);
  });
});

// ------------------------------------------------------------------ names and path helpers

describe('name and path checks', () => {
  it('insideDir and pathInside keep paths under the root', () => {
    expect(insideDir('/data', '/data/migrations/in/m1')).toBe(true);
    expect(insideDir('/data', 'migrations/../x')).toBe(true);
    expect(insideDir('/data', '/data')).toBe(true);
    expect(insideDir('/data', '/data/../etc/passwd')).toBe(false);
    expect(insideDir('/data', '/database')).toBe(false);
    expect(insideDir('/data/', '../data2/x')).toBe(false);
    expect(insideDir('/', '/etc')).toBe(true);
    expect(pathInside('/data/in', 'm1', 'fs.tar')).toBe('/data/in/m1/fs.tar');
    for (const bad of ['..', '.', '', '../x', 'a/b', '/etc', 'a\0b']) expect(() => pathInside('/data/in', bad), bad).toThrow(/plain name/);
  });

  it('ids and Docker names cannot be path components that climb', () => {
    for (const bad of ['..', '.', '../x', 'a/b', '/abs', '.hidden', 'a\\b', 'a b', '', `x${'y'.repeat(128)}`]) {
      expect(checkId('migration_id', bad), bad).toMatch(/migration_id/);
    }
    expect(checkId('migration_id', 'm-1.2_3')).toBeUndefined();
    expect(checkDockerName('name', 'web_1.a-b')).toBeUndefined();
    for (const bad of ['x', '..', '../../evil', '-x', 'a/b', 'n'.repeat(256)]) expect(checkDockerName('name', bad), bad).toMatch(/name/);
    expect(checkHostPort('source_address', '10.0.0.5:7400')).toBeUndefined();
    expect(checkHostPort('source_address', '[::1]:7400')).toBeUndefined();
    for (const bad of ['unix:/var/run/docker.sock', 'dns:///x:1', 'host', 'h:0', 'h:70000', '../x:1']) expect(checkHostPort('source_address', bad), bad).toMatch(/source_address/);
  });
});

// ------------------------------------------------------------------ the target side of a migration

/** A ContainerRuntime that makes no containers: it records calls, and imports tars with the real fsdiff code. */
class RecordingRuntime {
  calls: string[] = [];
  constructor(private readonly root: string, private readonly upper: string) {}
  async imageLayers() { this.calls.push('imageLayers'); return ['sha256:x']; }
  async create(_spec: unknown, name: string) { this.calls.push(`create ${name}`); fs.mkdirSync(path.join(this.root, 'containers', DOCKER_ID), { recursive: true }); return DOCKER_ID; }
  async inspect() { this.calls.push('inspect'); return { dockerId: DOCKER_ID, upperDir: this.upper }; }
  async dockerRootDir() { return this.root; }
  async stagingDir() { return undefined; } // the old path: staged under Docker's root
  async importUpperDir(tar: string, upper: string) { this.calls.push('importUpperDir'); return importUpperDir(tar, upper); }
  async importFull(tar: string, upper: string) { this.calls.push('importFull'); return importUpperDir(tar, upper); }
  async restoreFromDir(_id: string, _dir: string, name: string) { this.calls.push(`restore ${name}`); return { ms: 1, pid: 1, leaksRemoved: 0 }; }
  async remove() { this.calls.push('remove'); }
}
const DOCKER_ID = 'c0ffee'.padEnd(64, '0');
const SHA = 'a'.repeat(64);

describe('MigrationTarget refuses hostile requests', () => {
  let t: { dir: string; cleanup: () => void };
  let env: Env;
  let rt: RecordingRuntime;
  let target: MigrationTarget;
  let dataDir: string;
  let outside: string;
  let certs: { a: string; b: string; admin: string };
  let n = 0;

  // what peerIdentity(call) gives for a call over mTLS: the real function, fed a real certificate's DER
  const as = (pem: string): PeerIdentity => peerIdentity({ getAuthContext: () => ({ sslPeerCertificate: { raw: new X509Certificate(pem).raw } as never }) })!;

  beforeAll(async () => {
    t = tempDir('herd-hostile-target-');
    dataDir = path.join(t.dir, 'data');
    outside = path.join(t.dir, 'outside');
    fs.mkdirSync(outside);
    fs.mkdirSync(path.join(t.dir, 'upper'));
    env = openEnv(dataDir, { mapSizeBytes: 64 << 20 });
    rt = new RecordingRuntime(path.join(t.dir, 'docker'), path.join(t.dir, 'upper'));
    target = new MigrationTarget({ nodeId: 'tgt', env, runtime: rt as unknown as ContainerRuntime, dataDir, fence: new TermFence(), fetchOptions: { retries: 0, backoffMs: 1 } });
    const ca = await createCa('hostile');
    certs = {
      a: (await issueNodeCert(ca, 'a', '127.0.0.1:1')).cert,
      b: (await issueNodeCert(ca, 'b', '127.0.0.1:2')).cert,
      admin: (await issueAdminCert(ca, 'ops', 'admin')).cert,
    };
  });
  afterAll(async () => {
    await env?.close();
    t?.cleanup();
  });

  const prepareReq = (over: Record<string, unknown> = {}) => ({
    migration_id: `m${++n}`, herd_id: 'h1', source_node_id: 'a', source_address: '127.0.0.1:9', fs_mode: 'FS_MODE_DIFF',
    create_json: '{"Image":"busybox"}', name: 'web_1', term: 1, ...over,
  });
  const code = (e: unknown) => (e instanceof RpcError ? e.code : `not an RpcError: ${String(e)}`);

  it('answers INVALID_ARGUMENT to a traversal in any field of PrepareMigration, before touching Docker or the fence', async () => {
    const fields: Array<[string, unknown]> = [
      ['migration_id', '../../../../tmp/x'], ['migration_id', '..'], ['herd_id', '../h'], ['source_node_id', 'a/../../b'],
      ['name', '../../evil'], ['name', '.'], ['name', 'a/b'], ['source_address', 'unix:/var/run/docker.sock'],
      ['fs_mode', 'FS_MODE_../../x'], ['fs_mode', 7], ['create_json', '['.repeat(200_000)], ['create_json', '"a string"'],
      ['create_json', 'x'.repeat((1 << 20) + 1)],
    ];
    for (const [field, value] of fields) {
      const e = await target.prepare(prepareReq({ [field]: value })).catch((x: unknown) => x);
      expect(code(e), `${field}=${String(value).slice(0, 40)}`).toBe(grpc.status.INVALID_ARGUMENT);
      expect((e as Error).message).toContain(field);
    }
    expect(rt.calls).toEqual([]);
    expect(tree(outside)).toEqual([]);
  });

  it('answers INVALID_ARGUMENT to hostile artifact lists and checkpoint names in CompleteMigration', async () => {
    const art = (name: unknown, extra: Record<string, unknown> = {}) => ({ name, size: 1, sha256: SHA, ...extra });
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ artifacts: [art('../../../../tmp/evil.tar')] }, /artifact "\.\.\/\.\.\/.*" is not one this node can apply/],
      [{ artifacts: [art('checkpoint.tar'), art('fs.tar/../../x')] }, /not one this node can apply/],
      [{ artifacts: [art('checkpoint.tar'), art('evil.sh')] }, /"evil\.sh" is not one/],
      [{ artifacts: [art('checkpoint.tar'), art('image.../../etc/passwd')] }, /not one this node can apply/],
      [{ artifacts: [art('checkpoint.tar'), art('image..img')] }, /not one this node can apply/],
      [{ artifacts: [art('checkpoint.tar'), art('image.pages-1.img'), art('image.pages-1.img')] }, /listed twice/],
      [{ artifacts: [art('checkpoint.tar'), art('checkpoint.tar')] }, /listed twice/],
      [{ artifacts: [art('fs.tar')] }, /must include checkpoint\.tar/],
      [{ artifacts: [] }, /artifacts is required/],
      [{ artifacts: [art('checkpoint.tar', { size: -1 })] }, /size "-1" is not a byte count/],
      [{ artifacts: [art('checkpoint.tar', { sha256: '../x' })] }, /sha256 must be/],
      [{ artifacts: [art('checkpoint.tar')], checkpoint_name: '../../../../tmp/cp' }, /checkpoint_name "\.\.\/.*" is not valid/],
      [{ artifacts: [art('checkpoint.tar')], checkpoint_name: '..' }, /checkpoint_name/],
      [{ migration_id: '../m', artifacts: [art('checkpoint.tar')] }, /migration_id/],
    ];
    for (const [over, why] of bad) {
      const e = await target.complete({ migration_id: 'm-x', ...over }, () => {}).catch((x: unknown) => x);
      expect(code(e), JSON.stringify(over)).toBe(grpc.status.INVALID_ARGUMENT);
      expect((e as Error).message).toMatch(why);
    }
    for (const call of [() => target.abort({ migration_id: '../../x' }), async () => target.status({ migration_id: '/etc' })]) {
      expect(code(await call().catch((x: unknown) => x))).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect(rt.calls).toEqual([]);
    expect(tree(outside)).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, 'migrations'))).toBe(false);
  });

  it('over mTLS, only the source node the request names (or the stored source) may act on a migration', async () => {
    const a = as(certs.a);
    const b = as(certs.b);
    const ops = as(certs.admin);
    expect(a).toEqual({ kind: 'node', nodeId: 'a' });
    expect(ops).toMatchObject({ kind: 'admin', name: 'ops' });

    // prepare: the caller must be the claimed source
    const claim = prepareReq({ source_node_id: 'a' });
    const e1 = await target.prepare(claim, b).catch((x: unknown) => x);
    expect(code(e1)).toBe(grpc.status.PERMISSION_DENIED);
    expect((e1 as Error).message).toBe(`node "b" may not prepare migration ${claim.migration_id}, whose source is node "a"`);
    expect(code(await target.prepare(claim, ops).catch((x: unknown) => x))).toBe(grpc.status.PERMISSION_DENIED);
    expect(rt.calls).toEqual([]);
    const ok = await target.prepare(claim, a);
    expect(ok.target_docker_id).toBe(DOCKER_ID);
    expect(rt.calls).toEqual(['imageLayers', 'create web_1', 'inspect']); // the upper dir, looked up while the source checkpoints

    // later calls carry no source: checked against what prepare stored
    const id = claim.migration_id;
    const e2 = await target.complete({ migration_id: id, artifacts: [{ name: 'checkpoint.tar', size: 1, sha256: SHA }] }, () => {}, b).catch((x: unknown) => x);
    expect(code(e2)).toBe(grpc.status.PERMISSION_DENIED);
    expect((e2 as Error).message).toMatch(/node "b" may not complete migration .*, whose source is node "a"/);
    expect(code(await target.abort({ migration_id: id }, b).catch((x: unknown) => x))).toBe(grpc.status.PERMISSION_DENIED);
    expect(code(await Promise.resolve().then(() => target.status({ migration_id: id }, b)).catch((x: unknown) => x))).toBe(grpc.status.PERMISSION_DENIED);
    expect(code(await Promise.resolve().then(() => target.status({ migration_id: id }, ops)).catch((x: unknown) => x))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await target.status({ migration_id: id }, a)).toEqual({ state: 'prepared', target_docker_id: DOCKER_ID });
    // an unknown migration: any node may hear "unknown", no operator
    expect(await target.status({ migration_id: 'never' }, b)).toEqual({ state: 'unknown', target_docker_id: '' });
    // plain text (insecure cluster): nobody identified, the request is taken at its word
    expect(await target.status({ migration_id: id })).toEqual({ state: 'prepared', target_docker_id: DOCKER_ID });
    expect(await target.abort({ migration_id: id }, a)).toEqual({ removed: true, running: false });
    expect(rt.calls).toContain('remove');
  });

  describe('with artifacts served by a real Transfer server', () => {
    let server: grpc.Server;
    let address: string;
    const registry = new ArtifactRegistry();
    beforeAll(async () => {
      server = new grpc.Server();
      server.addService(loadProtos().herd.Transfer.service, transferService(registry, { faults: {} }));
      const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
      address = `127.0.0.1:${port}`;
    });
    afterAll(() => server?.forceShutdown());

    async function migrate(files: Record<string, Member[]>, fsMode = 'FS_MODE_DIFF'): Promise<{ last: any; id: string }> {
      const req = prepareReq({ source_address: address, fs_mode: fsMode });
      await target.prepare(req);
      const src = path.join(t.dir, 'src', req.migration_id);
      fs.mkdirSync(src, { recursive: true });
      const artifacts = [];
      for (const [name, members] of Object.entries(files)) {
        const file = makeTar(path.join(src, name), members);
        const a = await registry.register({ migrationId: req.migration_id, name, path: file, allowedNodeId: 'tgt' });
        artifacts.push({ name, size: a.size, sha256: a.sha256 });
      }
      const progress: any[] = [];
      rt.calls = [];
      await target.complete({ migration_id: req.migration_id, artifacts, checkpoint_name: 'cp' }, (p) => progress.push(p));
      return { last: progress[progress.length - 1], id: req.migration_id };
    }

    it('refuses a diff layer that writes through a symlink: the migration fails naming the entry, nothing is restored or written outside', async () => {
      const { last, id } = await migrate({
        'checkpoint.tar': [{ name: 'inventory.img' }],
        'fs.tar': [{ name: 'etc', type: 'sym', link: outside }, { name: 'etc/passwd', data: 'root::0:0::/:/bin/sh' }],
      });
      expect(last).toMatchObject({ done: true, ok: false });
      expect(last.reason).toMatch(/^apply_fs on tgt: .*unsafe entry "etc\/passwd": name goes through the symlink etc/);
      expect(rt.calls).toEqual(['importUpperDir']);
      expect(tree(outside)).toEqual([]);
      expect(tree(path.join(t.dir, 'upper'))).toEqual([]);
      expect((await target.status({ migration_id: id })).state).toBe('failed');
    });

    it('refuses a checkpoint holding a symlink out of the staging dir', async () => {
      const { last } = await migrate({ 'checkpoint.tar': [{ name: 'inventory.img', type: 'sym', link: `${outside}/x` }, { name: 'pages-1.img' }] }, 'FS_MODE_NONE');
      expect(last).toMatchObject({ done: true, ok: false });
      expect(last.reason).toMatch(/unsafe entry "inventory\.img": entry type 'l' \(symlink\) is not allowed/);
      expect(rt.calls).toEqual([]);
      expect(fs.existsSync(path.join(t.dir, 'docker', 'containers', DOCKER_ID, 'herd-incoming-checkpoint'))).toBe(false);
      expect(tree(outside)).toEqual([]);
    });

    it('completes an honest migration (the checks do not get in the way)', async () => {
      const { last, id } = await migrate({
        'checkpoint.tar': [{ name: './', type: 'dir' }, { name: './inventory.img' }],
        'fs.tar': [{ name: './', type: 'dir' }, { name: 'bin/', type: 'dir' }, { name: 'bin/sh', type: 'sym', link: '/bin/busybox' }, { name: 'data.txt', data: 'hello' }],
        'image.pages-1.img': [{ name: 'memory', data: 'pages' }], // a big image travels as it is (its bytes here: any)
      });
      expect(last).toMatchObject({ done: true, ok: true });
      expect(rt.calls).toEqual(['importUpperDir', 'restore cp']); // no lookups inside the downtime
      expect(fs.readFileSync(path.join(t.dir, 'upper', 'data.txt'), 'utf8')).toBe('hello');
      expect(tree(path.join(t.dir, 'docker', 'containers', DOCKER_ID, 'herd-incoming-checkpoint')).sort()).toEqual(['inventory.img', 'pages-1.img']);
      expect(tree(outside)).toEqual([]);
      // the artifacts went under <data dir>/migrations/in/<id>/ only, and were removed after
      expect(fs.existsSync(path.join(dataDir, 'migrations', 'in', id))).toBe(false);
    });
  });
});
