// CRIU log parsing and the capability verdict, on logs and messages recorded from Docker 20.10 +
// CRIU 4.2.1 on the bed (a non-root process that cannot be dumped here; a restore whose file is gone).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LogCatcher, criuErrorLines, criuKdatCacheable, criuLogPathFromMessage, criuReasons, criuVerdict, parseCriuVersion, readCriuLog, readCriuLogFd, runcConfLogFile,
} from '../../agent/runtime/criu';
import { tempDir } from '../helpers/tmp';

const DUMP_LOG = `(00.000000) CRIU run id = c010b05f-4f51-4b5b-bda2-10aa5a87f9ef
(00.000000) Would overwrite RPC settings with values from /etc/criu/runc.conf
(00.036657) ========================================
(00.036666) Dumping processes (pid: 21539 comm: sh)
(00.036667) ========================================
(00.036675) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.036680) Running pre-dump scripts
(00.045253) dumping /proc/21539/oom_score_adj
(00.045259) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted
(00.045260) ----------------------------------------
(00.045260) Error (criu/cr-dump.c:1584): Dump core (pid: 21539) failed with -1
(00.045266) Waiting for 21539 to trap
pie: 1: __fetched msg: 3 0 0
(00.092049) Unfreezing tasks into 1
(00.092061) 	Unseizing 21539 into 1
(00.092083) Error (criu/cr-dump.c:1975): Dumping FAILED.
`;

const RESTORE_LOG = `(00.031654) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.181300)      1: Restoring fd 3 (state -> prepare)
(00.181327)      1: Error (criu/files-reg.c:2353): Can't open file data.txt on restore: No such file or directory
(00.181329)      1: Error (criu/files-reg.c:2267): Can't open file data.txt: No such file or directory
(00.181330)      1: Error (criu/files.c:1221): Unable to open fd=3 id=0x5
(00.182784) Error (criu/cr-restore.c:2331): Restoring FAILED.
(00.184666) Error (criu/cgroup.c:2055): cg: cgroupd: recv req error: No such file or directory
`;

const DUMP_MSG = 'Cannot checkpoint container u1: runc did not terminate successfully: exit status 1: criu failed: type NOTIFY errno 0 path= /tmp/herd-bed-rt/n1/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/79ee3ba4d612f0689e47c74ecaa2f7cf796d835c2831dfbe143c36884f66a686/criu-dump.log: unknown';
const RESTORE_MSG = 'OCI runtime restore failed: criu failed: type NOTIFY errno 0\nlog file: /tmp/herd-bed-rt/n2/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/6996325c6fa3fe840bf536d62c5ae12072ed017350b5b785cf75b2c4fdba20e5/work/restore.log: unknown';

