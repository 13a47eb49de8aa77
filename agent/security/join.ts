/**
 * Joining, as every node serves it (docs/security.md, "Joining a node"):
 *   - Join.GetCa (open): the cluster CA certificate, which the joiner checks against the
 *     fingerprint in its token before it trusts this node with anything;
 *   - Join.Join (open): the token and a CSR for a node certificate. The CA holder redeems
 *     it (agent/security/signer.ts); any other node forwards the same request to the CA
 *     holder with Peer.SignJoin over the cluster's mutual TLS;
 *   - Peer.SignJoin (nodes only, enforced by the interceptor): a forwarded join;
 *   - Admin.CreateJoinToken (admin role): answered by the CA holder whatever the
 *     leadership; elsewhere FAILED_PRECONDITION naming the holder and its address.
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Env } from '../../common/db';
import { caHolderOf, parseBundle, peerIdentity, principal } from '../../common/identity';
import { cleanDetails } from '../../common/grpc-text';
import { logger } from '../../common/log';
import { loadProtos } from '../../common/proto';
import type { Transport } from '../../common/transport';
import { checkHostPort, checkId, failedPrecondition, invalid, RpcError, unary } from '../../common/validate';
import { colonFingerprint, fingerprintHex, JoinSigner, MAX_CSR_CHARS, parseJoinToken } from './signer';

const log = logger('join');

/** How long a forwarded join may take (the CA holder signs in milliseconds). */
const FORWARD_DEADLINE_MS = 15_000;

export interface JoinDeps {
  nodeId: string;
  dataDir: string;
  /** Lifetime of the certificates the CA holder signs. */
  nodeCertTtlSeconds: number;
  env: Env;
  transport: Transport;
  /** The election's view of the members (node_id, address; role 'unreachable' if not heard lately). */
  cluster: () => { members: Array<{ node_id: string; address: string; role: string; self: boolean }> };
  /** The configured peers (a fallback for the CA holder's address). */
  peers: ReadonlyArray<{ id: string; address: string }>;
  /** When a node's certificates were last revoked, if ever. */
  revokedAt?: (nodeId: string) => number | undefined;
  clock?: () => number;
}

export interface JoinHandlers {
  /** Present on the CA holder only. */
  signer?: JoinSigner;
  /** herd.v1.Join */
  join: grpc.UntypedServiceImplementation;
  /** Spread into herd.v1.Peer. */
  peer: grpc.UntypedServiceImplementation;
  /** Spread into herd.v1.Admin (exempt from leaderOnly). */
  admin: grpc.UntypedServiceImplementation;
}

interface JoinRequest {
  token: string;
  node_id: string;
  address: string;
  csr_pem: string;
}

