// The pure parts of the page-server path (agent/runtime/page-server.ts): the CRIU config file of
// the dump, the runc state label that points runc at it and its undo, finding the processes a
// leave-stopped dump left stopped. The real path (criu page-server, a dump through containerd,
// SIGCONT of real processes) runs in test/integration/migration.test.ts and fast-checkpoint.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { continueStopped, CRIU_CONFIG_LABEL, dropCriuConfigLabels, dumpConfig, nodeTlsFiles, withCriuConfigLabel } from '../../agent/runtime/page-server';
import { checkpointFiles } from '../../agent/runtime/fast-checkpoint';
import { tempDir } from '../helpers/tmp';

const TLS = { ca: '/d/tls/ca.crt', cert: '/d/tls/node.crt', key: '/d/tls/node.key' };
let t: { dir: string; cleanup: () => void } | undefined;
afterEach(() => t?.cleanup());

describe('the dump config', () => {
  it('sends the pages to the page server over TLS and leaves the processes stopped', () => {
    expect(dumpConfig('10.0.0.2', 7401, TLS).split('\n').filter(Boolean)).toEqual([
      'page-server', 'address 10.0.0.2', 'port 7401', 'leave-stopped',
      'tls', 'tls-cacert /d/tls/ca.crt', 'tls-cert /d/tls/node.crt', 'tls-key /d/tls/node.key', 'tls-no-cn-verify',
    ]);
  });

  it("keeps the node's own runc.conf settings, but not ones it sets itself", () => {
    const lines = dumpConfig('10.0.0.2', 7401, TLS, ['# mine', 'log-file /var/log/criu.log', 'tcp-established', '--leave-running', 'port 1', '']).split('\n');
    expect(lines.slice(0, 2)).toEqual(['log-file /var/log/criu.log', 'tcp-established']);
    expect(lines).not.toContain('--leave-running');
    expect(lines).not.toContain('port 1');
    expect(lines).not.toContain('# mine');
  });

  it('refuses a host that is not an IP and a port out of range (nothing reaches CRIU)', () => {
    expect(() => dumpConfig('target.example', 7401, TLS)).toThrow(/not an IP address/);
    expect(() => dumpConfig('10.0.0.2\nleave-running', 7401, TLS)).toThrow(/not an IP address/);
    expect(() => dumpConfig('10.0.0.2', 0, TLS)).toThrow(/not a TCP port/);
    expect(() => dumpConfig('10.0.0.2', 70000, TLS)).toThrow(/not a TCP port/);
  });
});

