/** Text of gRPC failures for people (CLI messages, logs, statuses that quote another node's failure). */

/**
 * grpc-js's connection failure text without its scaffolding: "No connection established.
 * Last error: Error: connect ECONNREFUSED 127.0.0.1:7400. Resolution note: " becomes
 * "connect ECONNREFUSED 127.0.0.1:7400" (a resolution note that says something is kept).
 */
export function cleanDetails(details: string): string {
  let s = details.trim();
  let note = '';
  const n = /\.?\s*Resolution note:\s*(.*)$/s.exec(s);
  if (n) {
    note = n[1].trim();
    s = s.slice(0, n.index);
  }
  s = s.replace(/^No connection established\.?\s*/i, '').replace(/^Last error:\s*/i, '').replace(/^(Error:\s*)+/, '').replace(/\.$/, '');
  return note ? `${s} (name resolution: ${note})` : s;
}
