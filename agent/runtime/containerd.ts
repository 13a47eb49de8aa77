/**
 * Docker's containerd, spoken to directly for one thing Docker does slowly: a checkpoint.
 * `docker checkpoint create` has containerd tar CRIU's images into its content store and dockerd
 * read them back 32 KiB per call (about five copies of the memory: ../shared/recipes/fast-checkpoint.md);
 * Tasks.Checkpoint with the runc shim's `image_path` leaves the images where CRIU wrote them.
 * Docker sees what it sees after its own checkpoint: the task exits and dockerd handles the exit.
 *
 * Also here: finding that containerd (the socket dockerd was told, or the one it started under
 * its exec-root) and its temp dir, where it unpacks a checkpoint at `docker start --checkpoint`.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { LOADER_OPTIONS, protoDir } from '../../common/proto';
import { RuntimeError } from './runtime';

/** The containerd namespace dockerd (20.10) keeps its containers in. */
export const MOBY_NAMESPACE = 'moby';
const OPTIONS_TYPE = 'containerd.runc.v1.CheckpointOptions';

export interface DirectCheckpoint {
  /** CRIU writes its images here; the parent must exist */
  imagePath: string;
  /** CRIU's dump.log stays here (the shim deletes it when no work path is given) */
  workPath: string;
  /** CRIU tcp-established: dump established TCP connections */
  openTcp?: boolean;
  /** false: the task is not ended after the dump (a page-server dump leaves it stopped; default true) */
  exit?: boolean;
}

interface Loaded { Tasks: grpc.ServiceClientConstructor; Options: protobuf.Type }
let loaded: Loaded | undefined;
function protos(): Loaded {
  if (!loaded) {
    const dir = path.join(protoDir(), 'containerd');
    const def = protoLoader.loadSync(['tasks.proto'], { ...LOADER_OPTIONS, includeDirs: [dir] });
    const Tasks = (grpc.loadPackageDefinition(def) as any).containerd.services.tasks.v1.Tasks as grpc.ServiceClientConstructor;
    const Options = protobuf.loadSync(path.join(dir, 'runc-options.proto')).lookupType(OPTIONS_TYPE);
    loaded = { Tasks, Options };
  }
  return loaded;
}

/** The CheckpointOptions `Any` as containerd 1.6's typeurl resolves it (the bare type name). */
export function checkpointOptionsAny(o: DirectCheckpoint): { type_url: string; value: Buffer } {
  const { Options } = protos();
  const msg = Options.create({ exit: o.exit ?? true, openTcp: o.openTcp ?? false, imagePath: o.imagePath, workPath: o.workPath });
  return { type_url: OPTIONS_TYPE, value: Buffer.from(Options.encode(msg).finish()) };
}

const STATUS_NAMES: Record<number, string> = { 0: 'unknown', 1: 'created', 2: 'running', 3: 'stopped', 4: 'paused', 5: 'pausing' };

export class ContainerdClient {
  private readonly client: grpc.Client & Record<string, any>;

