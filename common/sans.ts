/**
 * The host names and addresses a node certificate names (subject alternative names), so
 * that a client that checks the server's name the standard way (grpcurl, grpcio, curl)
 * accepts the node however it is dialled: `localhost`, `127.0.0.1`, `::1`, the host name,
 * every address of its interfaces, its advertised address, and the names an operator adds
 * with `--tls-san`. These names only satisfy host-name checks; who a node is stays decided
 * by its `herd://node/<id>` URI (common/identity.ts), which no name here can add or change.
 */
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

/** Always named: an operator on the node itself dials one of these. */
export const LOOPBACK_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** At most this many names in one certificate (a node with many interfaces stays far below). */
export const MAX_NAMES = 100;

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** Why `name` cannot be a certificate name (a DNS name or an IP address, no wildcard), or undefined. */
export function checkSan(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.trim() === '') return 'a TLS name must not be empty: give a DNS name (node1.example.org) or an IP address (10.0.0.11)';
  if (name.includes('*')) return `"${name}" is a wildcard: a node certificate names the node's own names only; give each name with its own --tls-san`;
  if (isIP(name)) return undefined;
  if (/^\[.*\]$/.test(name) && isIP(name.slice(1, -1))) return `"${name}": give an IPv6 address without brackets (${name.slice(1, -1)})`;
  if (/:\d+$/.test(name)) return `"${name}" has a port: a TLS name is a host only (${name.replace(/:\d+$/, '')})`;
  const host = name.endsWith('.') ? name.slice(0, -1) : name;
  if (host.length > 253 || !host.split('.').every((l) => LABEL.test(l))) {
    return `"${name}" is neither a DNS name (letters, digits and '-' in dot-separated labels of 1-63 characters) nor an IP address`;
  }
  return undefined;
}

/** A name in the form certificates compare: DNS names in lower case without a final dot, IPv6 compressed. */
export function canonicalSan(name: string): string {
  if (isIP(name) === 6) return new URL(`http://[${name}]`).hostname.slice(1, -1);
  if (isIP(name) === 4) return name;
  return name.toLowerCase().replace(/\.$/, '');
}

/** The names in order of first appearance, canonical, each once. */
export function uniqueSans(names: Iterable<string>): string[] {
  return [...new Set([...names].map(canonicalSan))];
}

/** As a certificate's SAN entries. */
export function sanEntries(names: Iterable<string>): { type: 'ip' | 'dns'; value: string }[] {
  return uniqueSans(names).map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value }));
}

/** Throws (via `fail`) naming the first name that is not valid. */
export function assertSans<E extends Error>(names: readonly string[], fail: (message: string) => E): void {
  for (const n of names) {
    const bad = checkSan(n);
    if (bad) throw fail(bad);
  }
  if (uniqueSans(names).length > MAX_NAMES) throw fail(`${names.length} TLS names are more than the ${MAX_NAMES} a node certificate takes`);
}

/**
 * What this machine is dialled by: loopback, its host name (when it is a valid DNS name) and
 * every interface address except IPv6 link-local ones (those need a zone no certificate can name).
 */
export function localSans(extra: readonly string[] = []): string[] {
  const names = [...LOOPBACK_NAMES, ...extra]; // first: the cap below drops interface addresses, never these
  const host = hostname();
  if (!checkSan(host)) names.push(host);
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (!(a.family === 'IPv6' && /^fe[89ab]/i.test(a.address))) names.push(a.address);
  }
  return uniqueSans(names).slice(0, MAX_NAMES);
}
