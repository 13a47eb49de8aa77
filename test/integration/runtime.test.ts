// The runtime layer for real: two bed nodes with their own dockerd, CRIU 4.2, busybox containers
// moved between them. Nothing skips: a missing dockerd or CRIU fails every test.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../agent/runtime/docker-runtime';
import { CriuError } from '../../agent/runtime/runtime';
import { BUSYBOX_IMAGE, startBed, type Bed } from '../bed/bed';
import { tempDir } from '../helpers/tmp';

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runtime on a 2-node docker bed', () => {
  let bed: Bed;
  let startError: unknown;
  let rt1: DockerRuntime;
  let rt2: DockerRuntime;
  let work: { dir: string; cleanup: () => void };
  const timings: Record<string, number[]> = {};
  const time = (k: string, ms: number) => (timings[k] ??= []).push(ms);

  const dk = async (node: string, ...args: string[]) => {
    const r = await bed.docker(node, ...args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${node}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const logLines = async (node: string, name: string) => (await dk(node, 'logs', name)).split('\n').filter(Boolean).map(Number);
  /** dir on "node"'s side: the transfer service is not this layer's job, a copy stands in for it */
  const ship = (from: string, toDir: string) => {
    fs.mkdirSync(toDir, { recursive: true });
    execFileSync('cp', ['-a', from, toDir]);
    return path.join(toDir, path.basename(from));
  };

  beforeAll(async () => {
    // runc runs `criu` from PATH; criuCheck() must see the same 4.2 wrapper the bed's dockerds see
    process.env.PATH = `/usr/local/sbin:${process.env.PATH ?? ''}`;
    work = tempDir('herd-rt-');
    try {
      bed = await startBed({ nodes: 2, docker: true, name: 'rt', subnet: 23 });
    } catch (e) {
      startError = e;
      return;
    }
    rt1 = new DockerRuntime({ socketPath: bed.node('n1').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
    rt2 = new DockerRuntime({ socketPath: bed.node('n2').dockerSock, keepLogsDir: path.join(work.dir, 'criu-logs') });
  });

  // a bed that cannot start fails every test (vitest would only mark them skipped)
  beforeEach(() => {
    if (startError) throw startError;
  });

  afterAll(async () => {
    console.log('runtime timings (ms):', JSON.stringify(timings));
    await bed?.stop();
    work?.cleanup();
  });

  it('finds CRIU 4.2 and an experimental dockerd', async () => {
    const c = await rt1.criuCheck();
    expect(c, c.message).toMatchObject({ ok: true, path: '/usr/local/sbin/criu' });
    expect(c.version).toMatch(/^4\.([2-9]|\d\d)/);
    expect(await rt1.dockerRootDir()).toBe(path.join(bed.node('n1').dir, 'data'));
    expect(await rt2.experimental()).toBe(true);
  });

  it('moves a running counter with its files from n1 to n2', async () => {
    await dk('n1', 'run', '-d', '--name', 'mig', '--label', 'herd.id=h-mig', '-e', 'MODE=test', BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
    // a new file, a file owned by uid 1000, a deleted image file (whiteout), a replaced image dir (opaque)
    await dk('n1', 'exec', 'mig', 'sh', '-c',
      'echo written-on-n1 > /root/state.txt && mkdir -p /var/lib/app && echo y > /var/lib/app/z && chown 1000:1000 /var/lib/app/z'
      + ' && rm /etc/group && rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/only-this');
    await sleep(800);
    const ins = await rt1.inspect('mig');
    expect(ins).toMatchObject({ name: 'mig', herdId: 'h-mig', state: 'running', image: BUSYBOX_IMAGE });
    expect(ins.imageLayers.length).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(ins.upperDir, 'root/state.txt'))).toBe(true);
    // the target is created while the source checkpoints (design: Migration, step 2)
    const out1 = path.join(work.dir, 'n1-out');
    fs.mkdirSync(out1, { recursive: true }); // the fast path checkpoints into the agent's tmpfs, not here
    const [id2, cp] = await Promise.all([rt2.create(ins.createSpec, 'mig'), rt1.checkpoint(ins.dockerId, out1, 'm1')]);
    time('checkpoint', cp.ms);
    // Docker's path writes into the dir given; the fast path (containerd) into the agent's image tmpfs.
    expect([path.join(out1, 'm1'), expect.stringMatching(/^\/tmp\/herd-images-[0-9a-f]+\//)]).toContainEqual(cp.dir);
    expect((await rt1.inspect('mig')).state).toBe('exited');
    const lastN1 = (await logLines('n1', 'mig')).pop() ?? 0;
    const exp = await rt1.exportUpperDir(ins.upperDir, path.join(out1, 'upper.tar'));
    time('exportUpperDir', exp.ms);
    expect(await rt2.imageLayers(BUSYBOX_IMAGE)).toEqual(ins.imageLayers); // same content, other image id

    const in2 = path.join(work.dir, 'n2-in');
    const cpDir = ship(cp.dir, in2);
    const tar = ship(path.join(out1, 'upper.tar'), in2);
    const target = await rt2.inspect(id2);
    expect(target.state).toBe('created');
    const imp = await rt2.importUpperDir(tar, target.upperDir);
    time('importUpperDir', imp.ms);
    const res = await rt2.restoreFromDir(id2, cpDir, 'm1');
    time('restore', res.ms);
    expect(res.pid).toBeGreaterThan(0);
    expect(res.leaksRemoved).toBe(1);
    expect(fs.existsSync(cpDir)).toBe(false); // copied into place (another mount), then removed

    await sleep(500);
    const first = (await logLines('n2', 'mig'))[0];
    expect(first).toBeGreaterThan(1);
    expect(first).toBeGreaterThanOrEqual(lastN1);
    expect(first).toBeLessThanOrEqual(lastN1 + 2);
    expect(await dk('n2', 'exec', 'mig', 'cat', '/root/state.txt')).toBe('written-on-n1');
    expect(await dk('n2', 'exec', 'mig', 'stat', '-c', '%u:%g', '/var/lib/app/z')).toBe('1000:1000');
    expect(await dk('n2', 'exec', 'mig', 'sh', '-c', 'test -e /etc/group && echo present || echo gone')).toBe('gone');
    expect(await dk('n2', 'exec', 'mig', 'ls', '/usr/sbin')).toBe('only-this');
    const moved = await rt2.inspect('mig');
    expect(moved).toMatchObject({ herdId: 'h-mig', state: 'running' });
    // "the same container": Docker's own view of its config and host config is identical
    for (const f of ['{{json .Config}}', '{{json .HostConfig}}']) {
      expect(JSON.parse(await dk('n2', 'inspect', '-f', f, 'mig'))).toEqual(JSON.parse(await dk('n1', 'inspect', '-f', f, 'mig')));
    }
  });

  it('moves a container in whole file system mode (docker export into the new upper dir)', async () => {
    await dk('n1', 'run', '-d', '--name', 'full', BUSYBOX_IMAGE, 'sh', '-c', `echo whole > /root/f; ${COUNTER}`);
    await sleep(300);
    const ins = await rt1.inspect('full');
    const id2 = await rt2.create(ins.createSpec, 'full');
    const out = path.join(work.dir, 'full');
    fs.mkdirSync(out, { recursive: true });
    const cp = await rt1.checkpoint(ins.dockerId, out, 'f1');
    const exp = await rt1.exportFull(ins.dockerId, path.join(out, 'fs.tar'));
    time('exportFull', exp.ms);
    expect(exp.bytes).toBeGreaterThan(1 << 20); // the busybox binary is in it
    const imp = await rt2.importFull(path.join(out, 'fs.tar'), (await rt2.inspect(id2)).upperDir);
    time('importFull', imp.ms);
    await rt2.restoreFromDir(id2, cp.dir, 'f1');
    expect(await dk('n2', 'exec', 'full', 'cat', '/root/f')).toBe('whole');
  });

  it('a dump CRIU refuses: CriuError with CRIU\'s lines, the container keeps running with its restart policy', async () => {
    // this VM lacks CAP_SYS_RESOURCE: CRIU cannot dump a process that is not uid 0 (workloads.md)
    await dk('n1', 'run', '-d', '--name', 'nonroot', '--user', '1000', '--restart', 'always', BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
    const err = await rt1.checkpoint('nonroot', path.join(work.dir, 'nonroot'), 'c1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuError);
    const ce = err as CriuError;
    expect(ce.op).toBe('checkpoint');
    expect(ce.criuLog.some((l) => /Error \(criu\/cr-dump\.c:\d+\): Can't get rlimit 0: Operation not permitted/.test(l))).toBe(true);
    expect(ce.message).toContain("CRIU: Can't get rlimit 0: Operation not permitted");
    expect(ce.message).not.toContain('RLIMIT_NOFILE'); // the harmless line is in criuLog, not the reason
    expect(fs.readFileSync(ce.logFile ?? '', 'utf8')).toContain('Dumping FAILED');
    const after = await rt1.inspect('nonroot');
    expect(after.state).toBe('running');
    expect(after.createSpec.HostConfig.RestartPolicy).toEqual({ Name: 'always', MaximumRetryCount: 0 });
  });

  it('a restore CRIU refuses: CriuError with the lines containerd deleted; the checkpoint is given back for a retry', async () => {
    // the process holds a file of its upper dir open: without the diff layer the restore must fail
    await dk('n1', 'run', '-d', '--name', 'holder', BUSYBOX_IMAGE, 'sh', '-c', `echo kept > /data.txt; exec 3</data.txt; ${COUNTER}`);
    await sleep(300);
    const ins = await rt1.inspect('holder');
    const id2 = await rt2.create(ins.createSpec, 'holder');
    fs.mkdirSync(path.join(work.dir, 'holder'), { recursive: true });
    const cp = await rt1.checkpoint(ins.dockerId, path.join(work.dir, 'holder'), 'h1');
    await rt1.exportUpperDir(ins.upperDir, path.join(work.dir, 'holder', 'upper.tar'));
    // staged under DockerRootDir (dockerd bind-mounts it on itself): the restore renames, and renames back on failure
    const cpDir = ship(cp.dir, path.join(await rt2.dockerRootDir(), 'herd-incoming'));
    const err = await rt2.restoreFromDir(id2, cpDir, 'h1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuError);
    const ce = err as CriuError;
    expect(ce.op).toBe('restore');
    expect(ce.criuLog.some((l) => /Can't open file data\.txt/.test(l))).toBe(true);
    expect(ce.message).toMatch(/CRIU: Can't open file data\.txt on restore: No such file or directory/);
    expect(fs.readFileSync(ce.logFile ?? '', 'utf8')).toContain('Restoring FAILED');
    expect(fs.existsSync(path.join(cpDir, 'inventory.img'))).toBe(true); // renamed back
    expect(fs.existsSync(path.join(cpDir, 'herd-nonce'))).toBe(false);

    await rt2.importUpperDir(path.join(work.dir, 'holder', 'upper.tar'), (await rt2.inspect(id2)).upperDir);
    await rt2.restoreFromDir(id2, cpDir, 'h1');
    expect(fs.existsSync(cpDir)).toBe(false);
    expect(await dk('n2', 'exec', 'holder', 'cat', '/data.txt')).toBe('kept');
  });

  it('rolls back 10 times in a row: restore on the node that made the checkpoint', async () => {
    await dk('n1', 'run', '-d', '--name', 'rb', '--restart', 'unless-stopped', BUSYBOX_IMAGE, 'sh', '-c', COUNTER);
    const id = (await rt1.inspect('rb')).dockerId;
    let last = 0;
    for (let i = 1; i <= 10; i++) {
      await sleep(150);
      const cp = await rt1.checkpoint(id, path.join(work.dir, 'rb'), `r${i}`);
      time('checkpoint', cp.ms);
      const res = await rt1.restoreFromDir(id, cp.dir, `r${i}`);
      time('restore(same node)', res.ms);
      expect(res.leaksRemoved).toBe(1);
      const now = (await logLines('n1', 'rb')).pop() ?? 0;
      expect(now).toBeGreaterThan(last); // the same process, still counting
      last = now;
    }
    const after = await rt1.inspect('rb');
    expect(after.state).toBe('running');
    expect(after.createSpec.HostConfig.RestartPolicy).toMatchObject({ Name: 'unless-stopped' });
    expect(await dk('n1', 'inspect', '-f', '{{.RestartCount}}', 'rb')).toBe('0'); // never restarted from scratch
  });

  it('keeps the IP and MAC on a user-defined network, with a listening socket', async () => {
    for (const n of ['n1', 'n2']) await dk(n, 'network', 'create', '--subnet', '10.123.0.0/24', 'herdnet');
    await dk('n1', 'run', '-d', '--name', 'web', '--network', 'herdnet', '--ip', '10.123.0.50', BUSYBOX_IMAGE,
      'sh', '-c', 'mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www');
    await sleep(300);
    const ins = await rt1.inspect('web');
    expect(ins.networks).toEqual([expect.objectContaining({ name: 'herdnet', ipv4: '10.123.0.50', driver: 'bridge', userDefined: true })]);
    const mac = ins.networks[0].mac;
    expect(ins.createSpec.NetworkingConfig.EndpointsConfig.herdnet).toMatchObject({ IPAMConfig: { IPv4Address: '10.123.0.50' }, MacAddress: mac });
    const id2 = await rt2.create(ins.createSpec, 'web');
    fs.mkdirSync(path.join(work.dir, 'web'), { recursive: true });
    const cp = await rt1.checkpoint(ins.dockerId, path.join(work.dir, 'web'), 'w1');
    await rt1.exportUpperDir(ins.upperDir, path.join(work.dir, 'web', 'upper.tar'));
    await rt2.importUpperDir(path.join(work.dir, 'web', 'upper.tar'), (await rt2.inspect(id2)).upperDir);
    await rt2.restoreFromDir(id2, ship(cp.dir, path.join(work.dir, 'web-n2')), 'w1');
    const moved = await rt2.inspect('web');
    expect(moved.networks).toEqual([expect.objectContaining({ name: 'herdnet', ipv4: '10.123.0.50', mac })]);
    // from n2's netns, where the container's network lives now (the host's busybox wget segfaults here)
    const get = `require('http').get('http://10.123.0.50:8080/', (r) => { let d = ''; r.on('data', (c) => (d += c)); r.on('end', () => console.log(d.trim())); })`;
    const r = await bed.exec('n2', process.execPath, ['-e', get]);
    expect(r.stdout.trim(), r.stderr).toBe('hello-from-web');
  });
});
