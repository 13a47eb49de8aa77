/**
 * Host metrics (entity = node id): CPU, load, memory, disk, network, container count.
 *
 * Runs every 5 s on Raspberry Pis, so the cost matters. systeminformation 5.33 forks
 * processes for most of what we need (measured here, CPU per call in-process + children):
 *   currentLoad()   1.4 ms + 3.5 ms  (execSync `cat /proc/stat | grep cpu`: blocks the loop)
 *   disksIO()       0.7 ms + 5.5 ms  (lsblk | grep | sed | awk | sort, then cat per disk)
 *   networkStats()  2.6 ms + 5.0 ms  (a shell with `cat` per interface)
 *   mem()           0.5 ms           (reads /proc/meminfo: no fork)
 * So memory comes from systeminformation, load from os.loadavg(), and CPU, disk and
 * network from the same /proc files read directly (cgroup-read.ts, no fork, no garbage).
 * One collect() here costs ~0.1-0.2 ms of CPU with si.mem() most of it
 * (test/unit/host.test.ts and bench/collect-cost.ts print the figure).
 */
import { existsSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mem as siMem } from 'systeminformation';
import { logger } from '../../common/log';
import type { Collector, Sample } from '../../common/types';
import { byteAt, forEachLine, nextField, readInto, startsWith, sumNetDev, text, uintAt } from './cgroup-read';

const log = logger('host');

export interface HostCollectorOptions {
  nodeId: string;
  /** Number of containers on the node (host.containers); omitted: no such metric. */
  countContainers?: () => number;
  /** procfs root (tests point it at a fake tree). Default /proc. */
  procRoot?: string;
  /** sysfs root, to tell physical disks from virtual ones. Default /sys. */
  sysRoot?: string;
}

/** Re-list /sys/block every this many rounds (USB disks come and go on a Pi). */
const DISK_RESCAN_ROUNDS = 60;

// Slots of the counter arrays.
const D_RIOS = 0;
const D_WIOS = 1;
const D_RBYTES = 2;
const D_WBYTES = 3;
const N_RX = 4;
const N_TX = 5;
const SLOTS = 6;
const SPACE = 0x20;

export class HostCollector implements Collector {
  readonly name = 'host';
  private readonly nodeId: string;
  private readonly procRoot: string;
  private readonly sysRoot: string;
  private readonly countContainers?: () => number;
  /** Per CPU line (index 0 = aggregate "cpu", i + 1 = "cpu<i>"): busy and total ticks. */
  private prevCpu = new Map<number, [number, number]>();
  private prev = new Float64Array(SLOTS).fill(NaN);
  private cur = new Float64Array(SLOTS);
  /** Previous io_ticks (ms busy) per disk. */
  private prevTicks = new Map<string, number>();
  private prevTs = NaN;
  private disks: Set<string> | null = null;
  private rounds = 0;
  private readonly warned = new Set<string>();

  constructor(opts: HostCollectorOptions) {
    this.nodeId = opts.nodeId;
    this.countContainers = opts.countContainers;
    this.procRoot = opts.procRoot ?? '/proc';
    this.sysRoot = opts.sysRoot ?? '/sys';
  }

  async collect(now: number): Promise<Sample[]> {
    const out: Sample[] = [];
    const add = (metric: string, value: number) => {
      if (Number.isFinite(value)) out.push({ entity: this.nodeId, metric, ts: now, value });
    };
    const dt = (now - this.prevTs) / 1000; // NaN on the first round: no rates
    const rates = dt > 0;
    // Awaited first, so that the counter files below are read back to back, without
    // another collector's round in between.
    const m = await siMem();

    this.readCpu(rates ? add : null);

    const [l1, l5, l15] = loadavg();
    add('host.load.1', l1);
    add('host.load.5', l5);
    add('host.load.15', l15);

    // "used" as free(1) and docker count it: what cannot be reclaimed (total - available).
    // si's own `used` (total - free) would include the page cache.
    add('host.mem.total_bytes', m.total);
    add('host.mem.available_bytes', m.available);
    add('host.mem.used_bytes', m.total - m.available);

    const cur = this.cur;
    cur.fill(NaN);
    const busiest = this.readDisks(dt);
    if (!sumNetDev(join(this.procRoot, 'net/dev'), cur, N_RX)) this.warnOnce('net/dev');
    if (rates) {
      const prev = this.prev;
      const rate = (metric: string, slot: number) => {
        const d = cur[slot] - prev[slot];
        if (d >= 0) add(metric, d / dt); // NaN or a counter wrap: skip
      };
      rate('host.disk.read_ops', D_RIOS);
      rate('host.disk.write_ops', D_WIOS);
      rate('host.disk.read_bytes', D_RBYTES);
      rate('host.disk.write_bytes', D_WBYTES);
      add('host.disk.active_pct', busiest);
      rate('host.net.rx_bytes', N_RX);
      rate('host.net.tx_bytes', N_TX);
    }
    this.prev.set(cur);

    if (this.countContainers) {
      try {
        add('host.containers', this.countContainers());
      } catch (err) {
        this.warnOnce('countContainers', err);
      }
    }
    this.prevTs = now;
    this.rounds++;
    return out;
  }

