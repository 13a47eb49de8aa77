// herd doctor's verdicts, with the machine's answers faked (Docker, CRIU, PCP, glibc, clock,
// page size, cgroup files) and the local checks real (data dir with LMDB, port, onnxruntime).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSettings } from '../../agent/config';
import {
  checkCgroups, checkClock, checkCriu, checkCriuCache, TMPFS_MAGIC, checkDataDir, checkDocker, checkPcp, checkPlatform, checkPort, compareVersions,
  formatReport, runDoctor, type ExecResult, type Probes,
} from '../../cli/doctor';
import { tempDir } from '../helpers/tmp';

const cleanups: Array<() => void> = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });
function tmp() {
  const t = tempDir('herd-doctor-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const res = (code: number, stdout = '', stderr = ''): ExecResult => ({ code, stdout, stderr });
function probes(over: Partial<Probes> & { files?: Record<string, string> } = {}): Probes {
  const files = over.files ?? {};
  return {
    exec: async (cmd, args) => {
      if (cmd === 'criu' && args[0] === '--version') return res(0, 'Version: 4.2\n');
      if (cmd === 'criu') return res(0, 'Looks good.\n');
      if (cmd === 'timedatectl') return res(0, 'yes\n');
      return res(127, '', `${cmd}: not found`);
    },
    docker: () => ({ info: async () => ({ ExperimentalBuild: true }), version: async () => ({ Version: '20.10.24', ApiVersion: '1.41' }) }),
    httpGet: async () => ({ status: 200, body: '{"context":1234}' }),
    now: () => Date.UTC(2026, 5, 1),
    glibc: () => '2.36',
    pageSize: () => 4096,
    readText: (f) => files[f],
    embedded: () => null,
    fsType: () => TMPFS_MAGIC,
    freeBytes: () => 10 * 1024 ** 3,
    ...over,
  };
}
const settings = (o: Record<string, unknown> = {}) => parseSettings({ nodeId: 'n1', dataDir: tmp(), listen: '127.0.0.1:0', ...o });

describe('herd doctor', () => {
  it('compares versions numerically', () => {
    expect(compareVersions('2.36', '2.34')).toBe(1);
    expect(compareVersions('2.31', '2.34')).toBe(-1);
    expect(compareVersions('2.34', '2.34.0')).toBe(0);
    expect(compareVersions('2.4', '2.34')).toBe(-1);
  });

  it('fails on unreachable Docker and on Docker without experimental mode, saying how to fix it', async () => {
    const down = await checkDocker(settings(), probes({ docker: () => ({ info: async () => { throw new Error('connect ENOENT /x.sock'); }, version: async () => ({}) }) }));
    expect(down).toEqual([expect.objectContaining({ id: 'docker', status: 'fail', summary: expect.stringContaining('ENOENT'), fix: expect.stringContaining('docker.io') })]);
    const plain = await checkDocker(settings(), probes({ docker: () => ({ info: async () => ({ ExperimentalBuild: false }), version: async () => ({ Version: '20.10.24', ApiVersion: '1.41' }) }) }));
    expect(plain.map((c) => [c.id, c.status])).toEqual([['docker', 'ok'], ['docker-experimental', 'fail']]);
    expect(plain[1].fix).toMatch(/"experimental": true .*daemon\.json/);
    expect((await checkDocker(settings(), probes()))[0].summary).toBe(`Docker 20.10.24 (API 1.41) at /var/run/docker.sock`);
  });

  it('reports CRIU missing, failing its check, or fine, with its version', async () => {
    const missing = await checkCriu(probes({ exec: async () => res(127, '', 'spawn criu ENOENT') }));
    expect(missing[0]).toMatchObject({ status: 'fail', fix: expect.stringContaining('apt-get install criu') });
    const failing = await checkCriu(probes({ exec: async (_c, a) => (a[0] === '--version' ? res(0, 'Version: 3.17.1\n') : res(1, '', 'Error (criu/cr-check.c:1): Kernel doesn\'t support PTRACE_O_SUSPEND_SECCOMP\n')) }));
    expect(failing[0]).toMatchObject({ status: 'fail', summary: expect.stringMatching(/CRIU 3\.17\.1: criu check fails: Error .*PTRACE/) });
    expect((await checkCriu(probes()))[0]).toMatchObject({ status: 'ok', summary: 'CRIU 4.2: criu check passes', data: { version: '4.2' } });
    expect((await checkCriu(probes()))[1]).toMatchObject({ id: 'criu-cache', status: 'ok' });
  });

  it('warns when /run is not a tmpfs, where CRIU cannot cache its kernel probe', () => {
    expect(checkCriuCache(probes())).toMatchObject({ id: 'criu-cache', status: 'ok' });
    const ext4 = checkCriuCache(probes({ fsType: () => 0xef53 }));
    expect(ext4).toMatchObject({ status: 'warn', summary: expect.stringContaining('/run is not a tmpfs'), fix: expect.stringContaining('tmpfs /run'), data: { fsType: 0xef53 } });
    expect(checkCriuCache(probes({ fsType: () => undefined })).summary).toContain('missing or unreadable');
  });

  it('reads the cgroup layout and explains a Pi\'s disabled memory controller', () => {
    const root = '/cg';
    const v2 = checkCgroups(settings({ cgroupRoot: root }), probes({ files: { '/cg/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma\n' } }));
    expect(v2[0]).toMatchObject({ status: 'ok', summary: 'cgroup v2 (unified), controllers cpuset cpu io memory hugetlb pids rdma' });
    const pi = checkCgroups(settings({ cgroupRoot: root }), probes({ files: { '/cg/cgroup.controllers': 'cpuset cpu io pids\n', '/proc/cmdline': 'console=tty1 cgroup_disable=memory rootwait' } }));
    expect(pi[0]).toMatchObject({ status: 'warn', summary: expect.stringContaining('lacks memory'), fix: expect.stringContaining('cgroup_enable=memory cgroup_memory=1') });
    const v1 = checkCgroups(settings({ cgroupRoot: root }), probes({ files: { '/cg/cpu/tasks': '', '/cg/memory/tasks': '', '/cg/blkio/tasks': '', '/cg/pids/tasks': '' } }));
    expect(v1[0]).toMatchObject({ status: 'ok', data: { layout: 'v1' } });
    expect(checkCgroups(settings({ cgroupRoot: root }), probes())[0].status).toBe('fail');
  });

  it('treats PCP as optional', async () => {
    expect((await checkPcp(settings(), probes()))[0].status).toBe('ok');
    const down = await checkPcp(settings(), probes({ httpGet: async () => { throw new Error('ECONNREFUSED'); } }));
    expect(down[0]).toMatchObject({ status: 'warn', fix: expect.stringContaining('pmproxy') });
    expect((await checkPcp(settings({ pmproxyUrl: '' }), probes()))[0].summary).toMatch(/turned off/);
  });

  it('fails on a glibc older than 2.34 and warns about 16 KiB pages', () => {
    expect(checkPlatform(probes({ glibc: () => '2.31' }))[0]).toMatchObject({ id: 'glibc', status: 'fail', summary: 'glibc 2.31 is older than 2.34, which herd\'s LMDB addon needs', fix: expect.stringContaining('bookworm') });
    expect(checkPlatform(probes({ glibc: () => '' }))[0].status).toBe('fail');
    expect(checkPlatform(probes({ pageSize: () => 16384 }))[1]).toMatchObject({ id: 'page-size', status: 'warn', fix: expect.stringContaining('kernel=kernel8.img') });
  });

  it('fails on a clock in the past and warns when NTP does not keep it', async () => {
    expect((await checkClock(probes({ now: () => 0 })))[0]).toMatchObject({ status: 'fail', summary: expect.stringContaining('1970-01-01') });
    expect((await checkClock(probes()))[0]).toMatchObject({ status: 'ok', summary: expect.stringContaining('synchronized by NTP') });
    expect((await checkClock(probes({ exec: async () => res(0, 'no\n') })))[0].status).toBe('warn');
  });

  it('writes and reads LMDB in the data dir, and says when it cannot', async () => {
    const dir = tmp();
    expect((await checkDataDir(settings({ dataDir: dir })))[0]).toMatchObject({ status: 'ok' });
    expect(fs.readdirSync(dir)).toEqual([]); // its scratch store is gone
    fs.writeFileSync(path.join(dir, 'file'), '');
    const bad = await checkDataDir(settings({ dataDir: path.join(dir, 'file', 'data') }));
    expect(bad[0]).toMatchObject({ status: 'fail', summary: expect.stringMatching(/cannot use the data directory .*(ENOTDIR|EEXIST)/) });
  });

  it('finds the listen port taken by something that is not herd', async () => {
    const srv = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const c = await checkPort(settings({ listen: `127.0.0.1:${port}` }));
      expect(c[0]).toMatchObject({ status: 'fail', summary: `cannot listen on 127.0.0.1:${port}: EADDRINUSE`, fix: expect.stringContaining('ss -ltnp') });
    } finally {
      srv.close();
    }
    expect((await checkPort(settings({ listen: '127.0.0.1:0' })))[0].status).toBe('ok');
    expect((await checkPort(settings({ listen: '10.255.255.254:7400' })))[0]).toMatchObject({ status: 'fail', summary: expect.stringContaining('EADDRNOTAVAIL') });
  });

  it('says yes only when nothing fails, and runs a model through onnxruntime', async () => {
    const good = await runDoctor(settings({ pmproxyUrl: '' }), probes({ files: { '/sys/fs/cgroup/cgroup.controllers': 'cpu io memory pids' } }));
    expect(good.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(good.canMigrate).toBe(true);
    expect(good.checks.find((c) => c.id === 'onnxruntime')?.data?.selfCheck).toEqual([11, 22, 33]);
    expect(formatReport(good)).toMatch(/This node can run herd and migrate containers\.$/);
    const bad = await runDoctor(settings({ pmproxyUrl: '' }), probes({ glibc: () => '2.31', files: { '/sys/fs/cgroup/cgroup.controllers': 'cpu io memory pids' } }));
    expect(bad.canMigrate).toBe(false);
    expect(formatReport(bad)).toMatch(/FAIL {2}glibc .*\n.*fix: upgrade .*\n[\s\S]*cannot migrate containers: 1 problem above\.$/);
  });
});
