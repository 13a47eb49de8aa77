/**
 * CgroupCollector against checked-in trees (test/fixtures/cgroup-v1: hybrid v1 + cgroup2 as
 * on this project's machines, cgroup-v2: pure cgroup2), synthetic trees of every layout
 * (test/fixtures/make-cgroup-tree.ts) and, when run as root on a v1 host, a real cgroup
 * and a real runc container on this machine.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../../common/types';
import { CgroupCollector, type CgroupContainerRef } from '../../agent/collectors/cgroup';
import { type CgroupLayout, type CgroupParent, STEP, gauges, makeCgroupTree } from '../fixtures/make-cgroup-tree';

const FIX = new URL('../fixtures/', import.meta.url).pathname;
const T0 = 1_700_000_000_000;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** metric -> value for one entity. */
const of = (samples: Sample[], entity: string) => Object.fromEntries(samples.filter((s) => s.entity === entity).map((s) => [s.metric, s.value]));

/** A writable copy of a checked-in fixture (symlinks kept as they are). */
function copyFixture(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'herd-cgfix-'));
  cpSync(join(FIX, name), dir, { recursive: true, verbatimSymlinks: true });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Adds delta to every number that follows `label` (a "key " or "key=" prefix, or '' for a one-number file). */
function bump(file: string, label: string, delta: number): void {
  const s = readFileSync(file, 'latin1');
  const re = label === '' ? /^(\d+)/ : new RegExp(`(?<=(?:^|[\\s])${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})(\\d+)`, 'gm');
  writeFileSync(file, s.replace(re, (n) => String(Number(n) + delta)));
}

/** Adds to an interface's rx/tx bytes in a net/dev file. */
function bumpNet(file: string, iface: string, rx: number, tx: number): void {
  const lines = readFileSync(file, 'latin1').split('\n');
  const out = lines.map((l) => {
    const m = /^(\s*)([^:\s]+):(.*)$/.exec(l);
    if (!m || m[2] !== iface) return l;
    const f = m[3].trim().split(/\s+/).map(Number);
    f[0] += rx;
    f[8] += tx;
    return `${m[1]}${m[2]}: ${f.join(' ')}`;
  });
  writeFileSync(file, out.join('\n'));
}

const RATE_METRICS = [
  'container.cpu.usage', 'container.cpu.throttled_periods', 'container.cpu.throttled_ms',
  'container.blkio.read_ops', 'container.blkio.write_ops', 'container.blkio.read_bytes', 'container.blkio.write_bytes',
  'container.net.rx_bytes', 'container.net.tx_bytes',
];

