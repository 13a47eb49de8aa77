/**
 * Admin.RunContainer (`herd run`): checks the request, picks the node - the forced one, or
 * the best by the controller's filters and the load-aware score of
 * coordinator/control/placement.ts - and asks that node to create and start the container
 * (Peer.RunContainer). It keeps what it placed lately: placement.ts counts what a node's
 * samples do not show yet (Koordinator's estimate), so a burst of runs spreads instead of
 * piling onto the node that looked idle.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { logger } from '../../common/log';
import { checkDockerName, checkId, failedPrecondition, invalid, RpcError, unary } from '../../common/validate';
import { checkLabels } from '../ingest';
import type { Snapshot } from '../control/snapshot';
import type { ControlSettings } from '../control/settings';
import { place, type RecentPlacement } from '../control/placement';

const log = logger('admin');

export const MAX_COMMAND_ARGS = 256;
export const MAX_ENV = 256;
const MAX_ARG_CHARS = 4096;
/** Docker refuses a memory limit under 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
const IMAGE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\/:@-]{0,254}$/;
const ENV_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*=/;
/** Placements older than this are forgotten (placement.ts counts the ones its node's samples do not show yet). */
const RECENT_MAX_MS = 5 * 60_000;

export interface RunDeps {
  snapshot: () => Snapshot;
  settings: () => ControlSettings;
  term: () => number;
  /** Can the node's agent reach its Docker engine (its inventory says so)? */
  dockerReachable: (nodeId: string) => boolean;
  /** Asks a node to create and start the container (Peer.RunContainer). */
  runOn: (nodeId: string, req: Record<string, unknown>) => Promise<{ docker_id: string }>;
  clock?: () => number;
}

/** The checks of a RunContainer request: a sentence naming the field and what it may be, or undefined. */
export function checkRun(req: any): string | undefined {
  if (typeof req.image !== 'string' || req.image === '') return 'image is required, e.g. "alpine:3.19"';
  if (!IMAGE_PATTERN.test(req.image)) return `image "${String(req.image).slice(0, 60)}" is not an image reference (letters, digits and . _ / : @ -, at most 255 characters)`;
  const command = req.command ?? [];
  if (command.length > MAX_COMMAND_ARGS) return `command has ${command.length} arguments; at most ${MAX_COMMAND_ARGS}`;
  if (command.some((a: unknown) => typeof a !== 'string' || a.length > MAX_ARG_CHARS)) return `every command argument must be text of at most ${MAX_ARG_CHARS} characters`;
  const env = req.env ?? [];
  if (env.length > MAX_ENV) return `env has ${env.length} entries; at most ${MAX_ENV}`;
  for (const e of env) if (typeof e !== 'string' || !ENV_PATTERN.test(e) || e.length > MAX_ARG_CHARS) return `env entry "${String(e).slice(0, 40)}" must be KEY=value (KEY: letters, digits, _; not starting with a digit)`;
  const badLabels = checkLabels(req.labels ?? []);
  if (badLabels) return `labels: ${badLabels}`;
  if ((req.labels ?? []).some((l: any) => l.key === 'herd.id')) return 'labels: herd.id is set by herd (the new container\'s herd id); leave it out';
  const cpus = Number(req.cpus ?? 0);
  if (!Number.isFinite(cpus) || cpus < 0 || cpus > 1024) return `cpus must be a number of cores from 0 (no limit) to 1024, got ${req.cpus}`;
  const mem = Number(req.memory_bytes ?? 0);
  if (!Number.isSafeInteger(mem) || mem < 0 || (mem > 0 && mem < MIN_MEMORY_BYTES)) return `memory_bytes must be 0 (no limit) or at least ${MIN_MEMORY_BYTES} (6 MiB, Docker's least), got ${req.memory_bytes}`;
  if (req.network) {
    const bad = checkDockerName('network', req.network);
    if (bad) return bad;
  }
  if (req.name) {
    const bad = checkDockerName('name', req.name);
    if (bad) return bad;
  }
  if (req.node_id) return checkId('node_id', req.node_id);
  return undefined;
}

export function runContainerHandlers(deps: RunDeps): grpc.UntypedServiceImplementation {
  const clock = deps.clock ?? Date.now;
  let recent: RecentPlacement[] = [];
  return {
    RunContainer: unary<any, any>('RunContainer', async (req) => {
      const bad = checkRun(req);
      if (bad) throw invalid(bad);
      const snapshot = deps.snapshot();
      const settings = deps.settings();
      const now = clock();
      recent = recent.filter((p) => now - p.atMs < RECENT_MAX_MS);
      if (req.node_id && !snapshot.nodes.some((n) => n.id === req.node_id)) {
        throw invalid(`node_id: no node "${req.node_id}" has ever connected (known: ${snapshot.nodes.map((n) => n.id).join(', ') || 'none'})`);
      }
      const want = { cpus: Number(req.cpus) || 0, memoryBytes: Number(req.memory_bytes) || 0, node: req.node_id ?? '' };
      const placed = place(snapshot, settings, want, recent);
      if (!placed.ok) throw placed.code === 'unknown-node' ? invalid(placed.error) : failedPrecondition(placed.error);
      // A node whose agent cannot reach Docker cannot start it: the next best can.
      const refused = [...placed.refused];
      const usable = placed.ranked.filter((r) => deps.dockerReachable(r.node) || (refused.push({ node: r.node, reason: `${r.node} cannot reach its Docker engine (herd doctor on it says why)` }), false));
      if (usable.length === 0) throw failedPrecondition(`no node can take it: ${refused.map((r) => `${r.node}: ${r.reason}`).join('; ')}`);
      const chosen = usable[0];
      const reason = chosen.node === placed.node ? placed.reason : `${chosen.reason} (${placed.node}, better placed, cannot reach Docker)`;
      const herdId = randomBytes(6).toString('hex');
      const name = req.name || `herd-${herdId}`;
      const peerReq = { term: deps.term(), herd_id: herdId, name, image: req.image, command: req.command ?? [], env: req.env ?? [], labels: req.labels ?? [], cpus: want.cpus, memory_bytes: want.memoryBytes, network: req.network ?? '' };
      // What it is expected to use counts on its node until the node's samples show it;
      // recorded before the await so that a concurrent run already sees it.
      const mine: RecentPlacement = { node: chosen.node, atMs: now, cpus: want.cpus || settings.placement.defaultCpus, memoryBytes: want.memoryBytes || settings.placement.defaultMemoryBytes };
      recent.push(mine);
      let res: { docker_id: string };
      try {
        res = await deps.runOn(chosen.node, peerReq);
      } catch (err) {
        recent = recent.filter((p) => p !== mine);
        const e = err as grpc.ServiceError;
        throw new RpcError(e.code ?? grpc.status.INTERNAL, `node ${chosen.node} could not start the container: ${e.details ?? e.message}`);
      }
      log.info('container placed', { herd_id: herdId, node: chosen.node, image: req.image, reason });
      return {
        herd_id: herdId,
        node_id: chosen.node,
        docker_id: res.docker_id,
        name,
        reason,
        scores: [...usable.map((r) => ({ node_id: r.node, score: r.score, reason: r.reason, refused: false })), ...refused.map((r) => ({ node_id: r.node, score: 0, reason: r.reason, refused: true }))],
      };
    }, (name, err) => log.error(`${name} failed`, { error: err })),
  };
}
