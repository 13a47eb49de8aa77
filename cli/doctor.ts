/**
 * `herd doctor`: checks what this node needs, says what is missing and how to fix it.
 * Exit code 0: the node can run the agent and migrate containers (warnings allowed);
 * 1: it cannot. Every probe is injectable so that the verdicts are unit-tested without a
 * broken machine at hand (test/unit/doctor.test.ts); the defaults probe for real.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, parseSettings, readConfigFile, type Settings } from '../agent/config';
import { glibcVersion, isSea, seaExtractor } from '../common/natives';
import { VERSION } from '../common/version';
import { TMPFS_MAGIC } from '../agent/runtime/criu';
import { controllerReport, MEMORY_FIX } from '../agent/collectors/cgroup-controllers';

export { TMPFS_MAGIC };
import { mergeFlags } from './flags';

export type Status = 'ok' | 'warn' | 'fail';
export interface Check { id: string; status: Status; summary: string; fix?: string; data?: Record<string, unknown> }
export interface Report { version: string; node: string; platform: string; arch: string; sea: boolean; canMigrate: boolean; checks: Check[] }
export interface ExecResult { code: number; stdout: string; stderr: string }

export interface Probes {
  exec(cmd: string, args: string[], timeoutMs?: number): Promise<ExecResult>;
  docker(socket: string): { info(): Promise<any>; version(): Promise<any> };
  httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }>;
  now(): number;
  glibc(): string;
  pageSize(): number;
  readText(file: string): string | undefined;
  /** Extracts (and so verifies) every file the executable carries; null outside one. */
  embedded(): string[] | null;
  /** statfs(2)'s f_type of the file system holding dir; undefined if it cannot be read. */
  fsType(dir: string): number | undefined;
  /** Free bytes (for an unprivileged user) on the file system holding dir; undefined if unknown. */
  freeBytes?(dir: string): number | undefined;
}


export const MIN_GLIBC = '2.34'; // lmdb 3.5's prebuilt addon links against GLIBC_2.34
const EARLIEST = Date.UTC(2025, 0, 1); // a Pi without RTC or network boots with a clock far behind

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return Math.sign(d);
  }
  return 0;
}

const ok = (id: string, summary: string, data?: Record<string, unknown>): Check => ({ id, status: 'ok', summary, data });
const warn = (id: string, summary: string, fix?: string, data?: Record<string, unknown>): Check => ({ id, status: 'warn', summary, fix, data });
const fail = (id: string, summary: string, fix?: string, data?: Record<string, unknown>): Check => ({ id, status: 'fail', summary, fix, data });
const why = (e: unknown): string => {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause; // fetch hides the reason there
  const msg = e instanceof Error ? e.message : String(e);
  return cause ? `${msg}: ${cause.code ?? cause.message}` : msg;
};

export async function checkDocker(s: Settings, p: Probes): Promise<Check[]> {
  let info: any;
  let version: any;
  try {
    const d = p.docker(s.dockerSocket);
    [info, version] = await Promise.all([d.info(), d.version()]);
  } catch (e) {
    return [fail('docker', `Docker is not reachable at ${s.dockerSocket}: ${why(e)}`, `install Docker (apt-get install docker.io), start it (systemctl enable --now docker), and check that this user may use ${s.dockerSocket} (root, or the docker group)`)];
  }
  const out = [ok('docker', `Docker ${version.Version} (API ${version.ApiVersion}) at ${s.dockerSocket}`, { version: version.Version, api: version.ApiVersion })];
  const experimental = info.ExperimentalBuild === true || version.Experimental === true;
  out.push(experimental
    ? ok('docker-experimental', 'Docker runs in experimental mode (docker checkpoint is available)')
    : fail('docker-experimental', 'Docker does not run in experimental mode: docker checkpoint, which migrations use, is off', 'add "experimental": true to /etc/docker/daemon.json, then systemctl restart docker'));
  return out;
}