describe('checked-in v1 tree (hybrid, as on this machine)', () => {
  const A = '3f1c0e6b8a2d4c7e9b5a1f0d2e4c6a8b0d1e3f5a7c9b2d4e6f8a0c1e3b5d7f9a';
  const B = '8d2e4f6a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d1e';
  const C = 'c0ffee11d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9';
  const list: CgroupContainerRef[] = [
    { herdId: 'a', dockerId: A, pid: 4242 },
    { herdId: 'b', dockerId: B, pid: 4343 },
    { herdId: 'c', dockerId: C, pid: 4444 },
  ];
  const make = (dir: string) => new CgroupCollector({ root: join(dir, 'sys/fs/cgroup'), procRoot: join(dir, 'proc'), containers: () => list });

  it('locates docker/<id>, system.slice/docker-<id>.scope and a custom parent via /proc/<pid>/cgroup', async () => {
    const dir = join(FIX, 'cgroup-v1');
    const col = make(dir);
    await col.collect(T0);
    const cg = join(dir, 'sys/fs/cgroup');
    expect(col.located('a')).toEqual({
      v1: Object.fromEntries(['cpuacct', 'cpu', 'memory', 'blkio', 'pids'].map((c) => [c, join(cg, c, 'docker', A)])),
      v2: join(cg, 'unified/docker', A),
    });
    expect(col.located('b')?.v1.cpuacct).toBe(join(cg, 'cpuacct/system.slice', `docker-${B}.scope`));
    const c = col.located('c')!;
    expect(c.v1.memory).toBe(join(cg, 'memory/herd-node1', C));
    expect(c.v1.blkio).toBeUndefined(); // its /proc line says "/" and there is no directory
  });

  it('first round: gauges only, memory minus total_inactive_file', async () => {
    const s = await make(join(FIX, 'cgroup-v1')).collect(T0);
    expect(of(s, 'a')).toEqual({ 'container.mem.usage_bytes': 26546176 - 25174016, 'container.pids': 2 });
    expect(of(s, 'b')).toEqual({ 'container.mem.usage_bytes': 536870912 - 134217728, 'container.pids': 17 });
    // no memory.stat: the raw usage
    expect(of(s, 'c')).toEqual({ 'container.mem.usage_bytes': 8388608, 'container.pids': 4 });
  });

  it('memoryInUse: read now, also before the first round located the container; undefined for one not listed', async () => {
    const col = make(join(FIX, 'cgroup-v1'));
    expect(col.memoryInUse('b')).toBe(536870912 - 134217728);
    expect(col.memoryInUse('c')).toBe(8388608);
    expect(col.memoryInUse('nobody')).toBeUndefined();
    const s = await col.collect(T0); // the round goes on as if it had located them itself
    expect(of(s, 'a')['container.mem.usage_bytes']).toBe(26546176 - 25174016);
    expect(col.memoryInUse('a')).toBe(26546176 - 25174016);
  });

  it('rates across two rounds', async () => {
    const dir = copyFixture('cgroup-v1');
    const col = make(dir);
    await col.collect(T0);
    const cg = (c: string, rel: string, f: string) => join(dir, 'sys/fs/cgroup', c, rel, f);
    for (const [rel, pid] of [[`docker/${A}`, 4242], [`herd-node1/${C}`, 4444]] as const) {
      bump(cg('cpuacct', rel, 'cpuacct.usage'), '', 1_500_000_000);
      bump(cg('cpu', rel, 'cpu.stat'), 'nr_throttled ', 4);
      bump(cg('cpu', rel, 'cpu.stat'), 'throttled_time ', 100_000_000);
      bumpNet(join(dir, 'proc', String(pid), 'net/dev'), 'eth0', 2000, 1000);
      bumpNet(join(dir, 'proc', String(pid), 'net/dev'), 'lo', 999_999, 999_999);
    }
    bumpNet(join(dir, 'proc/4444/net/dev'), 'eth1', 4000, 6000);
    for (const f of ['blkio.throttle.io_serviced_recursive', 'blkio.throttle.io_service_bytes_recursive']) {
      const mult = f.includes('bytes') ? 4096 : 1;
      bump(cg('blkio', `docker/${A}`, f), 'Read ', 20 * mult);
      bump(cg('blkio', `docker/${A}`, f), 'Write ', 40 * mult);
    }
    bump(cg('cpuacct', `system.slice/docker-${B}.scope`, 'cpuacct.usage'), '', 3_000_000_000);
    const s = await col.collect(T0 + 2000);
    expect(of(s, 'a')).toEqual({
      'container.mem.usage_bytes': 26546176 - 25174016, 'container.pids': 2,
      'container.cpu.usage': 0.75, 'container.cpu.throttled_periods': 2, 'container.cpu.throttled_ms': 50,
      'container.blkio.read_ops': 10, 'container.blkio.write_ops': 20, 'container.blkio.read_bytes': 40960, 'container.blkio.write_bytes': 81920,
      'container.net.rx_bytes': 1000, 'container.net.tx_bytes': 500,
    });
    // b shares the agent's netns (--network host): no net metrics; "Total 0" blkio reads as 0
    expect(of(s, 'b')).toMatchObject({ 'container.cpu.usage': 1.5, 'container.cpu.throttled_periods': 0, 'container.blkio.write_ops': 0 });
    expect(of(s, 'b')['container.net.rx_bytes']).toBeUndefined();
    // c: no blkio cgroup at all; net summed over eth0 and eth1
    const c = of(s, 'c');
    expect(c).toMatchObject({ 'container.cpu.usage': 0.75, 'container.net.rx_bytes': 3000, 'container.net.tx_bytes': 3500 });
    expect(c['container.blkio.read_ops']).toBeUndefined();
  });
});

