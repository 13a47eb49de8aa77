/**
 * The names a node certificate carries (common/sans.ts, common/pki.ts): what is a valid
 * --tls-san, what a node names by itself, what a signer copies from a CSR and what it refuses.
 */
import { X509Certificate } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { createCa, createCsr, identityOf, issueNodeCert, signNodeCsr } from '../../common/pki';
import { canonicalSan, checkSan, localSans, LOOPBACK_NAMES, MAX_NAMES, uniqueSans } from '../../common/sans';
import { parseSettings } from '../../agent/config';

describe('checkSan', () => {
  it('takes DNS names and IPv4/IPv6 addresses', () => {
    for (const ok of ['localhost', 'pi1', 'node-1.example.org', 'node-1.example.org.', '10.0.0.11', '::1', 'fd00::1', 'xn--bcher-kva.example']) expect(checkSan(ok), ok).toBeUndefined();
  });

  it('refuses empty, wildcards, ports, brackets and garbage, saying why', () => {
    expect(checkSan('')).toMatch(/must not be empty/);
    expect(checkSan('  ')).toMatch(/must not be empty/);
    expect(checkSan(undefined)).toMatch(/must not be empty/);
    expect(checkSan('*.example.org')).toMatch(/wildcard/);
    expect(checkSan('*')).toMatch(/wildcard/);
    expect(checkSan('pi1:7400')).toMatch(/has a port.*\(pi1\)/);
    expect(checkSan('[fd00::1]')).toMatch(/without brackets \(fd00::1\)/);
    for (const bad of ['a b', 'under_score', '-lead', 'trail-', 'a..b', 'x'.repeat(64), 'herd://node/x', 'é.example', `${'a.'.repeat(127)}aa`]) {
      expect(checkSan(bad), bad).toMatch(/neither a DNS name .* nor an IP address/);
    }
  });

  it('compares names the way certificates do', () => {
    expect(canonicalSan('Node1.Example.ORG.')).toBe('node1.example.org');
    expect(canonicalSan('FD00:0:0::1')).toBe('fd00::1');
    expect(uniqueSans(['a', 'A', '::1', '0:0::1', 'a.'])).toEqual(['a', '::1']);
  });
});

describe('localSans', () => {
  it('names loopback, the host name, every interface address but IPv6 link-local, and the extra names first', () => {
    const names = localSans(['extra.example.org']);
    expect(names.slice(0, 4)).toEqual([...LOOPBACK_NAMES, 'extra.example.org']);
    if (!checkSan(hostname())) expect(names).toContain(hostname().toLowerCase());
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family === 'IPv6' && /^fe80/i.test(a.address)) expect(names).not.toContain(canonicalSan(a.address));
        else expect(names).toContain(canonicalSan(a.address));
      }
    }
    expect(names.length).toBeLessThanOrEqual(MAX_NAMES);
  });
});

describe('--tls-san in the settings', () => {
  it('refuses a bad name at parse time, naming the key and the reason', () => {
    expect(parseSettings({ tls: { sans: ['pi1.lan', '10.0.0.11'] } }).tls.sans).toEqual(['pi1.lan', '10.0.0.11']);
    expect(parseSettings({}).tls.sans).toEqual([]);
    expect(() => parseSettings({ tls: { sans: [''] } }, 'command-line flags')).toThrow(/key tls\.sans\.0: --tls-san a TLS name must not be empty/);
    expect(() => parseSettings({ tls: { sans: ['ok', '*.lan'] } })).toThrow(/key tls\.sans\.1: --tls-san "\*\.lan" is a wildcard/);
    expect(() => parseSettings({ tls: { sans: ['no way'] } })).toThrow(/neither a DNS name/);
  });
});

describe('node certificates with names', () => {
  it('issueNodeCert: one herd identity, the address host, the names, each once', async () => {
    const ca = await createCa('t');
    const x = new X509Certificate((await issueNodeCert(ca, 'pi1', '10.0.0.11:7400', { names: [...LOOPBACK_NAMES, '10.0.0.11', 'PI1.lan'] })).cert);
    expect(x.subjectAltName).toBe('URI:herd://node/pi1, IP Address:10.0.0.11, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:pi1.lan');
    expect(identityOf(x)).toEqual({ kind: 'node', nodeId: 'pi1' });
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkIP('::1')).toBe('::1');
    await expect(issueNodeCert(ca, 'pi1', '10.0.0.11:7400', { names: ['*.lan'] })).rejects.toThrow(/wildcard/);
  });

  it('signNodeCsr copies the DNS and IP names a CSR asks for, never its identity', async () => {
    const ca = await createCa('t');
    const { csr } = await createCsr('pi2', ['localhost', '127.0.0.1', 'pi2', '10.0.0.12']);
    const x = new X509Certificate(await signNodeCsr(ca, csr, 'pi2', '10.0.0.12:7400'));
    expect(x.subjectAltName).toBe('URI:herd://node/pi2, IP Address:10.0.0.12, DNS:localhost, IP Address:127.0.0.1, DNS:pi2');
    // a CSR without names (an older node) gets the address only, as before
    const bare = new X509Certificate(await signNodeCsr(ca, (await createCsr('pi2')).csr, 'pi2', '10.0.0.12:7400'));
    expect(bare.subjectAltName).toBe('URI:herd://node/pi2, IP Address:10.0.0.12');
  });

  it('signNodeCsr refuses a CSR that asks for a URI (an identity), an e-mail, a wildcard or too many names', async () => {
    const ca = await createCa('t');
    const x509 = await import('@peculiar/x509');
    const { webcrypto } = await import('node:crypto');
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
    const csrWith = async (names: { type: 'url' | 'dns' | 'ip' | 'email'; value: string }[]) =>
      (
        await x509.Pkcs10CertificateRequestGenerator.create({
          name: 'CN=pi2, O=herd',
          keys,
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
          extensions: [new x509.SubjectAlternativeNameExtension(names)],
        })
      ).toString('pem');
    await expect(signNodeCsr(ca, await csrWith([{ type: 'url', value: 'herd://node/pi1' }]), 'pi2', '10.0.0.12:7400')).rejects.toThrow(/asks for a url name \("herd:\/\/node\/pi1"\): a node may ask only for DNS names and IP addresses/);
    await expect(signNodeCsr(ca, await csrWith([{ type: 'email', value: 'a@b.c' }]), 'pi2', '10.0.0.12:7400')).rejects.toThrow(/email name/);
    await expect(signNodeCsr(ca, await csrWith([{ type: 'dns', value: '*.lan' }]), 'pi2', '10.0.0.12:7400')).rejects.toThrow(/cannot be signed: "\*\.lan" is a wildcard/);
    const many = Array.from({ length: MAX_NAMES + 1 }, (_, i) => ({ type: 'dns' as const, value: `n${i}.lan` }));
    await expect(signNodeCsr(ca, await csrWith(many), 'pi2', '10.0.0.12:7400')).rejects.toThrow(/at most 100/);
    await expect(createCsr('pi2', ['bad name'])).rejects.toThrow(/neither a DNS name/);
  });
});
