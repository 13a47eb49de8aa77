/**
 * `herd migrate CONTAINER --to NODE`: starts a live migration through the coordinator
 * (asked through any node) and shows its progress and step breakdown.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { loadProtos } from '../common/proto';
import { addConnectOptions, adminChannel, rpcErrorText, type Channel } from './connect';

const FS = { none: 'FS_MODE_NONE', diff: 'FS_MODE_DIFF', full: 'FS_MODE_FULL' } as const;

function bar(done: number, total: number, width = 30): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${(f * 100).toFixed(0).padStart(3)}%`;
}

function mb(n: number): string {
  return `${(n / 1048576).toFixed(1)} MB`;
}

/** Follows UNAVAILABLE "ask X at ADDR" once, to reach the coordinator from any node. */
export async function coordinatorAddress(server: string, channel: Channel): Promise<string> {
  const { herd } = loadProtos();
  const admin = new herd.Admin(server, channel.credentials, channel.options);
  try {
    const leader = await new Promise<any>((res, rej) => admin.GetLeader({}, { deadline: Date.now() + 3000 }, (e: any, r: any) => (e ? rej(e) : res(r))));
    return leader.address || server;
  } finally {
    admin.close();
  }
}

export function formatSummary(m: any): string {
  const lines = [`migration ${m.migration_id}: ${m.state}${m.reason ? ` - ${m.reason}` : ''}`];
  lines.push(`  ${m.herd_id}: ${m.source_node_id} -> ${m.target_node_id}, ${String(m.fs_mode).replace('FS_MODE_', '').toLowerCase()} filesystem, ${mb(Number(m.bytes_total))} moved${m.tcp_established ? ', TCP connections kept' : ''}`);
  if (m.checkpoint_method) lines.push(`  checkpoint ${m.checkpoint_method === 'containerd' ? 'straight through containerd' : `through Docker${m.checkpoint_fallback_reason ? ` (${m.checkpoint_fallback_reason})` : ''}`}${m.restore_method ? `, restore ${m.restore_method}` : ''}`);
  if (m.page_path) lines.push(`  pages: ${m.page_path}`);
  for (const t of m.timings ?? []) lines.push(`  ${String(t.step).padEnd(14)} ${String(t.ms).padStart(7)} ms`);
  const total = Number(m.ended_ms) && Number(m.started_ms) ? Number(m.ended_ms) - Number(m.started_ms) : 0;
  lines.push(`  ${'total'.padEnd(14)} ${String(total).padStart(7)} ms   (downtime ${m.downtime_ms} ms)`);
  return lines.join('\n');
}

export function registerMigrate(program: Command): void {
  const cmd = program
    .command('migrate')
    .description('live-migrate a running container (by herd id) to another node, showing progress and the step breakdown')
    .argument('<container>', 'herd id of the container (herd status / ListContainers show them)')
    .requiredOption('--to <node>', 'target node id')
    .option('--fs <mode>', 'what of the filesystem moves: diff (the overlay diff layer), none, or full', 'diff')
    .option('--tcp-established', "keep the container's established TCP connections (CRIU tcp-established; its IP must follow it)", false)
    .option('-s, --server <host:port>', 'any node of the cluster', '127.0.0.1:7400');
  addConnectOptions(cmd).action(async (container: string, opts) => {
      const mode = FS[opts.fs as keyof typeof FS];
      if (!mode) {
        process.stderr.write(`herd migrate: --fs must be diff, none or full, not "${opts.fs}"\n`);
        process.exit(2);
      }
      const { herd } = loadProtos();
      let address: string;
      let channel: Channel;
      try {
        channel = adminChannel(opts);
      } catch (err) {
        process.stderr.write(`herd migrate: ${(err as Error).message}\n`);
        process.exit(2);
      }
      try {
        address = await coordinatorAddress(opts.server, channel);
      } catch (err) {
        process.stderr.write(`herd migrate: ${rpcErrorText(opts.server, err)}\n`);
        process.exit(1);
      }
      const admin = new herd.Admin(address, channel.credentials, channel.options);
      const tty = process.stderr.isTTY;
      let last: any;
      const stream = admin.Migrate({ herd_id: container, target_node_id: opts.to, fs_mode: mode, tcp_established: Boolean(opts.tcpEstablished) });
      stream.on('data', (m: any) => {
        last = m;
        const line = `${String(m.step).padEnd(14)} ${bar(Number(m.bytes_done), Number(m.bytes_total))} ${mb(Number(m.bytes_done))}/${mb(Number(m.bytes_total))}`;
        process.stderr.write(tty ? `\r${line}` : `${line}\n`);
      });
      stream.on('error', (err: grpc.ServiceError) => {
        process.stderr.write(`${tty ? '\n' : ''}herd migrate: ${rpcErrorText(address, err)}\n`);
        process.exit(1);
      });
      stream.on('end', () => {
        if (tty) process.stderr.write('\n');
        if (!last) process.exit(1);
        process.stdout.write(`${formatSummary(last)}\n`);
        process.exit(last.state === 'SUCCEEDED' ? 0 : 3);
      });
    });
}

/** One line per migration, newest first: what `herd migrations` prints. */
export function formatMigrationLine(m: any): string {
  const when = Number(m.started_ms) ? new Date(Number(m.started_ms)).toISOString().replace(/\.\d+Z$/, 'Z') : '-';
  return `${when}  ${m.migration_id}  ${m.herd_id}  ${m.source_node_id} -> ${m.target_node_id}  ${m.state}${m.reason ? `  ${m.reason}` : ''}`;
}

/** `herd migrations [CONTAINER]`: the coordinator's migration records (asked through any node). */
export function registerMigrations(program: Command): void {
  const cmd = program
    .command('migrations')
    .description("list migrations, newest first, as the coordinator knows them (of one container if given): state and reason")
    .argument('[container]', 'herd id of a container')
    .option('--limit <n>', 'at most this many', '20')
    .option('-s, --server <host:port>', 'any node of the cluster', '127.0.0.1:7400');
  addConnectOptions(cmd).action(async (container: string | undefined, opts) => {
    let channel: Channel;
    try {
      channel = adminChannel(opts);
    } catch (err) {
      process.stderr.write(`herd migrations: ${(err as Error).message}\n`);
      process.exit(2);
    }
    let address = opts.server;
    try {
      address = await coordinatorAddress(opts.server, channel);
      const { herd } = loadProtos();
      const admin = new herd.Admin(address, channel.credentials, channel.options);
      const r = await new Promise<any>((res, rej) => admin.ListMigrations({ herd_id: container ?? '', limit: Number(opts.limit) }, { deadline: Date.now() + 5000 }, (e: any, x: any) => (e ? rej(e) : res(x))));
      admin.close();
      for (const m of r.migrations) process.stdout.write(`${formatMigrationLine(m)}\n`);
      if (r.migrations.length === 0) process.stderr.write(`no migrations${container ? ` of ${container}` : ''} known to the coordinator at ${address}\n`);
    } catch (err) {
      process.stderr.write(`herd migrations: ${rpcErrorText(address, err)}\n`);
      process.exit(1);
    }
  });
}
