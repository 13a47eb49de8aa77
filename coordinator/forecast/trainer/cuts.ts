/**
 * Quantile cuts and the binned matrix (XGBoost's HistogramCuts and GHistIndexMatrix).
 * Values are float32 throughout, as in XGBoost and onnxruntime: a cut is a float32 data
 * value, so `x < cut` routes every training value the same in the trainer and in the
 * exported model. A cut is a bin's upper bound: bin(x) = how many cuts are <= x.
 * Each feature also has one slot for missing (NaN) values, after its value bins, so a
 * node's missing sums are read from the histogram rather than derived.
 */

/** Cuts of one feature: ascending float32 values, at most maxBin - 1 of them (maxBin bins). */
export function featureCuts(values: Float32Array, maxBin: number): Float32Array {
  const present = new Float32Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === v) present[n++] = v; // NaN is missing
  }
  const sorted = present.subarray(0, n).sort();
  if (n === 0) return new Float32Array(0);
  // few distinct values: one bin each (the cut between two values is the upper one)
  const distinct: number[] = [];
  for (let i = 1; i < n && distinct.length < maxBin; i++) if (sorted[i] !== sorted[i - 1]) distinct.push(sorted[i]);
  if (distinct.length < maxBin) return Float32Array.from(distinct);
  // otherwise equal-count quantiles: the value at rank j*n/maxBin starts bin j
  const cuts: number[] = [];
  for (let j = 1; j < maxBin; j++) {
    const v = sorted[Math.floor((j * n) / maxBin)];
    if (v > sorted[0] && (cuts.length === 0 || v > cuts[cuts.length - 1])) cuts.push(v);
  }
  return Float32Array.from(cuts);
}

/** Index of the bin holding v: the number of cuts <= v. */
export function binOf(cuts: Float32Array, v: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Where each feature's slots sit in a histogram: feature f owns slots
 * [offset[f], offset[f+1]); its last slot is for missing values.
 */
export interface BinLayout {
  cuts: Float32Array[];
  offset: Uint32Array;
  slots: number;
}

export function layoutOf(cuts: Float32Array[]): BinLayout {
  const offset = new Uint32Array(cuts.length + 1);
  for (let f = 0; f < cuts.length; f++) offset[f + 1] = offset[f] + cuts[f].length + 2; // bins + missing
  return { cuts, offset, slots: offset[cuts.length] };
}

export const missingSlot = (layout: BinLayout, f: number): number => layout.offset[f + 1] - 1;

export type SlotMatrix = Uint16Array | Uint32Array;

/**
 * The binned matrix, row-major (a row's slots share a cache line, which is what the
 * histogram loop reads): global slot index of x[r, f].
 */
export function binMatrix(x: Float32Array, rows: number, features: number, layout: BinLayout): SlotMatrix {
  const out = layout.slots <= 0x10000 ? new Uint16Array(rows * features) : new Uint32Array(rows * features);
  for (let f = 0; f < features; f++) {
    const cuts = layout.cuts[f];
    const base = layout.offset[f];
    const missing = missingSlot(layout, f);
    for (let r = 0, p = f; r < rows; r++, p += features) {
      const v = x[p];
      out[p] = v === v ? base + binOf(cuts, v) : missing;
    }
  }
  return out;
}

/** Cuts for every column of a row-major matrix. */
export function matrixCuts(x: Float32Array, rows: number, features: number, maxBin: number): Float32Array[] {
  const col = new Float32Array(rows);
  const out: Float32Array[] = [];
  for (let f = 0; f < features; f++) {
    for (let r = 0, p = f; r < rows; r++, p += features) col[r] = x[p];
    out.push(featureCuts(col, maxBin));
  }
  return out;
}