describe('checked-in v2 tree', () => {
  const A = '5e7a9c1b3d5f7e9a0c2e4a6c8e0a1c3e5a7c9e1a3c5e7a9c0e2a4c6e8a0c2e4a';
  const B = '0b1d3f5a7c9e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b0d';
  const C = 'feedface0123456789abcdef0123456789abcdef0123456789abcdef01234567';
  const list: CgroupContainerRef[] = [
    { herdId: 'a', dockerId: A, pid: 5151 },
    { herdId: 'b', dockerId: B, pid: 5252 },
    { herdId: 'c', dockerId: C, pid: 5353 },
  ];
  const make = (dir: string) => new CgroupCollector({ root: join(dir, 'sys/fs/cgroup'), procRoot: join(dir, 'proc'), containers: () => list });

  it('locates, reads gauges and rates', async () => {
    const dir = copyFixture('cgroup-v2');
    const cg = join(dir, 'sys/fs/cgroup');
    const col = make(dir);
    const s1 = await col.collect(T0);
    expect(col.located('a')).toEqual({ v1: {}, v2: join(cg, `system.slice/docker-${A}.scope`) });
    expect(col.located('b')?.v2).toBe(join(cg, 'docker', B));
    // /proc says herd.slice/docker-<id>.scope/init.scope: cut back to the container's cgroup
    expect(col.located('c')?.v2).toBe(join(cg, `herd.slice/docker-${C}.scope`));
    expect(of(s1, 'a')).toEqual({ 'container.mem.usage_bytes': 73728000 - 12288000, 'container.pids': 5 });
    expect(of(s1, 'b')).toEqual({ 'container.mem.usage_bytes': 4096000, 'container.pids': 1 }); // inactive_file > current
    expect(of(s1, 'c')).toEqual({ 'container.mem.usage_bytes': 2097152 - 524288, 'container.pids': 3 }); // cgroup.threads

    const a = join(cg, `system.slice/docker-${A}.scope`);
    bump(join(a, 'cpu.stat'), 'usage_usec ', 2_000_000);
    bump(join(a, 'cpu.stat'), 'nr_throttled ', 10);
    bump(join(a, 'cpu.stat'), 'throttled_usec ', 400_000);
    bump(join(a, 'io.stat'), 'rios=', 50);
    bump(join(a, 'io.stat'), 'wios=', 100);
    bump(join(a, 'io.stat'), 'rbytes=', 50 * 4096);
    bump(join(a, 'io.stat'), 'wbytes=', 100 * 4096);
    bumpNet(join(dir, 'proc/5151/net/dev'), 'eth0', 4000, 2000);
    bump(join(cg, `herd.slice/docker-${C}.scope/cpu.stat`), 'usage_usec ', 500_000);
    const s2 = await col.collect(T0 + 4000);
    expect(of(s2, 'a')).toEqual({
      'container.mem.usage_bytes': 73728000 - 12288000, 'container.pids': 5,
      'container.cpu.usage': 0.5, 'container.cpu.throttled_periods': 2.5, 'container.cpu.throttled_ms': 100,
      // both devices bumped: 2 x the per-device delta
      'container.blkio.read_ops': 25, 'container.blkio.write_ops': 50, 'container.blkio.read_bytes': 102400, 'container.blkio.write_bytes': 204800,
      'container.net.rx_bytes': 1000, 'container.net.tx_bytes': 500,
    });
    expect(of(s2, 'b')).toMatchObject({ 'container.cpu.usage': 0, 'container.blkio.read_ops': 0 }); // empty io.stat
    const c = of(s2, 'c');
    expect(c['container.cpu.usage']).toBe(0.125);
    expect(c['container.cpu.throttled_periods']).toBeUndefined(); // no cpu controller delegated
    expect(c['container.blkio.read_ops']).toBeUndefined();
  });
});

