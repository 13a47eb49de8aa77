// Runs a bench script: bundles bench/<name>.ts with esbuild (dependencies stay in
// node_modules) and executes it with plain node, so benches measure what the daemon
// runs, not a TypeScript loader. Usage: node bench/run.mjs <name> [args...]
import { build } from 'esbuild';
import { forecastWorkerDefine } from '../build/forecast-worker.mjs';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const [name, ...args] = process.argv.slice(2);
if (!name) {
  console.error('usage: node bench/run.mjs <ingest|collect-cost|idle-rss|control-eval|...> [args]');
  process.exit(2);
}
const root = new URL('..', import.meta.url).pathname;
mkdirSync(`${root}dist/bench`, { recursive: true });
const out = `${root}dist/bench/${name}.cjs`;
await build({
  entryPoints: [`${root}bench/${name}.ts`],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  define: forecastWorkerDefine(),
  logLevel: 'warning',
});
const r = spawnSync(process.execPath, [out, ...args], { stdio: 'inherit', env: { ...process.env, HERD_PROTO_DIR: `${root}proto` } });
process.exit(r.status ?? 1);
