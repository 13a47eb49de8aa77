// Multi-node test bed on one machine: every node is a network namespace on a shared bridge, with
// (optionally) its own dockerd. Layout and rationale: docs/testbed.md. Needs root and
// test/bed/install.sh. Everything started is recorded in pid files so the next run (or stopBed())
// can clean up after a crashed one.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { capCpu, DiskCapSplitter, diskOf } from './caps';
import { alive, killRecord, procStart, readRecords, run, SBIN_PATH, signal, sleep, spawnIn, until } from './procs';

export { run, spawnIn };

export interface BedOptions {
  nodes: number;
  docker?: boolean;
  /** Separate bed (netns herd-<name>-n1, dir /tmp/herd-bed-<name>); [a-z0-9]{1,8}. */
  name?: string;
  /** Third octet of the bed subnet 10.77.<subnet>.0/24 (default 0); two live beds need two subnets. */
  subnet?: number;
  /** Extra dockerd flags, e.g. ['--log-level', 'debug']. */
  dockerdArgs?: string[];
  /** How long one dockerd may take to answer `docker version` (default 60 s). */
  dockerTimeoutMs?: number;
  /** CPU capacity of each node in cores (index 0 = n1; 0 or missing: no cap); docs/testbed.md. */
  cpuCores?: number[];
  /** Disk capacity of each node in IOPS, read and write each (0 or missing: no cap); direct I/O only. */
  diskIops?: number[];
  /** Workload images imported into every node besides busybox (WORKLOAD_IMAGES). */
  images?: WorkloadImage[];
}

/** Workload images the bed builds offline (test/bed/images.sh) and their names in each dockerd. */
export const WORKLOAD_IMAGES = { sysbench: 'herd-sysbench:latest', fio: 'herd-fio:latest' } as const;
export type WorkloadImage = keyof typeof WORKLOAD_IMAGES;

export interface BedNode {
  id: string; // n1, n2, ...
  index: number; // 1-based
  ip: string; // 10.77.<subnet>.(10+index)
  netns: string; // herd-n1
  dir: string; // /tmp/herd-bed/n1: logs, pid files, docker data
  dockerSock: string; // <dir>/docker.sock ('' without docker)
  cgroupParent: string; // dockerd --cgroup-parent, e.g. /herd-n1 (cap a node's CPU here)
}

export interface ExecResult { code: number; stdout: string; stderr: string; signal?: string }
export interface SpawnOptions { name?: string; env?: NodeJS.ProcessEnv; cwd?: string }
export interface BedProcess {
  node: string; name: string; pid: number; child: ChildProcess; logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM to the process group, SIGKILL after timeoutMs (default 5 s). */
  stop(timeoutMs?: number): Promise<void>;
  log(): string;
}

