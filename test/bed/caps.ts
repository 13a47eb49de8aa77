// Capped bed nodes: every node of the bed shares one machine, so without caps a node is as fast
// as the machine and a migration gains nothing. Each node's dockerd puts its containers under
// the node's cgroup parent (/herd-<bed>-nI); the caps live there (../shared/recipes/workloads.md):
//  - CPU: cgroup v1 CFS bandwidth is hierarchical, so cpu.cfs_quota_us on the parent caps the
//    node's containers together (0.5 core = 50000 us per 100000 us).
//  - Disk: v1 blk-throttle is flat (a parent's limit does not bind its children), so the node's
//    IOPS are split among its containers that did I/O in the last tick and written into each
//    container's own blkio.throttle files, every 0.5 s. Binds direct I/O only.
import fs from 'node:fs';
import path from 'node:path';

const CG = '/sys/fs/cgroup';
const PERIOD_US = 100_000;

/**
 * Creates the node's cpu cgroup with a quota of `cores` (0: no cap); dockerd uses it as is.
 * The quota only caps: on a machine busy with other work (shared CI, other beds) the node
 * would get its fair share of a root-level task and fall below its cap, so its cpu.shares are
 * raised with its cores (65536 per core, the kernel's maximum 262144): the cap becomes a
 * reservation, and the node's capacity is what the experiment says it is.
 */
export function capCpu(cgroupParent: string, cores: number): void {
  if (!(cores >= 0 && Number.isFinite(cores))) throw new Error(`cpu cap must be a number of cores >= 0: ${cores}`);
  const dir = path.join(CG, 'cpu', cgroupParent);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
  fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), cores > 0 ? String(Math.round(cores * PERIOD_US)) : '-1');
  if (cores > 0) fs.writeFileSync(path.join(dir, 'cpu.shares'), String(Math.min(262_144, Math.max(1024, Math.round(cores * 65_536)))));
}

/** CPU time used by all containers of a node so far, in core-seconds (cpuacct of the parent). */
export function nodeCpuSeconds(cgroupParent: string): number {
  try {
    return Number(fs.readFileSync(path.join(CG, 'cpuacct', cgroupParent, 'cpuacct.usage'), 'utf8')) / 1e9;
  } catch {
    return 0; // no container yet: docker creates the cpuacct dir with the first one
  }
}

/** maj:min of the whole disk holding `dir` (blk-throttle rules name a disk, not a partition). */
export function diskOf(dir: string): string {
  const dev = fs.statSync(dir).dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((Math.floor(dev / 4096) & ~0xff) >>> 0);
  const sys = `/sys/dev/block/${major}:${minor}`;
  if (!fs.existsSync(sys)) throw new Error(`${dir} is not on a block device (${major}:${minor}): a disk cap needs one`);
  const isPartition = fs.existsSync(path.join(sys, 'partition'));
  return isPartition ? fs.readFileSync(path.join(fs.realpathSync(sys), '..', 'dev'), 'utf8').trim() : `${major}:${minor}`;
}

interface Counted { serviced: number }

/** Splits each capped node's IOPS among its containers doing I/O, every tickMs, until stop(). */
export class DiskCapSplitter {
  private readonly last = new Map<string, Counted>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly device: string,
    private readonly nodes: readonly { cgroupParent: string; iops: number }[],
  ) {}

  start(tickMs = 500): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass: containers of a node with I/O since the last pass share its cap equally. */
  tick(): void {
    for (const n of this.nodes) {
      if (!(n.iops > 0)) continue;
      const parent = path.join(CG, 'blkio', n.cgroupParent);
      const dirs = listDirs(parent).filter((d) => hasProcs(d));
      let active = 0;
      for (const d of dirs) {
        const serviced = ioServiced(d);
        if (serviced !== this.last.get(d)?.serviced) active++;
        this.last.set(d, { serviced });
      }
      const share = String(Math.max(1, Math.floor(n.iops / Math.max(1, active))));
      for (const d of dirs) {
        for (const f of ['blkio.throttle.read_iops_device', 'blkio.throttle.write_iops_device']) {
          try { fs.writeFileSync(path.join(d, f), `${this.device} ${share}`); } catch { /* the container just went away */ }
        }
      }
    }
  }
}

function listDirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

function hasProcs(dir: string): boolean {
  try { return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim() !== ''; } catch { return false; }
}

function ioServiced(dir: string): number {
  try {
    return Number(/^Total (\d+)/m.exec(fs.readFileSync(path.join(dir, 'blkio.throttle.io_serviced'), 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
