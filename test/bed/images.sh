#!/bin/bash
# Offline Docker image rootfs tars for the test bed (no registry is reachable here).
#   images.sh busybox OUT.tar   static busybox + its applet links + minimal /etc: ~2 MB
# The tar is a plain rootfs for `docker import`; bed.ts caches it and imports it into every node.
# Written to OUT.tar.<pid>.tmp and renamed, so a crash never leaves a half tar in the cache.
set -euo pipefail

busybox_rootfs() {
  local out=$1 p
  [ -x /bin/busybox ] || { echo "images.sh: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
  r=$(mktemp -d /tmp/herd-rootfs.XXXXXX)   # global: the EXIT trap runs outside this function
  trap 'rm -rf "$r"' EXIT
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
  # numeric owner + fixed mtime: the same busybox always gives the same tar (and image id)
  tar -C "$r" --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -cf "$out.$$.tmp" .
  mv "$out.$$.tmp" "$out"
}

case "${1:-}" in
  busybox) [ -n "${2:-}" ] || { echo "usage: $0 busybox OUT.tar" >&2; exit 2; }; busybox_rootfs "$2" ;;
  *) echo "usage: $0 busybox OUT.tar" >&2; exit 2 ;;
esac
