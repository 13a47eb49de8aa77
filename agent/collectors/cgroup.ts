/**
 * Per-container metrics read straight from cgroupfs (v1, v2 and the hybrid of both) and
 * from /proc/<pid>/net/dev. PCP cannot serve these on hybrid hosts (see
 * shared/recipes/pcp.md), and cAdvisor-style collectors cost far more per container.
 *
 * Cost model: a container's cgroup directories and the file serving each metric are found
 * once (cgroup-locate.ts, cgroup-files.ts); every round then opens/reads/closes ~8 small
 * files into one shared buffer and parses them in place (cgroup-read.ts). Measured with
 * bench/collect-cost.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Collector, Sample } from '../../common/types';
import { logger } from '../../common/log';
import { type CgroupFiles, chooseFiles, enableBlkioAccounting } from './cgroup-files';
import {
  type CgroupDirs,
  type Hierarchies,
  PathTemplates,
  detectHierarchies,
  locateCgroup,
  sharesAgentNetns,
} from './cgroup-locate';
import { Key, countLines, keyValue, readInto, readUint, sumBlkioRw, sumIoStat, sumNetDev } from './cgroup-read';

export { enableBlkioAccounting } from './cgroup-files';
export type { CgroupDirs } from './cgroup-locate';

const log = logger('cgroup');

/** A container the collector should measure, as the agent's tracker knows it. */
export interface CgroupContainerRef {
  herdId: string;
  /** Full 64-hex docker id: the cgroup path contains it. */
  dockerId: string;
  /** Host pid of the container's init process (0 when not running). */
  pid: number;
}

export interface CgroupCollectorOptions {
  /** Where cgroupfs is mounted. Default /sys/fs/cgroup. */
  root?: string;
  /** Where procfs is mounted (for <pid>/cgroup and <pid>/net/dev). Default /proc. */
  procRoot?: string;
  containers: () => CgroupContainerRef[];
  /**
   * v1 only: switch on the kernel's per-cgroup block I/O accounting at the first round
   * (writes a no-op limit, see enableBlkioAccounting). Without it a v1 host on kernel
   * >= 6.10 reports 0 block I/O for containers unless some throttle limit was set.
   */
  enableBlkioAccounting?: boolean;
  /** sysfs, for enableBlkioAccounting. Default /sys. */
  sysRoot?: string;
}

/** Metric names, all with entity = herd id. */
export const CONTAINER_METRICS = {
  /** CPU cores used over the interval (usage ns / wall ns). */
  cpuUsage: 'container.cpu.usage',
  /** CFS periods in which the container was throttled, per second. */
  throttledPeriods: 'container.cpu.throttled_periods',
  /** Milliseconds of throttling per second. */
  throttledMs: 'container.cpu.throttled_ms',
  /** Memory in use minus inactive page cache, like docker stats (bytes). */
  memUsage: 'container.mem.usage_bytes',
  readOps: 'container.blkio.read_ops',
  writeOps: 'container.blkio.write_ops',
  readBytes: 'container.blkio.read_bytes',
  writeBytes: 'container.blkio.write_bytes',
  /** Tasks (threads) in the container's cgroup. */
  pids: 'container.pids',
  rxBytes: 'container.net.rx_bytes',
  txBytes: 'container.net.tx_bytes',
} as const;

// Counter slots of an entry: values of this round and of the previous one.
const CPU_NS = 0;
const THR_N = 1;
const THR_NS = 2;
const RIOS = 3;
const WIOS = 4;
const RBYTES = 5;
const WBYTES = 6;
const RX = 7;
const TX = 8;
const SLOTS = 9;
const YIELD_EVERY = 256;

// Counter slot -> [metric, factor applied to delta/second].
const RATES: Array<[number, string, number]> = [
  [CPU_NS, CONTAINER_METRICS.cpuUsage, 1e-9],
  [THR_N, CONTAINER_METRICS.throttledPeriods, 1],
  [THR_NS, CONTAINER_METRICS.throttledMs, 1e-6],
  [RIOS, CONTAINER_METRICS.readOps, 1],
  [WIOS, CONTAINER_METRICS.writeOps, 1],
  [RBYTES, CONTAINER_METRICS.readBytes, 1],
  [WBYTES, CONTAINER_METRICS.writeBytes, 1],
  [RX, CONTAINER_METRICS.rxBytes, 1],
  [TX, CONTAINER_METRICS.txBytes, 1],
];

const K_USAGE_USEC = new Key('usage_usec');
const K_NR_THROTTLED = new Key('nr_throttled');
const K_THROTTLED_TIME = new Key('throttled_time');
const K_THROTTLED_USEC = new Key('throttled_usec');
const K_TOTAL_INACTIVE_FILE = new Key('total_inactive_file');
const K_INACTIVE_FILE = new Key('inactive_file');

