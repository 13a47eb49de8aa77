// Runs a bench script: bundles bench/<name>.ts with esbuild (dependencies stay in
// node_modules) and executes it with plain node, so benches measure what the daemon
// runs, not a TypeScript loader. Benches on the multi-node test bed (migration, failover)
// run under vite-node: the bed locates its scripts from its own source file. Either way
// dist/herd.cjs, which every bench that starts herd runs, is rebuilt first.
//
//   node bench/run.mjs <name> [args...]
//   node bench/run.mjs all       the quick figures (a few minutes; root, Docker, CRIU for the
//                                bed benches) and one table of them all
import { build } from 'esbuild';
import { forecastWorkerDefine } from '../build/forecast-worker.mjs';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const ON_BED = new Set(['migration', 'failover', 'vm']);

/** The quick figures: fewer rounds than the benches' defaults, same paths and baselines. */
const QUICK = [
  ['ingest', '150', '100', '3'],
  ['collect-cost', '--real', '100,1000', '--counts', '3600', '--layouts', 'v1,v2', '--rounds', '10'],
  ['failover', '5', '3', 'kill,partition,sigterm'],
  ['migration', '5', 'small'],
  ['package', '3', '5', 'x64'],
  ['metrics', '200', '100'],
  ['control-eval', '--rounds', '8'],
];

async function runOne(name, args, capture) {
  const env = { ...process.env, HERD_PROTO_DIR: `${root}proto` };
  let cmd;
  if (ON_BED.has(name)) {
    cmd = [`${root}node_modules/.bin/vite-node`, `${root}bench/${name}.ts`, ...args];
  } else {
    mkdirSync(`${root}dist/bench`, { recursive: true });
    const out = `${root}dist/bench/${name}.cjs`;
    await build({ entryPoints: [`${root}bench/${name}.ts`], outfile: out, bundle: true, platform: 'node', target: 'node20', format: 'cjs', packages: 'external', define: forecastWorkerDefine(), logLevel: 'warning' });
    cmd = [process.execPath, out, ...args];
  }
  const r = spawnSync(cmd[0], cmd.slice(1), { env, cwd: root, stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 });
  if (capture) process.stdout.write(r.stdout ?? '');
  return { status: r.status ?? 1, stdout: r.stdout ?? '' };
}

const fmt = (x) => x.toLocaleString('en', { maximumFractionDigits: Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2 });
const range = (s) => `${fmt(s.min)}-${fmt(s.max)}`;

/** One markdown table of every FIGURE line: ratio first, then herd's and the baseline's figures. */
function table(figures) {
  const rows = ['| figure | herd / baseline: median (range, worst) | herd: median, worst (range, n) | baseline (same run, alternated): median (range) | target |', '|---|---|---|---|---|'];
  for (const f of figures) {
    const ratio = f.ratio ? `**${f.ratio.median.toFixed(2)}x** (${f.ratio.min.toFixed(2)}-${f.ratio.max.toFixed(2)}, worst ${f.ratio.worst.toFixed(2)}x)` : 'no same-run baseline';
    const herd = `${fmt(f.herd.median)} ${f.unit}, worst ${fmt(f.herd.worst)} (${range(f.herd)}, n=${f.herd.n})`;
    const base = f.baseline ? `${f.baselineName}: ${fmt(f.baseline.median)} ${f.unit} (${range(f.baseline)})` : '';
    rows.push(`| ${f.name} | ${ratio} | ${herd} | ${base} | ${f.target ?? ''} |`);
  }
  return rows.join('\n');
}

const [name, ...args] = process.argv.slice(2);
if (!name) {
  console.error('usage: node bench/run.mjs <all|ingest|collect-cost|failover|migration|package|idle-rss|transfer|control-eval|control-experiment|...> [args]');
  process.exit(2);
}
const bundled = spawnSync(process.execPath, [`${root}build/bundle.mjs`], { stdio: 'inherit' });
if (bundled.status !== 0) process.exit(bundled.status ?? 1);
if (name !== 'all') process.exit((await runOne(name, args, false)).status);

const figures = [];
const failed = [];
const t0 = Date.now();
for (const [bench, ...a] of QUICK) {
  console.log(`\n=== ${bench} ${a.join(' ')}`);
  const r = await runOne(bench, a, true);
  if (r.status !== 0) failed.push(bench);
  for (const line of r.stdout.split('\n')) if (line.startsWith('FIGURE ')) figures.push(JSON.parse(line.slice(7)));
}
const load = spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim();
console.log(`\n=== all quick figures (${Math.round((Date.now() - t0) / 1000)} s; load average at the end: ${load})\n`);
console.log(table(figures));
if (failed.length) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exit(1);
}
