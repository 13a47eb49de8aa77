/**
 * Which file serves each container metric, chosen once per located container (by stat()),
 * so that the per-round path never opens a file that is not there (a failed open costs an
 * exception, ~10x a successful read).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupDirs } from './cgroup-locate';

export interface CgroupFiles {
  /** v1 cpuacct.usage (ns, whole file), or v2 cpu.stat (usage_usec) when usageV2. */
  usage: string | null;
  usageV2: boolean;
  /** Throttling: v1 cpu.stat (nr_throttled, throttled_time ns) or v2 cpu.stat (throttled_usec). */
  cpuStat: string | null;
  cpuStatV2: boolean;
  /** v1 memory.usage_in_bytes or v2 memory.current; memory.stat for the inactive file pages. */
  mem: string | null;
  memStat: string | null;
  memV2: boolean;
  /** v1 blkio ops and bytes files (Read/Write lines per device). */
  blkOps: string | null;
  blkBytes: string | null;
  /** v2 io.stat. */
  ioStat: string | null;
  /** pids.current, or a task list whose lines are counted when pidsIsList. */
  pids: string | null;
  pidsIsList: boolean;
  /** <procRoot>/<pid>/net/dev (null when the container shares the agent's netns). */
  netDev: string | null;
}

/**
 * v1 block I/O sources, best first. The throttle files are what docker reads; the
 * _recursive ones also count sub-cgroups (systemd inside a container). CFQ's files exist
 * on kernels < 5.0 only, BFQ's count only I/O to devices scheduled by BFQ.
 * Kernel >= 6.10 (seen here on 6.18) counts the throttle stats only on devices where
 * blk-throttle was ever configured: see enableBlkioAccounting().
 */
const BLKIO_PAIRS: Array<[string, string]> = [
  ['blkio.throttle.io_serviced_recursive', 'blkio.throttle.io_service_bytes_recursive'],
  ['blkio.throttle.io_serviced', 'blkio.throttle.io_service_bytes'],
  ['blkio.io_serviced_recursive', 'blkio.io_service_bytes_recursive'],
  ['blkio.bfq.io_serviced_recursive', 'blkio.bfq.io_service_bytes_recursive'],
];

function file(dir: string | undefined | null, name: string): string | null {
  if (!dir) return null;
  const p = join(dir, name);
  return existsSync(p) ? p : null;
}

export function chooseFiles(d: CgroupDirs, netDev: string | null): CgroupFiles {
  const f: CgroupFiles = {
    usage: null,
    usageV2: false,
    cpuStat: null,
    cpuStatV2: false,
    mem: null,
    memStat: null,
    memV2: false,
    blkOps: null,
    blkBytes: null,
    ioStat: null,
    pids: null,
    pidsIsList: false,
    netDev,
  };
  // In a hybrid layout the v1 controllers hold the data (cgroup2 "unified" then usually
  // has only the core cpu.stat), so v1 wins and cgroup2 fills the gaps.
  const v2CpuStat = file(d.v2, 'cpu.stat');
  f.usage = file(d.v1.cpuacct, 'cpuacct.usage');
  if (!f.usage && v2CpuStat) (f.usage = v2CpuStat), (f.usageV2 = true);
  f.cpuStat = file(d.v1.cpu, 'cpu.stat');
  if (!f.cpuStat && v2CpuStat) (f.cpuStat = v2CpuStat), (f.cpuStatV2 = true);

  f.mem = file(d.v1.memory, 'memory.usage_in_bytes');
  if (f.mem) f.memStat = file(d.v1.memory, 'memory.stat');
  else if ((f.mem = file(d.v2, 'memory.current'))) (f.memStat = file(d.v2, 'memory.stat')), (f.memV2 = true);

  for (const [ops, bytes] of d.v1.blkio ? BLKIO_PAIRS : []) {
    const o = file(d.v1.blkio, ops);
    const b = o && file(d.v1.blkio, bytes);
    if (o && b) {
      f.blkOps = o;
      f.blkBytes = b;
      break;
    }
  }
  if (!f.blkOps) f.ioStat = file(d.v2, 'io.stat');

  f.pids = file(d.v1.pids, 'pids.current') ?? file(d.v2, 'pids.current');
  if (!f.pids) {
    // No pids controller: count the cgroup's threads instead (same number for a container
    // without sub-cgroups).
    const anyV1 = d.v1.cpuacct ?? d.v1.cpu ?? d.v1.memory ?? d.v1.blkio;
    f.pids = file(anyV1, 'tasks') ?? file(d.v2, 'cgroup.threads');
    f.pidsIsList = f.pids !== null;
  }
  return f;
}

/**
 * Makes a v1 kernel >= 6.10 count per-cgroup block I/O. Since "blk-throttle: delay
 * initialization until configuration", blkio.throttle.io_serviced/io_service_bytes stay
 * at "Total 0" for a device until some blk-throttle limit is configured on it (measured
 * here: 100 O_DIRECT writes counted 0; after one limit was written, and even after it was
 * removed again, every cgroup's I/O to that device was counted). Writing "MAJ:MIN 0" (= no
 * limit) to the root cgroup's read_iops_device turns the accounting on without limiting
 * anything. Devices that already have a root limit are left alone. Needs root; a side
 * effect on the host, hence opt-in. Returns the devices it enabled.
 */
export function enableBlkioAccounting(blkioMount: string, sysRoot = '/sys'): string[] {
  const target = join(blkioMount, 'blkio.throttle.read_iops_device');
  let existing = '';
  try {
    existing = readFileSync(target, 'latin1');
  } catch {
    return [];
  }
  const done: string[] = [];
  let devs: string[] = [];
  try {
    devs = readdirSync(join(sysRoot, 'block'));
  } catch {
    return [];
  }
  for (const dev of devs) {
    try {
      const majmin = readFileSync(join(sysRoot, 'block', dev, 'dev'), 'latin1').trim();
      if (existing.split('\n').some((l) => l.startsWith(`${majmin} `))) continue;
      writeFileSync(target, `${majmin} 0`);
      done.push(dev);
    } catch {
      // devices without a request queue (some virtual ones) refuse: nothing to count there
    }
  }
  return done;
}
