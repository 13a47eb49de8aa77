#!/bin/sh
# Runs an arm64 herd executable on this x86-64 machine under qemu (see cross/qemu.ts).
#   cross/run-arm64.sh dist/herd-linux-arm64 doctor
set -eu
[ $# -ge 1 ] || { echo "usage: $0 <arm64 executable> [args...]" >&2; exit 2; }
for f in /usr/bin/qemu-aarch64-static /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 /usr/aarch64-linux-gnu/lib/libstdc++.so.6; do
  [ -e "$f" ] || { echo "missing $f: apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross" >&2; exit 1; }
done
root=${TMPDIR:-/tmp}/herd-qemu-sysroot-$(id -u)
mkdir -p "$root/proc"
[ -e "$root/lib" ] || ln -s /usr/aarch64-linux-gnu/lib "$root/lib"
# qemu 7.2 shows the host's x86 cpuinfo, on which onnxruntime crashes: a Cortex-A72 one per CPU
i=0; : > "$root/proc/cpuinfo.new"
while [ $i -lt "$(nproc)" ]; do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' $i >> "$root/proc/cpuinfo.new"
  i=$((i + 1))
done
mv "$root/proc/cpuinfo.new" "$root/proc/cpuinfo"
exe=$1; shift
QEMU_LD_PREFIX=$root exec /usr/bin/qemu-aarch64-static "$exe" "$@"