export async function checkCriu(p: Probes): Promise<Check[]> {
  const v = await p.exec('criu', ['--version'], 10_000);
  if (v.code !== 0) {
    return [fail('criu', `CRIU is not installed (or not in PATH): ${(v.stderr || v.stdout).trim() || `exit ${v.code}`}`, 'apt-get install criu (Debian and Raspberry Pi OS bookworm); runc finds it through dockerd\'s PATH')];
  }
  const version = /Version:\s*(\S+)/.exec(v.stdout)?.[1] ?? v.stdout.trim();
  const c = await p.exec('criu', ['check'], 30_000);
  const text = `${c.stdout}\n${c.stderr}`;
  if (c.code === 0 && /Looks good/.test(text)) return [ok('criu', `CRIU ${version}: criu check passes`, { version }), checkCriuCache(p)];
  const errors = text.split('\n').filter((l) => /error|fail|warn/i.test(l)).slice(0, 3).join('; ');
  if (/must be run as root|Permission denied|EPERM|CAP_SYS_ADMIN/i.test(text) && process.getuid?.() !== 0) {
    return [warn('criu', `CRIU ${version} is installed, but criu check needs root`, 'run sudo herd doctor to check it', { version })];
  }
  return [fail('criu', `CRIU ${version}: criu check fails${errors ? `: ${errors}` : ''}`, 'criu check lists what the kernel lacks; CRIU older than the kernel often fails: install a newer criu (on Debian, from backports or the next release)', { version })];
}

/**
 * CRIU probes the kernel (kerndat) at every dump and restore unless it can keep the result
 * in /run/criu.kdat, which it does only when /run is a tmpfs (as on systemd hosts). Without
 * the cache each checkpoint and each restore pays the probe again: 15-20 ms on the dev VM,
 * inside a migration's downtime.
 */
export function checkCriuCache(p: Probes): Check {
  const type = p.fsType('/run');
  if (type === TMPFS_MAGIC) return ok('criu-cache', '/run is a tmpfs: CRIU keeps its kernel probe in /run/criu.kdat');
  return warn(
    'criu-cache',
    `/run is ${type === undefined ? 'missing or unreadable' : 'not a tmpfs'}: CRIU probes the kernel again at every checkpoint and restore (15-20 ms each, inside a migration's downtime)`,
    'mount a tmpfs on /run at boot, as systemd does (fstab: tmpfs /run tmpfs nosuid,nodev,mode=755 0 0)',
    { fsType: type },
  );
}

export function checkCgroups(s: Settings, p: Probes): Check[] {
  const r = controllerReport(s.cgroupRoot, (f) => p.readText(f));
  const { layout, have, missing } = r;
  if (layout === 'none') return [fail('cgroups', `no cgroup filesystem at ${s.cgroupRoot}`, 'mount cgroup2 at /sys/fs/cgroup (systemd does), or pass --cgroup-root')];
  if (missing.length === 0) return [ok('cgroups', `cgroup ${layout}, controllers ${have.join(' ')}`, { layout, controllers: have })];
  const why = missing.includes('memory') && r.memoryDisabledAtBoot ? ' (the kernel command line has cgroup_disable=memory, a Raspberry Pi\'s default)' : '';
  return [warn('cgroups', `cgroup ${layout} lacks ${missing.join(', ')}: container ${missing.join('/')} metrics will be missing${why}`, missing.includes('memory') && r.memoryDisabledAtBoot ? MEMORY_FIX : 'enable the controllers (cgroup v2: they must be listed in cgroup.subtree_control up to Docker\'s cgroup)', { layout, controllers: have })];
}

export async function checkPcp(s: Settings, p: Probes): Promise<Check[]> {
  if (!s.pmproxyUrl) return [ok('pcp', 'PCP is turned off (pmproxyUrl "")')];
  try {
    const r = await p.httpGet(`${s.pmproxyUrl.replace(/\/$/, '')}/pmapi/context?hostspec=localhost&polltimeout=10`, 3000);
    if (r.status === 200 && /"context"/.test(r.body)) return [ok('pcp', `PCP pmproxy answers at ${s.pmproxyUrl}`)];
    return [warn('pcp', `${s.pmproxyUrl} answers HTTP ${r.status}, not like pmproxy`, 'check pmproxyUrl; PCP metrics are optional')];
  } catch (e) {
    return [warn('pcp', `PCP pmproxy is not reachable at ${s.pmproxyUrl} (${why(e)}): PCP metrics will be missing`, 'apt-get install pcp, systemctl enable --now pmcd pmproxy; or set pmproxyUrl to "" to turn PCP off')];
  }
}

