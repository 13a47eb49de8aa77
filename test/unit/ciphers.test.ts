/**
 * The cipher suite a node asks for first: read from /proc/cpuinfo's text, applied to
 * Node's TLS defaults, and really negotiated by the grpc-js channels ClusterTls makes
 * (a plain TLS server records what the grpc-js client asked for, since Node servers
 * follow the client's order).
 */
import * as grpc from '@grpc/grpc-js';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cipherList, hasAesInstructions, preferFastCipher, tls13Order } from '../../common/ciphers';
import { createCa, issueNodeCert, type CertAndKey } from '../../common/pki';
import { loadProtos } from '../../common/proto';
import { ClusterTls } from '../../common/transport';

const X86 = 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse4_2 aes avx2 sha_ni\n';
const X86_NO_AES = 'processor\t: 0\nflags\t\t: fpu vme sse4_2 avx2\n';
const PI4 = 'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n';
const PI5 = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid\n';

describe('cipher preference', () => {
  const nodeDefaults = tls.DEFAULT_CIPHERS;
  afterAll(() => {
    (tls as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = nodeDefaults;
  });

  it('tells AES instructions from their absence on x86 and arm64', () => {
    expect(hasAesInstructions(X86)).toBe(true);
    expect(hasAesInstructions(PI5)).toBe(true);
    expect(hasAesInstructions(X86_NO_AES)).toBe(false);
    expect(hasAesInstructions(PI4)).toBe(false);
    expect(hasAesInstructions('')).toBe(false);
    // "aes" inside another word is not the flag
    expect(hasAesInstructions('flags\t: vaesx avx2\n')).toBe(false);
  });

  it('orders AES-128-GCM first with AES instructions, ChaCha20 first without, and keeps every suite', () => {
    expect(tls13Order(true)[0]).toBe('TLS_AES_128_GCM_SHA256');
    expect(tls13Order(false)[0]).toBe('TLS_CHACHA20_POLY1305_SHA256');
    for (const aes of [true, false]) {
      expect([...tls13Order(aes)].sort()).toEqual(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);
      const list = cipherList(aes, nodeDefaults).split(':');
      // the TLS 1.2 part is Node's own, untouched
      expect(list.slice(3)).toEqual(nodeDefaults.split(':').filter((c) => !c.startsWith('TLS_')));
    }
  });

  it('keeps Node order when there is no cpuinfo to read (not Linux)', () => {
    (tls as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = nodeDefaults;
    expect(preferFastCipher('')).toBe(nodeDefaults.split(':')[0]);
    expect(tls.DEFAULT_CIPHERS).toBe(nodeDefaults);
  });

  describe('what a ClusterTls channel negotiates', () => {
    let ca: CertAndKey;
    let n1: CertAndKey;
    let n2: CertAndKey;
    beforeAll(async () => {
      ca = await createCa('ciphers');
      n1 = await issueNodeCert(ca, 'n1', '127.0.0.1:1');
      n2 = await issueNodeCert(ca, 'n2', '127.0.0.1:2');
    });

    /** The suite a grpc-js client made by ClusterTls gets from a TLS server with the cluster's certificates. */
    async function negotiated(): Promise<string> {
      const server = tls.createServer({ key: n1.key, cert: n1.cert, ca: ca.cert, requestCert: true, ALPNProtocols: ['h2'] });
      const seen = new Promise<string>((resolve) => server.once('secureConnection', (s) => resolve(s.getCipher().name)));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const transport = new ClusterTls({ ca: ca.cert, cert: n2.cert, key: n2.key });
      const client = new (loadProtos().herd.Transfer)(`127.0.0.1:${port}`, transport.credentials('n1'), transport.channelOptions) as grpc.Client;
      client.waitForReady(Date.now() + 3000, () => {}); // starts the handshake; the server never speaks HTTP/2
      try {
        return await seen;
      } finally {
        client.close();
        server.close();
      }
    }

    it('asks for AES-128-GCM on an AES machine', async () => {
      expect(preferFastCipher(X86)).toBe('TLS_AES_128_GCM_SHA256');
      expect(await negotiated()).toBe('TLS_AES_128_GCM_SHA256');
    });

    it('asks for ChaCha20-Poly1305 on a Raspberry Pi 4', async () => {
      expect(preferFastCipher(PI4)).toBe('TLS_CHACHA20_POLY1305_SHA256');
      expect(await negotiated()).toBe('TLS_CHACHA20_POLY1305_SHA256');
    });

    it('gets AES-256-GCM with Node order, so the preference is what changed it', async () => {
      (tls as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = nodeDefaults;
      expect(await negotiated()).toBe('TLS_AES_256_GCM_SHA384');
    });
  });
});
