/**
 * What a node learns from its own machine: the Docker engine and CRIU (to migrate), the
 * containers Docker runs (tracked), and their metrics (collectors on a scheduler). Split out of
 * node.ts, which wires these to the cluster.
 */
import { logger } from '../common/log';
import type { Collector } from '../common/types';
import { AppOpsCollector } from './collectors/appops';
import { CgroupCollector } from './collectors/cgroup';
import { controllerReport, memoryOffWarning, readSystemFile } from './collectors/cgroup-controllers';
import { HostCollector } from './collectors/host';
import { PcpCollector } from './collectors/pcp';
import type { Settings } from './config';
import { DockerTracker } from './docker';
import { runningContainers } from './inventory';
import { criuKdatCacheable } from './runtime/criu';
import { DockerRuntime } from './runtime/docker-runtime';
import type { SampleLog } from './samplelog';
import { Scheduler } from './scheduler';

const log = logger('node');

/** The runtime migrations use, and its capabilities once `criu check` has answered (criuChecked). */
export function engineRuntime(settings: Settings): { runtime: DockerRuntime; capabilities: Set<string>; criuChecked: Promise<void> } {
  // a slow engine (a raised dockerTimeoutMs) gets at least as long for the migration's short calls
  const runtime = new DockerRuntime({ socketPath: settings.dockerSocket, timeoutMs: Math.max(30_000, settings.dockerTimeoutMs) });
  const capabilities = new Set<string>();
  // criu check takes a moment: it runs while the server starts, and the hello waits for it.
  const criuChecked = runtime.criuCheck().then(
    (c) => {
      if (c.ok) {
        capabilities.add('criu');
        if (!criuKdatCacheable()) log.info('/run is not a tmpfs, so CRIU probes the kernel again at every checkpoint and restore (15-20 ms of downtime each; herd doctor says how to fix it)');
      } else log.warn('CRIU is not usable here: this node cannot migrate containers (herd doctor says more)', { reason: c.message });
    },
    (err) => log.warn('CRIU check failed: this node cannot migrate containers', { error: err }),
  );
  return { runtime, capabilities, criuChecked };
}

export interface ContainerCollection {
  tracker: DockerTracker;
  /** the container collector: a migration asks it how much memory a container uses now */
  cgroups: CgroupCollector;
  /** first refresh of the tracker, then every period: tracking and every collector */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The tracker of Docker's containers and the collectors sampling the host and them into sampleLog. */
export function containerCollection(settings: Settings, sampleLog: SampleLog): ContainerCollection {
  const tracker = new DockerTracker({ socketPath: settings.dockerSocket, nodeId: settings.nodeId, timeoutMs: settings.dockerTimeoutMs });
  // once, at start: a Pi's kernel ships with the memory controller off (docs/raspberry-pi.md)
  const memoryOff = memoryOffWarning(controllerReport(settings.cgroupRoot, readSystemFile));
  if (memoryOff) log.warn(memoryOff);
  const cgroups = new CgroupCollector({ root: settings.cgroupRoot, containers: () => runningContainers(tracker), enableBlkioAccounting: settings.blkioAccounting });
  const collectors: Array<[Collector, number]> = [
    [new HostCollector({ nodeId: settings.nodeId, countContainers: () => tracker.containers().length }), settings.intervals.hostMs],
    [cgroups, settings.intervals.containerMs],
    [new AppOpsCollector({ tracker }), settings.intervals.trackMs],
  ];
  if (settings.pmproxyUrl && settings.pcpMetrics.length > 0) {
    const pcp = new PcpCollector({ nodeId: settings.nodeId, url: settings.pmproxyUrl, metrics: settings.pcpMetrics, pollIntervalMs: settings.intervals.pcpMs });
    collectors.push([pcp, settings.intervals.pcpMs]);
  }
  const scheduler = new Scheduler(sampleLog);
  let trackTimer: NodeJS.Timeout | undefined;
  return {
    tracker,
    cgroups,
    async start() {
      await tracker.refresh();
      trackTimer = setInterval(() => void tracker.refresh(), settings.intervals.trackMs);
      for (const [c, period] of collectors) scheduler.every(c, period);
    },
    async stop() {
      clearInterval(trackTimer);
      await scheduler.stop(collectors.map(([c]) => c));
    },
  };
}
