/**
 * Trust commands that go through the coordinator (asked through any node):
 *   herd node remove ID [--reason R]        revoke a node's certificates everywhere, close its stream
 *   herd node drain ID / undrain ID          no migrations to the node / again (the node keeps the mark)
 *   herd admin-cert revoke NAME [--reason R] revoke an operator's certificates
 *   herd revocations                         the cluster's revocation list
 *   herd audit [--limit N]                   state-changing Admin calls: who, what, how it ended
 * docs/security.md, "Revocation" and "Roles and audit".
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { loadProtos } from '../common/proto';
import { addConnectOptions, adminChannel, rpcErrorText, type Channel } from './connect';

const DEADLINE_MS = 10_000;

function unaryCall(client: any, method: string, req: unknown, deadlineMs = DEADLINE_MS): Promise<any> {
  return new Promise((resolve, reject) => client[method](req, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: any) => (err ? reject(err) : resolve(res))));
}

/** Asks `server` who coordinates and returns the coordinator's address (Admin calls other than GetLeader/GetCluster are answered there only). */
export async function coordinatorOf(server: string, channel: Channel): Promise<string> {
  const { herd } = loadProtos();
  const admin = new herd.Admin(server, channel.credentials, channel.options);
  try {
    const leader = await unaryCall(admin, 'GetLeader', {});
    return leader.leader_id && leader.leader_id !== leader.answered_by && leader.address ? leader.address : server;
  } finally {
    admin.close();
  }
}

/**
 * Several Admin calls on the coordinator over one client: `calls` gets a caller that rejects
 * with the gRPC error (so it may handle one, e.g. NOT_FOUND); anything else it throws is
 * printed, and the command exits 1.
 */
