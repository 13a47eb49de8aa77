#!/bin/bash
# Installs what the integration tests and the test bed need on a Debian bookworm machine:
# docker.io (dockerd --experimental, containerd, runc), busybox-static, iproute2, python3-protobuf
# and python3-grpcio (for test/tools/pygrpcurl.py), PCP, and CRIU 4.2 (bookworm's 3.17 fails
# `criu check` on kernel 6.18; trixie's 4.1 cannot dump inet sockets on >= 6.16).
# Idempotent: every step checks first, so a second run takes about a second.
# Env: CRIU_SUITE=forky  CRIU_PREFIX=/opt/criu42  HERD_CRIU_FROM=deb|source (source = skip to fallback)
#      CRIU_WRAPPER=/usr/local/sbin/criu (another path only to try the install without touching runc's)
set -euo pipefail

CRIU_SUITE=${CRIU_SUITE:-forky}
PREFIX=${CRIU_PREFIX:-/opt/criu42}
WRAPPER=${CRIU_WRAPPER:-/usr/local/sbin/criu}
CACHE=/var/cache/herd-install            # private apt state for $CRIU_SUITE, the source build
APT=(apt-get -o DPkg::Lock::Timeout=600 -q)
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s%3N)

log()  { echo "[install $(date +%T)] $*"; }
die()  { echo "[install] FAILED: $*" >&2; exit 1; }
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

UPDATED=0
apt_update() { [ "$UPDATED" = 1 ] || { log "apt-get update"; "${APT[@]}" update; UPDATED=1; }; }

# A package postinst (docker.io, pcp) would otherwise start its daemon through invoke-rc.d on this
# systemd-less machine: a host dockerd would add docker0 and iptables rules to the root netns the
# bed shares. policy-rc.d exit 101 = "do not start"; only a file we created is removed again.
POLICY=/usr/sbin/policy-rc.d
no_autostart() {
  [ -e "$POLICY" ] && return 0
  printf '#!/bin/sh\n# herd test/bed/install.sh: temporary\nexit 101\n' > "$POLICY"; chmod 755 "$POLICY"
  trap 'grep -q "herd test/bed/install.sh" "$POLICY" 2>/dev/null && rm -f "$POLICY"' EXIT
}

