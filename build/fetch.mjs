// Pinned npm tarballs for the executable build: the Node binaries, postject, and the lmdb
// prebuild of the other architecture (npm installs only the host's). Only the npm registry
// is used, through `npm pack`, and every tarball is checked against a pinned integrity
// (build/node-binaries.json, or package-lock.json for lmdb) before it is unpacked.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const PINS = JSON.parse(readFileSync(join(ROOT, 'build/node-binaries.json'), 'utf8'));
const LOCK = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

function checkIntegrity(file, integrity) {
  const [algo, want] = integrity.split('-', 2);
  const got = createHash(algo).update(readFileSync(file)).digest('base64');
  if (got !== want) throw new Error(`${file}: ${algo} is ${got}, pinned ${want}: refusing to use it`);
}

/**
 * The unpacked package dir (`package/` of the tarball) of name@version, cached under cacheDir.
 * A cached dir is only trusted when it was renamed into place after its check passed.
 */
export function fetchPackage(name, version, integrity, cacheDir) {
  const dir = join(cacheDir, `${name.replace('/', '+')}-${version}`);
  if (existsSync(join(dir, '.verified'))) return join(dir, 'package');
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const out = execFileSync('npm', ['pack', `${name}@${version}`, '--pack-destination', tmp, '--json', '--loglevel=error'], {
    encoding: 'utf8', env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' },
  });
  const tgz = join(tmp, JSON.parse(out)[0].filename);
  checkIntegrity(tgz, integrity);
  execFileSync('tar', ['-xzf', tgz, '-C', tmp, '--no-same-owner']);
  rmSync(tgz);
  execFileSync('touch', [join(tmp, '.verified')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return join(dir, 'package');
}

/** Path of the pinned official Node binary for an arch (x64, arm64), hash-checked. */
export function nodeBinary(arch, cacheDir) {
  const pin = PINS.node[`linux-${arch}`];
  if (!pin) throw new Error(`no pinned Node binary for linux-${arch} in build/node-binaries.json`);
  const bin = join(fetchPackage(pin.package, PINS.node.version, pin.integrity, cacheDir), 'bin/node');
  const got = sha256(readFileSync(bin));
  if (got !== pin.sha256) throw new Error(`${bin}: sha256 ${got}, pinned ${pin.sha256}`);
  return bin;
}

/** postject's API module (inject), pinned. */
export function postjectApi(cacheDir) {
  const p = PINS.postject;
  return join(fetchPackage(p.package, p.version, p.integrity, cacheDir), 'dist/api.js');
}

/** The lmdb N-API prebuild for an arch, at the version and integrity package-lock.json pins. */
export function lmdbAddon(arch, cacheDir) {
  const version = LOCK.packages['node_modules/lmdb']?.version;
  const entry = LOCK.packages[`node_modules/@lmdb/lmdb-linux-${arch}`];
  if (!version || !entry?.integrity) throw new Error(`package-lock.json does not pin lmdb and @lmdb/lmdb-linux-${arch}`);
  if (entry.version !== version) throw new Error(`package-lock.json: lmdb ${version} but @lmdb/lmdb-linux-${arch} ${entry.version}`);
  return join(fetchPackage(`@lmdb/lmdb-linux-${arch}`, version, entry.integrity, cacheDir), 'node.napi.glibc.node');
}
