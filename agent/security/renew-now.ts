/**
 * Admin.RenewNodeCertificate (`herd node-cert renew`): the answering node renews its own
 * certificate now, with the names it is dialled by today, instead of waiting until the
 * renewer finds it due. Admin role (the authorizer), audited; any node answers for itself.
 */
import type * as grpc from '@grpc/grpc-js';
import { logger } from '../../common/log';
import { canonicalSan } from '../../common/sans';
import { failedPrecondition, unary, unavailable } from '../../common/validate';
import type { CertificateRenewer } from './renewal';

const log = logger('renewal');

export interface RenewNowDeps {
  nodeId: string;
  secure: boolean;
  /** The node's renewer, once it has started (undefined before, and on plain text). */
  renewer: () => CertificateRenewer | undefined;
}

/** The subject alternative names other than URIs ("DNS:a, IP Address:0:0:0:0:0:0:0:1, URI:herd://...") as plain names ("a", "::1"). */
export function namesOf(subjectAltName: string | undefined): string[] {
  return (subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:') || s.startsWith('IP Address:'))
    .map((s) => canonicalSan(s.slice(s.indexOf(':') + 1)));
}

export function renewNowHandlers(deps: RenewNowDeps): grpc.UntypedServiceImplementation {
  return {
    RenewNodeCertificate: unary<any, any>(
      'RenewNodeCertificate',
      async () => {
        if (!deps.secure) throw failedPrecondition(`node "${deps.nodeId}" runs with --insecure: it has no certificate to renew`);
        const renewer = deps.renewer();
        if (!renewer) throw unavailable(`node "${deps.nodeId}" is still starting; try again in a few seconds`);
        let r: Awaited<ReturnType<CertificateRenewer['renewNow']>>;
        try {
          r = await renewer.renewNow();
        } catch (err) {
          throw failedPrecondition(`node "${deps.nodeId}" could not renew its certificate and keeps the current one: ${(err as Error).message}`);
        }
        return {
          node_id: deps.nodeId,
          serial: r.cert.serialNumber,
          not_after_ms: Date.parse(r.cert.validTo),
          names: namesOf(r.cert.subjectAltName),
          signed_by: r.signedBy,
          old_serial: r.old.serialNumber,
        };
      },
      (name, err) => log.error(`${name} failed`, { error: err }),
    ),
  };
}
