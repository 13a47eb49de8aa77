// Bundles the TypeScript sources into dist/herd.cjs for running from a checkout
// (bin/herd.cjs). Dependencies stay in node_modules; the single-executable build
// (build/sea.mjs, later) bundles them too.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: [new URL('../cli/herd.ts', import.meta.url).pathname],
  outfile: new URL('../dist/herd.cjs', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: 'inline',
  define: { HERD_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
