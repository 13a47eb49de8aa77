/** Herd nodes on the multi-node test bed: one real herd process per network namespace. */
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { loadProtos } from '../../common/proto';
import type { Bed, BedProcess } from '../bed/bed';
import { HERD } from './herd';

export const PORT = 7400;

export interface HerdNode {
  id: string;
  address: string;
  dataDir: string;
  proc: BedProcess;
}

/** Starts (or restarts, same data dir) herd on a bed node, with every other bed node as a peer. */
export function startHerdOn(bed: Bed, id: string, extra: string[] = []): HerdNode {
  const n = bed.node(id);
  const peers = bed.nodes.filter((o) => o.id !== id).flatMap((o) => ['--peer', `${o.id}=${o.ip}:${PORT}`]);
  const dataDir = join(n.dir, 'herd');
  const args = [HERD, 'agent', '--node-id', id, '--data-dir', dataDir, '--listen', `${n.ip}:${PORT}`, ...peers, '--pmproxy-url', '', '--host-interval', '500', '--container-interval', '500', '--track-interval', '500', ...extra];
  if (n.dockerSock) args.push('--docker-socket', n.dockerSock);
  const proc = bed.spawn(id, process.execPath, args, { name: `herd-${id}-${Date.now()}` });
  return { id, address: `${n.ip}:${PORT}`, dataDir, proc };
}

export function kill9(node: HerdNode): Promise<unknown> {
  try {
    process.kill(-node.proc.pid, 'SIGKILL');
  } catch {
    process.kill(node.proc.pid, 'SIGKILL');
  }
  return node.proc.exited;
}

export function adminClient(address: string): any {
  const { herd } = loadProtos();
  return new herd.Admin(address, grpc.credentials.createInsecure());
}
