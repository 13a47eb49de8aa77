import os from 'node:os';

/** listen with 0.0.0.0 / :: replaced by the first external IPv4 address (what peers can dial). */
export function advertiseFrom(listen: string): string {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i);
  const port = listen.slice(i + 1);
  if (host !== '0.0.0.0' && host !== '[::]' && host !== '::') return listen;
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `${a.address}:${port}`;
  }
  return `127.0.0.1:${port}`;
}
