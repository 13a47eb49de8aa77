/**
 * Memory pages straight to the target (docs/migration.md#pages-straight-to-the-target): the
 * source's CRIU dump sends the pages to a CRIU page server on the target as it reads them, so
 * they are written once, on the target's image tmpfs, instead of dumped, hashed, served and
 * fetched (the 200 MB case spent 3.3 s of its 5.1 s downtime in that transfer).
 *
 * - target: `criu page-server --daemon` into the migration's staging dir, over mutual TLS with
 *   the node's certificate (every byte authenticated by TLS's AEAD records: invariant 4);
 * - source: containerd's CheckpointOptions cannot say "page server", but runc hands CRIU a
 *   config file whose settings overwrite the RPC's: the one named by the container's
 *   `org.criu.config` annotation, which runc reads from the labels in its state.json. The label
 *   is added for this one dump and taken away after it, so nothing host-wide changes.
 * - the dump leaves the source's processes stopped (CRIU leave-stopped, the task not exited):
 *   the pages are on the target only, so a rollback is SIGCONT of the stopped processes, not a
 *   restore, and the success path removes the stopped container.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RuntimeError } from './runtime';

/** Paths of the node's TLS material (PEM), as CRIU's --tls-* options take them. */
export interface PageServerTls { ca: string; cert: string; key: string }

/** The node's TLS files under its data dir, or undefined when the node runs without TLS (--insecure). */
export function nodeTlsFiles(dataDir: string): PageServerTls | undefined {
  const dir = path.resolve(dataDir, 'tls'); // CRIU reads them after changing its directory
  const files = { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'node.crt'), key: path.join(dir, 'node.key') };
  return Object.values(files).every((f) => fs.existsSync(f)) ? files : undefined;
}

/** CRIU's options for TLS with the node's files (both sides; the server also requires the client's). */
export function tlsOptions(t: PageServerTls): string[] {
  // Peers are dialled by IP and node certificates name nodes, not always their addresses:
  // the CA (the cluster's) is what is checked, as for every other peer connection.
  return ['tls', `tls-cacert ${t.ca}`, `tls-cert ${t.cert}`, `tls-key ${t.key}`, 'tls-no-cn-verify'];
}

/** The CRIU config file lines of a dump to a page server (pure). `base`: the node's runc.conf lines, kept. */
export function dumpConfig(host: string, port: number, tls: PageServerTls, base: string[] = []): string {
  if (!net.isIP(host)) throw new RuntimeError(`page server host ${host} is not an IP address`, 'INVALID_ARGUMENT');
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new RuntimeError(`page server port ${port} is not a TCP port`, 'INVALID_ARGUMENT');
  const own = new Set(['page-server', 'address', 'port', 'leave-stopped', 'leave-running', 'tls', 'tls-cacert', 'tls-cert', 'tls-key', 'tls-no-cn-verify']);
  const kept = base.map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !own.has(l.replace(/^--/, '').split(/\s+/)[0]));
  return [...kept, 'page-server', `address ${host}`, `port ${port}`, 'leave-stopped', ...tlsOptions(tls)].join('\n') + '\n';
}

export const CRIU_CONFIG_LABEL = 'org.criu.config';

/**
 * Adds `org.criu.config=<file>` to the labels runc keeps in the container's state.json (runc
 * reads them as the container's annotations at checkpoint); returns the undo. Written by
 * rename, as runc writes it.
 */
export function withCriuConfigLabel(stateJson: string, configFile: string): () => void {
  let raw: string;
  try {
    raw = fs.readFileSync(stateJson, 'utf8');
  } catch (err) {
    throw new RuntimeError(`runc's state of the container cannot be read (${stateJson}): ${(err as Error).message}`, 'FAILED_PRECONDITION');
  }
  const state = JSON.parse(raw) as { config?: { labels?: string[] } };
  if (!state.config) throw new RuntimeError(`${stateJson} has no config: not runc's state file`, 'FAILED_PRECONDITION');
  const labels = (state.config.labels ?? []).filter((l) => !l.startsWith(`${CRIU_CONFIG_LABEL}=`));
  state.config.labels = [...labels, `${CRIU_CONFIG_LABEL}=${configFile}`];
  const write = (text: string) => {
    const tmp = `${stateJson}.herd`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, stateJson);
  };
  write(JSON.stringify(state));
  return () => {
    // after a dump that left the container stopped the file is still there; after one that ended it, gone
    if (!fs.existsSync(stateJson)) return;
    const now = JSON.parse(fs.readFileSync(stateJson, 'utf8')) as { config?: { labels?: string[] } };
    if (now.config) now.config.labels = (now.config.labels ?? []).filter((l) => l !== `${CRIU_CONFIG_LABEL}=${configFile}`);
    write(JSON.stringify(now));
  };
}

/**
 * Takes away any `org.criu.config` label from runc's state: one left by an agent killed while
 * its page-server dump ran would point every later dump of the container at a removed file
 * (runc then passes CRIU no config: the node's runc.conf would be ignored). Returns whether
 * there was one. A missing state file (the container is not running) has none.
 */
