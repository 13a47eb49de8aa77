// `npm run build`: dist/herd-linux-x64 and dist/herd-linux-arm64, each one file (Node SEA:
// the official Node binary with the bundle, the .proto files and the native addons injected),
// plus dist/SHA256SUMS. Inputs: the sources, package-lock.json (npm ci) and the pins of
// build/node-binaries.json; nothing is fetched but npm packages. docs/packaging.md explains.
//
//   node build/sea.mjs [--arch x64,arm64] [--out dist] [--force]
//
// A build whose inputs hash to the one recorded in <out>/sea/stamp.json is skipped (the tests
// call this before every use of the executables).
import { build } from 'esbuild';
import { forecastWorkerDefine } from './forecast-worker.mjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { stripElf } from './elf-strip.mjs';
import { lmdbAddon, nodeBinary, PINS, postjectApi, ROOT, sha256 } from './fetch.mjs';
import { packageDir, PROTO_PACKAGES, seaPlugin } from './sea-plugin.mjs';
import { stubsPlugin } from './stubs.mjs';

const { values: opt } = parseArgs({ options: { arch: { type: 'string', default: 'x64,arm64' }, out: { type: 'string', default: join(ROOT, 'dist') }, force: { type: 'boolean', default: false } } });
const ARCHS = opt.arch.split(',');
for (const a of ARCHS) if (!PINS.node[`linux-${a}`]) throw new Error(`--arch ${a}: no pinned Node binary (build/node-binaries.json has ${Object.keys(PINS.node).filter((k) => k !== 'version')})`);
const OUT = opt.out;
const WORK = join(OUT, 'sea');
const CACHE = process.env.HERD_BUILD_CACHE || join(homedir(), '.cache', 'herd-build');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const t0 = Date.now();
const say = (m) => console.log(`[sea ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)])).sort();
}

const buildScripts = () => sha256(Buffer.concat(walk(join(ROOT, 'build')).map((f) => readFileSync(f))));
const scriptsAtStart = buildScripts(); // what this process runs; compared again once it holds the lock

// ---------------------------------------------------------------- one build at a time per out dir
// (test files of several developers, or CI, may call this at once)
mkdirSync(OUT, { recursive: true });
const LOCK = join(OUT, '.sea.lock');
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
for (let waited = 0; ; waited += 500) {
  try {
    writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
    break;
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
    const holder = Number(readFileSync(LOCK, 'utf8') || 0);
    if (holder && !alive(holder)) { rmSync(LOCK, { force: true }); continue; } // left by a killed build
    if (waited === 0) say(`waiting for the build of pid ${holder} to finish`);
    if (waited > 900_000) throw new Error(`${LOCK} held by pid ${holder} for 15 minutes`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
process.on('exit', () => { try { if (readFileSync(LOCK, 'utf8') === String(process.pid)) rmSync(LOCK); } catch { /* gone */ } });
if (buildScripts() !== scriptsAtStart) {
  // build/ changed while this process waited: the stamp would credit new scripts with old output
  rmSync(LOCK, { force: true });
  say('build/ changed while waiting; starting over with the new scripts');
  const r = spawnSync(process.execPath, process.argv.slice(1), { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// ---------------------------------------------------------------- up to date?
const inputFiles = [
  'package.json', 'package-lock.json', 'tsconfig.json',
  ...['build', 'agent', 'coordinator', 'common', 'cli', 'proto'].flatMap((d) => walk(join(ROOT, d)).map((f) => relative(ROOT, f))),
];
const inputHash = sha256(Buffer.concat(inputFiles.flatMap((f) => [Buffer.from(`\0${f}\0`), readFileSync(join(ROOT, f))])));
const stampFile = join(WORK, 'stamp.json');
const outputs = ARCHS.map((a) => join(OUT, `herd-linux-${a}`));
if (!opt.force && existsSync(stampFile)) {
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
  const fresh = stamp.inputHash === inputHash && ARCHS.every((a) => stamp.sha256?.[a] && existsSync(join(OUT, `herd-linux-${a}`)) && statSync(join(OUT, `herd-linux-${a}`)).size === stamp.size[a]);
  if (fresh) {
    say(`up to date (inputs ${inputHash.slice(0, 12)}): ${outputs.map((o) => relative(process.cwd(), o)).join(' ')}`);
    process.exit(0);
  }
}
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

// ---------------------------------------------------------------- 1. one bundle for both arches
const entry = `require(${JSON.stringify(join(ROOT, 'common/natives.ts'))}).preflight(process.argv);\nrequire(${JSON.stringify(join(ROOT, 'cli/herd.ts'))});\n`;
const bundlePath = join(WORK, 'herd.cjs');
const result = await build({
  stdin: { contents: entry, resolveDir: ROOT, sourcefile: 'sea-entry.js', loader: 'js' },
  absWorkingDir: ROOT, // module ids in the bundle are paths relative to this: keep them independent of the cwd
  outfile: bundlePath,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // whitespace and syntax only: stack traces keep their function names
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  define: { HERD_VERSION: JSON.stringify(pkg.version), ...forecastWorkerDefine() },
  external: ['bun:ffi'], // lmdb's Bun-only branch
  plugins: [stubsPlugin(), seaPlugin()],
  metafile: true,
  logLevel: 'error',
});
// Inside a SEA require() loads builtins only: anything else left unbundled would fail at run time.
const leftovers = [...new Set(Object.values(result.metafile.outputs).flatMap((o) => o.imports)
  .filter((i) => i.external && !isBuiltin(i.path) && i.path !== 'bun:ffi').map((i) => i.path))];
if (leftovers.length) throw new Error(`non-builtin modules left unbundled: ${leftovers.join(', ')}; bundle them or stub them in build/sea-plugin.mjs`);
const bundled = readFileSync(bundlePath, 'utf8');
// require() calls with a computed name do not show in the metafile: there must be none
// (lmdb's require('u' + 'rl') is folded to 'url' by minifySyntax)
const dynamic = [...new Set([...bundled.matchAll(/\brequire\(([^)"'`][^)]*)\)/g)].map((m) => m[1]))];
if (dynamic.length) throw new Error(`require() calls with a computed name in the bundle, which a SEA cannot serve: ${dynamic.slice(0, 5).join('; ')}`);
say(`bundle ${(bundled.length / 1e6).toFixed(2)} MB`);

