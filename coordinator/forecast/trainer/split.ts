/**
 * Split evaluation (XGBoost's src/tree/hist/evaluate_splits.h, without the 1/2 factor its
 * code omits too): gain = GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda).
 * A split is kept when gain > gamma and both children have hessian >= min_child_weight.
 * Missing values go the way that gains most; with none seen, right (XGBoost's forward scan).
 */
import type { BinLayout } from './cuts';

export interface SplitParams {
  lambda: number;
  gamma: number;
  minChildWeight: number;
}

export interface Split {
  gain: number;
  feature: number;
  /** Last bin (within the feature) that goes left: left iff x < cuts[feature][bin]. */
  bin: number;
  defaultLeft: boolean;
  leftG: number;
  leftH: number;
}

/** XGBoost's kRtEps: gains this small are rounding noise, not splits. */
const MIN_GAIN = 1e-6;

const score = (g: number, h: number, lambda: number) => (g * g) / (h + lambda);

/** The best split of a node whose histogram is hist and sums G, H; null when none is allowed. */
export function bestSplit(hist: Float64Array, layout: BinLayout, G: number, H: number, p: SplitParams): Split | null {
  const { lambda, minChildWeight } = p;
  const parent = score(G, H, lambda);
  let best: Split | null = null;
  let bestGain = Math.max(p.gamma, MIN_GAIN);
  const features = layout.cuts.length;
  for (let f = 0; f < features; f++) {
    const first = layout.offset[f];
    const miss = layout.offset[f + 1] - 1;
    const gm = hist[2 * miss];
    const hm = hist[2 * miss + 1];
    const lastBoundary = miss - 1; // the last value bin cannot split: nothing right of it
    // forward: missing goes right
    let gl = 0;
    let hl = 0;
    for (let s = first; s < lastBoundary; s++) {
      gl += hist[2 * s];
      hl += hist[2 * s + 1];
      if (hl < minChildWeight) continue;
      const hr = H - hl;
      if (hr < minChildWeight) break;
      const gain = score(gl, hl, lambda) + score(G - gl, hr, lambda) - parent;
      if (gain > bestGain) {
        bestGain = gain;
        best = { gain, feature: f, bin: s - first, defaultLeft: false, leftG: gl, leftH: hl };
      }
    }
    if (hm <= 0) continue;
    // backward: missing goes left (accumulate the right side from the top bin down)
    let gr = 0;
    let hr = 0;
    for (let s = lastBoundary; s > first; s--) {
      gr += hist[2 * s];
      hr += hist[2 * s + 1];
      if (hr < minChildWeight) continue;
      const hl2 = H - hr;
      if (hl2 < minChildWeight) break;
      const gain = score(G - gr, hl2, lambda) + score(gr, hr, lambda) - parent;
      if (gain > bestGain) {
        bestGain = gain;
        best = { gain, feature: f, bin: s - 1 - first, defaultLeft: true, leftG: G - gr, leftH: hl2 };
      }
    }
  }
  return best;
}
