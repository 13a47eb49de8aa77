#!/bin/bash
# Offline Docker image rootfs tars for the test bed (no registry is reachable here).
#   images.sh busybox OUT.tar   static busybox + its applet links + minimal /etc: ~2 MB
#   images.sh sysbench OUT.tar  busybox + Debian's sysbench and the libraries it loads: ~21 MB
#   images.sh fio OUT.tar       busybox + Debian's fio and the libraries it loads: ~90 MB
# The workload images follow ../shared/recipes/workloads.md ("min" flavour): the packages'
# Depends closure is fetched with `apt-get download` and unpacked with `dpkg -x` into a staging
# dir (nothing is installed on the host), then the binary and what its loader resolves are copied.
# The tar is a plain rootfs for `docker import`; bed.ts caches it and imports it into every node.
# Written to OUT.tar.<pid>.tmp and renamed, so a crash never leaves a half tar in the cache.
set -euo pipefail
ML=x86_64-linux-gnu

busybox_tree() {   # r = a fresh temp dir holding busybox, its applet links and a minimal /etc
  local p
  [ -x /bin/busybox ] || { echo "images.sh: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
  r=$(mktemp -d /tmp/herd-rootfs.XXXXXX)   # global: the EXIT trap runs outside this function
  trap 'rm -rf "$r" "$r.stage" "$r.debs"' EXIT
  mkdir -p "$r/bin"
  cp /bin/busybox "$r/bin/busybox"
  for p in $("$r/bin/busybox" --list-full); do
    mkdir -p "$r/$(dirname "$p")"
    [ -e "$r/$p" ] || ln -s /bin/busybox "$r/$p"
  done
  mkdir -p "$r"/{tmp,proc,sys,dev,etc,root,var/tmp}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
}

pack() {   # the tree $r to $1
  local out=$1
  # numeric owner + fixed mtime: the same busybox always gives the same tar (and image id)
  tar -C "$r" --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -cf "$out.$$.tmp" .
  mv "$out.$$.tmp" "$out"
}

busybox_rootfs() { busybox_tree; pack "$1"; }

# stage PKG...: the Depends closure (no Recommends) downloaded and unpacked into $r.stage
stage() {
  local s=$r.stage dl=$r.debs d
  mkdir -p "$s" "$dl"
  # shellcheck disable=SC2046
  (cd "$dl" && apt-get -o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root -q download $(
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "$@" | grep -v '^ ' | grep -v '^<' | sort -u) >/dev/null) \
    || { echo "images.sh: apt-get download failed (run apt-get update; the Debian archive must be reachable)" >&2; exit 1; }
  for d in "$dl"/*.deb; do dpkg -x "$d" "$s"; done
}

# with_libs FILE...: copy FILEs (paths in the stage) into $r with every library the stage's own
# loader resolves for them (private RUNPATH dirs such as ceph's included), all to /usr/lib/$ML
with_libs() {
  local s=$r.stage lp="$r.stage/lib/$ML:$r.stage/usr/lib/$ML:/lib/$ML:/usr/lib/$ML" d f lib list
  for d in $(find "$s/usr/lib/$ML" -mindepth 2 -name '*.so*' -printf '%h\n' | sort -u); do lp=$lp:$d; done
  local ldso=$s/lib/$ML/ld-linux-x86-64.so.2
  mkdir -p "$r/lib64" "$r/usr/lib/$ML"
  for f in "$@"; do
    mkdir -p "$r/$(dirname "$f")"; cp -L "$s/$f" "$r/$f"
    list=$("$ldso" --library-path "$lp" --list "$s/$f")
    if grep -q 'not found' <<<"$list"; then echo "images.sh: unresolved libraries for $f:" >&2; echo "$list" >&2; exit 1; fi
    for lib in $(awk '/=> \//{print $3}' <<<"$list"); do
      [ -e "$r/usr/lib/$ML/${lib##*/}" ] || cp -L "$lib" "$r/usr/lib/$ML/${lib##*/}"
    done
  done
  cp -L "$ldso" "$r/lib64/ld-linux-x86-64.so.2"   # the loader of the same glibc as the copied libc
}

sysbench_rootfs() {
  busybox_tree; stage sysbench
  with_libs /usr/bin/sysbench
  mkdir -p "$r/usr/share"; cp -a "$r.stage/usr/share/sysbench" "$r/usr/share/"   # oltp_*.lua
  pack "$1"
}

fio_rootfs() {
  busybox_tree; stage fio
  with_libs /usr/bin/fio
  pack "$1"
}

case "${1:-}" in
  busybox|sysbench|fio) [ -n "${2:-}" ] || { echo "usage: $0 busybox|sysbench|fio OUT.tar" >&2; exit 2; }; "${1}_rootfs" "$2" ;;
  *) echo "usage: $0 busybox|sysbench|fio OUT.tar" >&2; exit 2 ;;
esac
