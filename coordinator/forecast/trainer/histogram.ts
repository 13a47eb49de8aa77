/**
 * Gradient histograms (XGBoost's src/tree/hist/histogram.h): per slot, the sum of the
 * gradients and the sum of the hessians of a node's rows. The objective is squared error,
 * whose hessian is 1 for every row, so the hessian sum is a row count.
 * Layout: hist[2*slot] = gradient sum, hist[2*slot + 1] = hessian sum.
 */
import type { SlotMatrix } from './cuts';

/** Adds rows[begin..end) into hist (which the caller zeroed). */
export function buildHistogram(
  hist: Float64Array,
  slots: SlotMatrix,
  features: number,
  grad: Float32Array,
  rows: Uint32Array,
  begin: number,
  end: number,
): void {
  if (features === 1) {
    for (let i = begin; i < end; i++) {
      const r = rows[i];
      const s = slots[r] << 1;
      hist[s] += grad[r];
      hist[s + 1] += 1;
    }
    return;
  }
  for (let i = begin; i < end; i++) {
    const r = rows[i];
    const g = grad[r];
    const p = r * features;
    for (let f = 0; f < features; f++) {
      const s = slots[p + f] << 1;
      hist[s] += g;
      hist[s + 1] += 1;
    }
  }
}

/** The subtraction trick: a sibling's histogram is its parent's minus the built child's. */
export function subtractHistogram(out: Float64Array, parent: Float64Array, child: Float64Array): void {
  for (let i = 0; i < out.length; i++) out[i] = parent[i] - child[i];
}
