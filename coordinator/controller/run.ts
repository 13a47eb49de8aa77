/**
 * Admin.RunContainer (`herd run`): checks the request, picks the node - the forced one, or
 * the best by the controller's filters and the load-aware placement score
 * (placement.ts) - and asks that node to create and start the
 * container (Peer.RunContainer). Placements made since a node's last samples count in its
 * score (Koordinator's estimate), so a burst of runs spreads instead of piling onto the
 * node that looked idle.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { logger } from '../../common/log';
import { checkDockerName, checkId, failedPrecondition, invalid, RpcError, unary } from '../../common/validate';
import { checkLabels } from '../ingest';
import type { Snapshot } from '../control/snapshot';
import type { ControlSettings } from '../control/settings';
import { rankNodes, type PendingPlacement, type PlacementRequest } from './placement';

const log = logger('admin');

export const MAX_COMMAND_ARGS = 256;
export const MAX_ENV = 256;
const MAX_ARG_CHARS = 4096;
/** Docker refuses a memory limit under 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
const IMAGE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\/:@-]{0,254}$/;
const ENV_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*=/;
/** A placement counts at most this long, even if its node sends no samples. */
const PENDING_MAX_MS = 5 * 60_000;

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
  let pending: PendingPlacement[] = [];
  return {
    RunContainer: unary<any, any>('RunContainer', async (req) => {
      const bad = checkRun(req);
      if (bad) throw invalid(bad);
      const snapshot = deps.snapshot();
      const settings = deps.settings();
      const now = clock();
      // A placement counts until its node has a full window of samples taken after it.
      const windowMs = settings.schedule.windowMs;
      pending = pending.filter((p) => now - p.atMs < PENDING_MAX_MS && (snapshot.nodes.find((n) => n.id === p.node)?.lastSampleMs ?? 0) <= p.atMs + windowMs);
      const want: PlacementRequest = { cpus: Number(req.cpus) || 0, memoryBytes: Number(req.memory_bytes) || 0 };
      if (req.node_id && !snapshot.nodes.some((n) => n.id === req.node_id)) {
        throw invalid(`node_id: no node "${req.node_id}" has ever connected (known: ${snapshot.nodes.map((n) => n.id).join(', ') || 'none'})`);
      }
      const ranked = rankNodes(snapshot, want, pending, settings, req.node_id ?? '').map((r) =>
        r.refused || deps.dockerReachable(r.nodeId) ? r : { ...r, refused: true, score: Infinity, reason: `node ${r.nodeId} cannot reach its Docker engine (herd doctor on it says why)` },
      );
      ranked.sort((x, y) => Number(x.refused) - Number(y.refused));
      const ok = ranked.filter((r) => !r.refused);
      let chosen = req.node_id ? ranked.find((r) => r.nodeId === req.node_id)! : ok[0];
      if (!chosen || chosen.refused) {
        const why = ranked.map((r) => `${r.nodeId}: ${r.reason}`).join('; ') || 'no node has connected';
        if (!chosen) throw failedPrecondition(`no node can take this container (cpus ${want.cpus}, memory_bytes ${want.memoryBytes}): ${why}`);
        throw failedPrecondition(`node_id: node ${chosen.nodeId} cannot take this container: ${chosen.reason}`);
      }
      const herdId = randomBytes(6).toString('hex');
      const name = req.name || `herd-${herdId}`;
      const peerReq = { term: deps.term(), herd_id: herdId, name, image: req.image, command: req.command ?? [], env: req.env ?? [], labels: req.labels ?? [], cpus: want.cpus, memory_bytes: want.memoryBytes, network: req.network ?? '' };
      const placed: PendingPlacement = { node: chosen.nodeId, atMs: now, cpus: want.cpus, memoryBytes: want.memoryBytes };
      pending.push(placed); // before the await: a concurrent run already sees it
      let res: { docker_id: string };
      try {
        res = await deps.runOn(chosen.nodeId, peerReq);
      } catch (err) {
        pending = pending.filter((p) => p !== placed);
        const e = err as grpc.ServiceError;
        throw new RpcError(e.code ?? grpc.status.INTERNAL, `node ${chosen.nodeId} could not start the container: ${e.details ?? e.message}`);
      }
      const reason = req.node_id ? `node ${chosen.nodeId} was asked for (--node); ${chosen.reason}` : `node ${chosen.nodeId} scored best: ${chosen.reason}`;
      log.info('container placed', { herd_id: herdId, node: chosen.nodeId, image: req.image, reason });
      return {
        herd_id: herdId,
        node_id: chosen.nodeId,
        docker_id: res.docker_id,
        name,
        reason,
        scores: ranked.map((r) => ({ node_id: r.nodeId, score: r.refused ? 0 : r.score, reason: r.reason, refused: r.refused })),
      };
    }, (name, err) => log.error(`${name} failed`, { error: err })),
  };
}
