#!/bin/bash
# Builds the VM node image of the test bed (docs/vm-nodes.md) from Debian bookworm packages only:
# a Debian kernel, a tiny busybox initramfs that loads the disk modules and switches to an ext4 root,
# and that root: busybox, docker.io + containerd + runc, CRIU and their libraries, unpacked with
# dpkg -x (no maintainer scripts, no debootstrap: faster, and needs no emulation of the guest arch).
#   test/bed/vm-image.sh arm64|amd64     prints the image directory (vmlinuz, initrd, root.ext4)
# Cached under /var/cache/herd-vm/<arch>-<key>, key = this script, vm-init.sh, the exact package versions:
# a second run only re-reads the package lists (once a day) and prints the directory.
set -euo pipefail

ARCH=${1:?usage: $0 arm64|amd64}
case $ARCH in
  arm64) TRIPLET=aarch64-linux-gnu ;;
  amd64) TRIPLET=x86_64-linux-gnu ;;
  *) echo "unknown arch $ARCH" >&2; exit 2 ;;
esac
CACHE=/var/cache/herd-vm
A=$CACHE/apt-$ARCH
SCRIPT=$(readlink -f "$0")
T0=$(date +%s%3N)
log() { echo "[vm-image $ARCH $(date +%T)] $*" >&2; }
die() { echo "[vm-image $ARCH] FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for c in mkfs.ext4 depmod cpio gzip; do command -v $c >/dev/null || die "missing $c"; done

# ------------------------------------------------------------------ private apt state of $ARCH
# Does not touch the host's /etc/apt or dpkg database (no dpkg --add-architecture needed).
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs"
touch "$A/status"
cat > "$A/sources.list" <<EOF
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
O=(-o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" -o Dir::Etc::SourceList="$A/sources.list"
   -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$A/lists" -o Dir::State::status="$A/status"
   -o Dir::Cache="$A/cache" -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
   -o APT::Sandbox::User=root -o DPkg::Lock::Timeout=600 -q)
if [ -z "$(find "$A/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  log "apt-get update (private, $ARCH)"
  apt-get "${O[@]}" update >/dev/null || die "apt-get update failed"
fi

# What the guest runs: the container engine, CRIU, busybox for everything else. The closure of
# their Depends, less what only maintainer scripts need (perl, python, debconf, PAM, ...).
WANT=(docker.io containerd runc tini criu busybox-static kmod iptables libstdc++6 libgcc-s1 ca-certificates)
SKIP='^(perl|perl-base|perl-modules-.*|libperl.*|python3.*|libpython3.*|.*-perl|debconf|cdebconf|adduser|passwd|libpam.*|mailcap|mime-support|media-types|sgml-base|install-info|usrmerge|usr-is-merged|dpkg|init-system-helpers|lsb-base|sysvinit-utils|libdebian-installer4|libnewt0.52|libslang2|libtextwrap1|readline-common|libreadline8|libsemanage.*|libelogind0|libdb5.3|libgdbm.*|debianutils|openssl)$'
KPKG=$(apt-cache "${O[@]}" depends "linux-image-$ARCH" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || die "no kernel package behind linux-image-$ARCH"
mapfile -t PKGS < <(apt-cache "${O[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "${WANT[@]}" | grep -v '^[ <]' | sed 's/:.*//' | sort -u | grep -Ev "$SKIP")
PKGS+=("$KPKG")
VERSIONS=$(apt-cache "${O[@]}" policy "${PKGS[@]}" | awk '/^[^ ]/{p=$1; sub(/:$/, "", p)} /Candidate:/{print p "=" $2}' | sort)
KEY=$( { cat "$SCRIPT" "$(dirname "$SCRIPT")/vm-init.sh"; echo "$VERSIONS"; } | sha256sum | cut -c1-12)
OUT=$CACHE/$ARCH-$KEY
if [ -f "$OUT/ready" ]; then log "cached: $OUT"; echo "$OUT"; exit 0; fi

# ------------------------------------------------------------------ download + unpack
debof() { ls "$A/debs/${1}_${2//:/%3a}_"*.deb 2>/dev/null | head -1; }
MISSING=()
for line in $VERSIONS; do [ -n "$(debof "${line%%=*}" "${line#*=}")" ] || MISSING+=("$line"); done
if [ ${#MISSING[@]} -gt 0 ]; then
  log "downloading ${#MISSING[@]} of ${#PKGS[@]} debs"
  (cd "$A/debs" && apt-get "${O[@]}" download "${MISSING[@]}" >/dev/null) || die "apt-get download failed"
fi
W=$(mktemp -d "$CACHE/build-$ARCH.XXXX")
trap 'rm -rf "$W"' EXIT
R=$W/root
mkdir -p "$R" "$W/kernel"
for line in $VERSIONS; do
  p=${line%%=*} v=${line#*=}
  f=$(debof "$p" "$v")
  [ -n "$f" ] || die "missing deb of $line"
  if [ "$p" = "$KPKG" ]; then dpkg-deb -x "$f" "$W/kernel"; else dpkg-deb -x "$f" "$R"; fi
done
# bookworm is /usr-merged: the usrmerge postinst we skipped would have made these links
for d in bin sbin lib; do
  if [ -d "$R/$d" ] && [ ! -L "$R/$d" ]; then mkdir -p "$R/usr/$d"; cp -a "$R/$d/." "$R/usr/$d/"; rm -rf "${R:?}/$d"; fi
  ln -sfn "usr/$d" "$R/$d"
done
KVER=$(ls "$W/kernel/lib/modules")
mkdir -p "$R/usr/lib/modules"
mv "$W/kernel/lib/modules/$KVER" "$R/usr/lib/modules/"
depmod -b "$R" "$KVER"
# busybox applets for what no package brings (mount, ip, modprobe, httpd, ...); packaged tools win
for a in $("$R/usr/bin/busybox" --list 2>/dev/null || /bin/busybox --list); do
  [ -e "$R/usr/bin/$a" ] || [ -e "$R/usr/sbin/$a" ] || ln -s busybox "$R/usr/bin/$a"
done
mkdir -p "$R"/{proc,sys,dev,run,tmp,host,root,etc/docker,var/lib/docker,var/log,etc/criu}
# CRIU dumps a container's tmpfs with GNU tar (busybox tar lacks its options: kept above) and locks
# the network with iptables-restore: the links the iptables postinst's update-alternatives makes
for t in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
  [ -e "$R/usr/sbin/$t" ] || ln -s xtables-legacy-multi "$R/usr/sbin/$t"
done
ln -sfn /run "$R/var/run"   # the docker CLI's default socket is /var/run/docker.sock
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm), herd VM node"\nID=debian\nVERSION_ID="12"\n' > "$R/usr/lib/os-release"
chmod 1777 "$R/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
printf 'root:x:0:\ndocker:x:999:\n' > "$R/etc/group"
echo 'hosts: files dns' > "$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
: > "$R/etc/resolv.conf"
cp "$(dirname "$SCRIPT")/vm-init.sh" "$R/sbin/herd-vm-init"
chmod 755 "$R/sbin/herd-vm-init"

# ------------------------------------------------------------------ initramfs: load the disk, switch root
I=$W/initrd
mkdir -p "$I"/{bin,dev,proc,sys,newroot,lib/modules/"$KVER"}
cp "$R/usr/bin/busybox" "$I/bin/busybox"
for a in sh mount umount modprobe switch_root sleep cat echo; do ln -s busybox "$I/bin/$a"; done
cp "$R/usr/lib/modules/$KVER"/modules.{dep,alias,order,builtin} "$I/lib/modules/$KVER/"
BOOTMODS="virtio_pci virtio_mmio virtio_blk crc32c_generic ext4"
for m in $BOOTMODS; do
  grep -E "(^|/)$m\.ko(\.[gx]z)?:" "$R/usr/lib/modules/$KVER/modules.dep" | tr -d ':' | tr ' ' '\n' | while read -r f; do
    [ -n "$f" ] || continue
    mkdir -p "$I/lib/modules/$KVER/$(dirname "$f")"; cp "$R/usr/lib/modules/$KVER/$f" "$I/lib/modules/$KVER/$f"
  done
done
cat > "$I/init" <<EOF
#!/bin/sh
mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys
for m in $BOOTMODS; do modprobe \$m; done
for i in \$(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.05; done
mount -t ext4 /dev/vda /newroot || { echo "herd-vm initrd: cannot mount /dev/vda"; sleep 1; echo o > /proc/sysrq-trigger; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /usr/bin/tini -s -- /sbin/herd-vm-init
EOF
chmod 755 "$I/init"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/initrd.gz"

# ------------------------------------------------------------------ the root disk
SIZE_MB=$(( $(du -sm "$R" | cut -f1) + 1024 ))   # room for images, containers, checkpoints
mkfs.ext4 -q -F >&2 -L herd-vm-root -E root_owner=0:0 -d "$R" "$W/root.ext4" "${SIZE_MB}M"

# the bed's busybox image for the guest's dockerd (test/bed/images.sh makes the host's): same-arch busybox
B=$W/busybox-image
mkdir -p "$B/bin" "$B/tmp"
cp "$R/usr/bin/busybox" "$B/bin/busybox"
for a in $(ls "$R/usr/bin" | while read -r f; do [ "$(readlink "$R/usr/bin/$f")" = busybox ] && echo "$f"; done); do ln -s busybox "$B/bin/$a"; done
for a in sh ls cat echo sleep dd sync head mkdir rm; do [ -e "$B/bin/$a" ] || ln -s busybox "$B/bin/$a"; done
tar -C "$B" -cf "$W/busybox.tar" .

rm -rf "$OUT.new"; mkdir -p "$OUT.new"
mv "$W/root.ext4" "$W/initrd.gz" "$W/busybox.tar" "$OUT.new/"
cp "$W/kernel/boot/vmlinuz-$KVER" "$OUT.new/vmlinuz"
echo "$VERSIONS" > "$OUT.new/packages"
echo "$KVER" > "$OUT.new/kernel-version"
touch "$OUT.new/ready"
rm -rf "$OUT"; mv "$OUT.new" "$OUT"
# older images of this arch: superseded
for d in "$CACHE/$ARCH"-*; do [ "$d" = "$OUT" ] || [ ! -f "$d/ready" ] || rm -rf "$d"; done
log "built $OUT in $(( $(date +%s%3N) - T0 )) ms ($(du -sh "$OUT/root.ext4" | cut -f1) disk, kernel $KVER)"
echo "$OUT"