interface Entry {
  dockerId: string;
  pid: number;
  dirs: CgroupDirs | null;
  files: CgroupFiles | null;
  /** A read failed (cgroup vanished or was replaced): locate again next round. */
  stale: boolean;
  round: number;
  /** Time of the previous reading (NaN: none yet, so no rates). */
  prevTs: number;
  prev: Float64Array;
  cur: Float64Array;
}

export class CgroupCollector implements Collector {
  readonly name = 'cgroup';
  private readonly root: string;
  private readonly procRoot: string;
  private readonly containers: () => CgroupContainerRef[];
  private readonly entries = new Map<string, Entry>();
  private readonly templates = new PathTemplates();
  private hierarchies: Hierarchies | null = null;
  private round = 0;

  constructor(private readonly opts: CgroupCollectorOptions) {
    this.root = opts.root ?? '/sys/fs/cgroup';
    this.procRoot = opts.procRoot ?? '/proc';
    this.containers = opts.containers;
  }

  /** The cgroup directories found for a container (undefined until located). */
  located(herdId: string): CgroupDirs | undefined {
    return this.entries.get(herdId)?.dirs ?? undefined;
  }

  /** The files read for a container every round (diagnostics, bench baseline). */
  filesOf(herdId: string): string[] {
    const f = this.entries.get(herdId)?.files;
    if (!f) return [];
    const all = [f.usage, f.cpuStat, f.mem, f.memStat, f.blkOps, f.blkBytes, f.ioStat, f.pids, f.netDev];
    return [...new Set(all.filter((x): x is string => x !== null))];
  }

  /**
   * The container's memory in use read now (bytes, as the memUsage metric counts it), for a
   * decision that cannot wait for the next round (a migration's page path); undefined
   * until the container's cgroup was located or when it cannot be read.
   */
  memoryInUse(herdId: string): number | undefined {
    let e = this.entries.get(herdId);
    if (!e?.files) {
      // not measured yet (started since the last round): locate it now, as the next round would
      const c = this.containers().find((x) => x.herdId === herdId);
      if (!c) return undefined;
      if (!this.hierarchies) this.init();
      e = this.entryOf(c);
      if (e.stale) this.locate(this.hierarchies!, e);
    }
    const mem = e.files ? memoryOf(e.files) : NaN;
    return mem === mem ? mem : undefined;
  }

