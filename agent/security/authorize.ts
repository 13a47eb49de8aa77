/**
 * Who may call what: one server interceptor in front of every service of the node, so
 * no handler (ours, health, reflection) is reachable without passing it.
 *
 *   open   no certificate needed: the Join service a new node uses to get one, and
 *          health (liveness probes have no credentials; it tells only "serving")
 *   node   a node of the cluster: Mesh, Peer (election, migration), Transfer
 *   read   any node or operator: Admin's Get, List and Query methods, ExportDataset, health, reflection
 *   admin  an operator with the admin role: Admin methods that change something;
 *          each such call is written to the audit trail with who made it
 *
 * An unlisted method falls to `admin`: a new state-changing RPC is protected and
 * audited before anyone remembers to list it.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { principal, verifyPeer } from '../../common/identity';
import type { AuditEvent } from '../../common/audit-event';
import { logger } from '../../common/log';
import { ClusterTls, type Transport } from '../../common/transport';

const log = logger('auth');

export type Access = 'open' | 'node' | 'read' | 'admin';

const BY_SERVICE: Record<string, Access> = {
  'herd.v1.Join': 'open',
  'herd.v1.Mesh': 'node',
  'herd.v1.Peer': 'node',
  'herd.v1.Transfer': 'node',
  'grpc.health.v1.Health': 'open',
  'grpc.reflection.v1.ServerReflection': 'read',
  'grpc.reflection.v1alpha.ServerReflection': 'read',
};

/** Admin methods that change nothing (ExportDataset: the samples QuerySamples serves, as a table; Forecast: a model's prediction). */
const ADMIN_READS = /^(Get|List|Query|ExportDataset$|Forecast$)/;

/** The access a full method path ("/herd.v1.Admin/Migrate") needs. */
export function accessOf(path: string): Access {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return 'admin';
  const [, service, method] = m;
  if (service === 'herd.v1.Admin') return ADMIN_READS.test(method) ? 'read' : 'admin';
  return BY_SERVICE[service] ?? 'admin';
}

export interface AuthorizeOptions {
  nodeId: string;
  /** Called once per `admin` call when it ends, whatever the outcome; also for an identified caller whose role does not allow it. */
  audit: (event: AuditEvent) => void;
}

const AUDIT_REQUEST_BYTES = 4096;

/** The decision for an authenticated caller; undefined means let it through. */
function forbid(access: Access, auth: ReturnType<Transport['authenticate']>, path: string): { code: grpc.status; message: string } | undefined {
  if (access === 'open') return undefined;
  if (!auth.ok) return { code: auth.code, message: auth.message };
  const id = auth.identity;
  if (!id) return undefined; // plain text (--insecure): nobody is identified, everybody is let in
  const method = path.slice(path.lastIndexOf('/') + 1);
  if (access === 'node' && id.kind !== 'node') return { code: grpc.status.PERMISSION_DENIED, message: `operator "${id.name}" may not call ${path}: it is node-to-node traffic (node certificates only)` };
  if (access === 'admin') {
    if (id.kind === 'node') return { code: grpc.status.PERMISSION_DENIED, message: `node "${id.nodeId}" may not call ${method}: it needs an operator certificate with the admin role` };
    if (id.role !== 'admin') return { code: grpc.status.PERMISSION_DENIED, message: `operator "${id.name}" has the ${id.role} role; ${method} needs the admin role` };
  }
  return undefined;
}

export function authorizer(transport: Transport, opts: AuthorizeOptions): grpc.ServerInterceptor {
  return (descriptor, call) => {
    const path = descriptor.path;
    const access = accessOf(path);
    let who = '';
    let request: unknown;
    let admitted = false;
    const record = (code: grpc.status, details: string) => {
      const event: AuditEvent = { at_ms: Date.now(), who, method: path, request_json: requestJson(request), code, details, node_id: opts.nodeId };
      log.info('audit', { who, method: path, code: grpc.status[code] ?? code, details: details || undefined, request: event.request_json });
      try {
        opts.audit(event);
      } catch (err) {
        log.error('recording an audit event failed', { error: err, method: path, who });
      }
    };
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next(
          new grpc.ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, nextMd) => {
              const ctx = call.getAuthContext();
              const auth = explainUnverified(transport.authenticate(ctx, call.getPeer()), ctx, call, transport);
              who = auth.ok ? auth.who : '';
              const refused = forbid(access, auth, path);
              if (refused) {
                log.warn('call refused', { method: path, peer: call.getPeer(), who: who || undefined, reason: refused.message });
                // An identified caller refused a state-changing call: that attempt is audited too
                // (callers without a valid certificate are only logged: anyone can make those).
                if (access === 'admin' && auth.ok) record(refused.code, refused.message);
                call.sendStatus({ code: refused.code, details: refused.message, metadata: new grpc.Metadata() });
                return;
              }
              admitted = true;
              nextMd(metadata);
            })
            .withOnReceiveMessage((message, nextMsg) => {
              if (access === 'admin' && request === undefined) request = message;
              nextMsg(message);
            })
            .build(),
        );
      },
      sendStatus(status, next) {
        if (admitted && access === 'admin') record(status.code, status.details ?? '');
        next(status);
      },
    });
  };
}

/**
 * grpc-js hides a client certificate that TLS did not verify (expired, another CA): its
 * auth context is then empty, as if the client had shown none. The socket still has it,
 * so a refusal can say why (expired, not issued by this cluster's CA) instead of "no
 * certificate". Only the message changes: such a caller is refused either way.
 */
function explainUnverified(auth: ReturnType<Transport['authenticate']>, ctx: { sslPeerCertificate?: PeerCertificate } | undefined, call: unknown, transport: Transport): ReturnType<Transport['authenticate']> {
  if (auth.ok || ctx?.sslPeerCertificate || !(transport instanceof ClusterTls)) return auth;
  // grpc-js's base call holds the HTTP/2 stream; interceptors in front wrap it (nextCall).
  let base = call as { stream?: { session?: { socket?: unknown } }; nextCall?: unknown } | undefined;
  for (let i = 0; i < 16 && base && !base.stream && base.nextCall; i++) base = base.nextCall as typeof base;
  const socket = base?.stream?.session?.socket;
  if (!(socket instanceof TLSSocket) || socket.authorized) return auth;
  const pc = socket.getPeerCertificate();
  if (!pc?.raw) return auth;
  let why: string;
  try {
    const v = verifyPeer(new X509Certificate(pc.raw), transport.caCertificates);
    why = typeof v === 'string' ? v : `the certificate of ${principal(v)} was refused by TLS: ${String(socket.authorizationError ?? 'not verified')}`;
  } catch (err) {
    why = `the client certificate cannot be parsed: ${(err as Error).message}`;
  }
  return { ok: false, code: grpc.status.UNAUTHENTICATED, message: why };
}

function requestJson(message: unknown): string {
  let s: string;
  try {
    // the value as it was, not as toJSON made it: a Buffer arrives here already as {type, data: [...]}
    // (a 32 MiB LoadModel would be a 100 MB string)
    s = JSON.stringify(message ?? {}, function (this: any, k, v) {
      const raw = this[k];
      return typeof raw === 'bigint' ? raw.toString() : raw instanceof Uint8Array ? `<${raw.length} bytes>` : v;
    });
  } catch {
    s = '"<unprintable>"';
  }
  return s.length > AUDIT_REQUEST_BYTES ? `${s.slice(0, AUDIT_REQUEST_BYTES)}...` : s;
}
