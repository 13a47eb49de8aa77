#!/bin/sh
# PID 1 of a VM node of the test bed (test/bed/vm.ts, docs/vm-nodes.md), baked into the image by
# vm-image.sh. Kernel command line: herd.ip=A.B.C.D/24 herd.gw=A.B.C.1 herd.name=vm1 herd.bip=172.31.X.1/24.
# Mounts the kernel file systems (cgroup v2 only), joins the bed's network, mounts the host's share
# (9p tag "host" at /host: the herd executable, certificates, logs), starts dockerd (experimental,
# for checkpoints; also on tcp :2375 inside the bed's private bridge) and a command endpoint:
# busybox httpd on :8022, POST /cgi-bin/run with a shell script, answers "<exit code>\n<output>".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs tmp /tmp
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
NAME=$(arg herd.name); IP=$(arg herd.ip); GW=$(arg herd.gw); BIP=$(arg herd.bip)
hostname "${NAME:-vm}"
# loaded up front: dockerd (bridge, veth, overlay) and CRIU (socket diag, tun, nftables) need them
for m in virtio_net 9p 9pnet_virtio overlay bridge veth br_netfilter tun inet_diag tcp_diag udp_diag \
  raw_diag unix_diag netlink_diag packet_diag af_packet_diag nf_tables nfnetlink; do modprobe $m 2>/dev/null; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /host || echo "herd-vm: no 9p share"
LOG=/host/guest.log
exec >>"$LOG" 2>&1
echo "[herd-vm-init] $(cat /proc/uptime | cut -d' ' -f1) s: $(uname -r) $(uname -m), cmdline: $(cat /proc/cmdline)"
ip link set lo up
ip link set eth0 up
[ -n "$IP" ] && ip addr add "$IP" dev eth0
[ -n "$GW" ] && ip route add default via "$GW"
# cgroup v2: hand every available controller to the children (dockerd's containers live below)
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
echo "[herd-vm-init] controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

mkdir -p /srv/cgi-bin
cat > /srv/cgi-bin/run <<'EOF'
#!/bin/sh
head -c "${CONTENT_LENGTH:-0}" > /tmp/cmd.$$
sh /tmp/cmd.$$ > /tmp/out.$$ 2>&1 </dev/null; rc=$?
{ echo "$rc"; cat /tmp/out.$$; } > /tmp/res.$$
# a length lets the client finish reading at once (httpd holds the connection open a while)
printf 'Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n' "$(wc -c < /tmp/res.$$)"
cat /tmp/res.$$
rm -f /tmp/cmd.$$ /tmp/out.$$ /tmp/res.$$
EOF
chmod 755 /srv/cgi-bin/run
httpd -p 8022 -h /srv
echo "[herd-vm-init] $(cut -d' ' -f1 /proc/uptime) s: command endpoint on :8022"

# containerd first, on its own: dockerd gives the containerd it would start itself a fixed time to
# answer, too short for an emulated guest on a busy host. No iptables: one node on a private bridge.
containerd > /host/containerd.log 2>&1 &
i=0; until ctr version >/dev/null 2>&1 || [ $i -ge 600 ]; do sleep 0.5; i=$((i+1)); done
echo "[herd-vm-init] $(cut -d' ' -f1 /proc/uptime) s: containerd answers"
dockerd --containerd /run/containerd/containerd.sock --experimental -H unix:///run/docker.sock -H tcp://0.0.0.0:2375 --iptables=false --ip-masq=false \
  ${BIP:+--bip "$BIP"} --data-root /var/lib/docker > /host/dockerd.log 2>&1 &
echo "[herd-vm-init] $(cut -d' ' -f1 /proc/uptime) s: dockerd started"
[ -x /host/boot.sh ] && /host/boot.sh &
# tini is PID 1 (it reaps orphans); this shell just stays
trap 'echo "[herd-vm-init] poweroff"; kill -TERM -1; sleep 2; sync; poweroff -f' TERM INT USR2
while :; do sleep 3600 & wait $!; done
