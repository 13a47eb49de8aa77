/**
 * Peer.RunContainer: the node side of `herd run`. The coordinator placed the container
 * here; this node creates and starts it with its herd id as the label herd.id (so the id
 * follows it across migrations). Only a node may ask (the coordinator), and only in the
 * newest term it has seen (fencing). The coordinator checked the request; the node checks
 * again what reaches Docker, because a node trusts nobody's checks but its own.
 */
import * as grpc from '@grpc/grpc-js';
import { peerIdentity } from '../common/identity';
import { logger } from '../common/log';
import type { TermFence } from '../common/fencing';
import { checkDockerName, checkId, invalid, permissionDenied, RpcError } from '../common/validate';
import type { CreateSpec } from './runtime/runtime';
import { RuntimeError } from './runtime/runtime';

const log = logger('run');

export interface RunDeps {
  nodeId: string;
  fence: TermFence;
  runtime: { imageLayers(ref: string): Promise<string[] | null>; create(spec: CreateSpec, name: string): Promise<string>; start(id: string): Promise<void>; remove(id: string, o?: { force?: boolean }): Promise<void> };
}

/** The Docker create body for a run request (checked by checkRunSpec first). */
export function runSpec(req: any): CreateSpec {
  const labels: Record<string, string> = {};
  for (const l of req.labels ?? []) labels[l.key] = l.value;
  labels['herd.id'] = req.herd_id;
  const hostConfig: Record<string, unknown> = {};
  if (Number(req.cpus) > 0) hostConfig.NanoCpus = Math.round(Number(req.cpus) * 1e9);
  if (Number(req.memory_bytes) > 0) hostConfig.Memory = Number(req.memory_bytes);
  if (req.network) hostConfig.NetworkMode = req.network;
  return {
    Image: req.image,
    Env: req.env ?? [],
    ...(req.command?.length ? { Cmd: req.command } : {}),
    Labels: labels,
    HostConfig: hostConfig,
    NetworkingConfig: { EndpointsConfig: req.network ? { [req.network]: {} } : {} },
  };
}

export function peerRunHandlers(deps: RunDeps): grpc.UntypedServiceImplementation {
  return {
    RunContainer: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      run(deps, call.request, peerIdentity(call)).then(
        (r) => cb(null, r),
        (e) => cb(e instanceof RpcError ? { code: e.code, details: e.message } : { code: runtimeStatus(e), details: `node ${deps.nodeId}: ${(e as Error).message}` }),
      );
    },
  };
}

/** A runtime failure as a status: the engine's "no such image/network" is the caller's to fix. */
function runtimeStatus(e: unknown): grpc.status {
  if (!(e instanceof RuntimeError)) return grpc.status.INTERNAL;
  const map: Record<string, grpc.status> = { INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT, NOT_FOUND: grpc.status.FAILED_PRECONDITION, ALREADY_EXISTS: grpc.status.ALREADY_EXISTS, FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION, UNAVAILABLE: grpc.status.UNAVAILABLE };
  return map[e.code] ?? grpc.status.INTERNAL;
}

async function run(deps: RunDeps, req: any, caller: ReturnType<typeof peerIdentity>): Promise<{ docker_id: string }> {
  if (caller && caller.kind !== 'node') throw permissionDenied(`operator "${caller.name}" may not call Peer.RunContainer: ask the coordinator with Admin.RunContainer (herd run)`);
  const bad =
    checkId('herd_id', req.herd_id) ??
    checkDockerName('name', req.name) ??
    (typeof req.image === 'string' && req.image.length > 0 && req.image.length <= 255 ? undefined : 'image is required (at most 255 characters)') ??
    (req.network ? checkDockerName('network', req.network) : undefined);
  if (bad) throw invalid(bad);
  const fenced = deps.fence.check(Number(req.term));
  if (!fenced.ok) throw new RpcError(grpc.status.FAILED_PRECONDITION, `refusing a placement made in an older term: ${fenced.reason}`);
  if (!(await deps.runtime.imageLayers(req.image))) throw new RpcError(grpc.status.FAILED_PRECONDITION, `image ${req.image} is not on node ${deps.nodeId}; docker pull or docker load it there first`);
  const id = await deps.runtime.create(runSpec(req), req.name);
  try {
    await deps.runtime.start(id);
  } catch (err) {
    await deps.runtime.remove(id, { force: true }).catch(() => undefined);
    throw err;
  }
  log.info('container started for the coordinator', { herd_id: req.herd_id, name: req.name, image: req.image, docker_id: id.slice(0, 12) });
  return { docker_id: id };
}