describe('CRIU logs', () => {
  let tmp: { dir: string; cleanup: () => void } | undefined;
  afterEach(() => tmp?.cleanup());

  it('finds the Error lines of a dump log and the reasons among them', () => {
    const lines = criuErrorLines(DUMP_LOG);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toBe("(00.045259) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted");
    expect(criuReasons(lines)).toEqual(["Can't get rlimit 0: Operation not permitted", 'Dump core (pid: 21539) failed with -1', 'Dumping FAILED.']);
  });

  it('strips the per-process prefix of restore lines and the noise after the failure', () => {
    const lines = criuErrorLines(RESTORE_LOG);
    expect(lines).toHaveLength(6);
    expect(criuReasons(lines)).toEqual([
      "Can't open file data.txt on restore: No such file or directory",
      "Can't open file data.txt: No such file or directory",
      'Unable to open fd=3 id=0x5',
      'Restoring FAILED.',
    ]);
    expect(criuReasons(lines, 2)).toHaveLength(2);
  });

  it('reads the log path out of Docker\'s dump and restore messages', () => {
    expect(criuLogPathFromMessage(DUMP_MSG)).toBe('/tmp/herd-bed-rt/n1/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/79ee3ba4d612f0689e47c74ecaa2f7cf796d835c2831dfbe143c36884f66a686/criu-dump.log');
    expect(criuLogPathFromMessage(RESTORE_MSG)).toMatch(/\/work\/restore\.log$/);
    expect(criuLogPathFromMessage('Cannot checkpoint container x: no such container')).toBeUndefined();
  });

  it('reads a log that was unlinked while open, across chunk boundaries, and keeps a copy', () => {
    tmp = tempDir();
    const file = path.join(tmp.dir, 'restore.log');
    const filler = '(00.100000) 1: Restoring something rather long to fill the buffer\n'.repeat(3000); // ~200 KB
    fs.writeFileSync(file, filler + RESTORE_LOG + filler + '(00.300000) Error (criu/x.c:1): last line without newline');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r');
    fs.unlinkSync(file); // what containerd does to a failed restore's bundle
    const keep = path.join(tmp.dir, 'kept', 'r.log');
    const r = readCriuLogFd(fd, keep);
    fs.closeSync(fd);
    expect(r.lines).toHaveLength(7);
    expect(r.lines[6]).toBe('(00.300000) Error (criu/x.c:1): last line without newline');
    expect(r.kept).toBe(keep);
    expect(fs.statSync(keep).size).toBe(size);
    expect(readCriuLog(path.join(tmp.dir, 'gone.log'))).toBeUndefined();
  });

  it('LogCatcher holds a log that appears and is deleted while it watches', async () => {
    tmp = tempDir();
    const file = path.join(tmp.dir, 'bundle', 'restore.log');
    const catcher = new LogCatcher(file, 2);
    await new Promise((r) => setTimeout(r, 20));
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, RESTORE_LOG.slice(0, 200));
    await new Promise((r) => setTimeout(r, 30));
    fs.appendFileSync(file, RESTORE_LOG.slice(200)); // CRIU keeps writing to the same inode
    fs.rmSync(path.dirname(file), { recursive: true });
    const got = catcher.finish();
    expect(got?.lines).toEqual(criuErrorLines(RESTORE_LOG));
    expect(new LogCatcher(file, 2).finish()).toBeUndefined(); // never appeared
  });

  it('finds an absolute log-file in runc.conf', () => {
    tmp = tempDir();
    const conf = path.join(tmp.dir, 'runc.conf');
    fs.writeFileSync(conf, '# criu options\ntcp-established\nlog-file /var/log/criu/last.log\n');
    expect(runcConfLogFile(conf)).toBe('/var/log/criu/last.log');
    fs.writeFileSync(conf, 'log-file=relative.log\n');
    expect(runcConfLogFile(conf)).toBeUndefined();
    expect(runcConfLogFile(path.join(tmp.dir, 'none'))).toBeUndefined();
  });
});

describe('CRIU capability', () => {
  const good = { path: '/usr/local/sbin/criu', version: '4.2.1', checkCode: 0, checkOutput: 'Looks good.\n', kernel: '6.18.44-fc-v669' };

  it('parses criu --version', () => {
    expect(parseCriuVersion('Version: 4.2.1\n')).toBe('4.2.1');
    expect(parseCriuVersion('Version: 3.17\nGitID: v3.17\n')).toBe('3.17');
    expect(parseCriuVersion('garbage')).toBe('');
  });

  it('is ok for CRIU 4.2 that passes criu check', () => {
    expect(criuVerdict(good)).toEqual({ ok: true, version: '4.2.1', path: '/usr/local/sbin/criu', message: 'Looks good.' });
  });

  it('is not ok without criu in PATH, or when criu check fails', () => {
    expect(criuVerdict({ ...good, path: '' })).toMatchObject({ ok: false, message: expect.stringMatching(/not in PATH/) });
    const failed = criuVerdict({ ...good, version: '3.17', checkCode: 1, checkOutput: 'Error (criu/vdso.c:1): vdso: Unexpected layout\nLooks bad.\n' });
    expect(failed).toMatchObject({ ok: false, message: expect.stringMatching(/criu check failed \(exit 1\): .*vdso/) });
  });

  it('is not ok for CRIU < 4.2 on kernels >= 6.16, which pass criu check but cannot dump inet sockets', () => {
    expect(criuVerdict({ ...good, version: '4.1.1' })).toMatchObject({ ok: false, message: expect.stringMatching(/4\.2 or newer/) });
    expect(criuVerdict({ ...good, version: '4.1.1', kernel: '6.1.0-27-arm64' }).ok).toBe(true);
    expect(criuVerdict({ ...good, version: '4.10', kernel: '6.16.0' }).ok).toBe(true);
  });

  it('tells whether CRIU can keep its kernel probe: only on a tmpfs (real statfs)', () => {
    expect(criuKdatCacheable('/dev/shm')).toBe(true); // a tmpfs on every Linux with glibc's shm
    const t = tempDir('kdat');
    expect(fs.statfsSync(t.dir).type).not.toBe(0x01021994); // the dev VM's /tmp is ext4, as its /run
    expect(criuKdatCacheable(t.dir)).toBe(false);
    t.cleanup();
    expect(criuKdatCacheable('/no/such/dir')).toBe(false);
  });
});
