// esbuild plugin for the single-executable bundle. Inside a Node SEA, require() loads
// builtins only, so every library is bundled and each place where one reaches for a file
// of its package at run time is rewired to the files the executable carries
// (common/natives.ts extracts them). Every patch checks that the text it replaces is still
// there: a library update that moves it fails the build instead of the executable.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { ROOT } from './fetch.mjs';

const require = createRequire(join(ROOT, 'package.json'));
const NATIVES = JSON.stringify(join(ROOT, 'common/natives.ts'));

/** Packages whose code loads .proto files from its own directory: (package, files that do). */
export const PROTO_PACKAGES = [
  { pkg: 'grpc-health-check', dirs: ['proto'], files: /[\\/]grpc-health-check[\\/]build[\\/]src[\\/]health\.js$/ },
  { pkg: '@grpc/reflection', dirs: ['proto'], files: /[\\/]@grpc[\\/]reflection[\\/]build[\\/]src[\\/]implementations[\\/]reflection-v1(alpha)?\.js$/ },
];

/** Root directory of an installed package. */
export function packageDir(pkg) {
  // not require.resolve(`${pkg}/package.json`): an "exports" map may hide it (lmdb does)
  for (let d = dirname(require.resolve(pkg)); d !== dirname(d); d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).name === pkg) return d;
  }
  throw new Error(`cannot find the directory of package ${pkg}`);
}

function patch(file, src, re, replacement, why) {
  if (!re.test(src)) throw new Error(`${file}: the code the SEA build patches (${why}) is not there any more; update build/sea-plugin.mjs`);
  return src.replace(re, replacement);
}

export function seaPlugin() {
  return {
    name: 'herd-sea',
    setup(b) {
      // lmdb's CJS build, as `require('lmdb')` gives in a checkout: its ESM entry needs import.meta.url.
      b.onResolve({ filter: /^lmdb$/ }, () => ({ path: require.resolve('lmdb') }));

      // lmdb loads its addon with node-gyp-build-optional-packages(dir): route it to the embedded one.
      // msgpackr-extract (msgpackr's optional accelerator) is not embedded: its require throws, and
      // msgpackr falls back to JavaScript, as it does wherever the prebuild is missing.
      b.onResolve({ filter: /^node-gyp-build-optional-packages$/ }, (a) => ({
        path: /[\\/]lmdb[\\/]/.test(a.importer) ? 'lmdb' : 'absent', namespace: 'herd-native',
      }));
      // Other optional modules (ssh2's sshcrypto.node and cpu-features, debug's supports-color,
      // systeminformation's macOS sensors): the callers catch the throw and do without.
      b.onResolve({ filter: /\.node$|^(cpu-features|supports-color|osx-temperature-sensor|macos-temperature-sensor)$/ }, () => ({ path: 'absent', namespace: 'herd-native' }));
      b.onLoad({ filter: /.*/, namespace: 'herd-native' }, (a) => ({
        resolveDir: ROOT,
        loader: 'js',
        contents: a.path === 'lmdb'
          ? `module.exports = () => require(${NATIVES}).loadAddon('lmdb', 'lmdb.node');`
          : `throw new Error('optional native module not part of the herd executable');`,
      }));

      // jsonc-parser's main entry is a UMD build whose require() of its own files esbuild cannot
      // follow (the SEA would then ask for './impl/format' as a builtin): take its ESM build.
      b.onResolve({ filter: /^jsonc-parser$/ }, () => ({ path: join(packageDir('jsonc-parser'), 'lib', 'esm', 'main.js') }));

      // protobufjs' inquire (1.1.2) calls require(name) for its optional modules ("buffer", "long"):
      // inside a SEA only builtins load, so it answers "buffer" and nothing else, as the older
      // eval-based inquire did there.
      b.onLoad({ filter: /[\\/]@protobufjs[\\/]inquire[\\/]index\.js$/ }, () => ({
        loader: 'js',
        contents: `module.exports = function inquire(name) { return name === 'buffer' ? require('buffer') : null; };`,
      }));

      b.onLoad({ filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        const re = /require\(`\.\.\/bin\/napi-v6\/\$\{process\.platform\}\/\$\{process\.arch\}\/onnxruntime_binding\.node`\)/;
        return { loader: 'js', contents: patch(a.path, src, re, `require(${NATIVES}).loadAddon('onnxruntime', 'onnxruntime_binding.node')`, 'the binding require') };
      });

      // lmdb reads dict/dict.txt next to its package when compression is on: inline it.
      b.onLoad({ filter: /[\\/]lmdb[\\/]dist[\\/]index\.cjs$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        const dict = readFileSync(join(packageDir('lmdb'), 'dict/dict.txt')).toString('base64');
        const re = /fs\.readFileSync\(\s*new URL\(\s*'\.\/dict\/dict\.txt',[\s\S]*?\),\s*\),\s*\)/;
        return { loader: 'js', contents: patch(a.path, src, re, `Buffer.from(${JSON.stringify(dict)}, 'base64')`, 'dict.txt') };
      });

      // Packages that load their .proto files relative to __dirname: give them the directory
      // where the executable extracted a copy of their proto/ tree (build/sea.mjs embeds it).
      for (const { pkg, files } of PROTO_PACKAGES) {
        b.onLoad({ filter: files }, (a) => {
          const src = readFileSync(a.path, 'utf8');
          const rel = relative(packageDir(pkg), dirname(a.path));
          const dir = `(require(${NATIVES}).seaExtractor().group('proto') + ${JSON.stringify(`/${pkg}/${rel}`)})`;
          return { loader: 'js', contents: patch(a.path, src, /\b__dirname\b/g, dir, 'proto directory') };
        });
      }
    },
  };
}