  /** /proc/stat: busy = all ticks but idle and iowait; percent = delta busy / delta total. */
  private readCpu(add: ((metric: string, value: number) => void) | null): void {
    if (readInto(join(this.procRoot, 'stat')) < 0) return this.warnOnce('stat');
    const next = new Map<number, [number, number]>();
    forEachLine((start, end) => {
      if (!startsWith(start, 'cpu')) return;
      const c = start + 3;
      const index = c < end && byteAt(c) !== SPACE ? uintAt(c, end) + 1 : 0;
      if (index !== index) return;
      let p = nextField(start, end);
      let total = 0;
      let idle = 0;
      // user nice system idle iowait irq softirq steal (guest is already inside user).
      for (let i = 0; i < 8 && p < end; i++) {
        const v = uintAt(p, end) || 0;
        total += v;
        if (i === 3 || i === 4) idle += v;
        p = nextField(p, end);
      }
      next.set(index, [total - idle, total]);
      const before = this.prevCpu.get(index);
      if (!add || !before) return;
      const dTotal = total - before[1];
      if (dTotal <= 0) return;
      const pct = Math.min(100, Math.max(0, ((total - idle - before[0]) / dTotal) * 100));
      add(index === 0 ? 'host.cpu.total' : `host.cpu.core.${index - 1}`, pct);
    });
    this.prevCpu = next;
  }

  /**
   * /proc/diskstats, whole physical disks only (partitions, loop, zram, dm and md would count
   * the same I/O twice or not at all). host.disk.active_pct comes from io_ticks (ms the
   * device had I/O in flight): systeminformation has no such field. It is the busiest
   * disk's share of wall time, since one saturated disk is the bottleneck however idle
   * the others are. Returns that percent (NaN without a previous reading).
   */
  private readDisks(dt: number): number {
    if (!this.disks || this.rounds % DISK_RESCAN_ROUNDS === 0) this.disks = this.physicalDisks();
    const cur = this.cur;
    if (readInto(join(this.procRoot, 'diskstats')) < 0) {
      this.warnOnce('diskstats');
      return NaN;
    }
    let rios = 0;
    let wios = 0;
    let rsect = 0;
    let wsect = 0;
    let busiest = NaN;
    const ticks = new Map<string, number>();
    const disks = this.disks;
    forEachLine((start, end) => {
      // "   8       0 sda 1 2 3 ...": major, minor, name, then the counters.
      let p = start;
      while (p < end && byteAt(p) === SPACE) p++;
      const nameAt = nextField(nextField(p, end), end);
      let nameEnd = nameAt;
      while (nameEnd < end && byteAt(nameEnd) !== SPACE) nameEnd++;
      const name = text(nameAt, nameEnd);
      if (!disks.has(name)) return;
      const f: number[] = [];
      for (let p = nextField(nameAt, end); p < end && f.length < 10; p = nextField(p, end)) f.push(uintAt(p, end));
      rios += f[0] || 0;
      rsect += f[2] || 0;
      wios += f[4] || 0;
      wsect += f[6] || 0;
      const t = f[9];
      ticks.set(name, t);
      const before = this.prevTicks.get(name);
      if (before !== undefined && dt > 0 && t >= before) {
        const pct = Math.min(100, (t - before) / (dt * 10)); // ms busy / (dt s * 1000) * 100
        busiest = busiest === busiest ? Math.max(busiest, pct) : pct;
      }
    });
    this.prevTicks = ticks;
    cur[D_RIOS] = rios;
    cur[D_WIOS] = wios;
    cur[D_RBYTES] = rsect * 512; // diskstats sectors are always 512 bytes
    cur[D_WBYTES] = wsect * 512;
    return busiest;
  }

  private physicalDisks(): Set<string> {
    const set = new Set<string>();
    try {
      for (const d of readdirSync(join(this.sysRoot, 'block'))) {
        // Only real hardware has a device link; /sys/block names "/" as "!" (cciss!c0d0).
        if (existsSync(join(this.sysRoot, 'block', d, 'device'))) set.add(d.replace(/!/g, '/'));
      }
    } catch (err) {
      this.warnOnce('/sys/block', err);
    }
    return set;
  }

  private warnOnce(what: string, err?: unknown): void {
    if (this.warned.has(what)) return;
    this.warned.add(what);
    log.warn('host metric source unavailable', err === undefined ? { source: what } : { source: what, err });
  }
}
