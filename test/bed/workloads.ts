// The workloads of the control experiment and its tests: `docker run` arguments for each kind,
// with the herd.ops labels that make the agent read its application ops from the log
// (agent/collectors/appops.ts; regexes from ../shared/recipes/workloads.md).
import { WORKLOAD_IMAGES } from './bed';

export type WorkloadKind = 'cpu' | 'cpu-mt' | 'disk';

/** sysbench cpu --report-interval=1: `[ 12s ] thds: 1 eps: 1060.13 lat (ms,95%): ...`, events/s. */
export const SYSBENCH_CPU_OPS = '^\\[ *(\\d+)s \\] thds: (\\d+) eps: ([0-9.]+)';
/** fio's status line, one a second (split from fio's \r-joined updates): `...[r=2000KiB/s][r=500 IOPS][eta ...]`, read IOPS. */
export const FIO_OPS = '\\]\\[r=(\\d+) IOPS\\]';

/**
 * fio: 4 KiB random reads, direct I/O (blk-throttle in cgroup v1 binds direct I/O only) with
 * psync (CRIU cannot dump io_uring) on a 16 MiB file in the container's upper dir, for a day.
 * fio joins its status updates with \r; awk makes each one a flushed line of its own.
 */
const FIO = 'fio --name=wl --directory=/data --rw=randread --bs=4k --size=16m --direct=1 --ioengine=psync ' +
  '--time_based --runtime=24h --eta=always --eta-newline=1 --output=/dev/null 2>&1 ' +
  "| awk -v RS='\\r' '/IOPS\\]/ { print; fflush() }'";

/** `docker run -d` arguments (after `run -d`) for a workload container named `name`. */
export function workloadArgs(kind: WorkloadKind, name: string, extraLabels: Record<string, string> = {}): string[] {
  const labels = Object.entries(extraLabels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  if (kind === 'disk') {
    return ['--name', name, '--label', `herd.ops.regex=${FIO_OPS}`, '--label', 'herd.ops.group=1', ...labels,
      WORKLOAD_IMAGES.fio, 'sh', '-c', `mkdir -p /data && ${FIO}`];
  }
  const threads = kind === 'cpu-mt' ? 4 : 1;
  return ['--name', name, '--label', `herd.ops.regex=${SYSBENCH_CPU_OPS}`, '--label', 'herd.ops.group=3', ...labels,
    WORKLOAD_IMAGES.sysbench, 'sysbench', 'cpu', `--threads=${threads}`, '--time=0', '--report-interval=1', 'run'];
}

/** The ops of a log line as the agent reads them (the same regex and group), or undefined. */
export function opsOfLine(kind: WorkloadKind, line: string): number | undefined {
  const m = new RegExp(kind === 'disk' ? FIO_OPS : SYSBENCH_CPU_OPS).exec(line);
  return m ? Number(m[kind === 'disk' ? 1 : 3]) : undefined;
}