describe('synthetic trees', () => {
  const cases: Array<[CgroupLayout, CgroupParent]> = [
    ['v1', 'cgroupfs'], ['v1', 'custom'], ['hybrid', 'cgroupfs'], ['hybrid', 'systemd'], ['v2', 'systemd'], ['v2', 'cgroupfs'], ['v2', 'custom'],
  ];
  it.each(cases)('%s layout, %s parent: every metric of every container', async (layout, parent) => {
    const tree = makeCgroupTree({ layout, count: 4, parent });
    cleanups.push(() => tree.remove());
    const col = new CgroupCollector({ root: tree.root, procRoot: tree.procRoot, containers: () => tree.containers });
    const s1 = await col.collect(T0);
    expect(s1.length).toBe(4 * 2);
    tree.advance();
    const s2 = await col.collect(T0 + 5000);
    tree.containers.forEach((c, i) => {
      const g = gauges(i);
      const got = of(s2, c.herdId);
      const want: Record<string, number> = {
        'container.mem.usage_bytes': g.memExpected, 'container.pids': g.pids,
        'container.cpu.usage': STEP.cpuNs / 5e9, 'container.cpu.throttled_periods': STEP.nrThrottled / 5, 'container.cpu.throttled_ms': STEP.throttledNs / 1e6 / 5,
        'container.blkio.read_ops': STEP.readOps / 5, 'container.blkio.write_ops': STEP.writeOps / 5,
        'container.blkio.read_bytes': STEP.readBytes / 5, 'container.blkio.write_bytes': STEP.writeBytes / 5,
        'container.net.rx_bytes': STEP.rxBytes / 5, 'container.net.tx_bytes': STEP.txBytes / 5,
      };
      for (const [k, v] of Object.entries(want)) expect(got[k], `${c.herdId} ${k}`).toBeCloseTo(v, 9);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      expect(s2.every((x) => x.ts === T0 + 5000)).toBe(true);
    });
  });

  it('many containers: collect() yields to the event loop and still reports all', async () => {
    const tree = makeCgroupTree({ layout: 'v2', count: 600 });
    cleanups.push(() => tree.remove());
    const col = new CgroupCollector({ root: tree.root, procRoot: tree.procRoot, containers: () => tree.containers });
    await col.collect(T0);
    tree.advance();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const s = await col.collect(T0 + 5000);
    clearInterval(timer);
    expect(s.length).toBe(600 * 11);
    expect(new Set(s.map((x) => x.entity)).size).toBe(600);
    expect(ticks).toBeGreaterThan(0);
  });

  it('vanished container, missing files, restart and leaving the list', async () => {
    const tree = makeCgroupTree({ layout: 'hybrid', count: 3 });
    cleanups.push(() => tree.remove());
    let list = [...tree.containers];
    const col = new CgroupCollector({ root: tree.root, procRoot: tree.procRoot, containers: () => list });
    await col.collect(T0);
    tree.removeContainer(1); // exited; the tracker has not noticed yet
    const c2 = tree.containers[2];
    rmSync(join(tree.root, 'memory', c2.rel, 'memory.stat'));
    rmSync(join(tree.root, 'unified', c2.rel, 'pids.current'));
    tree.advance();
    const s2 = await col.collect(T0 + 5000);
    expect(of(s2, 'c1')).toEqual({});
    const g = of(s2, 'c2');
    expect(g['container.mem.usage_bytes']).toBe(gauges(2).memUsage); // no memory.stat: raw usage
    expect(g['container.pids']).toBeUndefined(); // a file vanished: that metric only
    expect(g['container.cpu.usage']).toBeCloseTo(0.5, 9);
    // Restarted container (new pid): first sighting again, no rates.
    list = [{ ...tree.containers[0], pid: 10_500 }, c2];
    const s3 = await col.collect(T0 + 10_000);
    expect(Object.keys(of(s3, 'c0')).sort()).toEqual(['container.mem.usage_bytes', 'container.pids']);
    expect(col.located('c1')).toBeUndefined(); // left the list: paths dropped
  });
});

