/**
 * What a move costs, before it is made: the downtime the container will see and the bytes
 * that will cross the network, estimated from its memory and upper-dir size and fitted on
 * this cluster's own finished migrations (the snapshot lists them). With too little history
 * the priors below stand in, and the estimate says so.
 *
 * Downtime: least squares of downtime against memory (intercept + slope) over successful
 * migrations when there are at least 3 of distinct sizes and the fit is sane (slope and
 * intercept not negative); with 1-2 of them, the prior's slope scaled to their mean; else the prior.
 * Bytes: memory x (the median of bytes moved per byte of memory in history, prior 1) + upper dir.
 */
import { finite, fmt, mib } from './load';
import type { ContainerView, MigrationView } from './snapshot';

/** Prior downtime: a fixed part (freeze, dump, restore, network switch) and a part per byte of memory. */
export const PRIOR_DOWNTIME_BASE_MS = 300;
/** About 125 MB/s through dump, transfer and restore. */
export const PRIOR_DOWNTIME_MS_PER_BYTE = 8 / 1048576;
/** CPU a migration spends per byte it moves (dump, checksum, send, receive, restore): 200 MB per core-second. */
export const COPY_BYTES_PER_CORE_SECOND = 200 * 1048576;

export interface CostModel {
  /** ms = baseMs + msPerByte x memory. */
  baseMs: number;
  msPerByte: number;
  /** Bytes moved per byte of memory (the checkpoint's overhead, the file system diff). */
  bytesPerMemoryByte: number;
  /** Successful migrations the fit used. */
  samples: number;
  /** 'history' (least squares), 'scaled' (prior scaled to 1-2 migrations), 'prior'. */
  basis: 'history' | 'scaled' | 'prior';
}

export interface MoveCost {
  downtimeMs: number;
  bytes: number;
  /** Cores x seconds the move costs: the container's work lost while frozen plus the CPU that copies it. */
  coreSeconds: number;
  /** A sentence with the numbers and where they come from. */
  reason: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function fitCost(migrations: readonly MigrationView[]): CostModel {
  const ok = migrations.filter((m) => m.outcome === 'SUCCEEDED' && m.memoryBytes > 0 && Number.isFinite(m.downtimeMs) && m.downtimeMs > 0 && Number.isFinite(m.memoryBytes));
  const withBytes = ok.filter((m) => Number.isFinite(m.bytes) && m.bytes > 0);
  const bytesPerMemoryByte = withBytes.length ? Math.max(0.1, Math.min(100, median(withBytes.map((m) => m.bytes / m.memoryBytes)))) : 1;
  const prior: CostModel = { baseMs: PRIOR_DOWNTIME_BASE_MS, msPerByte: PRIOR_DOWNTIME_MS_PER_BYTE, bytesPerMemoryByte, samples: ok.length, basis: 'prior' };
  if (ok.length === 0) return prior;
  const n = ok.length;
  const mx = ok.reduce((s, m) => s + m.memoryBytes, 0) / n;
  const my = ok.reduce((s, m) => s + m.downtimeMs, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const m of ok) (sxx += (m.memoryBytes - mx) ** 2), (sxy += (m.memoryBytes - mx) * (m.downtimeMs - my));
  if (n >= 3 && sxx > 0) {
    const slope = sxy / sxx;
    const base = my - slope * mx;
    if (slope >= 0 && base >= 0 && Number.isFinite(slope) && Number.isFinite(base)) return { baseMs: base, msPerByte: slope, bytesPerMemoryByte, samples: n, basis: 'history' };
  }
  // Too few or degenerate: keep the prior's shape, scale it to what this cluster measured.
  const predicted = PRIOR_DOWNTIME_BASE_MS + PRIOR_DOWNTIME_MS_PER_BYTE * mx;
  const k = predicted > 0 ? my / predicted : 1;
  return { baseMs: PRIOR_DOWNTIME_BASE_MS * k, msPerByte: PRIOR_DOWNTIME_MS_PER_BYTE * k, bytesPerMemoryByte, samples: n, basis: 'scaled' };
}

/** Expected cost of moving `c`, whose work is `cores` of CPU (what it would lose while frozen). */
export function moveCost(model: CostModel, c: ContainerView, cores: number): MoveCost {
  const mem = Math.max(0, Number.isFinite(c.memoryBytes) ? c.memoryBytes : 0);
  const upper = Math.max(0, Number.isFinite(c.upperDirBytes) ? c.upperDirBytes : 0);
  const downtimeMs = model.baseMs + model.msPerByte * mem;
  const bytes = mem * model.bytesPerMemoryByte + upper;
  const coreSeconds = (downtimeMs / 1000) * Math.max(0, finite(cores)) + bytes / COPY_BYTES_PER_CORE_SECOND;
  const from = model.basis === 'history' ? `fitted on ${model.samples} migration(s) of this cluster` : model.basis === 'scaled' ? `prior scaled to ${model.samples} migration(s) of this cluster` : 'prior, no migration measured yet';
  const reason = `expected downtime ${fmt(downtimeMs)} ms and ${mib(bytes)} moved (${mib(mem)} memory, ${mib(upper)} upper dir; ${from}), ${fmt(coreSeconds)} core-s`;
  return { downtimeMs, bytes, coreSeconds, reason };
}
