// Bundles the TypeScript sources into dist/herd.cjs for running from a checkout
// (bin/herd.cjs). Dependencies stay in node_modules; the single-executable build
// (build/sea.mjs, later) bundles them too.
import { build } from 'esbuild';
import { forecastWorkerDefine } from './forecast-worker.mjs';
import { readFileSync } from 'node:fs';
import { stubsPlugin } from './stubs.mjs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: [new URL('../cli/herd.ts', import.meta.url).pathname],
  outfile: new URL('../dist/herd.cjs', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: true, // a separate .map file: an inline map would sit in the heap as part of the source
  define: { HERD_VERSION: JSON.stringify(pkg.version), ...forecastWorkerDefine() },
  // dockerode and docker-modem are bundled so that their ssh2 import can be stubbed.
  plugins: [stubsPlugin({ bundle: ['dockerode', 'docker-modem'] })],
  logLevel: 'warning',
});