  constructor(readonly socketPath: string) {
    const { Tasks } = protos();
    // its own connection: a shared subchannel would hide that this socket is gone
    this.client = new Tasks(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as any;
  }

  private call<T>(method: string, req: unknown, timeoutMs: number): Promise<T> {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', MOBY_NAMESPACE);
    return new Promise((resolve, reject) => this.client[method](req, md, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => {
      if (!err) return resolve(res);
      const code = err.code === grpc.status.NOT_FOUND ? 'NOT_FOUND' : err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED ? 'UNAVAILABLE' : 'FAILED_PRECONDITION';
      reject(new RuntimeError(`containerd ${method}: ${err.details || err.message}`, code, err.details));
    }));
  }

  /** The task's state as containerd has it ("running", "stopped", ...). */
  async taskStatus(dockerId: string, timeoutMs = 5000): Promise<{ status: string; pid: number }> {
    const r = await this.call<{ process?: { status?: number; pid?: number } }>('Get', { container_id: dockerId }, timeoutMs);
    return { status: STATUS_NAMES[r.process?.status ?? 0] ?? 'unknown', pid: r.process?.pid ?? 0 };
  }

  /** CRIU dumps the task into o.imagePath and the task exits. */
  async checkpoint(dockerId: string, o: DirectCheckpoint, timeoutMs: number): Promise<void> {
    await this.call('Checkpoint', { container_id: dockerId, options: checkpointOptionsAny(o) }, timeoutMs);
  }

  /** Freezes the task's cgroup (runc pause); dockerd sees it paused. */
  async pause(dockerId: string, timeoutMs = 10_000): Promise<void> {
    await this.call('Pause', { container_id: dockerId }, timeoutMs);
  }

  /** Thaws the task's cgroup (runc resume). */
  async resume(dockerId: string, timeoutMs = 10_000): Promise<void> {
    await this.call('Resume', { container_id: dockerId }, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

// ------------------------------------------------------------------ discovery

export interface DockerdFlags {
  hosts: string[];
  execRoot: string;
  /** --containerd: an external containerd's socket; '' when dockerd starts its own */
  containerd: string;
}

/** The flags of a dockerd command line that say where its containerd is (pure). */
export function parseDockerdArgs(args: string[]): DockerdFlags {
  const out: DockerdFlags = { hosts: [], execRoot: '/var/run/docker', containerd: '' };
  const take = (i: number, long: string, short?: string): { value: string; used: number } | undefined => {
    const a = args[i];
    if (a === long || (short && a === short)) return args[i + 1] !== undefined ? { value: args[i + 1], used: 2 } : undefined;
    if (a.startsWith(`${long}=`)) return { value: a.slice(long.length + 1), used: 1 };
    if (short && a.startsWith(short) && a.length > short.length) return { value: a.slice(short.length).replace(/^=/, ''), used: 1 };
    return undefined;
  };
  for (let i = 0; i < args.length;) {
    const h = take(i, '--host', '-H');
    if (h) { out.hosts.push(h.value); i += h.used; continue; }
    const e = take(i, '--exec-root');
    if (e) { out.execRoot = e.value; i += e.used; continue; }
    const c = take(i, '--containerd');
    if (c) { out.containerd = c.value; i += c.used; continue; }
    i++;
  }
  return out;
}

const canon = (p: string): string => path.resolve(p).replace(/^\/var\/run\//, '/run/');

/** The containerd socket of the dockerd serving dockerSocket, from its flags (pure). */
export function containerdSocketOf(flags: DockerdFlags, dockerSocket: string): string | undefined {
  const hosts = flags.hosts.length ? flags.hosts : ['unix:///var/run/docker.sock'];
  const serves = hosts.some((h) => h.startsWith('unix://') && canon(h.slice(7)) === canon(dockerSocket));
  if (!serves) return undefined;
  return flags.containerd || path.join(flags.execRoot, 'containerd', 'containerd.sock');
}

function readArgs(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function envOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of readArgs(`/proc/${pid}/environ`)) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

export interface ContainerdLocation {
  socket: string;
  /** where containerd unpacks a checkpoint at restore (XDG_RUNTIME_DIR, else TMPDIR, else /tmp) */
  tmpDir: string;
  /** runc's state dirs of the containers, `<exec-root>/runtime-runc/moby` (Docker's runtime root for runc) */
  runcRoot: string;
}

/**
 * The containerd behind a Docker socket: the dockerd process listening there (its command line
 * in /proc), its --containerd or <exec-root>/containerd/containerd.sock; containerd's temp dir from
 * the environment of the containerd dockerd started (its pid file under the exec-root). undefined
 * when no dockerd on this host serves that socket (Docker elsewhere, or in another pid namespace).
 */
export function findContainerd(dockerSocket: string, procDir = '/proc'): ContainerdLocation | undefined {
  let pids: string[];
  try {
    pids = fs.readdirSync(procDir).filter((p) => /^\d+$/.test(p));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    const args = readArgs(path.join(procDir, pid, 'cmdline'));
    if (!args.length || path.basename(args[0]) !== 'dockerd') continue;
    const flags = parseDockerdArgs(args.slice(1));
    const socket = containerdSocketOf(flags, dockerSocket);
    if (!socket) continue;
    let env = envOf(Number(pid));
    if (!flags.containerd) {
      const ctrdPid = Number(readArgs(path.join(flags.execRoot, 'containerd', 'containerd.pid'))[0]?.trim() || 0) || 0;
      if (ctrdPid) env = envOf(ctrdPid);
    }
    return { socket, tmpDir: env.XDG_RUNTIME_DIR || env.TMPDIR || '/tmp', runcRoot: path.join(flags.execRoot, 'runtime-runc', MOBY_NAMESPACE) };
  }
  return undefined;
}
