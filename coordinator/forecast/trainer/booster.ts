/**
 * Gradient boosting of regression trees on squared error, grown depth-wise as XGBoost's
 * `hist` tree method grows them (src/tree/updater_quantile_hist.cc): quantile cuts, one
 * histogram per node (the smaller child built, its sibling derived by subtraction), the
 * best split per node, leaves -G/(H+lambda) x eta, base score = mean of the labels, and
 * early stopping on a validation set the caller cut from a later period. Pure: no I/O,
 * no clock, no randomness, so a dataset and parameters always give the same model.
 */
import { type BinLayout, binMatrix, layoutOf, matrixCuts, missingSlot, type SlotMatrix } from './cuts';
import { buildHistogram, subtractHistogram } from './histogram';
import { goesLeft, partitionRows, type SlotSplit } from './partition';
import { bestSplit } from './split';
import { type Tree, TreeBuilder, leafOf } from './tree';
import type { TrainParams } from './params';

/** A row-major float32 matrix of features (NaN = missing) and its labels. */
export interface Dataset {
  x: Float32Array;
  y: Float64Array;
  rows: number;
  features: number;
}

export interface Importance {
  /** Mean gain of the feature's splits (XGBoost's importance_type="gain"); 0 if never split on. */
  gain: Float64Array;
  totalGain: Float64Array;
  splits: Uint32Array;
}

export interface Booster {
  features: number;
  baseScore: number;
  trees: Tree[];
  importance: Importance;
  /** RMSE after each round (validation only when a validation set was given). */
  trainRmse: number[];
  validRmse: number[];
  /** Rounds kept: the best validation round + 1 with early stopping, else all. */
  bestRounds: number;
}

export interface TrainHooks {
  /** Called after each round (progress; the driver reports it). */
  onRound?: (round: number, trainRmse: number, validRmse: number | undefined) => void;
}

interface Pending {
  node: number;
  begin: number;
  end: number;
  G: number;
  H: number;
  hist: Float64Array | null;
}

export function mean(y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i];
  return y.length ? s / y.length : 0;
}

export function rmse(pred: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (pred[i] - y[i]) ** 2;
  return Math.sqrt(s / Math.max(1, y.length));
}

export function train(data: Dataset, params: TrainParams, valid?: Dataset, hooks: TrainHooks = {}): Booster {
  const { rows: n, features } = data;
  if (n < 2) throw new Error(`training needs at least 2 rows, got ${n}`);
  if (valid && valid.features !== features) throw new Error(`the validation set has ${valid.features} features, the training set ${features}`);
  const layout = layoutOf(matrixCuts(data.x, n, features, params.maxBin));
  const slots = binMatrix(data.x, n, features, layout);
  const baseScore = mean(data.y);
  const grad = new Float32Array(n);
  const pred = new Float64Array(n).fill(baseScore);
  const validPred = valid ? new Float64Array(valid.rows).fill(baseScore) : undefined;
  const rowIndex = new Uint32Array(n);
  const scratch = new Uint32Array(n);
  const pool: Float64Array[] = [];
  const take = () => pool.pop()?.fill(0) ?? new Float64Array(2 * layout.slots);
  const give = (h: Float64Array | null) => h && pool.push(h);

  const trees: Tree[] = [];
  const trainRmse: number[] = [];
  const validRmse: number[] = [];
  let best = Infinity;
  let bestRounds = 0;
  for (let round = 0; round < params.rounds; round++) {
    let G = 0;
    for (let r = 0; r < n; r++) {
      const g = pred[r] - data.y[r];
      grad[r] = g;
      G += Math.fround(g);
      rowIndex[r] = r;
    }
    const tree = growTree(params, layout, slots, features, rowIndex, scratch, G, n, grad, take, give, pred);
    trees.push(tree);
    trainRmse.push(rmse(pred, data.y));
    if (valid && validPred) {
      for (let r = 0; r < valid.rows; r++) validPred[r] += tree.value[leafOf(tree, valid.x, r, features)];
      const v = rmse(validPred, valid.y);
      validRmse.push(v);
      if (v < best) {
        best = v;
        bestRounds = round + 1;
      }
    } else bestRounds = round + 1;
    hooks.onRound?.(round, trainRmse[round], validRmse[round]);
    if (valid && params.earlyStoppingRounds > 0 && round + 1 - bestRounds >= params.earlyStoppingRounds) break;
  }
  const kept = params.earlyStoppingRounds > 0 ? trees.slice(0, bestRounds) : trees;
  return { features, baseScore, trees: kept, importance: importanceOf(kept, features), trainRmse, validRmse, bestRounds: kept.length };
}

