/**
 * Admin methods about trust: removing a node, revoking an operator, and reading the
 * revocation list and the audit trail. Who may call them is decided in front of every
 * handler (agent/security/authorize.ts); these only check their arguments.
 */
import * as grpc from '@grpc/grpc-js';
import { logger } from '../common/log';
import { peerIdentity, principal } from '../common/identity';
import { checkId, failedPrecondition, invalid, notFound, unary } from '../common/validate';
import type { Revocation, RevocationStore } from '../common/revocations';
import type { AuditTrail } from './audit';
import type { Registry } from './registry';

const log = logger('admin');

export interface SecurityAdminDeps {
  revocations: RevocationStore;
  audit: AuditTrail;
  registry: Registry;
  /** This node's id (the coordinator cannot remove itself). */
  nodeId: string;
  /** Ids of the configured peers (removable even if they never connected). */
  knownNodes: () => string[];
  clock?: () => number;
}

const MAX_REASON = 500;
const MAX_AUDIT = 10_000;

export function securityAdminHandlers(deps: SecurityAdminDeps): grpc.UntypedServiceImplementation {
  const onInternal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  const now = deps.clock ?? Date.now;
  const by = (call: grpc.ServerUnaryCall<any, any>) => {
    const id = peerIdentity(call);
    return id ? principal(id) : `insecure:${call.getPeer()}`;
  };
  const reasonOf = (r: unknown) => {
    if (r !== undefined && typeof r !== 'string') throw invalid('reason must be a string');
    if ((r ?? '').length > MAX_REASON) throw invalid(`reason is longer than ${MAX_REASON} characters`);
    return (r as string | undefined) ?? '';
  };
  const revoke = async (entry: Revocation) => {
    await deps.revocations.merge([entry]);
    log.warn('certificates revoked', { kind: entry.kind, name: entry.name, by: entry.revoked_by, reason: entry.reason || undefined });
    return entry;
  };
  return {
    RemoveNode: unary<any, any>('RemoveNode', async (req, call) => {
      const bad = checkId('node_id', req.node_id);
      if (bad) throw invalid(bad);
      const reason = reasonOf(req.reason);
      if (req.node_id === deps.nodeId) throw failedPrecondition(`node ${req.node_id} is the coordinator that answers this call; remove it from another node once a new coordinator is elected (stop it first)`);
      if (!deps.registry.get(req.node_id) && !deps.knownNodes().includes(req.node_id)) throw notFound(`no node "${req.node_id}" in this cluster (herd status lists the nodes)`);
      const entry = await revoke({ kind: 'IDENTITY_KIND_NODE', name: req.node_id, revoked_at_ms: now(), revoked_by: by(call), reason });
      deps.registry.remove(req.node_id);
      return { revocation: entry };
    }, onInternal),
    RevokeOperator: unary<any, any>('RevokeOperator', async (req, call) => {
      const bad = checkId('name', req.name);
      if (bad) throw invalid(bad);
      const reason = reasonOf(req.reason);
      return { revocation: await revoke({ kind: 'IDENTITY_KIND_OPERATOR', name: req.name, revoked_at_ms: now(), revoked_by: by(call), reason }) };
    }, onInternal),
    ListRevocations: unary<any, any>('ListRevocations', () => ({ entries: deps.revocations.list() }), onInternal),
    ListAuditEvents: unary<any, any>('ListAuditEvents', (req) => {
      const limit = req.limit === undefined || Number(req.limit) === 0 ? 100 : Number(req.limit);
      if (!Number.isInteger(limit) || limit < 0 || limit > MAX_AUDIT) throw invalid(`limit must be 0 to ${MAX_AUDIT}`);
      return { events: deps.audit.list(limit) };
    }, onInternal),
  };
}
