/**
 * Finding and ending a checkpoint that outlived the agent which started it (agent/migration/
 * orphan-dump.ts). The process table and the clock are fakes here; the real case (the source's
 * agent killed -9 while runc and CRIU dump its container) runs on the bed in
 * test/integration/orphan-dump.test.ts.
 */
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dumpProcesses, endOrphanDump, listProcs, ppidOfStat, type ProcInfo } from '../../agent/migration/orphan-dump';
import { migrationFaultsFromEnv } from '../../agent/migration/faults';

const ID = 'af6456f816bdeff72d3ccd4b225f1ee17f7af67d3e38253cc49a0c46424d33e9';
// as seen on the bed during a migration's dump (runc under the shim, CRIU under runc)
const RUNC: ProcInfo = {
  pid: 8674, ppid: 8022,
  args: ['runc', '--root', '/tmp/herd-bed-ne5/n1/exec/runtime-runc/moby', '--log', `/x/moby/${ID}/log.json`, '--log-format', 'json', 'checkpoint', '--image-path', '/tmp/herd-images-bac59aea39/m.cp', '--work-path', '/tmp/herd-images-bac59aea39/m.cp.work', ID],
};
const CRIU: ProcInfo = { pid: 8683, ppid: 8674, args: ['/opt/criu42/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', '--library-path', '/opt/criu42/usr/lib/x86_64-linux-gnu', 'criu:', 'dump', '--rpc', '-t', '8072', '.'] };
const SHIM: ProcInfo = { pid: 8022, ppid: 1, args: ['/usr/bin/containerd-shim-runc-v2', '-namespace', 'moby', '-id', ID, '-address', '/run/containerd.sock'] };
const OTHER_DUMP: ProcInfo = { ...RUNC, pid: 9000, args: [...RUNC.args.slice(0, -1), 'b'.repeat(64)] };
const RESTORE: ProcInfo = { ...RUNC, pid: 9100, args: RUNC.args.map((a) => (a === 'checkpoint' ? 'restore' : a)) };

describe('dumpProcesses: the runc checkpoint of this container and what runs under it', () => {
  it('runc and its CRIU, parents first; not the shim, not a dump of another container, not a restore', () => {
    const procs = [SHIM, CRIU, RUNC, OTHER_DUMP, RESTORE, { pid: 9200, ppid: 8683, args: ['criu-child'] }];
    expect(dumpProcesses(procs, ID)).toEqual([8674, 8683, 9200]);
    expect(dumpProcesses(procs, ID.slice(0, 12))).toEqual([8674, 8683, 9200]);
  });

  it('nothing for an id too short to be sure of, or when no dump runs', () => {
    expect(dumpProcesses([RUNC, CRIU], ID.slice(0, 6))).toEqual([]);
    expect(dumpProcesses([SHIM, RESTORE], ID)).toEqual([]);
    expect(dumpProcesses([], ID)).toEqual([]);
  });

  it('a runc by full path counts; a program that only mentions runc does not', () => {
    expect(dumpProcesses([{ ...RUNC, args: ['/usr/sbin/runc', ...RUNC.args.slice(1)] }], ID)).toEqual([8674]);
    expect(dumpProcesses([{ ...RUNC, args: ['grep', 'runc', 'checkpoint', ID] }], ID)).toEqual([]);
  });
});

describe('ppidOfStat and listProcs: /proc as it is', () => {
  it('a command name with spaces and parentheses does not shift the fields', () => {
    expect(ppidOfStat('42 (a (b) c) S 7 42 42 0 -1')).toBe(7);
  });

  it('this process is listed with its parent; a command line is read for runc only', () => {
    const me = listProcs().find((p) => p.pid === process.pid);
    expect(me?.ppid).toBe(process.ppid);
    expect(me?.args).toEqual([]);
    expect(basename(process.execPath)).not.toBe('runc');
  });
});

/** A fake process table whose dump ends at `endsAt` ms of a fake clock. */
function table(endsAt: number) {
  let t = 0;
  const killed: number[] = [];
  return {
    killed,
    o: {
      procs: () => (t < endsAt && !killed.length ? [SHIM, RUNC, CRIU] : [SHIM]),
      kill: (pid: number) => void killed.push(pid),
      sleep: async (ms: number) => void (t += ms),
      now: () => t,
    },
  };
}

describe('endOrphanDump: waits for a leftover dump, kills one that will not end', () => {
  it('no dump: answers at once', async () => {
    const f = table(0);
    expect(await endOrphanDump(ID, { waitMs: 1000, ...f.o })).toEqual({ found: false, waitedMs: 0, killed: false });
  });

  it('a dump that ends within the wait is waited for and left alone', async () => {
    const f = table(700);
    expect(await endOrphanDump(ID, { waitMs: 5000, pollMs: 100, ...f.o })).toEqual({ found: true, waitedMs: 700, killed: false });
    expect(f.killed).toEqual([]);
  });

  it('a dump that outlasts the wait is killed, CRIU before runc', async () => {
    const f = table(Infinity);
    expect(await endOrphanDump(ID, { waitMs: 1000, pollMs: 100, ...f.o })).toEqual({ found: true, waitedMs: 1000, killed: true });
    expect(f.killed).toEqual([8683, 8674]);
  });

  it('a wait of 0 (HERD_FAULTS=migration.orphan_dump_wait_ms=0) kills it at once', async () => {
    expect(migrationFaultsFromEnv('migration.orphan_dump_wait_ms=0').orphanDumpWaitMs).toBe(0);
    expect(() => migrationFaultsFromEnv('migration.orphan_dump_wait_ms=soon')).toThrow(/non-negative integer/);
    const f = table(Infinity);
    expect((await endOrphanDump(ID, { waitMs: 0, ...f.o })).killed).toBe(true);
  });
});
