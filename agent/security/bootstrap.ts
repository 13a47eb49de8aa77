/**
 * What a node needs before it serves: its certificate. A node with no certificate and no
 * peers is the first node of a new cluster, so it makes the cluster CA itself (what
 * `herd init` does): `herd agent` alone then runs a secure one-node cluster. A node with
 * peers and no certificate must be given one (`herd join`); guessing would split the
 * cluster into two CAs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../common/log';
import { ClusterTls, Insecure, readNodeMaterial, revokedMessage, type Transport } from '../../common/transport';
import { identityOf } from '../../common/identity';
import type { Settings } from '../config';
import type { RevocationStore } from '../../common/revocations';

const log = logger('security');

export class BootstrapError extends Error {}

/** Makes the cluster CA on a lone node without certificates; throws a BootstrapError telling what to do otherwise. */
export async function ensureCertificates(settings: Settings, address: string): Promise<void> {
  if (settings.insecure) return;
  const dir = join(settings.dataDir, 'tls');
  if (existsSync(join(dir, 'node.crt')) && existsSync(join(dir, 'node.key')) && existsSync(join(dir, 'ca.crt'))) return;
  if (settings.peers.length > 0) {
    throw new BootstrapError(
      `no node certificate in ${dir}, and this node has peers: get one from the cluster with \`herd join --token TOKEN --address PEER\` (a token comes from \`herd token create\` on the node that ran \`herd init\`), or run with --insecure (plain text, lab only)`,
    );
  }
  const { initCluster } = await import('../../common/pki');
  const { localSans } = await import('../../common/sans');
  const r = await initCluster(settings.dataDir, settings.nodeId, address, { names: localSans(settings.tls.sans) });
  log.info('no certificates yet and no peers: created a new cluster CA and this node\'s certificate (as `herd init` does)', {
    dir: r.dir,
    ca_fingerprint: r.caFingerprint,
    operator_certificate: join(r.dir, 'admins', 'local.crt'),
    hint: 'nodes join with `herd token create` here and `herd join` there',
  });
}

/** The node's transport: mutual TLS from `<dataDir>/tls`, or plain text with --insecure (with a warning). */
export function nodeTransport(settings: Settings, revocations: RevocationStore): Transport {
  if (settings.insecure) {
    log.warn('INSECURE: serving and dialling plain text (--insecure). Anyone who can reach this port can read the cluster\'s data and move or stop its containers as root. Use it in a lab only.');
    return new Insecure();
  }
  let tls: ClusterTls;
  try {
    tls = new ClusterTls(readNodeMaterial(settings.dataDir), (id, cert) => {
      const r = revocations.revoking(id, cert);
      return r && revokedMessage(id, r);
    });
  } catch (err) {
    throw new BootstrapError(`the TLS files in ${join(settings.dataDir, 'tls')} cannot be used: ${(err as Error).message}`);
  }
  const id = identityOf(tls.certificate);
  if (id?.kind !== 'node' || id.nodeId !== settings.nodeId) {
    throw new BootstrapError(`${join(settings.dataDir, 'tls', 'node.crt')} is the certificate of ${id ? (id.kind === 'node' ? `node "${id.nodeId}"` : `operator "${id.name}"`) : 'no herd identity'}, but this node's id is "${settings.nodeId}"`);
  }
  return tls;
}
