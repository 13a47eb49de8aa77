/**
 * The container runtime behind a narrow interface (in the spirit of Nomad's task drivers): what
 * a migration needs from the local engine and nothing else. The migration runner composes these
 * calls; it never talks to Docker, CRIU or tar itself. docs/runtime.md is the user's guide.
 *
 * Every failure is a RuntimeError whose `code` maps one to one onto the gRPC status the agent
 * answers with (invariant 6), and whose message a person can act on.
 */

import type { PageServerTls } from './page-server';

/** The Docker Engine API ContainerCreate body: Config fields at the top, plus HostConfig and NetworkingConfig. */
export interface CreateSpec {
  Image: string;
  Hostname?: string;
  Domainname?: string;
  User?: string;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[];
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  Labels: Record<string, string>;
  HostConfig: Record<string, unknown>;
  NetworkingConfig: { EndpointsConfig: Record<string, EndpointSpec> };
  [field: string]: unknown;
}

/** One network attachment of a CreateSpec (Engine API EndpointSettings, the create-time part). */
export interface EndpointSpec {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Aliases?: string[] | null;
  Links?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
}

export interface NetworkAttachment {
  name: string;
  networkId: string;
  /** '' when the endpoint has no address (a stopped container on the default bridge) */
  ipv4: string;
  mac: string;
  /** bridge, macvlan, ipvlan, overlay ...; '' when the network could not be inspected */
  driver: string;
  /** true for networks the user made: only those accept a fixed IPv4Address and keep it across a move */
  userDefined: boolean;
}

export interface InspectedContainer {
  dockerId: string;
  name: string;
  herdId: string;
  /** the image as the container was created with it (a name, or an id) */
  image: string;
  /** this daemon's image id: differs between nodes for the same content when images are `docker import`ed */
  imageId: string;
  /** RootFS.Layers diff ids: the same content has the same list on every node ([] if the image is gone) */
  imageLayers: string[];
  state: string;
  pid: number;
  labels: Record<string, string>;
  upperDir: string;
  mergedDir: string;
  /** create(createSpec) on another node makes the same container, with `herd.id` set */
  createSpec: CreateSpec;
  networks: NetworkAttachment[];
  /** what will not follow the container (volumes, host paths, shared namespaces ...), one sentence each */
  caveats: string[];
}

export interface CheckpointOptions {
  /** CRIU tcp-established: dump established TCP connections (direct path only; the restore needs it too) */
  tcpEstablished?: boolean;
  /**
   * Send the memory pages to this CRIU page server (on the target) instead of the image dir,
   * and leave the processes stopped (direct path only; page-server.ts). Without the direct path
   * the checkpoint is taken the usual way and fallbackReason says why.
   */
  pageServer?: { host: string; port: number; tls: PageServerTls };
}

/**
 * How a checkpoint was taken: 'containerd' = Tasks.Checkpoint straight into the image tmpfs
 * (docs/runtime.md#fast-path), 'docker' = `docker checkpoint create` (containerd's content store),
 * 'page-server' = Tasks.Checkpoint with the pages sent to the target's page server and the
 * processes left stopped, then a local dump of them that ends the task (CheckpointResult.sentDir).
 */
export type CheckpointMethod = 'containerd' | 'docker' | 'page-server';

export interface CheckpointResult {
  /** the directory holding CRIU's images: <checkpointDir>/<name>, or a dir on the image tmpfs */
  dir: string;
  /**
   * page-server only: the first dump's images, whose pages are on the target already: what the
   * target restores from. `dir` then holds a second, local dump of the stopped processes, taken
   * so that the source's task ends (Docker no longer lists it) and a rollback can restore it.
   */
  sentDir?: string;
  ms: number;
  method: CheckpointMethod;
  /** why the direct path (or the page server asked for) was not used ('' when it was) */
  fallbackReason: string;
}

export interface RestoreOptions {
  /** copy the checkpoint instead of moving it (default false; a move is a rename when it is staged under DockerRootDir) */
  keepSource?: boolean;
  /** CRIU tcp-established at restore (a checkpoint taken with it needs it) */
  tcpEstablished?: boolean;
}

/** 'linked': the images stayed on the tmpfs, Docker's checkpoint dir links to them; 'placed': moved or copied into Docker's root. */
export type RestoreMethod = 'linked' | 'placed';

export interface RestoreResult {
  ms: number;
  pid: number;
  /** containerd's leaked copies of this checkpoint removed from /tmp (1 on containerd 1.6) */
  leaksRemoved: number;
  method: RestoreMethod;
}

