/**
 * A checkpoint that outlived the agent which started it. The dump runs in containerd's shim
 * (runc `checkpoint`, CRIU under it), not in this process: an agent killed -9 while it ran
 * leaves it going. The restarted agent must not judge the container by what Docker says
 * meanwhile: Docker still lists it running while CRIU holds it frozen, and a dump that then
 * completes stops it, so a rollback that "found it running" would leave it running nowhere.
 * So the rollback first waits for such a dump to end; one that does not end in time is
 * killed, and the cgroup it froze is thawed.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { logger } from '../../common/log';

const log = logger('migration');

export interface ProcInfo {
  pid: number;
  ppid: number;
  args: string[];
}

/**
 * The processes of a dump of this container, parents first: `runc ... checkpoint ... <id>`
 * and everything under it (CRIU). Pure. `dockerId`: the container's id (full or a prefix of
 * at least 12 characters; runc is given the full one).
 */
export function dumpProcesses(procs: ProcInfo[], dockerId: string): number[] {
  if (dockerId.length < 12) return [];
  const roots = procs.filter((p) => p.args.length > 1 && /(^|\/)runc$/.test(p.args[0]) && p.args.includes('checkpoint') && p.args[p.args.length - 1].startsWith(dockerId));
  const out = roots.map((p) => p.pid);
  for (let i = 0; i < out.length; i++) for (const p of procs) if (p.ppid === out[i] && !out.includes(p.pid)) out.push(p.pid);
  return out;
}

/** The parent pid from /proc/<pid>/stat's text ("pid (comm) state ppid ..."; comm may hold spaces). Pure. */
export function ppidOfStat(stat: string): number {
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/**
 * Every process this node's /proc shows (ones that end while it is read are left out), with
 * the command line of runc's only: what dumpProcesses needs, at half the reads (a rollback
 * waits for this scan).
 */
export function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const args = comm === 'runc' ? readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean) : [];
      out.push({ pid: Number(name), ppid: ppidOfStat(stat), args });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Whether a process runs (a zombie does not: its task is over, its parent has not reaped it). */
export function alive(pid: number): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Thaws the cgroup v2 of a process if it is frozen (CRIU freezes it while dumping). Whether it was. */
export function thawCgroupOf(pid: number): boolean {
  try {
    const rel = /^0::(\/.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
    if (!rel) return false;
    const file = `/sys/fs/cgroup${rel}/cgroup.freeze`;
    if (readFileSync(file, 'utf8').trim() !== '1') return false;
    writeFileSync(file, '0');
    return true;
  } catch {
    return false;
  }
}

export interface OrphanDumpOptions {
  /** How long a dump is waited for before it is killed. */
  waitMs: number;
  pollMs?: number;
  procs?: () => ProcInfo[];
  kill?: (pid: number) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface OrphanDumpEnd {
  /** A dump of the container was running when asked. */
  found: boolean;
  waitedMs: number;
  /** It did not end within waitMs and was killed. */
  killed: boolean;
}

/**
 * Waits until no dump of the container runs; kills one that outlasts `waitMs` (CRIU first:
 * runc would only wait for it). Thawing what a killed dump left frozen is the caller's step
 * (it knows the container's pid).
 */
export async function endOrphanDump(dockerId: string, o: OrphanDumpOptions): Promise<OrphanDumpEnd> {
  const procs = o.procs ?? listProcs;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = o.now ?? Date.now;
  const t0 = now();
  let pids = dumpProcesses(procs(), dockerId);
  if (!pids.length) return { found: false, waitedMs: 0, killed: false };
  log.warn('a checkpoint of the container is still running, which this agent no longer waits for (it restarted, or the call timed out): waiting for it to end', { id: dockerId.slice(0, 12), pids });
  while (pids.length && now() - t0 < o.waitMs) {
    await sleep(o.pollMs ?? 50);
    pids = dumpProcesses(procs(), dockerId);
  }
  if (!pids.length) return { found: true, waitedMs: now() - t0, killed: false };
  log.error('the leftover checkpoint did not end in time: killing it', { id: dockerId.slice(0, 12), pids, wait_ms: o.waitMs });
  const kill = o.kill ?? ((pid: number) => process.kill(pid, 'SIGKILL'));
  for (const pid of [...pids].reverse()) {
    try {
      kill(pid);
    } catch {
      // ended meanwhile
    }
  }
  return { found: true, waitedMs: now() - t0, killed: true };
}
