/**
 * How a node's gRPC traffic is secured, behind one small interface: mutual TLS with the
 * cluster CA (ClusterTls, the default) or plain text (Insecure, only with `--insecure`).
 *
 * Servers request a client certificate but do not let TLS reject it: `authenticate`
 * checks it per call (chain, validity, revocation) so that a refused caller gets a gRPC
 * status that says why, instead of a bare handshake failure. Clients verify servers the
 * usual way (TLS against the CA) plus the herd identity and the revocation list.
 *
 * The material can change while the node runs (certificate renewal, CA rotation):
 * `reload` pushes it to the server's secure context (new handshakes use it; open
 * connections keep theirs) and every client channel made afterwards uses it.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { preferFastCipher } from './ciphers';
import { identityOf, parseBundle, principal, verifyPeer, type PeerIdentity } from './identity';

export type Authenticated = { ok: true; identity?: PeerIdentity; who: string } | { ok: false; code: grpc.status; message: string };

interface AuthContextLike {
  sslPeerCertificate?: PeerCertificate;
}

export interface Transport {
  readonly secure: boolean;
  /** Changes whenever the material does: a client made for an older generation should be replaced. */
  readonly generation: number;
  serverCredentials(): grpc.ServerCredentials;
  /** Credentials to dial a node; with nodeId, the server's certificate must name that node. */
  credentials(nodeId?: string): grpc.ChannelCredentials;
  /** Channel options to pass with those credentials. */
  readonly channelOptions: grpc.ChannelOptions;
  /** Who the caller of a call is, verified; or why it is refused. `peer` is the caller's address, for logs. */
  authenticate(ctx: AuthContextLike | undefined, peer: string): Authenticated;
}

/** Plain text: every caller is let in, named by its address. */
export class Insecure implements Transport {
  readonly secure = false;
  readonly generation = 0;
  readonly channelOptions: grpc.ChannelOptions = {};
  serverCredentials(): grpc.ServerCredentials {
    return grpc.ServerCredentials.createInsecure();
  }
  credentials(): grpc.ChannelCredentials {
    return grpc.credentials.createInsecure();
  }
  authenticate(_ctx: AuthContextLike | undefined, peer: string): Authenticated {
    return { ok: true, who: `insecure:${peer}` };
  }
}

export interface TlsMaterial {
  /** PEM: the cluster CA, or during a CA rotation the old and the new one. */
  ca: string;
  /** PEM: this node's (or operator's) certificate and key. */
  cert: string;
  key: string;
}

/** Reads `<dataDir>/tls/{ca.crt,node.crt,node.key}`; throws naming the missing file. */
export function readNodeMaterial(dataDir: string): TlsMaterial {
  const dir = join(dataDir, 'tls');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { ca: read('ca.crt'), cert: read('node.crt'), key: read('node.key') };
}

/** Says why a verified identity must still be refused (revoked), or undefined. */
export type RevocationCheck = (id: PeerIdentity, cert: X509Certificate) => string | undefined;

/** A fixed name for the TLS SNI: peers are dialled by IP, and Node refuses an IP as servername (DEP0123). */
const SERVERNAME = 'herd';

export class ClusterTls implements Transport {
  readonly secure = true;
  readonly channelOptions: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': SERVERNAME };
  private material!: TlsMaterial;
  private cas: X509Certificate[] = [];
  private own!: X509Certificate;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private server?: grpc.ServerCredentials;
  generation = 0;
  /** The TLS 1.3 suite this node asks for first (see ciphers.ts). */
  readonly cipher = preferFastCipher();

  constructor(
    material: TlsMaterial,
    private readonly revoked: RevocationCheck = () => undefined,
  ) {
    this.reload(material);
  }

  /** This side's own certificate. */
  get certificate(): X509Certificate {
    return this.own;
  }

  get caCertificates(): readonly X509Certificate[] {
    return this.cas;
  }

  get current(): TlsMaterial {
    return this.material;
  }

