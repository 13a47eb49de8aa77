/**
 * `herd status`: who coordinates the cluster and how each member looks, from the
 * coordinator's view (asked through any node, which names the coordinator).
 */
import { isDraining } from '../common/labels';
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { loadProtos } from '../common/proto';
import { addConnectOptions, adminChannel, ConnectError, rpcErrorText, type Channel } from './connect';

function unaryCall(client: any, method: string, req: unknown, timeoutMs: number): Promise<any> {
  return new Promise((resolve, reject) => client[method](req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: any) => (err ? reject(err) : resolve(res))));
}

function ago(ms: number, now: number): string {
  if (!ms) return 'never';
  const d = Math.max(0, now - ms);
  return d < 1000 ? `${d} ms ago` : d < 120_000 ? `${(d / 1000).toFixed(1)} s ago` : `${Math.round(d / 60_000)} min ago`;
}

export async function status(server: string, timeoutMs: number, channel: Channel = adminChannel({ insecure: true })): Promise<{ text: string; ok: boolean }> {
  const { herd } = loadProtos();
  const ask = async (address: string) => {
    const admin = new herd.Admin(address, channel.credentials, channel.options);
    try {
      const cluster = await unaryCall(admin, 'GetCluster', {}, timeoutMs);
      const leader = await unaryCall(admin, 'GetLeader', {}, timeoutMs);
      const nodes = cluster.leader_id === cluster.answered_by ? await unaryCall(admin, 'ListNodes', {}, timeoutMs) : undefined;
      return { cluster, leader, nodes };
    } finally {
      admin.close();
    }
  };
  let view = await ask(server);
  if (view.leader.leader_id && view.leader.leader_id !== view.cluster.answered_by && view.leader.address) {
    view = await ask(view.leader.address).catch(() => view); // the coordinator's view is the complete one
  }
  const now = Date.now();
  const { cluster, leader, nodes } = view;
  const streaming = new Map<string, any>((nodes?.nodes ?? []).map((n: any) => [n.node_id, n]));
  const lines = [
    leader.leader_id
      ? `coordinator: ${leader.leader_id} at ${leader.address}, term ${leader.term}, since ${new Date(Number(leader.since_ms)).toISOString()} (${ago(Number(leader.since_ms), now)})`
      : `coordinator: none elected (term ${cluster.term}); a majority of the members must reach each other`,
    `view of: ${cluster.answered_by}`,
    '',
  ];
  const rows = [['NODE', 'ADDRESS', 'ROLE', 'LAST HEARD', 'STREAMING', 'ACKED SEQ', 'CONTAINERS']];
  for (const m of cluster.members) {
    const n = streaming.get(m.node_id);
    const draining = isDraining(n?.labels ?? []);
    rows.push([m.node_id, m.address, draining ? `${m.role} (draining)` : m.role, m.self ? '(self)' : ago(Number(m.last_heard_ms), now), nodes ? (n?.connected ? 'yes' : 'no') : '?', n ? String(n.acked_seq) : '-', n ? String(n.container_count) : '-']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
  return { text: lines.join('\n'), ok: Boolean(leader.leader_id) };
}

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .description("show the coordinator, the election term and every member's role, last heartbeat and stream (asks any node; follows it to the coordinator)")
    .option('-s, --server <host:port>', 'any node of the cluster', '127.0.0.1:7400')
    .option('--timeout <ms>', 'per-call timeout', (v) => Number(v), 3000);
  addConnectOptions(cmd).action(async (opts) => {
      try {
        const r = await status(opts.server, opts.timeout, adminChannel(opts));
        process.stdout.write(`${r.text}\n`);
        process.exit(r.ok ? 0 : 3);
      } catch (err) {
        if (err instanceof ConnectError) {
          process.stderr.write(`herd status: ${err.message}\n`);
          process.exit(2);
        }
        process.stderr.write(`herd status: ${rpcErrorText(opts.server, err)}\n`);
        process.exit(1);
      }
    });
}
