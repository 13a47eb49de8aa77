/**
 * Herd Control from the command line (docs/control.md):
 *   herd policy show [--json]                 the controller's settings and the policies it knows
 *   herd policy set KEY=VALUE... [--reset]    change settings (mode=auto, policies=balance,cpu-greedy, schedule.periodMs=10000)
 *   herd policy evaluate [--auto]             one evaluation now (recommend unless --auto)
 *   herd decisions [--json] [--limit N]       the controller's decisions, newest first, with reasons
 *   herd decisions approve ID [--container H] carry out a recommended decision's moves
 *   herd decisions --plot FILE.svg [--from T] [--to T]   host load over time with the moves marked
 */
import type { Command } from 'commander';
import { addConnectOptions } from './connect';
import { parseRange, unwritable, writeDecisionsPlot } from './decisions-plot';
import { onCoordinator, table, withCoordinator } from './nodes';

const server = (cmd: Command) => cmd.option('-s, --server <host:port>', 'any node of the cluster (the call is sent to the coordinator it names)', '127.0.0.1:7400');

/** KEY=VALUE pairs as a settings patch: dotted keys nest, numbers and true/false are typed, policies is a comma list. */
export function settingsPatch(pairs: string[]): Record<string, unknown> {
  const patch: Record<string, any> = {};
  for (const kv of pairs) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`"${kv}" is not KEY=VALUE (e.g. mode=auto, schedule.periodMs=10000)`);
    const path = kv.slice(0, i).split('.');
    const raw = kv.slice(i + 1);
    let value: unknown = raw;
    if (path.join('.') === 'policies') value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    else if (/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(raw)) value = Number(raw);
    else if (raw === 'true' || raw === 'false') value = raw === 'true';
    let at = patch;
    for (const key of path.slice(0, -1)) at = at[key] = typeof at[key] === 'object' && at[key] ? at[key] : {};
    at[path[path.length - 1]] = value;
  }
  return patch;
}