export async function withCoordinator<T>(what: string, opts: any, calls: (call: (method: string, req: unknown) => Promise<any>) => Promise<T>, deadlineMs = DEADLINE_MS): Promise<T> {
  let channel: Channel;
  try {
    channel = adminChannel(opts);
  } catch (err) {
    process.stderr.write(`herd ${what}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const { herd } = loadProtos();
  let address = opts.server as string;
  try {
    address = await coordinatorOf(opts.server, channel);
  } catch (err) {
    process.stderr.write(`herd ${what}: ${rpcErrorText(opts.server, err)}\n`);
    process.exit(1);
  }
  const admin = new herd.Admin(address, channel.credentials, channel.options);
  try {
    return await calls((method, req) => unaryCall(admin, method, req, deadlineMs));
  } catch (err) {
    process.stderr.write(`herd ${what}: ${(err as any)?.code !== undefined ? rpcErrorText(address, err) : (err as Error).message}\n`);
    process.exit(1);
  } finally {
    admin.close();
  }
}

/** Runs one Admin call on the coordinator, reached through `opts.server`; prints and exits on failure. */
export function onCoordinator(what: string, opts: any, method: string, req: unknown, deadlineMs = DEADLINE_MS): Promise<any> {
  return withCoordinator(what, opts, (call) => call(method, req), deadlineMs);
}

const kindName = (k: string) => (k === 'IDENTITY_KIND_NODE' ? 'node' : k === 'IDENTITY_KIND_OPERATOR' ? 'operator' : k);

export function formatRevocation(r: any): string {
  return `${kindName(r.kind)} "${r.name}": certificates issued up to ${new Date(Number(r.revoked_at_ms)).toISOString()} are refused by every node (revoked by ${r.revoked_by || '?'}${r.reason ? `: ${r.reason}` : ''})`;
}

/** Rows as left-aligned columns; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export function formatAudit(events: any[]): string {
  const rows = [['TIME', 'WHO', 'METHOD', 'CODE', 'NODE', 'REQUEST / DETAILS']];
  for (const e of events) {
    const code = grpc.status[Number(e.code)] ?? String(e.code);
    const method = String(e.method).replace(/^\/herd\.v1\.Admin\//, '');
    const req = e.request_json && e.request_json !== '{}' ? e.request_json : '';
    const text = [req, e.details].filter(Boolean).join(' ');
    rows.push([new Date(Number(e.at_ms)).toISOString(), e.who, method, code, e.node_id, text.length > 120 ? `${text.slice(0, 117)}...` : text]);
  }
  return table(rows);
}

export function formatRevocations(entries: any[]): string {
  const rows = [['KIND', 'NAME', 'REVOKED AT', 'BY', 'REASON']];
  for (const r of entries) rows.push([kindName(r.kind), r.name, new Date(Number(r.revoked_at_ms)).toISOString(), r.revoked_by, r.reason]);
  return table(rows);
}

const server = (cmd: Command) => cmd.option('-s, --server <host:port>', 'any node of the cluster (the call is sent to the coordinator it names)', '127.0.0.1:7400');

export function registerNodes(program: Command): void {
  const node = program.commands.find((c) => c.name() === 'node') ?? program.command('node').description('members of the cluster');
  addConnectOptions(
    server(
      node
        .command('remove <node-id>')
        .description("remove a node: every node refuses its certificates from now on (also any it renewed), and its stream to the coordinator is closed. Then take it out of the other nodes' --peer lists.")
        .option('--reason <text>', 'why (kept with the revocation and in the audit trail)'),
    ),
  ).action(async (nodeId: string, opts) => {
    const r = await onCoordinator('node remove', opts, 'RemoveNode', { node_id: nodeId, reason: opts.reason ?? '' });
    process.stdout.write(`node "${nodeId}" removed.\n${formatRevocation(r.revocation)}\n`);
    process.stdout.write(`it still counts in the election until it is taken out of the other nodes' --peer lists (and they restart).\n`);
  });

  for (const [verb, draining, help] of [
    ['drain', true, 'drain a node: no migrations to it until it is undrained (moving containers off it still works). The node keeps the mark across restarts; it shows as the label herd.draining=true.'],
    ['undrain', false, 'take a drained node back into service: migrations to it are allowed again'],
  ] as const) {
    addConnectOptions(server(node.command(`${verb} <node-id>`).description(help))).action(async (nodeId: string, opts) => {
      const r = await onCoordinator(`node ${verb}`, opts, 'DrainNode', { node_id: nodeId, draining });
      const labels = (r.node?.labels ?? []).map((l: any) => `${l.key}=${l.value}`).join(', ');
      process.stdout.write(`node "${nodeId}" ${draining ? 'is draining: no migrations to it' : 'takes migrations again'} (labels: ${labels || 'none'})\n`);
    });
  }

  const adminCert = program.commands.find((c) => c.name() === 'admin-cert') ?? program.command('admin-cert').description('operator client certificates');
  addConnectOptions(
    server(
      adminCert
        .command('revoke <name>')
        .description("revoke an operator's certificates: every node refuses certificates of NAME issued up to now (a new one made later with `herd admin-cert create` is accepted)")
        .option('--reason <text>', 'why (kept with the revocation and in the audit trail)'),
    ),
  ).action(async (name: string, opts) => {
    const r = await onCoordinator('admin-cert revoke', opts, 'RevokeOperator', { name, reason: opts.reason ?? '' });
    process.stdout.write(`${formatRevocation(r.revocation)}\n`);
  });

  addConnectOptions(server(program.command('revocations').description("the cluster's revocation list (removed nodes, revoked operators)"))).action(async (opts) => {
    const r = await onCoordinator('revocations', opts, 'ListRevocations', {});
    process.stdout.write(r.entries.length ? `${formatRevocations(r.entries)}\n` : 'no revocations\n');
  });

  addConnectOptions(
    server(
      program
        .command('audit')
        .description('state-changing Admin calls, newest first: when, who (from the certificate), what, and how it ended')
        .option('--limit <n>', 'most events to show (1-10000)', '100'),
    ),
  ).action(async (opts) => {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      process.stderr.write(`herd audit: --limit must be an integer from 1 to 10000, not "${opts.limit}"\n`);
      process.exit(2);
    }
    const r = await onCoordinator('audit', opts, 'ListAuditEvents', { limit });
    process.stdout.write(r.events.length ? `${formatAudit(r.events)}\n` : 'no audit events\n');
  });
}
