/** herd on a VM node of the bed (test/bed/vm.ts): the guest's own executable, run from the share. */
import fs from 'node:fs';
import path from 'node:path';
import type { VmNode } from '../bed/vm';
import { PORT } from './cluster';
import { testPki } from './pki';

export interface GuestHerdOptions {
  /** the executable of the guest's architecture (cross/harness ensureExecutables); copied to the share once */
  exe: string;
  peers: Array<{ id: string; ip: string }>;
  extra?: string[];
}

/**
 * Starts `herd agent` in the guest as process "herd" (vm.kill('herd') stops it, vm.log('herd')
 * reads its log): TLS files of the test PKI, its data dir on the guest's own disk (LMDB wants a
 * local file system), a 60 s first wait for the emulated dockerd (--docker-timeout) and 30 s for
 * the coordinator's welcome (--mesh-dead-after: a TLS handshake under TCG takes seconds).
 */
export async function startGuestHerd(vm: VmNode, o: GuestHerdOptions): Promise<void> {
  const shared = path.join(vm.share, 'herd');
  if (!fs.existsSync(shared)) {
    fs.copyFileSync(o.exe, shared);
    fs.chmodSync(shared, 0o755);
  }
  const addr = `${vm.ip}:${PORT}`;
  testPki().provision(path.join(vm.share, 'herd-data'), vm.id, addr);
  const peers = o.peers.map((n) => `--peer ${n.id}=${n.ip}:${PORT}`).join(' ');
  await vm.sh('mkdir -p /var/lib/herd && cp -r /host/herd-data/tls /var/lib/herd/');
  await vm.spawn('herd', `env HOME=/root HERD_LOG_LEVEL=${process.env.VM_HERD_LOG_LEVEL ?? 'info'} /host/herd agent --node-id ${vm.id} --data-dir /var/lib/herd --listen ${addr} ${peers} ` +
    `--docker-socket /run/docker.sock --docker-timeout 60000 --mesh-dead-after 30000 --pmproxy-url '' --host-interval 1000 --container-interval 1000 --track-interval 1000 ${(o.extra ?? []).join(' ')}`);
}
