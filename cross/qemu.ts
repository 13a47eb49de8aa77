/**
 * Runs the linux-arm64 executable on an x86-64 machine with qemu-user-static (Debian's
 * qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross, libgcc-s1-arm64-cross).
 *
 * QEMU_LD_PREFIX names a sysroot whose lib/ is the arm64 glibc and libstdc++. qemu also
 * redirects any other absolute path that exists under it: the sysroot carries a
 * proc/cpuinfo of Cortex-A72 cores because qemu 7.2 passes the host's x86 /proc/cpuinfo
 * through and onnxruntime's CPU detection (cpuinfo) crashes on it. A Pi has a real ARM
 * cpuinfo; this is an artifact of the emulation only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const QEMU = '/usr/bin/qemu-aarch64-static';
const ARM64_LIB = '/usr/aarch64-linux-gnu/lib';

/** What is missing to emulate arm64 here (empty when nothing is). */
export function missingForQemu(): string[] {
  const need: Array<[string, string]> = [
    [QEMU, 'qemu-user-static'],
    [path.join(ARM64_LIB, 'ld-linux-aarch64.so.1'), 'libc6-arm64-cross'],
    [path.join(ARM64_LIB, 'libstdc++.so.6'), 'libstdc++6-arm64-cross'],
    [path.join(ARM64_LIB, 'libgcc_s.so.1'), 'libgcc-s1-arm64-cross'],
  ];
  return need.filter(([f]) => !fs.existsSync(f)).map(([, pkg]) => pkg);
}

function cpuinfo(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += `processor\t: ${i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n`;
  }
  return s;
}

/** Creates (idempotently) the sysroot and returns its path; throws naming the Debian packages it lacks. */
export function qemuSysroot(dir = path.join(os.tmpdir(), `herd-qemu-sysroot-${process.getuid?.() ?? 0}`)): string {
  const missing = missingForQemu();
  if (missing.length) throw new Error(`cannot run arm64 executables here: apt-get install ${missing.join(' ')} (test/bed/install.sh does)`);
  fs.mkdirSync(path.join(dir, 'proc'), { recursive: true });
  const lib = path.join(dir, 'lib');
  if (!fs.existsSync(lib)) fs.symlinkSync(ARM64_LIB, lib);
  // one block per host CPU: onnxruntime sizes its thread pool from it
  const text = cpuinfo(os.cpus().length);
  const file = path.join(dir, 'proc', 'cpuinfo');
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) {
    fs.writeFileSync(`${file}.${process.pid}`, text); // renamed: a running qemu never reads half a file
    fs.renameSync(`${file}.${process.pid}`, file);
  }
  return dir;
}

/** Command line and environment that run an arm64 executable under qemu. */
export function arm64Command(exe: string, args: string[], env: NodeJS.ProcessEnv = process.env): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  return { cmd: QEMU, args: [exe, ...args], env: { ...env, QEMU_LD_PREFIX: qemuSysroot() } };
}