# ------------------------------------------------------------------ Debian packages
step_debs() {
  local want=(docker.io busybox-static iproute2 python3-protobuf python3-grpcio protobuf-compiler util-linux) miss=() p
  # cross/: the arm64 executable runs here under qemu-user, with Debian's arm64 runtime libraries
  want+=(qemu-user-static binfmt-support libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)
  # docs/observability.md: the /metrics test checks the exposition with Prometheus's own promtool
  want+=(prometheus)
  # the cluster page's end-to-end test: Debian's Chromium, driven by playwright-core (npm)
  want+=(chromium)
  # test/bed/vm.ts: full-system arm64 guests (Debian kernel, cgroup v2); vm-image.sh builds their disk
  want+=(qemu-system-arm kmod cpio e2fsprogs)
  for p in "${want[@]}"; do installed "$p" || miss+=("$p"); done
  if [ ${#miss[@]} -eq 0 ]; then log "debs: all present"; return; fi
  log "debs: installing ${miss[*]}"
  apt_update; no_autostart
  "${APT[@]}" install -y --no-install-recommends "${miss[@]}"
}

# ------------------------------------------------------------------ PCP
set_default() {   # set_default FILE KEY VALUE: KEY=VALUE in a /etc/default file
  local f=$1 k=$2 v=$3
  touch "$f"
  if grep -q "^$k=$v\$" "$f"; then return; fi
  if grep -q "^$k=" "$f"; then sed -i "s/^$k=.*/$k=$v/" "$f"; else echo "$k=$v" >> "$f"; fi
  log "pcp: $k=$v in $f"
}

step_pcp() {
  # pcp's postinst calls systemctl, which fails without systemd: a shim earlier in dpkg's PATH
  local shim=$CACHE/pcp-shim
  mkdir -p "$shim"; printf '#!/bin/sh\nexit 0\n' > "$shim/systemctl"; chmod +x "$shim/systemctl"
  local st; st=$(dpkg-query -W -f='${db:Status-Abbrev}' pcp 2>/dev/null || true)
  if [ "$st" = "ii " ]; then
    log "pcp: present"
  elif [[ $st == i* ]]; then
    log "pcp: half-configured ($st), dpkg --configure"
    no_autostart; PATH=$shim:$PATH dpkg --configure -a
  else
    log "pcp: installing"
    apt_update; no_autostart
    "${APT[@]}" -o DPkg::Path="$shim:/usr/sbin:/usr/bin:/sbin:/bin" install -y --no-install-recommends pcp
  fi
  set_default /etc/default/pmcd PMCD_LOCAL 1
  set_default /etc/default/pmproxy PMPROXY_LOCAL 1
}

# ------------------------------------------------------------------ CRIU 4.2
criu_ok() {   # the wrapper (or the source-built binary) is 4.2.x and this kernel suits it
  [ -x "$WRAPPER" ] || return 1
  grep -q 'Version: 4\.2' <<<"$("$WRAPPER" --version 2>/dev/null)" || return 1
  grep -q 'Looks good' <<<"$("$WRAPPER" check 2>&1)"
}

# criu + the closure of its Depends (incl. forky's libc6) unpacked into $PREFIX with dpkg -x; the
# wrapper runs it through that glibc's own ld.so, so the host's glibc and apt state stay as they are.
criu_from_deb() {
  local A=$CACHE/apt-$CRIU_SUITE
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs"
  echo "deb http://deb.debian.org/debian $CRIU_SUITE main" > "$A/sources.list"
  local o=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache"
           -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
           -o APT::Sandbox::User=root)
  log "criu: private apt update ($CRIU_SUITE)"
  "${APT[@]}" "${o[@]}" update || return 1
  local p pkgs=()
  for p in $(apt-cache "${o[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
               --no-breaks --no-replaces --no-enhances "criu/$CRIU_SUITE" | grep -v '^[ <]' | sort -u); do
    pkgs+=("$p/$CRIU_SUITE")
  done
  [ ${#pkgs[@]} -gt 0 ] || return 1
  log "criu: downloading ${#pkgs[@]} debs"
  rm -f "$A"/debs/*.deb
  (cd "$A/debs" && "${APT[@]}" "${o[@]}" download "${pkgs[@]}" >/dev/null) || return 1
  rm -rf "$PREFIX.new"; mkdir -p "$PREFIX.new"
  for p in "$A"/debs/*.deb; do dpkg -x "$p" "$PREFIX.new"; done
  rm -rf "$PREFIX"; mv "$PREFIX.new" "$PREFIX"
  # runc execs "criu" from PATH (inherited dockerd -> containerd -> shim); /usr/local/sbin
  # precedes /usr/sbin, and bookworm's own criu package is not installed at all.
  mkdir -p "$(dirname "$WRAPPER")"
  cat > "$WRAPPER" <<EOF
#!/bin/sh
# CRIU from Debian $CRIU_SUITE (herd test/bed/install.sh), run through that suite's ld.so/glibc in $PREFIX
L=$PREFIX/usr/lib/x86_64-linux-gnu
exec "\$L/ld-linux-x86-64.so.2" --library-path "\$L" $PREFIX/usr/sbin/criu "\$@"
EOF
  chmod 755 "$WRAPPER"
}

# Fallback for when $CRIU_SUITE no longer carries a usable binary: build the Debian source
# package's upstream tarball with bookworm's toolchain (~40 s make on 2 cores).
criu_from_source() {
  log "criu: building from the $CRIU_SUITE source package"
  apt_update
  "${APT[@]}" install -y --no-install-recommends build-essential pkgconf libprotobuf-c-dev \
    protobuf-c-compiler libprotobuf-dev protobuf-compiler libnl-3-dev libnet1-dev libcap-dev \
    libbsd-dev libnftables-dev libgnutls28-dev uuid-dev python3-protobuf
  local A=$CACHE/aptsrc-$CRIU_SUITE S=$CACHE/src
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$S"
  echo "deb-src http://deb.debian.org/debian $CRIU_SUITE main" > "$A/sources.list"
  local o=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o APT::Sandbox::User=root)
  "${APT[@]}" "${o[@]}" update
  rm -f "$S"/criu_*
  # only the upstream tarball is needed (the debian.tar.xz has been seen to 404)
  (cd "$S" && { "${APT[@]}" "${o[@]}" source --download-only criu || true; })
  local orig; orig=$(ls "$S"/criu_*.orig.tar.* 2>/dev/null | tail -1)
  [ -n "$orig" ] || die "criu: no source tarball downloaded from $CRIU_SUITE"
  rm -rf "$S/build"; mkdir -p "$S/build"
  tar -C "$S/build" --strip-components=1 -xf "$orig"
  make -C "$S/build" -j"$(nproc)" criu >"$S/build.log" 2>&1 || { tail -30 "$S/build.log"; die "criu: make failed"; }
  install -m 755 "$S/build/criu/criu" "$WRAPPER"
}

step_criu() {
  if criu_ok; then log "criu: $("$WRAPPER" --version | head -1) present, check passes"; return; fi
  if [ "${HERD_CRIU_FROM:-deb}" = deb ] && criu_from_deb && criu_ok; then
    log "criu: installed from $CRIU_SUITE debs into $PREFIX"
  else
    log "criu: $CRIU_SUITE debs did not give a working criu 4.2; falling back to a source build"
    criu_from_source
  fi
}

# ------------------------------------------------------------------ verify
verify() {
  local missing=() c
  for c in dockerd containerd runc docker nsenter ip iptables; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ -x /usr/bin/docker ] || missing+=(/usr/bin/docker)
  # The list is read whole first: with pipefail, grep -q quitting early would SIGPIPE busybox (141).
  [ -x /bin/busybox ] && grep -qx ping <<<"$(/bin/busybox --list)" || missing+=(/bin/busybox)
  for c in pmcd pmproxy; do
    [ -x /usr/lib/pcp/bin/$c ] && [ -x /etc/init.d/$c ] || missing+=("$c")
  done
  /usr/bin/python3 -c 'import grpc, google.protobuf.descriptor_pool' 2>/dev/null || missing+=("python3 grpc/protobuf")
  # runc finds criu through PATH: the wrapper must win over anything in /usr/sbin
  if [ "$WRAPPER" = /usr/local/sbin/criu ]; then
    [ "$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v criu)" = "$WRAPPER" ] \
      || missing+=("criu wrapper first in PATH")
  fi
  local out; out=$("$WRAPPER" check 2>&1) || true
  echo "$out" | grep -q 'Looks good' || { echo "$out" >&2; missing+=("criu check: Looks good"); }
  [ ${#missing[@]} -eq 0 ] || die "missing after install: ${missing[*]}"
  log "verified: $("$WRAPPER" --version | head -1), $(dockerd --version), criu check: Looks good"
}

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$CACHE"
step_debs
step_pcp
step_criu
verify
log "done in $(( $(date +%s%3N) - T0 )) ms"