describe("runc's state label", () => {
  const state = (labels: string[]) => JSON.stringify({ id: 'c', config: { labels, rootfs: '/r' }, init_process_pid: 7 });

  it('adds org.criu.config for one dump and takes it away after, leaving the rest as it was', () => {
    t = tempDir('herd-ps-');
    const file = path.join(t.dir, 'state.json');
    fs.writeFileSync(file, state(['bundle=/b', `${CRIU_CONFIG_LABEL}=/stale.conf`]));
    const undo = withCriuConfigLabel(file, '/img/cp.criu.conf');
    const during = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(during.config.labels).toEqual(['bundle=/b', `${CRIU_CONFIG_LABEL}=/img/cp.criu.conf`]);
    expect(during.init_process_pid).toBe(7);
    undo();
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).config.labels).toEqual(['bundle=/b']);
    expect(fs.readdirSync(t.dir)).toEqual(['state.json']); // written by rename, nothing left beside it
  });

  it('the undo after a dump that ended the container (runc removed its state) does nothing', () => {
    t = tempDir('herd-ps-');
    const file = path.join(t.dir, 'state.json');
    fs.writeFileSync(file, state([]));
    const undo = withCriuConfigLabel(file, '/c.conf');
    fs.rmSync(file);
    expect(() => undo()).not.toThrow();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('a label left by an agent killed mid-dump is taken away before the next dump (nothing else changes)', () => {
    t = tempDir('herd-ps-');
    const file = path.join(t.dir, 'state.json');
    fs.writeFileSync(file, state(['bundle=/b', `${CRIU_CONFIG_LABEL}=/img/m.cp.sent.criu.conf`]));
    expect(dropCriuConfigLabels(file)).toBe(true);
    const after = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(after.config.labels).toEqual(['bundle=/b']);
    expect(after.init_process_pid).toBe(7);
    const text = fs.readFileSync(file, 'utf8');
    expect(dropCriuConfigLabels(file)).toBe(false); // none: the file is not rewritten
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    expect(dropCriuConfigLabels(path.join(t.dir, 'gone.json'))).toBe(false); // the container is not running
    expect(fs.readdirSync(t.dir)).toEqual(['state.json']);
  });

  it('says which file it cannot use', () => {
    t = tempDir('herd-ps-');
    expect(() => withCriuConfigLabel(path.join(t!.dir, 'none.json'), '/c.conf')).toThrow(/runc's state of the container cannot be read/);
    fs.writeFileSync(path.join(t.dir, 'x.json'), '{"id":"c"}');
    expect(() => withCriuConfigLabel(path.join(t!.dir, 'x.json'), '/c.conf')).toThrow(/not runc's state file/);
  });
});

describe('the processes a leave-stopped dump left', () => {
  /** A /proc with (pid, ppid, state) rows; comm with spaces and parentheses, as the kernel allows. */
  function fakeProc(rows: Array<[number, number, string]>): string {
    t = tempDir('herd-proc-');
    for (const [pid, ppid, st] of rows) {
      fs.mkdirSync(path.join(t.dir, String(pid)));
      fs.writeFileSync(path.join(t.dir, String(pid), 'stat'), `${pid} (sh -c (x)) ${st} ${ppid} ${pid} 0 0\n`);
    }
    fs.mkdirSync(path.join(t.dir, 'self'));
    return t.dir;
  }

  it('counts only stopped processes of the container: its init and descendants', () => {
    // 100 the container's init; 101, 102 its children, 103 a grandchild; 200 a stopped process elsewhere
    const dir = fakeProc([[1, 0, 'S'], [100, 50, 'T'], [101, 100, 'T'], [102, 100, 'S'], [103, 101, 'T'], [200, 1, 'T'], [50, 1, 'S']]);
    const signalled: number[] = [];
    const kill = process.kill;
    (process as { kill: unknown }).kill = (pid: number, sig: string) => { expect(sig).toBe('SIGCONT'); signalled.push(pid); return true; };
    try {
      expect(continueStopped(100, dir)).toBe(3);
      expect(continueStopped(0, dir)).toBe(0); // no init pid: nothing
    } finally {
      (process as { kill: unknown }).kill = kill;
    }
    expect(signalled.sort()).toEqual([100, 101, 103]);
  });

  it('with all, continues every process of the container: frozen ones show D, not T', () => {
    const dir = fakeProc([[1, 0, 'S'], [100, 50, 'D'], [101, 100, 'D'], [200, 1, 'D'], [50, 1, 'S']]);
    const signalled: number[] = [];
    const kill = process.kill;
    (process as { kill: unknown }).kill = (pid: number) => { signalled.push(pid); return true; };
    try {
      expect(continueStopped(100, dir)).toBe(0);
      expect(continueStopped(100, dir, true)).toBe(2);
    } finally {
      (process as { kill: unknown }).kill = kill;
    }
    expect(signalled.sort()).toEqual([100, 101]);
  });
});

describe('what a checkpoint may leave on the image tmpfs', () => {
  it('names both dumps of the page-server path, their tars, work dirs and the CRIU config', () => {
    expect(checkpointFiles('/img/m1.cp')).toEqual([
      '/img/m1.cp', '/img/m1.cp.tar', '/img/m1.cp.work',
      '/img/m1.cp.sent', '/img/m1.cp.sent.tar', '/img/m1.cp.sent.work', '/img/m1.cp.sent.criu.conf',
    ]);
  });
});

describe("the node's TLS files", () => {
  it('are used only when all three are there', () => {
    t = tempDir('herd-tls-');
    expect(nodeTlsFiles(t.dir)).toBeUndefined();
    fs.mkdirSync(path.join(t.dir, 'tls'));
    for (const f of ['ca.crt', 'node.crt']) fs.writeFileSync(path.join(t.dir, 'tls', f), 'x');
    expect(nodeTlsFiles(t.dir)).toBeUndefined();
    fs.writeFileSync(path.join(t.dir, 'tls', 'node.key'), 'x');
    expect(nodeTlsFiles(t.dir)).toEqual({ ca: path.join(t.dir, 'tls/ca.crt'), cert: path.join(t.dir, 'tls/node.crt'), key: path.join(t.dir, 'tls/node.key') });
  });
});
