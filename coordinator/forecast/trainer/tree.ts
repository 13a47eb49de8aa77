/**
 * A regression tree as flat arrays (node 0 is the root). An inner node sends x left when
 * x[feature] < threshold (float32, as onnxruntime compares), a missing value its default way.
 */
export interface Tree {
  /** -1 for a leaf. */
  feature: Int32Array;
  threshold: Float32Array;
  defaultLeft: Uint8Array;
  left: Int32Array;
  right: Int32Array;
  /** A leaf's output (already scaled by eta); 0 on inner nodes. */
  value: Float64Array;
  /** The split's gain on inner nodes (for importance). */
  gain: Float64Array;
  /** Hessian sum (rows, for squared error) reaching the node. */
  cover: Float64Array;
}

/** Leaf reached by row `row` of a row-major float32 matrix with `features` columns. */
export function leafOf(tree: Tree, x: Float32Array, row: number, features: number): number {
  let n = 0;
  const base = row * features;
  while (tree.feature[n] >= 0) {
    const v = x[base + tree.feature[n]];
    const goLeft = v === v ? v < tree.threshold[n] : tree.defaultLeft[n] === 1;
    n = goLeft ? tree.left[n] : tree.right[n];
  }
  return n;
}

/** Growable node storage while a tree is built. */
export class TreeBuilder {
  private readonly nodes: { feature: number; threshold: number; defaultLeft: boolean; left: number; right: number; value: number; gain: number; cover: number }[] = [];

  add(cover: number): number {
    this.nodes.push({ feature: -1, threshold: 0, defaultLeft: false, left: -1, right: -1, value: 0, gain: 0, cover });
    return this.nodes.length - 1;
  }

  setSplit(node: number, feature: number, threshold: number, defaultLeft: boolean, gain: number, left: number, right: number): void {
    Object.assign(this.nodes[node], { feature, threshold, defaultLeft, gain, left, right });
  }

  setLeaf(node: number, value: number): void {
    this.nodes[node].value = value;
  }

  finish(): Tree {
    const n = this.nodes.length;
    const t: Tree = {
      feature: new Int32Array(n),
      threshold: new Float32Array(n),
      defaultLeft: new Uint8Array(n),
      left: new Int32Array(n),
      right: new Int32Array(n),
      value: new Float64Array(n),
      gain: new Float64Array(n),
      cover: new Float64Array(n),
    };
    this.nodes.forEach((d, i) => {
      t.feature[i] = d.feature;
      t.threshold[i] = d.threshold;
      t.defaultLeft[i] = d.defaultLeft ? 1 : 0;
      t.left[i] = d.left;
      t.right[i] = d.right;
      t.value[i] = d.value;
      t.gain[i] = d.gain;
      t.cover[i] = d.cover;
    });
    return t;
  }
}