export interface Bed {
  name: string; dir: string; hubNetns: string; hostIp: string; nodes: BedNode[];
  node(id: string): BedNode;
  spawn(nodeId: string, cmd: string, args?: string[], opts?: SpawnOptions): BedProcess;
  exec(nodeId: string, cmd: string, args?: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  docker(nodeId: string, ...args: string[]): Promise<ExecResult>;
  isolate(nodeId: string): Promise<void>;
  heal(nodeId: string): Promise<void>;
  stop(): Promise<void>;
}

export const BUSYBOX_IMAGE = 'herd-busybox:latest';
const DOCKER = '/usr/bin/docker'; // bookworm's 20.10 CLI; /usr/local/bin may hold a newer one
const CACHE = '/var/tmp/herd-bed-images'; // outside /tmp/herd-bed*: stopBed({ all }) sweeps those
// import.meta.url under vitest and vite-node; a CommonJS bundle of bench/run.mjs (in dist/bench/)
// has an empty import.meta, and this directory is then ../../test/bed from the bundle
const HERE = import.meta.url ? path.dirname(fileURLToPath(import.meta.url)) : path.join(__dirname, '..', '..', 'test', 'bed');

interface Layout { name: string; prefix: string; dir: string; hub: string; hostIf: string }

function layoutOf(name?: string): Layout {
  if (name === undefined) return { name: '', prefix: 'herd-', dir: '/tmp/herd-bed', hub: 'herd-hub', hostIf: 'herd-host' };
  if (!/^[a-z0-9]{1,8}$/.test(name)) throw new Error(`bed name must match [a-z0-9]{1,8}: ${name}`);
  return { name, prefix: `herd-${name}-`, dir: `/tmp/herd-bed-${name}`, hub: `herd-${name}-hub`, hostIf: `hh-${name}` };
}

function nodeOf(l: Layout, index: number, subnet: number, docker: boolean): BedNode {
  const id = `n${index}`;
  const dir = path.join(l.dir, id);
  return {
    id, index, ip: `10.77.${subnet}.${10 + index}`, netns: l.prefix + id, dir,
    dockerSock: docker ? path.join(dir, 'docker.sock') : '', cgroupParent: `/${l.prefix}${id}`,
  };
}

// ------------------------------------------------------------------ small process helpers (more in procs.ts)
async function must(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
const ip = (...args: string[]) => must('ip', args);

// ------------------------------------------------------------------ cleanup
function mountsUnder(dir: string): string[] {
  const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => unesc(l.split(' ')[4])).filter((m) => m.startsWith(dir + '/'));
}

async function unmountUnder(dir: string): Promise<void> {
  for (const m of mountsUnder(dir).sort((a, b) => b.length - a.length)) await run('umount', ['-l', m]);
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`bed: cannot unmount ${left.join(', ')}`);
}