export function dropCriuConfigLabels(stateJson: string): boolean {
  let state: { config?: { labels?: string[] } };
  try {
    state = JSON.parse(fs.readFileSync(stateJson, 'utf8'));
  } catch {
    return false;
  }
  const labels = state.config?.labels ?? [];
  const kept = labels.filter((l) => !l.startsWith(`${CRIU_CONFIG_LABEL}=`));
  if (kept.length === labels.length || !state.config) return false;
  state.config.labels = kept;
  const tmp = `${stateJson}.herd`;
  fs.writeFileSync(tmp, JSON.stringify(state));
  fs.renameSync(tmp, stateJson);
  return true;
}

/** A free TCP port on this node (the kernel's pick; the page server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningPageServer { pid: number; port: number }

/**
 * Starts `criu page-server` writing into imagesDir (created), over TLS. It daemonizes once it
 * listens, so its start returning means the source may connect; it exits by itself when the
 * dump's session ends.
 */
export async function startPageServer(imagesDir: string, tls: PageServerTls, port?: number): Promise<RunningPageServer> {
  fs.mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
  const p = port ?? (await freePort());
  const pidFile = `${imagesDir}.page-server.pid`;
  fs.rmSync(pidFile, { force: true });
  const args = ['page-server', '--images-dir', imagesDir, '--port', String(p), '--daemon', '--pidfile', pidFile,
    '--log-file', `${imagesDir}.page-server.log`, '-v2', ...tlsOptions(tls).map((o) => `--${o.replace(' ', '=')}`)];
  await new Promise<void>((resolve, reject) => execFile('criu', args, { timeout: 10_000 }, (err, _o, stderr) =>
    err ? reject(new RuntimeError(`criu page-server did not start: ${stderr.trim() || err.message}${logTail(`${imagesDir}.page-server.log`)}`, 'FAILED_PRECONDITION')) : resolve()));
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  if (!pid) throw new RuntimeError(`criu page-server wrote no pid to ${pidFile}`, 'INTERNAL');
  return { pid, port: p };
}

function logTail(file: string): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => /Error|rror \(/.test(l));
    return lines.length ? ` (CRIU: ${lines.slice(-3).join(' | ')})` : '';
  } catch {
    return '';
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether pid is (still) a criu page server: a pid from a journal may have been reused. */
export function isPageServer(pid: number): boolean {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.some((a) => /criu$/.test(a)) && args.includes('page-server');
  } catch {
    return false;
  }
}

/**
 * Waits until the page server has written the last page and exited (the dump ends only after
 * the page server has flushed its images, so this is short). Its log's error lines if it failed.
 */
export async function pageServerDone(imagesDir: string, pid: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (alive(pid) && isPageServer(pid)) {
    if (Date.now() > until) throw new RuntimeError(`the page server (pid ${pid}) still runs ${timeoutMs} ms after the dump ended`, 'UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 5));
  }
  const errs = logTail(`${imagesDir}.page-server.log`);
  if (errs) throw new RuntimeError(`the page server failed${errs}`, 'FAILED_PRECONDITION');
  if (!fs.readdirSync(imagesDir).some((f) => /^pagemap-\d+\.img$/.test(f))) {
    throw new RuntimeError(`the page server wrote no page map into ${imagesDir}: the source's dump never reached it`, 'FAILED_PRECONDITION');
  }
}

/** Stops a page server that is still waiting (an abort), and removes its files beside imagesDir. */
export function stopPageServer(imagesDir: string, pid?: number): void {
  if (pid && alive(pid) && isPageServer(pid)) process.kill(pid, 'SIGKILL');
  for (const f of ['.page-server.pid', '.page-server.log']) fs.rmSync(`${imagesDir}${f}`, { force: true });
}

/** The pid read from the page server's pid file beside imagesDir, if any. */
export function pageServerPid(imagesDir: string): number | undefined {
  try {
    return Number(fs.readFileSync(`${imagesDir}.page-server.pid`, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGCONT to every stopped process of a container (the init pid and its descendants): what a
 * dump with leave-stopped left. Returns how many were stopped. Harmless on running ones.
 * `all`: to every process of it, whatever /proc says (a frozen one shows D, not T).
 */
export function continueStopped(initPid: number, procDir = '/proc', all = false): number {
  if (!initPid) return 0;
  const parent = new Map<number, number>();
  const state = new Map<number, string>();
  for (const d of fs.readdirSync(procDir)) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(path.join(procDir, d, 'stat'), 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      state.set(Number(d), rest[0]);
      parent.set(Number(d), Number(rest[1]));
    } catch { /* gone */ }
  }
  const inside = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 4096; p = parent.get(p) ?? 0, hops++) if (p === initPid) return true;
    return false;
  };
  let n = 0;
  for (const [pid, s] of state) {
    if ((s !== 'T' && !all) || !inside(pid)) continue;
    try {
      process.kill(pid, 'SIGCONT');
      n++;
    } catch { /* gone */ }
  }
  return n;
}
