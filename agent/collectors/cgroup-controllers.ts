/**
 * Which cgroup controllers the container metrics need are there, and why one is missing. A
 * Raspberry Pi's kernel disables the memory controller unless its command line enables it
 * (raspberrypi/linux "cgroup: Disable cgroup memory by default"; newer ones boot with
 * `cgroup_disable=memory`): the agent says so once at start, `herd doctor` says it too, both with
 * the fix. The report is pure: the caller passes a reader of files (readSystemFile for the real
 * ones, the unit tests fixture trees).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The real reader: a file's text, or undefined when it cannot be read. */
export function readSystemFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The controllers behind the container metrics: CPU, memory, block I/O, pids. */
export const NEEDED_CONTROLLERS = ['cpu', 'memory', 'io', 'pids'] as const;

export const MEMORY_FIX = 'add "cgroup_enable=memory cgroup_memory=1" to the kernel command line (a Raspberry Pi: /boot/firmware/cmdline.txt) and reboot';

export interface ControllerReport {
  layout: 'v2 (unified)' | 'v1' | 'none';
  /** Controllers present ('blkio' of v1 named 'io'). */
  have: string[];
  /** Of NEEDED_CONTROLLERS, those not present. */
  missing: string[];
  /** The kernel command line turns the memory controller off (and does not turn it back on). */
  memoryDisabledAtBoot: boolean;
}

/** read(file) -> its text, or undefined when it cannot be read. */
export function controllerReport(root: string, read: (file: string) => string | undefined): ControllerReport {
  const cmdline = read('/proc/cmdline') ?? '';
  // the last word wins in the kernel's own parsing; cgroup_enable=memory after the disable re-enables
  const words = cmdline.split(/\s+/).filter((w) => /^cgroup_(disable|enable)=/.test(w) && w.split('=')[1].split(',').includes('memory'));
  const memoryDisabledAtBoot = words.length > 0 && words[words.length - 1].startsWith('cgroup_disable=');
  const v2 = read(path.join(root, 'cgroup.controllers'));
  let layout: ControllerReport['layout'];
  let have: string[];
  if (v2 !== undefined) {
    layout = 'v2 (unified)';
    have = v2.trim().split(/\s+/).filter(Boolean);
  } else {
    have = ['cpu', 'cpuacct', 'memory', 'blkio', 'pids']
      .filter((c) => read(path.join(root, c, 'tasks')) !== undefined || read(path.join(root, c, 'cgroup.procs')) !== undefined)
      .map((c) => (c === 'blkio' ? 'io' : c));
    layout = have.length ? 'v1' : 'none';
  }
  return { layout, have, missing: NEEDED_CONTROLLERS.filter((c) => !have.includes(c)), memoryDisabledAtBoot };
}

/** The agent's one warning when memory metrics cannot be collected; undefined when they can. */
export function memoryOffWarning(r: ControllerReport): string | undefined {
  if (r.layout === 'none' || !r.missing.includes('memory')) return undefined;
  const why = r.memoryDisabledAtBoot ? 'the kernel command line disables the memory cgroup controller (cgroup_disable=memory, a Raspberry Pi\'s default)' : `the cgroup ${r.layout} root has no memory controller`;
  return `container memory metrics are off: ${why}. To turn them on, ${r.memoryDisabledAtBoot ? MEMORY_FIX : 'enable the memory controller (cgroup v2: list it in cgroup.subtree_control up to Docker\'s cgroup)'}`;
}
