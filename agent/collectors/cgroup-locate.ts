/**
 * Where a container's cgroup files are: which hierarchies are mounted (v1, v2, hybrid)
 * and which directory of each belongs to a docker container. Runs when a container is
 * first seen (or its cgroup vanished), never on every round, so plain fs calls are fine.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Mounted hierarchies under the cgroup root. */
export interface Hierarchies {
  /** v1 controller name -> its mount directory (co-mounted ones share a directory). */
  v1: Map<string, string>;
  /** cgroup2 mount directory: the root itself (pure v2) or <root>/unified (hybrid). */
  v2: string | null;
}

export function detectHierarchies(root: string): Hierarchies {
  if (existsSync(join(root, 'cgroup.controllers'))) return { v1: new Map(), v2: root };
  const v1 = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    // no cgroupfs at all: every container will simply yield nothing
  }
  // Sorted so that a real "cpu,cpuacct" directory wins over its "cpu"/"cpuacct" symlinks
  // deterministically; either path reaches the same files.
  for (const name of names.sort()) {
    if (name === 'unified') continue;
    const dir = join(root, name);
    if (!existsSync(join(dir, 'cgroup.procs'))) continue;
    for (const ctrl of name.split(',')) if (!ctrl.startsWith('name=') && !v1.has(ctrl)) v1.set(ctrl, dir);
  }
  const unified = join(root, 'unified');
  return { v1, v2: existsSync(join(unified, 'cgroup.controllers')) ? unified : null };
}

/** The controllers the collector reads from v1 (cpu for throttling, cpuacct for usage). */
export const V1_CONTROLLERS = ['cpuacct', 'cpu', 'memory', 'blkio', 'pids'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

/** A container's cgroup directory in each hierarchy that has one. */
export interface CgroupDirs {
  v1: Partial<Record<V1Controller, string>>;
  v2: string | null;
}

/**
 * Templates of a container's cgroup path relative to a hierarchy, around its docker id:
 * cgroupfs driver "docker/<id>", systemd driver "system.slice/docker-<id>.scope". Paths
 * found through /proc/<pid>/cgroup (a custom --cgroup-parent) are learned and tried first
 * for later containers, so only the first container under a new parent costs a /proc read.
 */
export class PathTemplates {
  private readonly list: Array<[string, string]> = [
    ['docker/', ''],
    ['system.slice/docker-', '.scope'],
  ];

  candidates(dockerId: string): string[] {
    return this.list.map(([pre, post]) => pre + dockerId + post);
  }

  learn(rel: string, dockerId: string): void {
    const at = rel.indexOf(dockerId);
    if (at < 0) return;
    const pre = rel.slice(0, at);
    const post = rel.slice(at + dockerId.length);
    if (!this.list.some(([a, b]) => a === pre && b === post)) this.list.unshift([pre, post]);
  }
}

/**
 * Parses /proc/<pid>/cgroup: v1 lines "4:cpu,cpuacct:/docker/<id>", the v2 line
 * "0::/docker/<id>". Paths are relative to the hierarchy roots (leading '/' dropped).
 */
export function parseProcCgroup(text: string): { v1: Map<string, string>; v2: string | null } {
  const v1 = new Map<string, string>();
  let v2: string | null = null;
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const ctrls = line.slice(a + 1, b);
    const path = line.slice(b + 1).replace(/^\/+/, '');
    if (ctrls === '' && line.slice(0, a) === '0') v2 = path;
    else for (const c of ctrls.split(',')) v1.set(c, path);
  }
  return { v1, v2 };
}

function readProcCgroup(procRoot: string, pid: number): ReturnType<typeof parseProcCgroup> | null {
  if (!(pid > 0)) return null;
  try {
    return parseProcCgroup(readFileSync(join(procRoot, String(pid), 'cgroup'), 'latin1'));
  } catch {
    return null; // process gone
  }
}

/**
 * Finds a container's cgroup directories, by docker id first (cheap stat()s), then through
 * /proc/<pid>/cgroup. Returns null when none is found (container not started yet or gone).
 */
export function locateCgroup(
  h: Hierarchies,
  templates: PathTemplates,
  dockerId: string,
  pid: number,
  procRoot: string,
): CgroupDirs | null {
  const mounts: Array<[V1Controller | '', string]> = [];
  for (const c of V1_CONTROLLERS) {
    const m = h.v1.get(c);
    if (m) mounts.push([c, m]);
  }
  if (h.v2) mounts.push(['', h.v2]);
  if (mounts.length === 0) return null;

  const dirs: CgroupDirs = { v1: {}, v2: null };
  let found = false;
  const put = (c: V1Controller | '', dir: string) => {
    if (!existsSync(dir)) return;
    found = true;
    if (c === '') dirs.v2 = dir;
    else dirs.v1[c] = dir;
  };

  // Docker puts a container at the same relative path in every hierarchy.
  const probe = mounts[0][1];
  const rel = templates.candidates(dockerId).find((r) => existsSync(join(probe, r)));
  if (rel !== undefined) {
    for (const [c, m] of mounts) put(c, join(m, rel));
    return dirs;
  }

  const proc = readProcCgroup(procRoot, pid);
  if (!proc) return null;
  let learned: string | null = null;
  for (const [c, m] of mounts) {
    const p = containerPart(c === '' ? proc.v2 : proc.v1.get(c), dockerId);
    if (p === null) continue;
    put(c, join(m, p));
    learned ??= p;
  }
  if (!found) return null;
  if (learned) templates.learn(learned, dockerId);
  return dirs;
}

/**
 * The part of a /proc/<pid>/cgroup path up to the segment naming the container. A path
 * without the id is refused: the pid may have been reused by a process outside the
 * container (or sit in "/"), and its cgroup must not be reported as the container's. A
 * deeper path (systemd inside the container moved itself to ".../init.scope") is cut back
 * to the container's own cgroup.
 */
export function containerPart(path: string | null | undefined, dockerId: string): string | null {
  if (!path) return null;
  const segs = path.split('/');
  const i = segs.findIndex((s) => s.includes(dockerId));
  return i < 0 ? null : segs.slice(0, i + 1).join('/');
}

/**
 * True when the process shares the agent's network namespace (--network host, or the
 * fixture says so): its net/dev would then be the node's traffic, not the container's.
 */
export function sharesAgentNetns(procRoot: string, pid: number): boolean {
  try {
    return readlinkSync(join(procRoot, String(pid), 'ns/net')) === readlinkSync(join(procRoot, 'self/ns/net'));
  } catch {
    return false;
  }
}
