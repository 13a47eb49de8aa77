/**
 * createSpec: the ContainerCreate body that makes "the same" container on another node, rebuilt
 * from `docker inspect`. Pure, so it is tested against recorded inspect JSON.
 *
 * Why not just copy Config and HostConfig: the inspect shape is not the create shape in a few
 * places (Links, Aliases that hold the old short id, addresses that are results rather than
 * requests), and a restore needs more than `docker run` would give: the exact address and MAC on
 * a user-defined network (CRIU rebinds sockets to them), the hostname the process already has in
 * its UTS namespace, and the daemon-filled defaults (MaskedPaths, ShmSize, CgroupnsMode ...) that
 * shape the mounts CRIU expects to find again.
 */
import { herdIdOf } from '../docker';
import type { CreateSpec, EndpointSpec } from './runtime';

/** The parts of a `docker inspect` (Engine API ContainerInspect) this module reads. */
export interface InspectJson {
  Id: string;
  Name?: string;
  Image?: string;
  Config?: Record<string, unknown> & { Image?: string; Labels?: Record<string, string> | null; Hostname?: string; MacAddress?: string };
  HostConfig?: Record<string, unknown> & { NetworkMode?: string; Links?: string[] | null; Mounts?: MountJson[] | null; Binds?: string[] | null };
  NetworkSettings?: { Networks?: Record<string, EndpointJson> | null } | null;
  Mounts?: MountJson[] | null;
  GraphDriver?: { Name?: string; Data?: Record<string, string> | null };
  State?: { Status?: string; Pid?: number };
}

export interface EndpointJson {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  NetworkID?: string;
  IPAddress?: string;
  GlobalIPv6Address?: string;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
}

interface MountJson {
  Type?: string;
  Name?: string;
  Source?: string;
  Destination?: string;
  Target?: string;
}

/** Config fields that belong in a create body (inspect also has Image, OnBuild, ...; handled apart). */
const CONFIG_FIELDS = [
  'Hostname', 'Domainname', 'User', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'ExposedPorts', 'Tty',
  'OpenStdin', 'StdinOnce', 'Env', 'Cmd', 'Healthcheck', 'ArgsEscaped', 'Volumes', 'WorkingDir',
  'Entrypoint', 'NetworkDisabled', 'StopSignal', 'StopTimeout', 'Shell',
] as const;

/** HostConfig fields that only make sense to the CLI or to the source daemon. */
const HOST_CONFIG_DROP = new Set(['ContainerIDFile']);

/** The networks every daemon has; the others are user-defined and accept fixed addresses. */
const BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none', 'default']);

export const isUserDefinedNetwork = (name: string): boolean => !BUILTIN_NETWORKS.has(name);

/** The network a container is created on (HostConfig.NetworkMode, "default" being the bridge). */
export function primaryNetwork(networkMode: string | undefined): string {
  return !networkMode || networkMode === 'default' ? 'bridge' : networkMode;
}

/** "/other:/me/alias" (inspect) -> "other:alias" (create). */
function createLink(link: string): string {
  const [target, alias = ''] = link.split(':');
  return `${target.replace(/^\//, '')}:${alias.split('/').filter(Boolean).pop() ?? ''}`;
}

function endpointSpec(name: string, ep: EndpointJson, shortId: string): EndpointSpec {
  if (!isUserDefinedNetwork(name)) return {}; // Docker refuses fixed addresses here, and a MAC from another node could clash
  const ipv4 = ep.IPAddress || ep.IPAMConfig?.IPv4Address || '';
  const ipv6 = ep.GlobalIPv6Address || ep.IPAMConfig?.IPv6Address || '';
  const ipam: NonNullable<EndpointSpec['IPAMConfig']> = {};
  if (ipv4) ipam.IPv4Address = ipv4;
  if (ipv6) ipam.IPv6Address = ipv6;
  if (ep.IPAMConfig?.LinkLocalIPs?.length) ipam.LinkLocalIPs = ep.IPAMConfig.LinkLocalIPs;
  const out: EndpointSpec = { IPAMConfig: ipam };
  // Docker adds the short id of each container as an alias by itself; the old one would be stale.
  const aliases = (ep.Aliases ?? []).filter((a) => a !== shortId);
  if (aliases.length) out.Aliases = aliases;
  if (ep.Links?.length) out.Links = ep.Links.map(createLink);
  if (ep.MacAddress) out.MacAddress = ep.MacAddress;
  if (ep.DriverOpts && Object.keys(ep.DriverOpts).length) out.DriverOpts = ep.DriverOpts;
  return out;
}