export interface TransferResult {
  bytes: number;
  ms: number;
}

export interface CriuCapability {
  ok: boolean;
  /** e.g. "4.2.1"; '' when criu is not found */
  version: string;
  /** the criu that PATH resolves (what runc will run if dockerd has the same PATH) */
  path: string;
  /** "Looks good." or why not */
  message: string;
}

/** What a migration needs from a node's container engine. One instance per engine. */
export interface ContainerRuntime {
  inspect(idOrName: string): Promise<InspectedContainer>;
  /** RootFS.Layers of a local image, or null when the image is not here */
  imageLayers(ref: string): Promise<string[] | null>;
  /** Creates the restore target: stopped, never started. Returns the Docker id. */
  create(spec: CreateSpec, name: string): Promise<string>;
  /** CRIU dump into <checkpointDir>/<name>; the container stops. Serialized per engine (invariant 5). */
  checkpoint(dockerId: string, checkpointDir: string, name: string, opts?: CheckpointOptions): Promise<CheckpointResult>;
  /**
   * Where checkpoint(_, checkpointDir, name) puts (or put) its images, most likely first: for
   * a caller that lost the CheckpointResult (its process restarted while the dump ran).
   */
  checkpointDirs?(checkpointDir: string, name: string): Promise<string[]>;
  /**
   * A fresh dir on the image tmpfs for a checkpoint coming from a peer (restoreFromDir then links
   * to it instead of copying), or undefined when this node restores the old way.
   */
  stagingDir(key: string): Promise<string | undefined>;
  /** Restores a created or stopped container from a directory of CRIU images. Serialized per engine. */
  restoreFromDir(dockerId: string, checkpointSrcDir: string, name: string, opts?: RestoreOptions): Promise<RestoreResult>;
  start(dockerId: string): Promise<void>;
  /**
   * Resumes what a page-server checkpoint left stopped or frozen (its agent restarted between
   * the two dumps): SIGCONT, the cgroup thawed; the container goes on where it was. The restart
   * policy the checkpoint switched off is put back from checkpointDir's META when given.
   * Returns how many were stopped; 0 for a container that runs.
   */
  thaw(dockerId: string, checkpointDir?: string): Promise<number>;
  stop(dockerId: string, opts?: { timeoutS?: number }): Promise<void>;
  remove(dockerId: string, opts?: { force?: boolean }): Promise<void>;
  /** The overlay upper dir (the diff layer) to a tar file, keeping whiteouts, xattrs and owners. */
  exportUpperDir(upperDir: string, destTarPath: string): Promise<TransferResult>;
  /** A diff-layer tar into a created container's upper dir; refuses entries that could escape it. */
  importUpperDir(srcTarPath: string, upperDir: string): Promise<TransferResult>;
  /** The whole container file system (`docker export`) to a tar file. */
  exportFull(dockerId: string, destTarPath: string): Promise<TransferResult>;
  /** A `docker export` tar into a created container's upper dir: every file becomes an upper file. */
  importFull(srcTarPath: string, upperDir: string): Promise<TransferResult>;
  criuCheck(): Promise<CriuCapability>;
  dockerRootDir(): Promise<string>;
  experimental(): Promise<boolean>;
}

/** gRPC-minded failure kinds (common/validate.ts answers with the same names). */
export type RuntimeErrorCode = 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'FAILED_PRECONDITION' | 'UNAVAILABLE' | 'INTERNAL';

export class RuntimeError extends Error {
  constructor(
    message: string,
    readonly code: RuntimeErrorCode,
    /** the engine's own message, when there was one */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}

/** CRIU refused a dump or a restore; `criuLog` holds CRIU's own `Error` lines, not Docker's summary. */
export class CriuError extends RuntimeError {
  constructor(
    message: string,
    readonly op: 'checkpoint' | 'restore',
    readonly criuLog: string[],
    /** a kept copy of CRIU's whole log (RuntimeOptions.keepLogsDir), if any */
    readonly logFile?: string,
    detail?: string,
  ) {
    super(message, 'FAILED_PRECONDITION', detail);
    this.name = 'CriuError';
  }
}

/** A tar that would write outside the directory it is extracted into, or holds what a file system diff cannot. */
export class UnsafeArchiveError extends RuntimeError {
  constructor(message: string, readonly entry: string) {
    super(message, 'INVALID_ARGUMENT');
    this.name = 'UnsafeArchiveError';
  }
}