  /** Takes new material (renewed certificate, CA bundle); refuses material that does not fit together. */
  reload(material: TlsMaterial): void {
    const cas = parseBundle(material.ca);
    if (cas.length === 0) throw new Error('the CA file holds no certificate');
    const own = new X509Certificate(material.cert);
    if (!cas.some((ca) => own.checkIssued(ca) && own.verify(ca.publicKey))) throw new Error('the certificate was not issued by the CA in the CA file');
    this.material = material;
    this.cas = cas;
    this.own = own;
    this.generation++;
    for (const l of this.caListeners) l({ caCertificate: Buffer.from(material.ca) });
    for (const l of this.idListeners) l({ certificate: Buffer.from(material.cert), privateKey: Buffer.from(material.key) });
  }

  /**
   * A certificate-provider credential (grpc-js experimental API) so that `reload` reaches
   * the bound server; `requireClientCertificate=false` makes TLS ask for a certificate
   * without rejecting the handshake, and `authenticate` decides per call.
   */
  serverCredentials(): grpc.ServerCredentials {
    if (this.server) return this.server;
    const self = this;
    const provider: grpc.experimental.CertificateProvider = {
      // grpc-js registers its watcher only after adding these listeners: the first
      // update must come later, or it reaches nobody and the server never gets a context.
      addCaCertificateListener(l) {
        self.caListeners.add(l);
        setImmediate(() => self.caListeners.has(l) && l({ caCertificate: Buffer.from(self.material.ca) }));
      },
      removeCaCertificateListener(l) {
        self.caListeners.delete(l);
      },
      addIdentityCertificateListener(l) {
        self.idListeners.add(l);
        setImmediate(() => self.idListeners.has(l) && l({ certificate: Buffer.from(self.material.cert), privateKey: Buffer.from(self.material.key) }));
      },
      removeIdentityCertificateListener(l) {
        self.idListeners.delete(l);
      },
    };
    this.server = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
    return this.server;
  }

  credentials(nodeId?: string): grpc.ChannelCredentials {
    const m = this.material;
    return grpc.credentials.createSsl(Buffer.from(m.ca), Buffer.from(m.key), Buffer.from(m.cert), {
      checkServerIdentity: (_host, cert) => {
        const id = identityOf(cert);
        if (!id || id.kind !== 'node') return new Error(`the server's certificate names ${id ? `operator "${id.name}"` : 'no herd identity'}, not a node`);
        if (nodeId !== undefined && id.nodeId !== nodeId) return new Error(`the server's certificate names node "${id.nodeId}", not node "${nodeId}" which this address was expected to be`);
        const why = this.revoked(id, new X509Certificate(cert.raw));
        return why ? new Error(why) : undefined;
      },
    });
  }

  authenticate(ctx: AuthContextLike | undefined, peer: string): Authenticated {
    const pc = ctx?.sslPeerCertificate;
    if (!pc || !pc.raw) {
      return {
        ok: false,
        code: grpc.status.UNAUTHENTICATED,
        // grpc-js leaves a certificate TLS did not verify (another cluster's, an expired
        // one) out of the auth context too; the authorizer explains those from the socket.
        message: `${peer} showed no client certificate of this cluster: this node answers only certificates its cluster CA issued (operators: grpcurl -cacert ca.crt -cert NAME.crt -key NAME.key; nodes: herd join)`,
      };
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pc.raw);
    } catch (err) {
      return { ok: false, code: grpc.status.UNAUTHENTICATED, message: `the client certificate cannot be parsed: ${(err as Error).message}` };
    }
    const v = verifyPeer(cert, this.cas);
    if (typeof v === 'string') return { ok: false, code: grpc.status.UNAUTHENTICATED, message: v };
    const why = this.revoked(v, cert);
    if (why) return { ok: false, code: grpc.status.UNAUTHENTICATED, message: why };
    return { ok: true, identity: v, who: principal(v) };
  }
}

/** The message a revoked certificate gets. */
export function revokedMessage(id: PeerIdentity, r: { revoked_at_ms: number; revoked_by: string; reason: string }): string {
  const who = id.kind === 'node' ? `node "${id.nodeId}"` : `operator "${id.name}"`;
  return `the certificates of ${who} were revoked at ${new Date(r.revoked_at_ms).toISOString()}${r.revoked_by ? ` by ${r.revoked_by}` : ''}${r.reason ? ` (${r.reason})` : ''}`;
}
