/**
 * LR-MMT (Beloglazov & Buyya): a host is overloaded when its utilization, predicted by a
 * linear regression on its last 10 samples one migration time ahead and multiplied by the
 * safety parameter (1.2), reaches 1; under 10 samples, a static 0.7 threshold. VMs leave by
 * minimum migration time. CloudSim's PowerVmAllocationPolicyMigrationLocalRegression: its
 * "loess" weights drop out (none is zero, so it runs an ordinary least squares fit).
 */
import { consolidationPolicy, hostHistory, staticOverload, type Host } from './consolidation';

export interface LrSettings {
  safety: number;
  /** Scheduling interval, s, and migration bandwidth, MB/s (1 Gbit/s halved): the prediction looks ceil(max RAM / bw / interval) intervals ahead. */
  intervalS: number;
  migrationMBps: number;
  fallbackThreshold: number;
}

/** Intercept and slope of the least-squares line through (1, y0) ... (n, y[n-1]). */
export function linearFit(y: readonly number[]): [number, number] {
  const n = y.length;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const x = i + 1;
    sx += x;
    sy += y[i];
    sxx += x * x;
    sxy += x * y[i];
  }
  const slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return [(sy - slope * sx) / n, slope];
}

export function lrOverloaded(h: Host, requested: number, s: LrSettings): boolean {
  const hist = hostHistory(h);
  const length = 10;
  if (hist.length < length) return staticOverload(h, requested, s.fallbackThreshold);
  const y = Array.from({ length }, (_, i) => hist[length - i - 1]);
  const [a, b] = linearFit(y);
  let maxRam = 0;
  for (const v of h.vms) maxRam = Math.max(maxRam, v.ramMb);
  const intervals = Math.ceil(maxRam / s.migrationMBps / s.intervalS);
  return (a + b * (length + intervals)) * s.safety >= 1;
}

const positive = (x: unknown, name: string, max: number): string | null =>
  typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= max ? null : `${name} must be a number in (0, ${max}] (got ${JSON.stringify(x)})`;

export const lrMmt = consolidationPolicy<LrSettings>(
  'lr-mmt',
  "Beloglazov & Buyya's LR-MMT: local-regression overload prediction, minimum-migration-time selection, power-aware placement, under-utilized hosts emptied and switched off",
  { safety: 1.2, intervalS: 300, migrationMBps: 62.5, fallbackThreshold: 0.7 },
  (s) => {
    if (typeof s !== 'object' || s === null) return 'lr-mmt settings must be an object';
    const o = s as Record<string, unknown>;
    return positive(o.safety, 'lr-mmt.safety', 10) ?? positive(o.intervalS, 'lr-mmt.intervalS', 86400) ?? positive(o.migrationMBps, 'lr-mmt.migrationMBps', 1e6) ?? positive(o.fallbackThreshold, 'lr-mmt.fallbackThreshold', 1);
  },
  (s) => (h, req) => lrOverloaded(h, req, s),
);
