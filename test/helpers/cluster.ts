/** Herd nodes on the multi-node test bed: one real herd process per network namespace. */
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { loadProtos } from '../../common/proto';
import type { Bed, BedProcess } from '../bed/bed';
import { call } from './coord';
import { HERD } from './herd';
import { waitFor } from './tmp';
import { testPki } from './pki';

export const PORT = 7400;

export interface HerdNode {
  id: string;
  address: string;
  dataDir: string;
  proc: BedProcess;
}

/** Starts (or restarts, same data dir) herd on a bed node, with every other bed node as a peer. */
export function startHerdOn(bed: Bed, id: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): HerdNode {
  const n = bed.node(id);
  const peers = bed.nodes.filter((o) => o.id !== id).flatMap((o) => ['--peer', `${o.id}=${o.ip}:${PORT}`]);
  const dataDir = join(n.dir, 'herd');
  if (!extra.includes('--insecure')) testPki().provision(dataDir, id, `${n.ip}:${PORT}`);
  const args = [HERD, 'agent', '--node-id', id, '--data-dir', dataDir, '--listen', `${n.ip}:${PORT}`, ...peers, '--pmproxy-url', '', '--host-interval', '500', '--container-interval', '500', '--track-interval', '500', ...extra];
  if (n.dockerSock && !extra.includes('--docker-socket')) args.push('--docker-socket', n.dockerSock);
  const proc = bed.spawn(id, process.execPath, args, { name: `herd-${id}-${Date.now()}`, env: { ...process.env, ...env } });
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

/** An Admin client with the test cluster's admin operator certificate (or plain text). */
export function adminClient(address: string, opts: { insecure?: boolean } = {}): any {
  const { herd } = loadProtos();
  if (opts.insecure) return new herd.Admin(address, grpc.credentials.createInsecure());
  const { credentials, options } = testPki().credentials();
  return new herd.Admin(address, credentials, options);
}

export interface LeaderSeen {
  id: string;
  address: string;
  term: number;
}

/** Asks every given node who leads; resolves once they all name the same leader, which agrees. */
export async function agreedLeader(addresses: string[], timeoutMs = 15_000): Promise<LeaderSeen> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const answers = await Promise.all(
      addresses.map(async (a) => {
        const c = adminClient(a);
        try {
          return await new Promise<any>((res) => c.GetLeader({}, { deadline: Date.now() + 1000 }, (e: unknown, r: any) => res(e ? undefined : r)));
        } finally {
          c.close();
        }
      }),
    );
    const ids = new Set(answers.map((r) => r?.leader_id ?? ''));
    const one = answers[0];
    if (ids.size === 1 && one?.leader_id && answers.some((r) => r.answered_by === r.leader_id)) {
      return { id: one.leader_id, address: one.address, term: Number(one.term) };
    }
    last = JSON.stringify(answers.map((r) => r && [r.answered_by, r.leader_id, r.term]));
    if (Date.now() > deadline) throw new Error(`no agreed leader after ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Node ids whose Mesh stream to the coordinator at `address` is open. */
export async function connectedNodes(address: string): Promise<string[]> {
  const c = adminClient(address);
  try {
    const r = await new Promise<any>((res, rej) => c.ListNodes({}, { deadline: Date.now() + 2000 }, (e: unknown, v: any) => (e ? rej(e) : res(v))));
    return r.nodes.filter((n: any) => n.connected).map((n: any) => n.node_id);
  } finally {
    c.close();
  }
}

/** One leader agreed by all the given nodes, every one of them streaming to it with CRIU. */
export async function settledWithCriu(addresses: string[]): Promise<LeaderSeen> {
  const leader = await agreedLeader(addresses, 30_000);
  await waitFor(`${addresses.length} agents streaming`, async () => (await connectedNodes(leader.address)).length === addresses.length, 30_000, 100);
  await waitFor('criu capability everywhere', async () => (await call(adminClient(leader.address), 'ListNodes', {})).nodes.every((n: any) => n.capabilities.includes('criu')), 20_000, 200);
  return leader;
}
