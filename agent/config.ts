/**
 * The one settings schema of a Herd node. A config file (JSON) gives any of these keys;
 * command-line flags override it; everything has a default, so `herd agent` alone runs a
 * one-node cluster. Unknown keys are errors: a typo must not silently fall back to a default.
 */
import { readFileSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { checkSan, MAX_NAMES } from '../common/sans';
import { ID_PATTERN } from '../common/validate';

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const hostPort = z.string().refine((s) => {
  const m = HOST_PORT.exec(s);
  return m !== null && Number(m[2]) <= 65535;
}, 'must be host:port with a port of at most 65535, e.g. 10.0.0.5:7400');

const nodeId = z.string().regex(ID_PATTERN, "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");

const peer = z.union([
  z.string().regex(/^[^=]+=.+$/, 'a peer is "id=host:port"').transform((s, ctx) => {
    const [id, address] = [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)];
    const idOk = nodeId.safeParse(id);
    const addrOk = hostPort.safeParse(address);
    if (!idOk.success || !addrOk.success) {
      ctx.addIssue({ code: 'custom', message: `peer "${s}": ${!idOk.success ? 'bad node id' : 'address must be host:port'}` });
      return z.NEVER;
    }
    return { id, address };
  }),
  z.object({ id: nodeId, address: hostPort }).strict(),
]);

/** A name for the node certificate (--tls-san): a DNS name or an IP address, no wildcard. */
const tlsSan = z.string().superRefine((v, ctx) => {
  const bad = checkSan(v);
  if (bad) ctx.addIssue({ code: 'custom', message: `--tls-san ${bad}` });
});

const ms = (min: number, def: number) => z.number().int().min(min).max(3_600_000).default(def);