const CG = '/sys/fs/cgroup';
const rootV1 = process.getuid?.() === 0 && existsSync(join(CG, 'cpuacct/cgroup.procs'));
const hasRunc = rootV1 && existsSync('/bin/busybox') && spawnSync('runc', ['--version']).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Makes <controller>/docker/<id> in every v1 controller; cleanup removes what it made. */
function realCgroup(id: string): string[] {
  const made: string[] = [];
  cleanups.push(async () => {
    for (const d of made.reverse()) {
      // A killed task leaves its cgroup a moment after wait() returns: retry a little.
      for (let i = 0; i < 40 && existsSync(d); i++) {
        try {
          rmdirSync(d);
        } catch {
          await sleep(50);
        }
      }
    }
  });
  const ctrls = ['cpu', 'cpuacct', 'memory', 'blkio', 'pids'].filter((c) => existsSync(join(CG, c, 'cgroup.procs')));
  for (const c of ctrls) {
    const parent = join(CG, c, 'docker');
    if (!existsSync(parent)) mkdirSync(parent), made.push(parent);
    mkdirSync(join(parent, id));
    made.push(join(parent, id));
  }
  return ctrls;
}

/** A directory on a real block device (not tmpfs), for O_DIRECT writes; null if none. */
function blockDeviceDir(): string | null {
  for (const d of [tmpdir(), process.cwd()]) if ((statSync(d).dev >> 8) & 0xfff) return d;
  return null;
}