export function checkPlatform(p: Probes): Check[] {
  const out: Check[] = [];
  const g = p.glibc();
  if (!g) out.push(fail('glibc', 'this system does not use glibc (musl?): herd\'s executables need glibc', 'use a glibc distribution: Debian 12, Raspberry Pi OS bookworm'));
  else if (compareVersions(g, MIN_GLIBC) < 0) out.push(fail('glibc', `glibc ${g} is older than ${MIN_GLIBC}, which herd's LMDB addon needs`, 'upgrade to Debian 12 bookworm / Raspberry Pi OS bookworm (64-bit) or later (bullseye has 2.31)', { glibc: g }));
  else out.push(ok('glibc', `glibc ${g} (>= ${MIN_GLIBC})`, { glibc: g }));
  const page = p.pageSize();
  if (page && page !== 4096) {
    out.push(warn('page-size', `the kernel uses ${page / 1024} KiB pages: CRIU images move only between nodes of the same page size`, 'on a Raspberry Pi 5 boot the 4 KiB kernel: kernel=kernel8.img in /boot/firmware/config.txt', { pageSize: page }));
  } else if (page) {
    out.push(ok('page-size', '4 KiB pages', { pageSize: page }));
  }
  return out;
}

/**
 * Free space for the store: below the reserve the node stores no sample rounds (and LMDB
 * must not be tried: common/storage.ts); below four reserves it warns.
 */
export function checkDataSpace(s: Settings, p: Probes): Check[] {
  const dir = existingParent(s.dataDir);
  const free = p.freeBytes?.(dir);
  const reserve = s.retention.minFreeBytes;
  const data = { dataDir: s.dataDir, freeBytes: free, minFreeBytes: reserve };
  if (free === undefined) return [warn('data-space', `cannot tell the free space of the file system holding ${s.dataDir}`, 'check it by hand: df -h ' + s.dataDir, data)];
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  const fix = `free space on that file system (df -h ${s.dataDir}); a running node resumes storing by itself, or lower retention.minFreeBytes (--min-free-bytes)`;
  if (free < reserve) return [fail('data-space', `the file system holding ${s.dataDir} has ${mib(free)} free, below the ${mib(reserve)} reserve: the node stores no samples until there is more`, fix, data)];
  if (free < 4 * reserve) return [warn('data-space', `the file system holding ${s.dataDir} has ${mib(free)} free, close to the ${mib(reserve)} reserve`, fix, data)];
  return [ok('data-space', `${mib(free)} free for ${s.dataDir} (reserve ${mib(reserve)})`, data)];
}