/**
 * Grows one tree depth-wise and adds its leaves to pred for the rows they hold. A split
 * whose children will be leaves needs no partition: each row's leaf value is added at once.
 */
function growTree(
  params: TrainParams,
  layout: BinLayout,
  slots: SlotMatrix,
  features: number,
  rows: Uint32Array,
  scratch: Uint32Array,
  G: number,
  H: number,
  grad: Float32Array,
  take: () => Float64Array,
  give: (h: Float64Array | null) => void,
  pred: Float64Array,
): Tree {
  const builder = new TreeBuilder();
  const leafValue = (g: number, h: number) => (-g / (h + params.lambda)) * params.eta;
  const rootHist = take();
  buildHistogram(rootHist, slots, features, grad, rows, 0, H);
  let level: Pending[] = [{ node: builder.add(H), begin: 0, end: H, G, H, hist: rootHist }];
  for (let depth = 0; level.length > 0; depth++) {
    const next: Pending[] = [];
    for (const p of level) {
      const split = p.hist ? bestSplit(p.hist, layout, p.G, p.H, params) : null;
      if (!split) {
        const value = leafValue(p.G, p.H);
        builder.setLeaf(p.node, value);
        for (let i = p.begin; i < p.end; i++) pred[rows[i]] += value;
        give(p.hist);
        continue;
      }
      const f = split.feature;
      const sp: SlotSplit = { feature: f, lastLeftSlot: layout.offset[f] + split.bin, missingSlot: missingSlot(layout, f), defaultLeft: split.defaultLeft };
      const [gl, hl, gr, hr] = [split.leftG, split.leftH, p.G - split.leftG, p.H - split.leftH];
      const l = builder.add(hl);
      const r = builder.add(hr);
      builder.setSplit(p.node, f, layout.cuts[f][split.bin], split.defaultLeft, split.gain, l, r);
      if (depth + 1 >= params.maxDepth) {
        const vl = leafValue(gl, hl);
        const vr = leafValue(gr, hr);
        builder.setLeaf(l, vl);
        builder.setLeaf(r, vr);
        for (let i = p.begin; i < p.end; i++) {
          const row = rows[i];
          pred[row] += goesLeft(slots[row * features + f], sp) ? vl : vr;
        }
        give(p.hist);
        continue;
      }
      // build the smaller child's histogram while partitioning; the larger is parent - smaller
      const smallLeft = hl <= hr;
      const small = take();
      const mid = partitionRows(rows, p.begin, p.end, slots, features, sp, scratch, { out: small, left: smallLeft, grad });
      const large = p.hist!;
      subtractHistogram(large, large, small);
      next.push(
        { node: l, begin: p.begin, end: mid, G: gl, H: hl, hist: smallLeft ? small : large },
        { node: r, begin: mid, end: p.end, G: gr, H: hr, hist: smallLeft ? large : small },
      );
    }
    level = next;
  }
  return builder.finish();
}

function importanceOf(trees: Tree[], features: number): Importance {
  const totalGain = new Float64Array(features);
  const splits = new Uint32Array(features);
  for (const t of trees) {
    for (let i = 0; i < t.feature.length; i++) {
      const f = t.feature[i];
      if (f < 0) continue;
      totalGain[f] += t.gain[i];
      splits[f]++;
    }
  }
  const gain = totalGain.map((g, f) => (splits[f] ? g / splits[f] : 0));
  return { gain, totalGain, splits };
}

/** Predictions for the rows of a row-major float32 matrix. */
export function predict(model: Pick<Booster, 'baseScore' | 'trees' | 'features'>, x: Float32Array, rows: number): Float64Array {
  const out = new Float64Array(rows).fill(model.baseScore);
  for (const t of model.trees) for (let r = 0; r < rows; r++) out[r] += t.value[leafOf(t, x, r, model.features)];
  return out;
}
