// esbuild plugin shared by the bundles: dependencies Herd never uses at run time are
// replaced by a stub that throws if reached. ssh2 (pulled in by docker-modem for
// ssh:// Docker hosts; Herd talks to a local socket) costs ~14 MB of RSS when loaded.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// esbuild: the forecast driver builds its worker with it only when run from a checkout; the
// bundles define HERD_FORECAST_WORKER (build/forecast-worker.mjs), so that branch is dead there.
export const STUBBED = ['ssh2', 'esbuild'];

/** @param {{ bundle?: string[] }} opts packages to bundle even when the build externalizes packages */
export function stubsPlugin(opts = {}) {
  const bundle = new Set(opts.bundle ?? []);
  return {
    name: 'herd-stubs',
    setup(build) {
      const filter = new RegExp(`^(${STUBBED.join('|')})$`);
      build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'herd-stub' }));
      build.onLoad({ filter: /.*/, namespace: 'herd-stub' }, (args) => ({
        // Loading must succeed (docker-modem reads require('ssh2').Client at load); using it throws.
        contents: `const fail = () => { throw new Error(${JSON.stringify(`${args.path} is not part of this herd build`)}); };
module.exports = new Proxy({}, { get: (_t, key) => (key === '__esModule' ? false : fail) });`,
        loader: 'js',
      }));
      if (bundle.size) {
        const names = [...bundle].map((n) => n.replace(/[/\-]/g, (c) => `\\${c}`)).join('|');
        build.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) => ({ path: require.resolve(args.path, { paths: [args.resolveDir] }) }));
      }
    },
  };
}