function existingParent(dir: string): string {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

export async function checkDataDir(s: Settings, p?: Probes): Promise<Check[]> {
  const dir = s.dataDir;
  // No test write on a full file system: lmdb-js does not survive its own ENOSPC well.
  const free = p?.freeBytes?.(existingParent(dir));
  if (free !== undefined && free < s.retention.minFreeBytes && fs.existsSync(dir)) return [warn('data-dir', `${dir} exists; no test write there while its file system is full (see data-space)`, undefined, { dataDir: dir })];
  const scratch = path.join(dir, `.doctor-${process.pid}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(scratch);
    const { openEnv } = await import('../common/db');
    const env = openEnv(scratch, { mapSizeBytes: 16 << 20 });
    const value = { at: Date.now(), from: 'herd doctor' };
    await env.put('doctor', value);
    const back = env.get('doctor');
    await env.close();
    if (JSON.stringify(back) !== JSON.stringify(value)) throw new Error('LMDB read back something else than it wrote');
    return [ok('data-dir', `${dir} is writable; LMDB wrote and read a record there`, { dataDir: dir })];
  } catch (e) {
    return [fail('data-dir', `cannot use the data directory ${dir}: ${why(e)}`, `create it for this user (mkdir -p ${dir}; chown herd's user), or choose another with --data-dir; LMDB needs a local filesystem (not NFS)`)];
  } finally {
    try {
      fs.rmSync(scratch, { recursive: true, force: true });
    } catch {
      /* never created: the data dir itself is unusable */
    }
  }
}

/** Is the listen port free, or held by a herd agent already (which answers gRPC health)? */
export async function checkPort(s: Settings): Promise<Check[]> {
  const i = s.listen.lastIndexOf(':');
  const host = s.listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(s.listen.slice(i + 1));
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const srv = net.createServer();
    srv.once('error', (e) => resolve(e));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
  if (!err) return [ok('port', `${s.listen} is free`)];
  if (err.code === 'EADDRINUSE' && (await answersHerdHealth(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port))) {
    return [ok('port', `${s.listen} is in use by a running herd agent`)];
  }
  const fix = err.code === 'EADDRINUSE' ? `find what holds it (ss -ltnp 'sport = :${port}') or choose another with --listen` : `--listen must name an address of this host (or 0.0.0.0)`;
  return [fail('port', `cannot listen on ${s.listen}: ${err.code ?? err.message}`, fix)];
}

async function answersHerdHealth(host: string, port: number): Promise<boolean> {
  const grpc = await import('@grpc/grpc-js');
  const Client = grpc.makeGenericClientConstructor({}, 'Health');
  // The agent serves TLS unless it runs with --insecure; health needs no certificate.
  const tls = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const viaTls = await healthAnswer(Client, `${host}:${port}`, tls, { 'grpc.ssl_target_name_override': 'herd' });
  if (viaTls) return true;
  return (await healthAnswer(Client, `${host}:${port}`, grpc.credentials.createInsecure(), {})) === true;
}

async function healthAnswer(Client: any, target: string, credentials: any, options: Record<string, unknown>): Promise<boolean> {
  const c = new Client(target, credentials, options);
  const service = Buffer.from('herd.v1.Mesh');
  const req = Buffer.concat([Buffer.from([0x0a, service.length]), service]); // HealthCheckRequest{service}
  try {
    const res = await new Promise<Buffer>((resolve, reject) => c.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, req,
      { deadline: Date.now() + 2000 }, (e: unknown, r: Buffer | undefined) => (e || !r ? reject(e) : resolve(r))));
    return res.length >= 2 && res[0] === 0x08 && res[1] === 1; // status: SERVING
  } catch {
    return false;
  } finally {
    c.close();
  }
}

export async function checkClock(p: Probes): Promise<Check[]> {
  const now = p.now();
  const iso = new Date(now).toISOString();
  if (now < EARLIEST || now > Date.UTC(2100, 0, 1)) {
    return [fail('clock', `the clock says ${iso}: samples and elections would carry wrong times`, 'set the time: enable NTP (timedatectl set-ntp true); a Raspberry Pi has no battery clock')];
  }
  const r = await p.exec('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], 5000);
  if (r.code === 0 && r.stdout.trim() === 'yes') return [ok('clock', `${iso}, synchronized by NTP`)];
  if (r.code === 0) return [warn('clock', `${iso}, but not synchronized by NTP: nodes' samples may disagree on time`, 'timedatectl set-ntp true (systemd-timesyncd or chrony)')];
  return [warn('clock', `${iso}; cannot tell whether NTP keeps it synchronized (no timedatectl)`, 'make sure an NTP client runs (chrony, systemd-timesyncd)')];
}

export function checkExecutable(p: Probes): Check[] {
  try {
    const groups = p.embedded();
    if (groups === null) return [ok('executable', `herd ${VERSION} from a checkout (node ${process.version})`)];
    return [ok('executable', `herd ${VERSION} single executable; embedded files verified and extracted (${groups.join(', ')})`, { groups })];
  } catch (e) {
    return [fail('executable', why(e), 'download the executable again and check it with sha256sum -c SHA256SUMS')];
  }
}

export async function checkOnnx(modelFile?: string, input?: number[]): Promise<Check[]> {
  try {
    const { loadModel, selfCheck } = await import('../common/onnx');
    const self = await selfCheck();
    const data: Record<string, unknown> = { version: self.version, selfCheck: self.result };
    let extra = '';
    if (modelFile) {
      const model = await loadModel(fs.readFileSync(modelFile));
      try {
        const feed = input ?? [0];
        const out = await model.run({ [model.inputNames[0]]: { data: feed, dims: [1, feed.length] } });
        data.model = { file: modelFile, inputs: model.inputNames, outputs: out };
        extra = `; ${path.basename(modelFile)}: ${model.outputNames.map((n) => `${n}=[${out[n].data.join(', ')}]`).join(' ')}`;
      } finally {
        await model.close();
      }
    }
    return [ok('onnxruntime', `onnxruntime ${self.version} runs (self-check ${self.ms.toFixed(0)} ms)${extra}`, data)];
  } catch (e) {
    // the forecast is the only user, and migrations do not need it
    return [warn('onnxruntime', `onnxruntime cannot run here: ${why(e)}`, 'forecasts will be unavailable; check glibc and the cache directory (HERD_CACHE_DIR)')];
  }
}

export async function runDoctor(s: Settings, p: Probes, opts: { onnxModel?: string; onnxInput?: number[] } = {}): Promise<Report> {
  const checks = [
    ...checkExecutable(p),
    ...checkPlatform(p),
    ...(await checkDocker(s, p)),
    ...(await checkCriu(p)),
    ...checkCgroups(s, p),
    ...(await checkPcp(s, p)),
    ...checkDataSpace(s, p),
    ...(await checkDataDir(s, p)),
    ...(await checkPort(s)),
    ...(await checkClock(p)),
    ...(await checkOnnx(opts.onnxModel, opts.onnxInput)),
  ];
  return { version: VERSION, node: process.version, platform: process.platform, arch: process.arch, sea: isSea(), canMigrate: !checks.some((c) => c.status === 'fail'), checks };
}

export function formatReport(r: Report): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
  const lines = [`herd doctor ${r.version} (${r.platform}-${r.arch}${r.sea ? ', single executable' : ''})`];
  for (const c of r.checks) {
    lines.push(`  ${mark[c.status]}  ${c.id.padEnd(19)} ${c.summary}`);
    if (c.fix && c.status !== 'ok') lines.push(`        ${''.padEnd(19)} fix: ${c.fix}`);
  }
  const fails = r.checks.filter((c) => c.status === 'fail').length;
  lines.push(r.canMigrate ? 'This node can run herd and migrate containers.' : `This node cannot migrate containers: ${fails} problem${fails > 1 ? 's' : ''} above.`);
  return lines.join('\n');
}

export const realProbes: Probes = {
  exec: (cmd, args, timeoutMs = 10_000) => new Promise((resolve) => {
    // sbin dirs too: criu lives there and a user's PATH may lack them
    const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` };
    execFile(cmd, args, { timeout: timeoutMs, env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 127 ? err.message : '') });
    });
  }),
  docker: (socket) => {
    const d = import('dockerode').then((m: any) => new (m.default ?? m)({ socketPath: socket, timeout: 5000 }));
    return { info: async () => (await d).info(), version: async () => (await d).version() };
  },
  httpGet: async (url, timeoutMs) => {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, body: await r.text() };
  },
  now: () => Date.now(),
  glibc: () => glibcVersion(),
  pageSize: () => Number(/KernelPageSize:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/smaps', 'utf8'))?.[1] ?? 0) * 1024,
  readText: (file) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  },
  fsType: (dir) => {
    try {
      return fs.statfsSync(dir).type;
    } catch {
      return undefined;
    }
  },
  freeBytes: (dir) => {
    try {
      const st = fs.statfsSync(dir);
      return Number(st.bavail) * Number(st.bsize);
    } catch {
      return undefined;
    }
  },
  embedded: () => {
    if (!isSea()) return null;
    const x = seaExtractor();
    return ['proto', 'lmdb', 'onnxruntime'].map((g) => (x.group(g), g));
  },
};

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check what this node needs to run herd and migrate containers (Docker, CRIU, cgroups, PCP, glibc, data dir, port, clock); exit code 0 if it can migrate')
    .option('-c, --config <file>', 'the agent\'s JSON config file (its data dir, listen address, sockets are checked)')
    .option('--data-dir <dir>', 'data directory to check')
    .option('--listen <host:port>', 'listen address to check')
    .option('--docker-socket <path>', 'Docker engine socket')
    .option('--pmproxy-url <url>', 'PCP pmproxy URL ("" for none)')
    .option('--cgroup-root <dir>', 'cgroupfs mount point')
    .option('--onnx-model <file>', 'also run this ONNX model once, on --onnx-input')
    .option('--onnx-input <numbers>', 'comma-separated input row for --onnx-model (default 0)')
    .option('--json', 'print the report as JSON')
    .action(async (opts) => {
      let settings: Settings;
      try {
        settings = parseSettings(mergeFlags(opts.config ? readConfigFile(opts.config) : {}, opts), opts.config ? `config file ${opts.config} and flags` : 'command-line flags');
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`herd: ${err.message}\n`);
        process.exit(2);
      }
      const onnxInput = opts.onnxInput === undefined ? undefined : String(opts.onnxInput).split(',').map(Number);
      if (onnxInput?.some((x) => !Number.isFinite(x))) {
        process.stderr.write(`herd: --onnx-input must be comma-separated numbers, got "${opts.onnxInput}"\n`);
        process.exit(2);
      }
      const report = await runDoctor(settings, realProbes, { onnxModel: opts.onnxModel, onnxInput });
      process.stdout.write(`${opts.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
      // exit, not exitCode: the gRPC client and onnxruntime may keep handles open
      process.exit(report.canMigrate ? 0 : 1);
    });
}
