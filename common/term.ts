/** Election terms, as both roles check them (the election itself, and the agents' fencing). */

/**
 * Campaigning computes term + 1, which must stay exact: beyond 2^53 two different
 * terms would compare equal and "one leader per term" would silently break.
 */
export const MAX_TERM = Number.MAX_SAFE_INTEGER - 1;

export function isTerm(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= MAX_TERM;
}

/** Short, never-throwing rendering of a bad value for a log line. */
export function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}...` : x);
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint' || typeof x === 'undefined') return String(x);
  if (Array.isArray(x)) return 'an array';
  return `a ${typeof x}`;
}
