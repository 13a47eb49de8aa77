/**
 * `herd dataset export --from WHEN [--to WHEN] [--step 5s] [--out FILE.csv]`: the forecast's
 * training table from the coordinator's samples (Admin.ExportDataset), as CSV, for
 * `herd model train --csv FILE --target ops --time time_ms` or any other tool.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { loadProtos } from '../common/proto';
import { addConnectOptions, adminChannel, rpcErrorText, type Channel } from './connect';
import { coordinatorAddress } from './migrate';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: 5s, 10m, 1h, 2d, 500ms, or plain milliseconds; NaN when it is none. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  return m ? Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']) : NaN;
}

/**
 * A point in time: `now`; a duration meaning that long ago (`15m`, `2h`); ms since the
 * epoch (12+ digits); or an ISO 8601 date (`2026-12-07T03:00:00Z`). NaN when it is none.
 */
export function parseWhen(v: string, now: number): number {
  const s = v.trim();
  if (s === 'now') return now;
  if (/^\d{12,}$/.test(s)) return Number(s);
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(s)) return now - parseDuration(s);
  if (/^\d{4}-\d\d-\d\d/.test(s)) return Date.parse(s);
  return NaN;
}

function usage(msg: string): never {
  process.stderr.write(`herd dataset export: ${msg}\n`);
  process.exit(2);
}

export function registerDataset(program: Command): void {
  const dataset = program.command('dataset').description("the forecast's training data from the cluster's samples");
  const cmd = dataset
    .command('export')
    .description('write the coordinator\'s samples over a time range as a training table (CSV): one row per container per grid step, its features, its ops/s (the target), time and ids; see docs/forecast.md')
    .requiredOption('--from <when>', 'start of the range: a duration ago (15m, 2h, 1d), ms since the epoch, or an ISO date (2026-12-07T03:00:00Z)')
    .option('--to <when>', 'end of the range, as --from', 'now')
    .option('--step <duration>', 'grid step: 5s, 1m... (1s to 1h)', '5s')
    .option('--out <file>', 'write the CSV here instead of to standard output')
    .option('-s, --server <host:port>', 'any node of the cluster', '127.0.0.1:7400');
  addConnectOptions(cmd).action(async (opts) => {
    const now = Date.now();
    const from = parseWhen(opts.from, now);
    const to = parseWhen(opts.to, now);
    const step = parseDuration(opts.step);
    if (!Number.isFinite(from)) usage(`--from "${opts.from}" is not a time: give a duration ago (15m, 2h, 1d), ms since the epoch, or an ISO date`);
    if (!Number.isFinite(to)) usage(`--to "${opts.to}" is not a time: give now, a duration ago (15m), ms since the epoch, or an ISO date`);
    if (!Number.isFinite(step) || step <= 0) usage(`--step "${opts.step}" is not a duration: give 5s, 1m, 1h or milliseconds`);
    let channel: Channel;
    try {
      channel = adminChannel(opts);
    } catch (err) {
      usage((err as Error).message);
    }
    let address: string;
    try {
      address = await coordinatorAddress(opts.server, channel);
    } catch (err) {
      process.stderr.write(`herd dataset export: ${rpcErrorText(opts.server, err)}\n`);
      process.exit(1);
    }
    // the file appears whole or not at all: written aside, renamed at the end
    const partial = opts.out ? `${opts.out}.partial` : undefined;
    const out = partial ? fs.createWriteStream(partial) : process.stdout;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
    const { herd } = loadProtos();
    const admin = new herd.Admin(address, channel.credentials, channel.options);
    const stream = admin.ExportDataset({ from_ms: Math.round(from), to_ms: Math.round(to), step_ms: step });
    let rows = 0;
    let columns = 0;
    stream.on('data', (chunk: any) => {
      rows += Number(chunk.rows);
      if (chunk.columns?.length) columns = chunk.columns.length;
      if (!out.write(chunk.csv)) {
        stream.pause();
        out.once('drain', () => stream.resume());
      }
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (partial) fs.rmSync(partial, { force: true });
      process.stderr.write(`herd dataset export: ${rpcErrorText(address, err)}\n`);
      process.exit(err.code === grpc.status.INVALID_ARGUMENT ? 2 : 1);
    });
    stream.on('end', () => {
      const done = () => {
        if (partial) fs.renameSync(partial, opts.out);
        process.stderr.write(`${rows} rows, ${columns} columns, ${new Date(from).toISOString()} to ${new Date(to).toISOString()} every ${step} ms${opts.out ? `: ${opts.out}` : ''}\n`);
        process.exit(0);
      };
      if (partial) (out as fs.WriteStream).end(done);
      else done();
    });
  });
}