export function joinHandlers(deps: JoinDeps): JoinHandlers {
  const onInternal = (name: string, err: unknown) => log.error(`${name} failed`, { error: err });
  const caPath = join(deps.dataDir, 'tls', 'ca.crt');
  const signer = JoinSigner.open(deps.env, {
    nodeId: deps.nodeId,
    dataDir: deps.dataDir,
    nodeCertTtlSeconds: deps.nodeCertTtlSeconds,
    clock: deps.clock,
    revokedAt: deps.revokedAt,
    liveMember: (id) => {
      const m = deps.cluster().members.find((x) => x.node_id === id && !x.self);
      return m && m.role !== 'unreachable' ? `this node hears from it at ${m.address} as ${m.role}` : undefined;
    },
  });

  const readCa = (): string => {
    if (!existsSync(caPath)) {
      throw failedPrecondition(`node "${deps.nodeId}" has no cluster CA (${caPath}): it runs with --insecure, and a node of an insecure cluster needs no join`);
    }
    return readFileSync(caPath, 'utf8');
  };

  /** The CA holder's id (from the CA certificate) and address (election view, then configured peers). */
  const holder = (): { id?: string; address?: string } => {
    const id = parseBundle(readCa()).map(caHolderOf).find(Boolean);
    if (!id) return {};
    const address = deps.cluster().members.find((m) => m.node_id === id)?.address ?? deps.peers.find((p) => p.id === id)?.address;
    return { id, address };
  };

  const holderHint = (): string => {
    const h = holder();
    if (!h.id) return 'the cluster CA certificate does not name the node that holds its key; ask the node where `herd init` ran';
    return h.address ? `node "${h.id}" at ${h.address} does` : `node "${h.id}" does (its address is not among this node's peers)`;
  };

  /** Checks a JoinRequest's fields (the same checks on every node, so that nothing odd is forwarded). */
  const checkRequest = (req: JoinRequest): void => {
    if (typeof req.token !== 'string' || req.token === '') throw invalid('token is required: the one `herd token create` printed');
    const bad = checkId('node_id', req.node_id) ?? checkHostPort('address', req.address);
    if (bad) throw invalid(bad);
    if (typeof req.csr_pem !== 'string' || req.csr_pem.trim() === '') throw invalid('csr_pem is required: a PKCS#10 certificate signing request (PEM) for the joining node\'s key');
    if (req.csr_pem.length > MAX_CSR_CHARS) throw invalid(`csr_pem is ${req.csr_pem.length} characters; a node's request is under ${MAX_CSR_CHARS}`);
    const parsed = parseJoinToken(req.token);
    if (typeof parsed === 'string') throw new RpcError(grpc.status.UNAUTHENTICATED, `bad join token: ${parsed}`);
    const ours = fingerprintHex(readCa());
    if (parsed.fingerprintHex !== ours) {
      throw new RpcError(
        grpc.status.UNAUTHENTICATED,
        `the join token is for the cluster whose CA has fingerprint ${colonFingerprint(parsed.fingerprintHex)}, but this cluster's CA has fingerprint ${colonFingerprint(ours)}: get a token from this cluster (\`herd token create\`)`,
      );
    }
  };

  const redeem = async (req: JoinRequest, via?: string) => {
    const r = await signer!.redeem({ token: req.token, nodeId: req.node_id, address: req.address, csrPem: req.csr_pem, via });
    log.info('node certificate signed for a join', { node: req.node_id, address: req.address, via: via ?? 'this node' });
    return { node_cert_pem: r.nodeCertPem, ca_cert_pem: r.caCertPem, signed_by: r.signedBy };
  };

  const forward = async (req: JoinRequest): Promise<unknown> => {
    const h = holder();
    if (!h.id) throw failedPrecondition(`node "${deps.nodeId}" does not hold the cluster CA key, and ${holderHint()}: join with --address pointing at that node`);
    if (h.id === deps.nodeId) throw failedPrecondition(`the cluster CA names this node ("${deps.nodeId}") as its holder, but ${join(deps.dataDir, 'tls', 'ca.key')} is missing: joins cannot be signed until it is restored`);
    if (!h.address) throw failedPrecondition(`node "${deps.nodeId}" does not hold the cluster CA key, and the CA holder "${h.id}" is not among its peers: join with --address pointing at ${h.id}`);
    if (!deps.transport.secure) throw failedPrecondition(`node "${deps.nodeId}" runs with --insecure and will not forward a join token in plain text: join with --address ${h.address} (the CA holder "${h.id}")`);
    const { herd } = loadProtos();
    const client = new herd.Peer(h.address, deps.transport.credentials(h.id), deps.transport.channelOptions);
    try {
      return await new Promise((resolve, reject) =>
        client.SignJoin(req, { deadline: Date.now() + FORWARD_DEADLINE_MS }, (err: grpc.ServiceError | null, res: unknown) => {
          if (!err) return resolve(res);
          if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
            return reject(new RpcError(grpc.status.UNAVAILABLE, `cannot reach the CA holder "${h.id}" at ${h.address} to sign the join: ${cleanDetails(err.details || err.message)}; try again, or join with --address ${h.address}`));
          }
          reject(new RpcError(err.code, `the CA holder "${h.id}" (asked by "${deps.nodeId}") refused: ${err.details || err.message}`));
        }),
      );
    } finally {
      client.close();
    }
  };

  const join_: grpc.UntypedServiceImplementation = {
    GetCa: unary<any, any>('GetCa', () => ({ ca_cert_pem: readCa(), node_id: deps.nodeId }), onInternal),
    Join: unary<any, any>(
      'Join',
      async (req: JoinRequest, call) => {
        checkRequest(req);
        if (signer) return redeem(req);
        log.info('forwarding a join to the CA holder', { node: req.node_id, address: req.address, from: call.getPeer() });
        return forward(req);
      },
      onInternal,
    ),
  };

  const peer: grpc.UntypedServiceImplementation = {
    SignJoin: unary<any, any>(
      'SignJoin',
      async (req: JoinRequest, call) => {
        const caller = peerIdentity(call);
        const via = caller?.kind === 'node' ? caller.nodeId : undefined;
        if (!signer) throw failedPrecondition(`node "${deps.nodeId}" does not hold the cluster CA key (${holderHint()}): it does not forward forwarded joins`);
        checkRequest(req);
        return redeem(req, via ?? `insecure:${call.getPeer()}`);
      },
      onInternal,
    ),
  };

  const admin: grpc.UntypedServiceImplementation = {
    CreateJoinToken: unary<any, any>(
      'CreateJoinToken',
      async (req, call) => {
        const ttl = req.ttl_seconds === undefined || req.ttl_seconds === null ? 0 : Number(req.ttl_seconds);
        if (req.node_id !== undefined && typeof req.node_id !== 'string') throw invalid('node_id must be a string');
        if (!signer) {
          const h = holder();
          throw failedPrecondition(`node "${deps.nodeId}" does not hold the cluster CA key, so it cannot make join tokens: ${holderHint()}${h.address ? ` (herd token create -s ${h.address})` : ''}`);
        }
        const id = peerIdentity(call);
        const r = await signer.createToken({ ttlSeconds: ttl, nodeId: req.node_id || undefined, by: id ? principal(id) : `insecure:${call.getPeer()}` });
        log.info('join token created', { expires: new Date(r.expires_ms).toISOString(), node: req.node_id || 'any', by: id ? principal(id) : call.getPeer() });
        return r;
      },
      onInternal,
    ),
  };

  return { signer, join: join_, peer, admin };
}