  /**
   * Yields to the event loop every YIELD_EVERY containers: 3600 containers take ~150 ms
   * here (more on a Pi), which must not stall the agent's gRPC traffic in one piece.
   */
  async collect(now: number): Promise<Sample[]> {
    const list = this.begin();
    const out: Sample[] = [];
    for (let i = 0; i < list.length; i++) {
      this.one(list[i], now, out);
      if ((i + 1) % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    }
    this.end(list);
    return out;
  }

  private begin(): CgroupContainerRef[] {
    if (!this.hierarchies) this.init();
    this.round++;
    try {
      return this.containers();
    } catch (err) {
      log.warn('container list unavailable', { err });
      return [];
    }
  }

  private one(c: CgroupContainerRef, now: number, out: Sample[]): void {
    const e = this.entryOf(c);
    e.round = this.round;
    if (e.stale && !this.locate(this.hierarchies!, e)) return;
    this.read(c.herdId, e, now, out);
  }

  private entryOf(c: CgroupContainerRef): Entry {
    let e = this.entries.get(c.herdId);
    if (!e || e.dockerId !== c.dockerId || e.pid !== c.pid) {
      // New container, or a restart (new pid, counters start over): first sighting again.
      e = {
        dockerId: c.dockerId,
        pid: c.pid,
        dirs: null,
        files: null,
        stale: true,
        round: this.round,
        prevTs: NaN,
        prev: new Float64Array(SLOTS).fill(NaN),
        cur: new Float64Array(SLOTS),
      };
      this.entries.set(c.herdId, e);
    }
    return e;
  }

  /** Containers that left the list: drop their paths and counters. */
  private end(list: CgroupContainerRef[]): void {
    if (this.entries.size <= list.length) return;
    for (const [id, e] of this.entries) if (e.round !== this.round) this.entries.delete(id);
  }

  close(): void {
    this.entries.clear();
  }

  private init(): void {
    const h = detectHierarchies(this.root);
    this.hierarchies = h;
    if (h.v1.size === 0 && !h.v2) log.warn('no cgroup hierarchy found', { root: this.root });
    const blkio = h.v1.get('blkio');
    if (this.opts.enableBlkioAccounting && blkio) {
      const devs = enableBlkioAccounting(blkio, this.opts.sysRoot);
      if (devs.length) log.info('enabled v1 blkio accounting', { devices: devs.join(',') });
    }
  }

  private locate(h: Hierarchies, e: Entry): boolean {
    const dirs = locateCgroup(h, this.templates, e.dockerId, e.pid, this.procRoot);
    if (!dirs) {
      e.dirs = e.files = null;
      return false;
    }
    let net: string | null = join(this.procRoot, String(e.pid), 'net/dev');
    if (!(e.pid > 0) || sharesAgentNetns(this.procRoot, e.pid) || !existsSync(net)) net = null;
    const files = chooseFiles(dirs, net);
    // A different cgroup than before means different counters: no rate across the switch.
    if (e.files && e.files.usage !== files.usage) e.prevTs = NaN;
    e.dirs = dirs;
    e.files = files;
    e.stale = false;
    return true;
  }

  private read(herdId: string, e: Entry, now: number, out: Sample[]): void {
    const f = e.files!;
    const cur = e.cur;
    cur.fill(NaN);
    let ok = true;

    if (f.usage) {
      if (!f.usageV2) {
        cur[CPU_NS] = readUint(f.usage);
        ok = cur[CPU_NS] === cur[CPU_NS];
      } else if ((ok = readInto(f.usage) >= 0)) {
        cur[CPU_NS] = keyValue(K_USAGE_USEC) * 1000;
        if (f.cpuStat === f.usage) {
          // v2: one cpu.stat holds usage and throttling.
          cur[THR_N] = keyValue(K_NR_THROTTLED);
          cur[THR_NS] = keyValue(K_THROTTLED_USEC) * 1000;
        }
      }
      // The cgroup is gone (container stopped, being removed): not an error, just nothing
      // to report; look for it again next round in case it was re-created.
      if (!ok) {
        e.stale = true;
        return;
      }
    }
    if (f.cpuStat && f.cpuStat !== f.usage) {
      if (readInto(f.cpuStat) >= 0) {
        cur[THR_N] = keyValue(K_NR_THROTTLED);
        cur[THR_NS] = f.cpuStatV2 ? keyValue(K_THROTTLED_USEC) * 1000 : keyValue(K_THROTTLED_TIME);
      } else ok = false;
    }

    const mem = memoryOf(f);
    if (f.mem && mem !== mem) ok = false;

    if (f.blkOps) {
      if (!sumBlkioRw(f.blkOps, cur, RIOS, WIOS) || !sumBlkioRw(f.blkBytes!, cur, RBYTES, WBYTES)) ok = false;
    } else if (f.ioStat && !sumIoStat(f.ioStat, cur, RIOS)) ok = false;

    let pids = NaN;
    if (f.pids) {
      if (f.pidsIsList) pids = readInto(f.pids) >= 0 ? countLines() : NaN;
      else pids = readUint(f.pids);
      if (pids !== pids) ok = false;
    }

    if (f.netDev && !sumNetDev(f.netDev, cur, RX)) ok = false;
    if (!ok) e.stale = true;

    if (mem === mem) out.push({ entity: herdId, metric: CONTAINER_METRICS.memUsage, ts: now, value: mem });
    if (pids === pids) out.push({ entity: herdId, metric: CONTAINER_METRICS.pids, ts: now, value: pids });

    const prev = e.prev;
    const dt = (now - e.prevTs) / 1000; // NaN on first sighting
    if (dt > 0) {
      for (let i = 0; i < RATES.length; i++) {
        const r = RATES[i];
        const d = cur[r[0]] - prev[r[0]];
        // NaN (missing now or before) fails this test too; a negative delta is a counter
        // reset, not a negative rate.
        if (d >= 0) out.push({ entity: herdId, metric: r[1], ts: now, value: (d * r[2]) / dt });
      }
    }
    prev.set(cur);
    e.prevTs = now;
  }
}

/** Memory in use (NaN: no memory file or unreadable). */
function memoryOf(f: CgroupFiles): number {
  if (!f.mem) return NaN;
  let mem = readUint(f.mem);
  if (mem === mem && f.memStat) {
    // Like docker stats: inactive page cache can be reclaimed at once, so it is not
    // counted as used (v1 total_inactive_file includes sub-cgroups; v2 is hierarchical).
    const inactive = readInto(f.memStat) >= 0 ? keyValue(f.memV2 ? K_INACTIVE_FILE : K_TOTAL_INACTIVE_FILE) : NaN;
    if (inactive < mem) mem -= inactive;
  }
  return mem;
}
