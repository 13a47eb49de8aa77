// A VM node of the test bed: a full-system qemu guest (arm64 or x86-64, emulated: TCG) with its own
// Debian kernel (cgroup v2), dockerd, containerd, runc and CRIU, on the bed's bridge through a tap
// device, so it is one more node of the bed's cluster. Image: vm-image.sh; guest PID 1: vm-init.sh;
// docs/vm-nodes.md. Its directory is <bed dir>/n<index> with the qemu pid record in pids/, like a
// namespace node's, so bed.stop() / stopBed({ name }) also stop it and leave nothing behind.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUSYBOX_IMAGE, type Bed, type BedNode, type BedProcess, type ExecResult } from './bed';
import { run, spawnIn } from './procs';

export type VmArch = 'arm64' | 'amd64';

export interface VmOptions {
  arch: VmArch;
  /** Bed node number: ip 10.77.<subnet>.(10+index), dir <bed dir>/n<index>; above the namespace nodes'. */
  index: number;
  memoryMb?: number; // default 1280
  cpus?: number; // default 2
  /** Appended to the kernel command line, e.g. ['cgroup_disable=memory']. */
  kernelArgs?: string[];
  /** How long boot + dockerd may take (default 420 s: TCG on a loaded machine). */
  bootTimeoutMs?: number;
}

export interface VmNode {
  id: string; index: number; ip: string; arch: VmArch; dir: string;
  /** Host directory shared into the guest as /host (9p): executables in, logs out. */
  share: string;
  /** The Docker engine of the guest, for a host `docker -H` (tcp inside the bed's private bridge). */
  dockerHost: string;
  kernel: string; bootMs: number; qemu: BedProcess;
  /** Runs a shell script in the guest (busybox sh, as root); never throws. */
  sh(script: string, timeoutMs?: number): Promise<ExecResult>;
  docker(...args: string[]): Promise<ExecResult>;
  /** Starts a command line in the guest's background; its output goes to <share>/<name>.log. */
  spawn(name: string, commandLine: string): Promise<void>;
  /** SIGTERM to a spawned command (SIGKILL after timeoutMs); resolves its exit status. */
  kill(name: string, timeoutMs?: number): Promise<number>;
  log(name: string): string;
  stop(): Promise<void>;
}

const HERE = import.meta.url ? path.dirname(fileURLToPath(import.meta.url)) : path.join(__dirname, '..', '..', 'test', 'bed');
const DOCKER = '/usr/bin/docker';
const COMMAND_PORT = 8022;

const QEMU: Record<VmArch, { bin: string; machine: string[]; console: string }> = {
  arm64: { bin: 'qemu-system-aarch64', machine: ['-M', 'virt', '-cpu', 'cortex-a72'], console: 'ttyAMA0' },
  amd64: { bin: 'qemu-system-x86_64', machine: ['-M', 'q35', '-cpu', 'max'], console: 'ttyS0' },
};

/** Builds (or finds cached) the image of arch; returns its directory. */
export async function vmImage(arch: VmArch): Promise<string> {
  const t0 = Date.now();
  const r = await run('bash', [path.join(HERE, 'vm-image.sh'), arch], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`vm-image.sh ${arch} failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const dir = r.stdout.trim().split('\n').pop()!;
  if (!fs.existsSync(path.join(dir, 'ready'))) throw new Error(`vm-image.sh ${arch} printed ${dir}, which holds no ready image`);
  console.log(`vm image ${arch}: ${dir} (${Date.now() - t0} ms)`);
  return dir;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POST a script to the guest's command endpoint: "<exit code>\n<output>". */
async function guestSh(ip: string, script: string, timeoutMs: number): Promise<ExecResult> {
  try {
    const res = await fetch(`http://${ip}:${COMMAND_PORT}/cgi-bin/run`, { method: 'POST', body: script, signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    const nl = body.indexOf('\n');
    const code = Number(nl < 0 ? body : body.slice(0, nl));
    if (!res.ok || !Number.isInteger(code)) return { code: -1, stdout: '', stderr: `command endpoint answered ${res.status}: ${body.slice(0, 500)}` };
    return { code, stdout: nl < 0 ? '' : body.slice(nl + 1), stderr: '' };
  } catch (e) {
    return { code: -1, stdout: '', stderr: `command endpoint of ${ip}: ${(e as Error).message}` };
  }
}