// ---------------------------------------------------------------- 2. files each executable carries
const brotli = promisify(zlib.brotliCompress);
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 9, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } };

function protoFiles() {
  const files = {};
  for (const f of walk(join(ROOT, 'proto'))) files[`proto/${relative(join(ROOT, 'proto'), f)}`] = readFileSync(f);
  // only for the packages that made it into the bundle
  const inputs = Object.keys(result.metafile.inputs).join('\n');
  for (const { pkg: p, dirs } of PROTO_PACKAGES.filter((x) => inputs.includes(`node_modules/${x.pkg}/`))) {
    for (const d of dirs) for (const f of walk(join(packageDir(p), d))) if (f.endsWith('.proto')) files[`${p}/${relative(packageDir(p), f)}`] = readFileSync(f);
  }
  return files;
}

function nativeFiles(arch) {
  const ort = join(packageDir('onnxruntime-node'), 'bin/napi-v6/linux', arch);
  const strip = (f) => stripElf(readFileSync(f), f).out; // debug info: 2.8 MB of lmdb's 3.6
  return {
    lmdb: { 'lmdb.node': strip(lmdbAddon(arch, CACHE)) },
    onnxruntime: { 'onnxruntime_binding.node': strip(join(ort, 'onnxruntime_binding.node')), 'libonnxruntime.so.1': readFileSync(join(ort, 'libonnxruntime.so.1')) },
  };
}