export const SettingsSchema = z
  .object({
    /** Unique id of this node in the cluster. */
    nodeId: nodeId.default(() => sanitizeHostname(hostname())),
    /** Where the node keeps its LMDB store. */
    dataDir: z.string().min(1).default(() => defaultDataDir()),
    /** Address the gRPC server (Mesh, Admin, health, reflection) listens on. */
    listen: hostPort.default('0.0.0.0:7400'),
    /** Address other nodes use to reach this one; default: listen, with 0.0.0.0 replaced by this host's first IPv4 address. */
    advertise: hostPort.optional(),
    /** The other members of the cluster, "id=host:port". Empty: a one-node cluster. */
    peers: z.array(peer).default([]),
    /** Docker engine socket. */
    dockerSocket: z.string().min(1).default('/var/run/docker.sock'),
    /**
     * How long the agent first waits for one Docker list/inspect call. After a call times out the
     * wait doubles (up to 8x), back to this once Docker answers quickly again. Raise it for an
     * engine known to be slow (an emulated machine).
     */
    dockerTimeoutMs: ms(100, 10_000),
    /** pmproxy base URL; "" turns the PCP collector off. */
    pmproxyUrl: z.union([z.literal(''), z.string().url()]).default('http://127.0.0.1:44322'),
    /** PCP metric names to fetch through pmproxy. */
    pcpMetrics: z.array(z.string().regex(/^[A-Za-z0-9_.]+$/, 'a PCP metric name, e.g. kernel.all.load')).default(['kernel.all.load', 'disk.all.total', 'network.interface.total.bytes']),
    /** cgroupfs mount point. */
    cgroupRoot: z.string().min(1).default('/sys/fs/cgroup'),
    /**
     * Kernels >= 6.10 count cgroup v1 block I/O only for devices that have a throttle rule;
     * a "no limit" rule at the root turns counting on without limiting anything.
     */
    blkioAccounting: z.boolean().default(true),
    /** Sampling periods. */
    intervals: z
      .object({
        hostMs: ms(100, 5000),
        containerMs: ms(100, 5000),
        trackMs: ms(100, 2000),
        pcpMs: ms(100, 5000),
      })
      .strict()
      .default({ hostMs: 5000, containerMs: 5000, trackMs: 2000, pcpMs: 5000 }),
    /** How long the local sample log keeps batches: the cluster history's durability horizon. */
    retention: z
      .object({
        maxAgeHours: z.number().positive().max(24 * 3650).default(24 * 7),
        maxBytes: z.number().int().min(1 << 20).default(2 * 1024 ** 3),
        /** Below this much free space on the data dir's file system, sample rounds are not stored (common/storage.ts). */
        minFreeBytes: z.number().int().min(1 << 20).default(64 * 1024 ** 2),
      })
      .strict()
      .default({ maxAgeHours: 24 * 7, maxBytes: 2 * 1024 ** 3, minFreeBytes: 64 * 1024 ** 2 }),
    /**
     * No message from the coordinator for this long (also while dialling it and waiting for its
     * welcome): the agent drops the stream and dials again. Raise it for a machine too slow to
     * set up a TLS stream within it (an emulated one).
     */
    meshDeadAfterMs: ms(1000, 6000),
    /** Most unacknowledged batches in flight to the coordinator. */
    maxInFlight: z.number().int().min(1).max(10_000).default(64),
    /** Labels describing this node. */
    labels: z.record(z.string(), z.string()).default({}),
    /**
     * Serve and dial plain text instead of mutual TLS. Anyone who can reach the port then
     * owns the node: for a lab only. The node warns at start.
     */
    insecure: z.boolean().default(false),
    /**
     * Migrations send the memory pages straight to a CRIU page server on the target while the
     * source dumps (docs/migration.md#pages-straight-to-the-target); false: they travel as
     * verified artifacts after the dump. Needs TLS and the image tmpfs on both nodes.
     */
    pageServer: z.boolean().default(true),
    /**
     * The page server only for a container with at least this much memory in use (its cgroup,
     * like docker stats); below it the one direct dump is shorter (docs/migration.md#which-path).
     * 0: the page server for every container.
     */
    pageServerMinBytes: z.number().int().min(0).max(2 ** 50).default(64 * 1024 * 1024),
    /** Certificates (docs/security.md). */
    tls: z
      .object({
        /** Lifetime of node certificates this node signs (only used where the CA key is). */
        nodeCertTtlSeconds: z.number().int().min(60).max(10 * 365 * 86400).default(365 * 86400),
        /** Renew this node's certificate once less than this fraction of its lifetime is left. */
        renewBeforeFraction: z.number().gt(0).lt(1).default(1 / 3),
        /** How often the node checks whether its certificate needs renewing. */
        checkMs: ms(1000, 60_000),
        /**
         * More names for this node's certificate (--tls-san, repeatable): DNS names or IPs it
         * is dialled by besides localhost, 127.0.0.1, ::1, its host name, its interface
         * addresses and its advertised address, which it always names.
         */
        sans: z.array(tlsSan).max(MAX_NAMES).default([]),
      })
      .strict()
      .default({ nodeCertTtlSeconds: 365 * 86400, renewBeforeFraction: 1 / 3, checkMs: 60_000, sans: [] }),
    /** The node's HTTP side (docs/observability.md): /metrics for Prometheus. */
    web: z
      .object({
        /**
         * HTTPS with mutual TLS (any certificate of the cluster may read); plain HTTP with
         * insecure. Default: the gRPC listen address with the next port (7400 -> 7401; a
         * port 0 stays 0, any free port). "" turns it off.
         */
        listen: z.union([z.literal(''), hostPort]).optional(),
        /** Plain-text /metrics only, for a Prometheus that cannot present a certificate; "" = off. */
        plainMetrics: z.union([z.literal(''), hostPort]).default(''),
      })
      .strict()
      .default({ plainMetrics: '' }),
    /** debug, info, warn or error. */
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  })
  .strict();

export type Settings = z.output<typeof SettingsSchema>;

/** The web listen address: as set, or the gRPC one with the next port (port 0 stays 0). */
export function webListen(settings: Pick<Settings, 'listen' | 'web'>): string {
  if (settings.web.listen !== undefined) return settings.web.listen;
  const i = settings.listen.lastIndexOf(':');
  const port = Number(settings.listen.slice(i + 1));
  return `${settings.listen.slice(0, i)}:${port === 0 ? 0 : port + 1}`;
}

export class ConfigError extends Error {}

/** Validates raw settings (file merged with flags); throws ConfigError naming each bad key and why. */
export function parseSettings(raw: unknown, source = 'settings'): Settings {
  const r = SettingsSchema.safeParse(raw);
  if (r.success) {
    const ids = new Set([r.data.nodeId]);
    for (const p of r.data.peers) {
      if (ids.has(p.id)) throw new ConfigError(`${source}: key peers: node id "${p.id}" appears twice (or is this node's own id)`);
      ids.add(p.id);
    }
    return r.data;
  }
  const lines = r.error.issues.map((i) => {
    const key = i.path.length ? i.path.join('.') : '(top level)';
    return `  key ${key}: ${i.message}`;
  });
  throw new ConfigError(`invalid settings (from ${source}):\n${lines.join('\n')}`);
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the top level must be a JSON object');
    return v;
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

export function defaultDataDir(): string {
  if (process.env.HERD_DATA_DIR) return process.env.HERD_DATA_DIR;
  if (process.getuid?.() === 0) return '/var/lib/herd';
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'herd');
}

function sanitizeHostname(h: string): string {
  const s = h.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return s.slice(0, 128) || 'node';
}