/** Settings as KEY=VALUE lines, in the form `herd policy set` takes. */
export function flatten(o: unknown, prefix = ''): string[] {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return [`${prefix}=${Array.isArray(o) ? o.join(',') : String(o)}`];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

const time = (ms: number) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function formatPolicy(r: any): string {
  const s = JSON.parse(r.settings.settings_json);
  const v = Number(r.settings.version);
  const lines = [
    `mode: ${s.mode}    policies: ${s.policies.join(' then ')}`,
    `schedule: window ${s.schedule.windowMs} ms, every ${s.schedule.periodMs} ms, first ${s.schedule.firstAfterMs} ms after a coordinator takes over; next evaluation: ${time(Number(r.next_evaluation_ms))}`,
    v ? `version ${v}, set ${time(Number(r.settings.set_ms))} by ${r.settings.set_by || '?'} (term ${r.settings.term})` : 'defaults (never set)',
    '',
    'settings (herd policy set KEY=VALUE changes any of them):',
    ...flatten(s).map((l) => `  ${l}`),
    '',
    'policies:',
    ...r.available.map((p: any) => `  ${p.name.padEnd(22)} ${p.summary}`),
  ];
  return lines.join('\n');
}

export function formatDecisions(decisions: any[]): string {
  const rows = [['ID', 'TIME', 'MODE', 'TRIGGER', 'PROPOSED', 'REFUSED', 'MOVES', 'NOTE']];
  const details: string[] = [];
  for (const d of decisions) {
    rows.push([d.id, time(Number(d.at_ms)), d.mode, d.trigger, String(d.proposals.length), String(d.refusals.length), String(d.actions.length), d.note]);
  }
  for (const d of decisions) {
    if (!d.actions.length && !d.refusals.length) continue;
    details.push('', `${d.id}:`);
    for (const a of d.actions) details.push(`  move ${a.herd_id} ${a.from_node_id} -> ${a.to_node_id}: ${a.status}${a.detail ? ` (${a.detail})` : ''}`, `    ${a.policy}: ${a.reason}`);
    for (const r of d.refusals.slice(0, 10)) details.push(`  refused ${r.herd_id}${r.to_node_id ? ` -> ${r.to_node_id}` : ''} [${r.filter}]: ${r.reason}`);
    if (d.refusals.length > 10) details.push(`  ... ${d.refusals.length - 10} more refusals (--json shows all)`);
  }
  return [table(rows), ...details].join('\n');
}

export function registerControl(program: Command): void {
  const policy = program.command('policy').description('the controller: which policies move containers, when, and how boldly (docs/control.md)');
  addConnectOptions(server(policy.command('show').description("the controller's settings in force and the policies it knows").option('--json', 'the raw GetPolicy answer'))).action(async (opts) => {
    const r = await onCoordinator('policy show', opts, 'GetPolicy', {});
    process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatPolicy(r)}\n`);
  });
  addConnectOptions(
    server(
      policy
        .command('set')
        .description('change settings: KEY=VALUE pairs (mode=off|recommend|auto, policies=balance,cpu-greedy, schedule.periodMs=10000, thresholds.cpu-greedy.rewardThreshold=0.2; `herd policy show` lists every key). A bad value changes nothing.')
        .argument('[pairs...]', 'KEY=VALUE settings')
        .option('--json <object>', 'the settings to change as one JSON object instead')
        .option('--reset', 'start from the defaults instead of the settings in force'),
    ),
  ).action(async (pairs: string[], opts) => {
    let json: string;
    try {
      json = opts.json ?? (pairs.length ? JSON.stringify(settingsPatch(pairs)) : '');
    } catch (err) {
      process.stderr.write(`herd policy set: ${(err as Error).message}\n`);
      process.exit(2);
    }
    if (!json && !opts.reset) {
      process.stderr.write('herd policy set: give KEY=VALUE pairs (e.g. mode=recommend), --json, or --reset\n');
      process.exit(2);
    }
    const r = await onCoordinator('policy set', opts, 'SetPolicy', { settings_json: json, reset: Boolean(opts.reset) });
    process.stdout.write(`${formatPolicy(r)}\n`);
  });
  addConnectOptions(server(policy.command('evaluate').description('run one evaluation now and show its decision (recommend: nothing moves, unless --auto)').option('--auto', 'carry the moves out'))).action(async (opts) => {
    const d = await onCoordinator('policy evaluate', opts, 'EvaluateNow', { mode: opts.auto ? 'auto' : 'recommend' });
    process.stdout.write(`${formatDecisions([d])}\n`);
  });

  // One command with an optional verb (not a subcommand): its options then stay its own.
  addConnectOptions(
    server(
      program
        .command('decisions')
        .description("the controller's decisions, newest first: what it saw, proposed, refused and did, and why. `herd decisions approve ID` carries out a recommended decision's moves (each checked against the filters again first).")
        .argument('[verb]', '"approve" to carry out a recommended decision')
        .argument('[decision-id]', 'the decision to approve (herd decisions shows ids)')
        .option('--json', 'the decisions as JSON (every proposal, refusal and figure)')
        .option('--limit <n>', 'most decisions to show (1-1000)', '20')
        .option('--container <herd-id>', 'approve: only the move of this container')
        .option('--plot <file.svg>', "draw every node's host CPU over time with the decisions' moves marked, into FILE.svg")
        .option('--from <time>', '--plot: start of the range: now, a duration ago (30m, 2h, 1d), an ISO 8601 time or ms since the epoch (default 1h)')
        .option('--to <time>', '--plot: end of the range, in the same forms (default now)'),
    ),
  ).action(async (verb: string | undefined, id: string | undefined, opts) => {
    if (verb !== undefined) {
      if (verb !== 'approve' || !id) {
        process.stderr.write(verb === 'approve' ? 'herd decisions approve: give the decision id (herd decisions lists them)\n' : `herd decisions: unknown verb "${verb}"; the only one is approve (herd decisions approve ID)\n`);
        process.exit(2);
      }
      const d = await onCoordinator('decisions approve', opts, 'ApproveDecision', { decision_id: id, herd_id: opts.container ?? '' });
      process.stdout.write(opts.json ? `${JSON.stringify(d, null, 2)}\n` : `${formatDecisions([d])}\n`);
      return;
    }
    if (opts.plot !== undefined || opts.from !== undefined || opts.to !== undefined) {
      // Checked before the cluster is asked anything: a typo costs no round trip.
      const range = opts.plot === undefined ? '--from and --to go with --plot FILE.svg' : parseRange(opts.from, opts.to, Date.now());
      const bad = typeof range === 'string' ? range : unwritable(opts.plot);
      if (bad || typeof range === 'string') {
        process.stderr.write(`herd decisions: ${bad}\n`);
        process.exit(2);
      }
      process.stdout.write(`${await withCoordinator('decisions --plot', opts, (call) => writeDecisionsPlot(call, opts.plot, range))}\n`);
      return;
    }
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      process.stderr.write(`herd decisions: --limit must be an integer from 1 to 1000, not "${opts.limit}"\n`);
      process.exit(2);
    }
    const r = await onCoordinator('decisions', opts, 'ListDecisions', { limit });
    if (opts.json) process.stdout.write(`${JSON.stringify(r.decisions, null, 2)}\n`);
    else process.stdout.write(r.decisions.length ? `${formatDecisions(r.decisions)}\n` : 'no decisions yet\n');
  });
}