async function stageAssets(arch) {
  const dir = join(WORK, arch);
  mkdirSync(join(dir, 'assets'), { recursive: true });
  const groups = { proto: protoFiles(), ...nativeFiles(arch) };
  const manifest = { version: pkg.version, platform: 'linux', arch, groups: {} };
  const assets = {};
  for (const [group, files] of Object.entries(groups)) {
    const entries = {};
    await Promise.all(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)).map(async ([rel, data], i) => {
      const native = group !== 'proto';
      const stored = native ? await brotli(data, { ...BROTLI, params: { ...BROTLI.params, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }) : data;
      const asset = `files/${group}/${rel}`;
      const file = join(dir, 'assets', `${group}.${i}`);
      writeFileSync(file, stored);
      assets[asset] = relative(WORK, file);
      entries[rel] = { asset, sha256: sha256(data), size: data.length, encoding: native ? 'br' : 'raw', mode: native ? 0o755 : 0o644 };
    }));
    const sorted = Object.fromEntries(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1)));
    const key = sha256(Buffer.from(JSON.stringify(Object.entries(sorted).map(([r, e]) => [r, e.sha256, e.mode])))).slice(0, 16);
    manifest.groups[group] = { key, files: sorted };
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  assets['manifest.json'] = relative(WORK, join(dir, 'manifest.json'));
  const config = {
    // paths relative to WORK, where the generator runs: the blob records the main script's
    // path, and an absolute one would make the bytes depend on the checkout's location
    main: relative(WORK, bundlePath),
    output: relative(WORK, join(dir, 'sea-prep.blob')),
    disableExperimentalSEAWarning: true,
    // A snapshot or code cache is V8- and CPU-specific; the blob is made on the build host.
    useSnapshot: false,
    useCodeCache: false,
    assets: Object.fromEntries(Object.entries(assets).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
  writeFileSync(join(dir, 'sea-config.json'), JSON.stringify(config, null, 1));
  return dir;
}

// ---------------------------------------------------------------- 3. blob -> copy of Node
const hostArch = process.arch;
if (!PINS.node[`linux-${hostArch}`]) throw new Error(`cannot build on ${hostArch}: the SEA blob needs a pinned Node ${PINS.node.version} for this machine`);
const generator = nodeBinary(hostArch, CACHE); // must be the very Node version the executables run
const { inject } = await import(postjectApi(CACHE));
const dirs = {};
await Promise.all(ARCHS.map(async (a) => { dirs[a] = await stageAssets(a); }));
say('assets staged');
const sums = {};
const sizes = {};
for (const arch of ARCHS) {
  const dir = dirs[arch];
  execFileSync(generator, ['--experimental-sea-config', join(dir, 'sea-config.json')], { cwd: WORK, stdio: ['ignore', 'ignore', 'inherit'] });
  // Symbols and DWARF of Node itself: 14 MB, never loaded; without them arm64 stays under 100 MB.
  const exe = join(dir, `herd-linux-${arch}`);
  writeFileSync(exe, stripElf(readFileSync(nodeBinary(arch, CACHE)), `node-linux-${arch}`).out, { mode: 0o755 });
  await inject(exe, 'NODE_SEA_BLOB', readFileSync(join(dir, 'sea-prep.blob')), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
  const bytes = readFileSync(exe);
  sums[arch] = sha256(bytes);
  sizes[arch] = bytes.length;
  say(`herd-linux-${arch}: ${(bytes.length / 1e6).toFixed(1)} MB`);
}

// ---------------------------------------------------------------- 4. check, publish, record
const own = join(dirs[hostArch] ?? '', `herd-linux-${hostArch}`);
if (dirs[hostArch]) {
  const v = execFileSync(own, ['--version'], { encoding: 'utf8', env: { ...process.env, HERD_CACHE_DIR: join(WORK, 'cache') } }).trim();
  if (v !== pkg.version) throw new Error(`the built executable says "${v}" to --version, expected ${pkg.version}`);
}
for (const a of ARCHS) renameSync(join(dirs[a], `herd-linux-${a}`), join(OUT, `herd-linux-${a}`)); // same filesystem: atomic
// SHA256SUMS lists every executable in OUT (an --arch build keeps the other arch's line)
const sumsFile = join(OUT, 'SHA256SUMS');
const lines = new Map(existsSync(sumsFile) ? readFileSync(sumsFile, 'utf8').split('\n').filter(Boolean).map((l) => [l.split(/\s+/)[1], l]) : []);
for (const a of ARCHS) lines.set(`herd-linux-${a}`, `${sums[a]}  herd-linux-${a}`);
writeFileSync(sumsFile, [...lines.keys()].sort().map((k) => lines.get(k)).join('\n') + '\n');
writeFileSync(stampFile, JSON.stringify({ inputHash, node: PINS.node.version, sha256: sums, size: sizes }, null, 1));
// assets/ stays: test/integration/package.test.ts damages a copy of one inside an executable
for (const a of ARCHS) rmSync(join(dirs[a], 'sea-prep.blob'), { force: true });
say(`done: ${ARCHS.map((a) => `herd-linux-${a} ${sums[a].slice(0, 12)}`).join(', ')}; ${relative(process.cwd(), sumsFile)}`);