/**
 * The create body for the same container on another node, and what will not follow it.
 * `herdId` defaults to the container's own (label, else short id) and is written to `herd.id`.
 */
export function createSpecFromInspect(c: InspectJson, herdId = herdIdOf(c.Id, c.Config?.Labels ?? undefined)): { spec: CreateSpec; caveats: string[] } {
  const cfg = c.Config ?? {};
  const host = c.HostConfig ?? {};
  const caveats: string[] = [];
  const shortId = c.Id.slice(0, 12);

  const spec: CreateSpec = {
    Image: cfg.Image || c.Image || '',
    Labels: { ...(cfg.Labels ?? {}), 'herd.id': herdId },
    HostConfig: {},
    NetworkingConfig: { EndpointsConfig: {} },
  };
  const out = spec as Record<string, unknown>;
  for (const f of CONFIG_FIELDS) if (cfg[f] !== undefined) out[f] = cfg[f];
  if (!spec.Image) throw new Error(`container ${shortId} has no image in its inspect`);

  for (const [k, v] of Object.entries(host)) if (!HOST_CONFIG_DROP.has(k)) spec.HostConfig[k] = v;
  if (host.Links?.length) spec.HostConfig.Links = host.Links.map(createLink);

  const primary = primaryNetwork(host.NetworkMode);
  const networks = c.NetworkSettings?.Networks ?? {};
  for (const [name, ep] of Object.entries(networks)) spec.NetworkingConfig.EndpointsConfig[name] = endpointSpec(name, ep, shortId);
  // Docker 20.10 takes a create-time MAC only from Config.MacAddress, for the first network joined.
  const primaryMac = isUserDefinedNetwork(primary) ? networks[primary]?.MacAddress : undefined;
  if (cfg.MacAddress) spec.MacAddress = cfg.MacAddress;
  else if (primaryMac) spec.MacAddress = primaryMac;

  // What does not travel with the container; the migration filter decides whether that is fine.
  for (const ns of ['NetworkMode', 'PidMode', 'IpcMode', 'UTSMode'] as const) {
    const mode = host[ns];
    if (typeof mode === 'string' && mode.startsWith('container:')) {
      caveats.push(`${ns} ${mode}: shares a namespace with another container, which does not move with it`);
    }
  }
  if (host.NetworkMode === 'host') caveats.push('NetworkMode host: the container uses the node\'s own network stack, whose addresses differ on the target');
  for (const [name, ep] of Object.entries(networks)) {
    if (!isUserDefinedNetwork(name)) {
      if (name === 'bridge') caveats.push('default bridge network: the container gets a new address and MAC on the target (use a user-defined network with a fixed IP to keep them)');
      continue;
    }
    caveats.push(`network ${name}: must exist on the target with the same subnet; ${ep.IPAddress || '(no address)'} must be free there`);
    if (name !== primary && ep.MacAddress) caveats.push(`network ${name}: Docker 20.10 cannot fix the MAC of a second network; ${ep.MacAddress} is not kept`);
  }
  for (const m of (c.Mounts ?? host.Mounts ?? []) as MountJson[]) {
    const dest = m.Destination ?? m.Target ?? '?';
    if (m.Type === 'volume') caveats.push(`volume ${m.Name ?? '?'} at ${dest}: its data is not moved; the target gets an empty volume`);
    else if (m.Type === 'bind') caveats.push(`bind mount ${m.Source ?? '?'} at ${dest}: the host path must exist on the target; its content is not moved`);
    else if (m.Type && m.Type !== 'tmpfs') caveats.push(`${m.Type} mount at ${dest}: not moved`);
  }
  if (host.Links?.length) caveats.push(`links ${host.Links.join(', ')}: the linked containers must exist on the target`);
  const ports = host.PortBindings as Record<string, Array<{ HostPort?: string }> | null> | undefined;
  const hostPorts = Object.values(ports ?? {}).flatMap((b) => (b ?? []).map((p) => p.HostPort).filter(Boolean));
  if (hostPorts.length) caveats.push(`published host ports ${hostPorts.join(', ')}: must be free on the target`);
  if ((host.Devices as unknown[] | undefined)?.length) caveats.push('devices: the same device nodes must exist on the target');
  if (host.AutoRemove) caveats.push('AutoRemove (--rm): Docker removes the container when the checkpoint stops it, so it cannot be checkpointed safely');
  return { spec, caveats };
}
