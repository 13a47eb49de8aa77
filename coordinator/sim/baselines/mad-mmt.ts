/**
 * MAD-MMT (Beloglazov & Buyya): a host is overloaded when its utilization exceeds
 * 1 - s x MAD of its history (s = 2.5; the median absolute deviation of up to 30 samples,
 * once it holds at least 12; before that a static 0.7 threshold). VMs leave by minimum
 * migration time. CloudSim's PowerVmAllocationPolicyMigrationMedianAbsoluteDeviation.
 */
import { consolidationPolicy, hostHistory, staticOverload, type Host } from './consolidation';

export interface MadSettings {
  safety: number;
  fallbackThreshold: number;
}

/** Median, averaging the two middle values of an even count (Apache Commons' percentile 50). */
export function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : s[n / 2 - 1] + 0.5 * (s[n / 2] - s[n / 2 - 1]);
}

export function mad(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const m = median(xs);
  return median(xs.map((x) => Math.abs(m - x)));
}

export function madOverloaded(h: Host, requested: number, s: MadSettings): boolean {
  // CloudSim's countNonZeroBeginning on a history with its zero tail trimmed is its length.
  const hist = hostHistory(h);
  if (hist.length < 12) return staticOverload(h, requested, s.fallbackThreshold);
  return requested / h.cap > 1 - s.safety * mad(hist);
}

export const madMmt = consolidationPolicy<MadSettings>(
  'mad-mmt',
  "Beloglazov & Buyya's MAD-MMT: adaptive threshold 1 - s x MAD, minimum-migration-time selection, power-aware placement, under-utilized hosts emptied and switched off",
  { safety: 2.5, fallbackThreshold: 0.7 },
  (s) => {
    if (typeof s !== 'object' || s === null) return 'mad-mmt settings must be an object';
    const o = s as Record<string, unknown>;
    if (typeof o.safety !== 'number' || !(o.safety >= 0 && o.safety <= 10)) return `mad-mmt.safety must be a number in [0, 10] (got ${JSON.stringify(o.safety)})`;
    if (typeof o.fallbackThreshold !== 'number' || !(o.fallbackThreshold > 0 && o.fallbackThreshold <= 1)) return `mad-mmt.fallbackThreshold must be in (0, 1] (got ${JSON.stringify(o.fallbackThreshold)})`;
    return null;
  },
  (s) => (h, req) => madOverloaded(h, req, s),
);
