/**
 * `herd run IMAGE [-- CMD...]`: create and start a container on the best node (Admin
 * RunContainer: the controller's filters and a load-aware score), or on --node.
 */
import type { Command } from 'commander';
import { addConnectOptions } from './connect';
import { onCoordinator, table } from './nodes';

const collect = (v: string, prev: string[] = []) => [...prev, v];
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** "512m", "2g", "1048576" -> bytes; undefined when it is not a size. */
export function parseBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim());
  if (!m || !(m[2].toLowerCase() in UNITS)) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

export function formatRun(r: any): string {
  const rows = [['NODE', 'SCORE', 'WHY']];
  for (const s of r.scores) rows.push([s.node_id, s.refused ? 'refused' : Number(s.score).toFixed(3), s.reason]);
  return `started ${r.name} (herd id ${r.herd_id}) on ${r.node_id}: ${r.reason}\n\n${table(rows)}`;
}

export function registerRun(program: Command): void {
  addConnectOptions(
    program
      .command('run')
      .description('create and start a container on the node where it fits best (the load each node measures, plus what this container is expected to use, plus what was placed there since its last samples), or on --node. The image must be on that node. Put -- before a command that has options: herd run alpine:3.19 -- sh -c "sleep 1d"')
      .argument('<image>', 'image reference, e.g. alpine:3.19')
      .argument('[command...]', 'command and arguments (default: the image\'s)')
      .option('--node <id>', 'run it on this node (the filters still apply: connected, not draining, room)')
      .option('--cpus <n>', 'CPU limit in cores (also what the placement expects it to use)')
      .option('--memory <size>', 'memory limit, e.g. 256m, 1g (also what the placement expects it to use)')
      .option('-e, --env <KEY=value>', 'an environment variable; repeat for each', collect)
      .option('-l, --label <key=value>', 'a container label (herd.pin=true: the controller never moves it); repeat for each', collect)
      .option('--network <name>', 'Docker network to attach it to')
      .option('--name <name>', 'container name (default: herd-<herd id>)')
      .option('--json', 'the raw RunContainer answer')
      .option('-s, --server <host:port>', 'any node of the cluster (the call is sent to the coordinator it names)', '127.0.0.1:7400'),
  ).action(async (image: string, command: string[], opts) => {
    const fail = (msg: string) => {
      process.stderr.write(`herd run: ${msg}\n`);
      process.exit(2);
    };
    const cpus = opts.cpus === undefined ? 0 : Number(opts.cpus);
    if (!Number.isFinite(cpus) || cpus < 0) fail(`--cpus must be a number of cores, not "${opts.cpus}"`);
    const memory = opts.memory === undefined ? 0 : parseBytes(opts.memory);
    if (memory === undefined) fail(`--memory must be a size like 256m or 1g, not "${opts.memory}"`);
    const labels = [];
    for (const kv of (opts.label ?? []) as string[]) {
      const i = kv.indexOf('=');
      if (i <= 0) fail(`--label "${kv}" must be key=value`);
      labels.push({ key: kv.slice(0, i), value: kv.slice(i + 1) });
    }
    const r = await onCoordinator('run', opts, 'RunContainer', {
      image,
      command: command ?? [],
      env: opts.env ?? [],
      labels,
      cpus,
      memory_bytes: memory,
      network: opts.network ?? '',
      name: opts.name ?? '',
      node_id: opts.node ?? '',
    });
    process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatRun(r)}\n`);
  });
}