describe('this machine (root, cgroup v1)', () => {
  // A real-part test never skips: without root and the v1 hierarchy it fails, saying why.
  beforeAll(() => {
    if (!rootV1) throw new Error('these tests need root and the cgroup v1 hierarchy at /sys/fs/cgroup (as on the CI machine)');
  });

  it('reads a real cgroup with a busy process in it', async () => {
    const id = randomBytes(32).toString('hex');
    const ctrls = realCgroup(id);
    const child = spawn(process.execPath, ['-e', `
      const { spawnSync } = require('child_process');
      setInterval(() => {}, 1000);
      process.stdout.write('ready\\n');
      process.stdin.once('data', (d) => {
        const [ms, file] = String(d).trim().split(' ');
        for (const end = Date.now() + Number(ms); Date.now() < end;);
        if (file) spawnSync('dd', ['if=/dev/zero', 'of=' + file, 'bs=4k', 'count=64', 'oflag=direct'], { stdio: 'ignore' });
        process.stdout.write('done\\n');
      });`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    const lines: string[] = [];
    child.stdout!.on('data', (d) => lines.push(...String(d).split('\n').filter(Boolean)));
    const line = async (want: string) => {
      while (!lines.includes(want)) await sleep(10);
    };
    await line('ready'); // node has started its threads: all of them move with cgroup.procs
    for (const c of ctrls) writeFileSync(join(CG, c, 'docker', id, 'cgroup.procs'), String(child.pid));

    const col = new CgroupCollector({ containers: () => [{ herdId: 'real', dockerId: id, pid: child.pid! }], enableBlkioAccounting: true });
    const s1 = of(await col.collect(Date.now()), 'real');
    expect(col.located('real')?.v1.cpuacct).toBe(join(CG, 'cpuacct/docker', id));
    expect(s1['container.pids']).toBeGreaterThanOrEqual(2); // node: main thread + V8/libuv threads
    expect(s1['container.mem.usage_bytes']).toBeGreaterThanOrEqual(0);

    const dir = blockDeviceDir();
    const file = dir ? join(dir, `.herd-blkio-${process.pid}`) : '';
    if (file) cleanups.push(() => rmSync(file, { force: true }));
    child.stdin!.write(`300 ${file}\n`);
    await line('done');
    const s2 = of(await col.collect(Date.now()), 'real');
    console.log('real cgroup, round 1:', s1, 'round 2:', s2);
    expect(s2['container.cpu.usage']).toBeGreaterThan(0.05);
    expect(s2['container.cpu.throttled_periods']).toBe(0);
    expect(s2['container.net.rx_bytes']).toBeUndefined(); // host netns: not the container's traffic
    if (file) {
      // 64 O_DIRECT writes of 4 KiB; enableBlkioAccounting made the kernel count them
      expect(s2['container.blkio.write_ops']).toBeGreaterThan(0);
      expect(s2['container.blkio.write_bytes']).toBeGreaterThanOrEqual(64 * 4096 * 0.5);
    }
  });

  it('reads a runc container made the way docker makes them (cgroupsPath /docker/<id>)', async () => {
    expect(hasRunc, 'runc and busybox must be installed (test/bed/install.sh installs docker.io and busybox-static)').toBe(true);
    const id = randomBytes(32).toString('hex');
    const bundle = mkdtempSync(join(tmpdir(), 'herd-runc-'));
    const state = join(bundle, 'state');
    const name = `herd-cgtest-${process.pid}`;
    const parents = readdirOrEmpty(CG).map((c) => join(CG, c, 'docker')).filter((p) => !existsSync(p));
    cleanups.push(async () => {
      spawnSync('runc', ['--root', state, 'delete', '-f', name], { stdio: 'ignore' });
      await sleep(100);
      for (const p of parents) for (let i = 0; i < 20 && existsSync(p); i++) try { rmdirSync(p); } catch { await sleep(50); }
      rmSync(bundle, { recursive: true, force: true });
    });
    mkdirSync(join(bundle, 'rootfs/bin'), { recursive: true });
    cpSync('/bin/busybox', join(bundle, 'rootfs/bin/busybox'));
    spawnSync('ln', ['-s', 'busybox', join(bundle, 'rootfs/bin/sh')]);
    expect(spawnSync('runc', ['spec'], { cwd: bundle }).status).toBe(0);
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/sh', '-c', 'while :; do :; done'];
    spec.linux.cgroupsPath = `/docker/${id}`;
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    // The container inherits runc's stdio: a pipe would never close and spawnSync would hang.
    const log = join(bundle, 'runc.log');
    const run = spawnSync('runc', ['--root', state, '--log', log, 'run', '-d', '--bundle', bundle, name], { stdio: 'ignore', timeout: 20_000 });
    expect(run.status, existsSync(log) ? readFileSync(log, 'utf8') : '').toBe(0);
    const pid = JSON.parse(String(spawnSync('runc', ['--root', state, 'state', name]).stdout)).pid as number;

    // The busy loop's own CPU time over the same window (utime + stime, clock ticks of 10 ms):
    // on a loaded machine it may get far less than a core, so that is the figure to match.
    const cpuSeconds = (): number => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
    const col = new CgroupCollector({ containers: () => [{ herdId: 'runc', dockerId: id, pid }] });
    const t0 = Date.now();
    await col.collect(t0);
    const c0 = cpuSeconds();
    await sleep(1000);
    const t1 = Date.now();
    const s = of(await col.collect(t1), 'runc');
    const ran = (cpuSeconds() - c0) / ((t1 - t0) / 1000);
    console.log('runc container:', col.located('runc'), s, `its own /proc figure: ${ran.toFixed(3)} cores`);
    expect(col.located('runc')?.v1.cpuacct).toBe(join(CG, 'cpuacct/docker', id));
    if (existsSync(join(CG, 'unified/cgroup.controllers'))) expect(col.located('runc')?.v2).toBe(join(CG, 'unified/docker', id));
    expect(ran).toBeGreaterThan(0);
    expect(Math.abs(s['container.cpu.usage'] - ran)).toBeLessThan(0.05 + 0.2 * ran);
    expect(s['container.pids']).toBe(1);
    // its own netns with only lo: net metrics present, and zero
    expect(s['container.net.rx_bytes']).toBe(0);
    expect(s['container.mem.usage_bytes']).toBeGreaterThan(0);
  });
});

function readdirOrEmpty(d: string): string[] {
  try {
    return spawnSync('ls', [d]).stdout.toString().split('\n').filter((x) => x && x !== 'unified' ? existsSync(join(d, x, 'cgroup.procs')) : x === 'unified');
  } catch {
    return [];
  }
}