/** Kill every process of a cgroup subtree (containers whose dockerd died) and remove the cgroups. */
async function cleanCgroups(parent: string): Promise<void> {
  const root = '/sys/fs/cgroup';
  const walk = (d: string): string[] => [d, ...fs.readdirSync(d, { withFileTypes: true })
    .filter((e) => e.isDirectory()).flatMap((e) => walk(path.join(d, e.name)))];
  const dirs = (fs.existsSync(root) ? fs.readdirSync(root) : []).map((c) => path.join(root, c, parent))
    .filter((d) => fs.existsSync(d)).flatMap(walk);
  const procs = () => dirs.flatMap((d) => {
    try { return fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
  });
  for (const p of procs()) signal(p, 'SIGKILL');
  // a cgroup can only be removed once its killed processes have really exited
  await until(() => procs().length === 0, 5000, 50);
  for (const d of dirs.sort((a, b) => b.length - a.length)) { try { fs.rmdirSync(d); } catch { /* busy: next run retries */ } }
}

async function netnsList(): Promise<string[]> {
  return (await must('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

async function cleanNode(l: Layout, id: string): Promise<void> {
  const node = nodeOf(l, Number(id.slice(1)), 0, true);
  const recs = readRecords(node.dir);
  const dockerd = recs.get('dockerd');
  recs.delete('dockerd');
  await Promise.all([...recs.values()].map((r) => killRecord(r, 5000)));
  if (dockerd && alive(dockerd)) {
    // Remove containers through the API first: a dockerd that is just killed leaves shims behind.
    const ps = await run(DOCKER, ['-H', `unix://${node.dockerSock}`, 'ps', '-aq'], { timeoutMs: 15_000 });
    const ids = ps.stdout.split(/\s+/).filter(Boolean);
    if (ids.length) await run(DOCKER, ['-H', `unix://${node.dockerSock}`, 'rm', '-f', ...ids], { timeoutMs: 60_000 });
    await killRecord(dockerd, 15_000);
  }
  const ctrdPid = Number((() => { try { return fs.readFileSync(path.join(node.dir, 'exec/containerd/containerd.pid'), 'utf8'); } catch { return ''; } })());
  if (ctrdPid && procStart(ctrdPid) && fs.readFileSync(`/proc/${ctrdPid}/cmdline`, 'utf8').includes('containerd')) signal(ctrdPid, 'SIGKILL');
  // Whatever else still lives in the node's netns (shims, children of killed processes) is the bed's.
  if ((await netnsList()).includes(node.netns)) {
    const r = await run('ip', ['netns', 'pids', node.netns]);
    for (const p of r.stdout.split('\n').filter(Boolean)) signal(Number(p), 'SIGKILL');
  }
  await cleanCgroups(node.cgroupParent);
}

async function cleanup(l: Layout, wipe: boolean): Promise<void> {
  const ids = new Set<string>();
  if (fs.existsSync(l.dir)) for (const f of fs.readdirSync(l.dir)) if (/^n\d+$/.test(f)) ids.add(f);
  const re = new RegExp(`^${l.prefix}(n\\d+)$`);
  const spaces = await netnsList();
  for (const ns of spaces) { const m = re.exec(ns); if (m) ids.add(m[1]); }
  await Promise.all([...ids].map((id) => cleanNode(l, id)));
  await sleep(100); // let SIGKILLed processes drop their mounts and namespaces
  if (fs.existsSync(l.dir)) await unmountUnder(l.dir);
  // the agents' checkpoint image tmpfs (agent/runtime/fast-checkpoint.ts imageRootFor): one per node's docker socket
  for (const id of ids) {
    const sock = path.join(l.dir, id, 'docker.sock');
    const root = `/tmp/herd-images-${createHash('sha256').update(sock).digest('hex').slice(0, 10)}`;
    if (!fs.existsSync(root)) continue;
    await run('umount', [root]);
    fs.rmSync(root, { recursive: true, force: true });
  }
  for (const ns of spaces) {
    if (!re.test(ns) && ns !== l.hub) continue;
    const r = await run('ip', ['netns', 'del', ns]);
    // gone meanwhile (another cleanup of the same bed): fine; still there: an error
    if (r.code !== 0 && (await netnsList()).includes(ns)) throw new Error(`ip netns del ${ns} failed: ${r.stderr.trim()}`);
  }
  await run('ip', ['link', 'del', l.hostIf]); // normally gone with the hub already
  if (!fs.existsSync(l.dir)) return;
  if (wipe) fs.rmSync(l.dir, { recursive: true, force: true });
  // stop(): keep the logs of the run for a post-mortem; the docker state goes
  else for (const id of ids) for (const d of ['data', 'exec', 'pids']) fs.rmSync(path.join(l.dir, id, d), { recursive: true, force: true });
}

/** Stops a bed left by any earlier run (by pid file, netns name and cgroup). all: every herd bed. */
export async function stopBed(opts: { name?: string; all?: boolean } = {}): Promise<void> {
  if (!opts.all) return cleanup(layoutOf(opts.name), false);
  const names = new Set<string | undefined>([undefined]);
  for (const f of fs.readdirSync('/tmp')) { const m = /^herd-bed-([a-z0-9]{1,8})$/.exec(f); if (m) names.add(m[1]); }
  for (const ns of await netnsList()) { const m = /^herd-([a-z0-9]{1,8})-(hub|n\d+)$/.exec(ns); if (m) names.add(m[1]); }
  for (const n of names) await cleanup(layoutOf(n), false);
}

// ------------------------------------------------------------------ start
/** The rootfs tar of an image, built once by images.sh into the cache (keyed by busybox and the script). */
async function imageTar(kind: 'busybox' | WorkloadImage): Promise<string> {
  const script = path.join(HERE, 'images.sh');
  const key = createHash('sha256').update(fs.readFileSync('/bin/busybox')).update(fs.readFileSync(script)).digest('hex').slice(0, 12);
  const tar = path.join(CACHE, `${kind}-${key}.tar`);
  if (!fs.existsSync(tar)) { fs.mkdirSync(CACHE, { recursive: true }); await must('bash', [script, kind, tar], 600_000); }
  return tar;
}

function tail(file: string, n: number): string {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
}

async function startDockerd(node: BedNode, extra: string[], timeoutMs: number): Promise<void> {
  for (const d of ['data', 'exec']) fs.mkdirSync(path.join(node.dir, d), { recursive: true });
  // Our own config file: a host /etc/docker/daemon.json must not leak into the nodes. 20.10
  // derives the engine ID (docker info .ID) from /etc/docker/key.json unless told: one per node.
  const cfg = path.join(node.dir, 'daemon.json');
  fs.writeFileSync(cfg, JSON.stringify({ 'deprecated-key-path': path.join(node.dir, 'key.json') }) + '\n');
  const p = spawnIn(node, 'dockerd', 'dockerd', [
    '--experimental', '--config-file', cfg, '--data-root', path.join(node.dir, 'data'),
    '--exec-root', path.join(node.dir, 'exec'), '-H', `unix://${node.dockerSock}`,
    '--pidfile', path.join(node.dir, 'docker.pid'), '--bip', `172.31.${node.index}.1/24`,
    '--cgroup-parent', node.cgroupParent, '--shutdown-timeout', '3', ...extra,
  ], false, { env: { PATH: SBIN_PATH, DOCKER_HOST: undefined } });
  let dead = false;
  void p.exited.then(() => { dead = true; });
  const up = await until(async () => dead || (await run(DOCKER, ['-H', `unix://${node.dockerSock}`, 'version'], { timeoutMs: 5000 })).code === 0, timeoutMs, 250);
  if (dead || !up) {
    throw new Error(`dockerd of ${node.id} ${dead ? 'exited' : `did not answer within ${timeoutMs} ms`}; last lines of ${p.logFile}:\n${tail(p.logFile, 25)}`);
  }
}

export async function startBed(opts: BedOptions): Promise<Bed> {
  if (process.getuid?.() !== 0) throw new Error('the test bed needs root');
  const l = layoutOf(opts.name);
  const subnet = opts.subnet ?? 0;
  const docker = opts.docker ?? false;
  if (!(opts.nodes >= 1 && opts.nodes <= 200)) throw new Error(`nodes must be 1..200: ${opts.nodes}`);
  await cleanup(l, true);
  const nodes = Array.from({ length: opts.nodes }, (_, i) => nodeOf(l, i + 1, subnet, docker));
  const hostIp = `10.77.${subnet}.1`;

  // A hub namespace holds the bridge so that the host's firewall (a host dockerd's FORWARD DROP
  // with br_netfilter) never sees bed traffic; the host reaches the nodes through its own port.
  await ip('netns', 'add', l.hub);
  await ip('-n', l.hub, 'link', 'set', 'lo', 'up');
  await ip('-n', l.hub, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  await ip('-n', l.hub, 'link', 'set', 'br0', 'up');
  await ip('link', 'add', l.hostIf, 'type', 'veth', 'peer', 'name', 'host', 'netns', l.hub);
  await ip('addr', 'add', `${hostIp}/24`, 'dev', l.hostIf);
  await ip('link', 'set', l.hostIf, 'up');
  await ip('-n', l.hub, 'link', 'set', 'host', 'master', 'br0', 'up');
  for (const n of nodes) {
    fs.mkdirSync(path.join(n.dir, 'pids'), { recursive: true });
    await ip('netns', 'add', n.netns);
    await ip('-n', n.netns, 'link', 'set', 'lo', 'up');
    // the node side is eth0, the hub side carries the node id: isolate() downs that port
    await ip('-n', n.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', n.id, 'netns', l.hub);
    await ip('-n', n.netns, 'addr', 'add', `${n.ip}/24`, 'dev', 'eth0');
    await ip('-n', n.netns, 'link', 'set', 'eth0', 'up');
    await ip('-n', l.hub, 'link', 'set', n.id, 'master', 'br0', 'up');
  }
  // before dockerd starts: it then puts its containers under the capped parent as it is
  nodes.forEach((n, i) => { if (opts.cpuCores?.[i]) capCpu(n.cgroupParent, opts.cpuCores[i]); });
  const disk = opts.diskIops?.some((x) => x > 0)
    ? new DiskCapSplitter(diskOf(l.dir), nodes.map((n, i) => ({ cgroupParent: n.cgroupParent, iops: opts.diskIops?.[i] ?? 0 })))
    : undefined;
  const bed = new BedImpl(l, nodes, hostIp, disk);
  fs.writeFileSync(path.join(l.dir, 'bed.json'), JSON.stringify({ hostIp, nodes, cpuCores: opts.cpuCores, diskIops: opts.diskIops }, null, 2));
  if (docker) {
    try {
      const images = [{ tar: await imageTar('busybox'), name: BUSYBOX_IMAGE }];
      for (const w of opts.images ?? []) images.push({ tar: await imageTar(w), name: WORKLOAD_IMAGES[w] });
      await Promise.all(nodes.map(async (n) => {
        await startDockerd(n, opts.dockerdArgs ?? [], opts.dockerTimeoutMs ?? 60_000);
        for (const img of images) {
          const r = await bed.docker(n.id, 'import', '--change', 'CMD ["/bin/sh"]', img.tar, img.name);
          if (r.code !== 0) throw new Error(`${n.id}: docker import of ${img.name} failed: ${r.stderr}`);
        }
      }));
      disk?.start();
    } catch (e) {
      await bed.stop();
      throw e;
    }
  }
  return bed;
}

class BedImpl implements Bed {
  constructor(private l: Layout, readonly nodes: BedNode[], readonly hostIp: string, private disk?: DiskCapSplitter) {}
  get name() { return this.l.name; }
  get dir() { return this.l.dir; }
  get hubNetns() { return this.l.hub; }
  private seq = 0;

  node(id: string): BedNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id} in the bed (have ${this.nodes.map((x) => x.id).join(', ')})`);
    return n;
  }

  spawn(nodeId: string, cmd: string, args: string[] = [], opts: SpawnOptions = {}): BedProcess {
    const name = opts.name ?? `${path.basename(cmd)}-${++this.seq}`;
    if (!/^[\w.-]+$/.test(name)) throw new Error(`bad process name ${name}`);
    return spawnIn(this.node(nodeId), name, cmd, args, true, opts);
  }

  exec(nodeId: string, cmd: string, args: string[] = [], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    const n = this.node(nodeId);
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    env.PATH = `/usr/local/sbin:${env.PATH ?? SBIN_PATH}`;
    if (n.dockerSock) env.DOCKER_HOST = `unix://${n.dockerSock}`;
    return run('nsenter', [`--net=/run/netns/${n.netns}`, '--', cmd, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, env });
  }

  docker(nodeId: string, ...args: string[]): Promise<ExecResult> {
    const n = this.node(nodeId);
    if (!n.dockerSock) throw new Error('this bed was started without docker: true');
    const env = { ...process.env };
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    return run(DOCKER, ['-H', `unix://${n.dockerSock}`, ...args], { timeoutMs: 120_000, env });
  }

  async isolate(nodeId: string): Promise<void> {
    await ip('-n', this.l.hub, 'link', 'set', this.node(nodeId).id, 'down');
  }

  async heal(nodeId: string): Promise<void> {
    const n = this.node(nodeId);
    await ip('-n', this.l.hub, 'link', 'set', n.id, 'up');
    const ok = await until(async () => / state UP /.test(await ip('-n', n.netns, '-o', 'link', 'show', 'eth0')), 5000, 50);
    if (!ok) throw new Error(`${n.id}: eth0 did not come back up after heal`);
  }

  stop(): Promise<void> {
    this.disk?.stop();
    return cleanup(this.l, false);
  }
}