export async function startVm(bed: Bed, opts: VmOptions): Promise<VmNode> {
  const image = await vmImage(opts.arch);
  const subnet = bed.hostIp.split('.')[2];
  const id = `n${opts.index}`;
  const ip = `10.77.${subnet}.${10 + opts.index}`;
  const dir = path.join(bed.dir, id);
  if (bed.nodes.some((n) => n.id === id)) throw new Error(`${id} is a namespace node of this bed: give the VM a higher index`);
  const share = path.join(dir, 'share');
  fs.mkdirSync(share, { recursive: true });
  fs.mkdirSync(path.join(dir, 'pids'), { recursive: true });
  // the tap is a port of the bed's bridge, named like a namespace node's port (hub side)
  const tap = id;
  await run('ip', ['-n', bed.hubNetns, 'link', 'del', tap]);
  for (const args of [['tuntap', 'add', 'dev', tap, 'mode', 'tap'], ['link', 'set', tap, 'master', 'br0', 'up']]) {
    const r = await run('ip', ['-n', bed.hubNetns, ...args]);
    if (r.code !== 0) throw new Error(`ip -n ${bed.hubNetns} ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  const q = QEMU[opts.arch];
  const cmdline = [`console=${q.console}`, 'panic=-1', 'quiet', `herd.name=${id}`, `herd.ip=${ip}/24`, `herd.gw=${bed.hostIp}`,
    `herd.bip=172.31.${opts.index}.1/24`, ...(opts.kernelArgs ?? [])].join(' ');
  const mac = `52:54:00:77:${Number(subnet).toString(16).padStart(2, '0')}:${opts.index.toString(16).padStart(2, '0')}`;
  const args = [...q.machine, '-smp', String(opts.cpus ?? 2), '-m', String(opts.memoryMb ?? 1280), '-nographic', '-no-reboot',
    '-kernel', path.join(image, 'vmlinuz'), '-initrd', path.join(image, 'initrd.gz'), '-append', cmdline,
    // snapshot: the guest's writes go to an unlinked temporary overlay; the cached image stays pristine
    '-drive', `file=${path.join(image, 'root.ext4')},if=virtio,format=raw,snapshot=on`,
    '-virtfs', `local,path=${share},mount_tag=host,security_model=none,id=host`,
    '-netdev', `tap,id=net0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=net0,mac=${mac},romfile=`];
  const node: BedNode = { id, index: opts.index, ip, netns: bed.hubNetns, dir, dockerSock: '', cgroupParent: `/herd-vm-${bed.name}-${id}` };
  const t0 = Date.now();
  const qemu = spawnIn(node, 'qemu', q.bin, args, true, {});
  let exited = false;
  void qemu.exited.then(() => { exited = true; });
  const sh = (script: string, timeoutMs = 120_000) => guestSh(ip, script, timeoutMs);
  const dockerHost = `tcp://${ip}:2375`;
  const docker = (...a: string[]) => {
    const env = { ...process.env };
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    return run(DOCKER, ['-H', dockerHost, ...a], { timeoutMs: 180_000, env });
  };
  const stop = async () => {
    await sh('kill -TERM 1', 3000); // vm-init.sh stops its processes and powers off
    await Promise.race([qemu.exited, sleep(10_000)]);
    await qemu.stop();
    await run('ip', ['-n', bed.hubNetns, 'link', 'del', tap]);
  };
  const guestLog = () => { try { return fs.readFileSync(path.join(share, 'guest.log'), 'utf8'); } catch { return '(no guest.log)'; } };
  const fail = async (why: string) => {
    const msg = `VM ${id} (${opts.arch}) ${why}; console:\n${qemu.log().slice(-3000)}\nguest.log:\n${guestLog().slice(-2000)}`;
    await stop();
    throw new Error(msg);
  };
  const deadline = t0 + (opts.bootTimeoutMs ?? 420_000);
  while ((await sh('true', 30_000)).code !== 0) { // a CGI under TCG on a busy host can take seconds
    if (exited) return fail('qemu exited during boot');
    if (Date.now() > deadline) return fail(`did not answer on its command endpoint within ${opts.bootTimeoutMs ?? 420_000} ms`);
    await sleep(500);
  }
  // the engine's /_ping from the host: a guest docker CLI (a Go program) starts slowly under TCG
  const pinged = async () => { try { return (await fetch(`http://${ip}:2375/_ping`, { signal: AbortSignal.timeout(5000) })).ok; } catch { return false; } };
  while (!(await pinged())) {
    if (exited || Date.now() > deadline) return fail(`dockerd did not answer; dockerd.log:\n${(() => { try { return fs.readFileSync(path.join(share, 'dockerd.log'), 'utf8').slice(-2000); } catch { return ''; } })()}`);
    await sleep(500);
  }
  const bootMs = Date.now() - t0;
  // the bed's busybox image, made of the guest's own (same-arch) busybox
  fs.copyFileSync(path.join(image, 'busybox.tar'), path.join(share, 'busybox.tar'));
  const imp = await sh(`docker import --change 'CMD ["/bin/sh"]' /host/busybox.tar ${BUSYBOX_IMAGE} >/dev/null`, 300_000);
  if (imp.code !== 0) return fail(`could not import ${BUSYBOX_IMAGE}: ${imp.stdout}${imp.stderr}`);
  const kernel = (await sh('uname -r')).stdout.trim();
  console.log(`VM ${id} (${opts.arch}, ${kernel}) served docker ${bootMs} ms after qemu started`);
  const log = (name: string) => { try { return fs.readFileSync(path.join(share, `${name}.log`), 'utf8'); } catch { return `(no ${name}.log)`; } };
  const spawn = async (name: string, commandLine: string) => {
    if (!/^[\w.-]+$/.test(name)) throw new Error(`bad process name ${name}`);
    // a subshell records its own pid, then execs: the pid is the command's; the status lands in a file
    const r = await sh(`rm -f /run/${name}.status; (sh -c 'echo $$ > /run/${name}.pid; exec ${commandLine.replace(/'/g, `'\\''`)}' >>/host/${name}.log 2>&1 </dev/null; echo $? > /run/${name}.status) >/dev/null 2>&1 &`);
    if (r.code !== 0) throw new Error(`${id}: cannot start ${name}: ${r.stdout}${r.stderr}`);
  };
  const kill = async (name: string, timeoutMs = 15_000) => {
    const r = await sh(`p=$(cat /run/${name}.pid) || exit 99; kill -TERM $p 2>/dev/null
      i=0; while [ ! -s /run/${name}.status ] && [ $i -lt ${Math.ceil(timeoutMs / 100)} ]; do sleep 0.1; i=$((i+1)); done
      [ -s /run/${name}.status ] || { kill -KILL $p; sleep 0.5; }; cat /run/${name}.status`, timeoutMs + 10_000);
    return r.code === 0 ? Number(r.stdout.trim()) : -1;
  };
  return { id, index: opts.index, ip, arch: opts.arch, dir, share, dockerHost, kernel, bootMs, qemu, sh, docker, spawn, kill, log, stop };
}
