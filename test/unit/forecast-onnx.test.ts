import { mulberry32 } from '../../common/random';
import { describe, expect, it } from 'vitest';
import { onnx } from 'onnx-proto';
import { predict, train, type Dataset } from '../../coordinator/forecast/trainer/booster';
import { boosterToOnnx, FEATURES_KEY } from '../../coordinator/forecast/onnx-export';
import { bindModel, ModelError } from '../../coordinator/forecast/onnx-binding';
import { checkParams } from '../../coordinator/forecast/trainer/params';
import { loadRegressor } from '../../coordinator/forecast/regressor';

// Deterministic data (mulberry32), with values that are not float32-exact and missing values.
function dataset(rows: number, seed = 7): Dataset {
  const rnd = mulberry32(seed);
  const F = 4;
  const x = new Float32Array(rows * F);
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const a = rnd() * 1e3 + 0.1, b = rnd() - 0.5, c = Math.floor(rnd() * 5), d = rnd() * 1e-3;
    x.set([a, b, c, d], r * F);
    y[r] = 0.01 * a + 10 * Math.sin(6 * b) + (c === 3 ? 5 : 0) + 2000 * d + rnd();
    if (rnd() < 0.1) x[r * F + 1] = NaN; // missing: the learned default way must travel to ONNX
    if (rnd() < 0.05) x[r * F + 0] = NaN;
  }
  return { x, y, rows, features: F };
}

const NAMES = ['cpu', 'mem', 'threads', 'io'];

describe('ONNX export run by onnxruntime', () => {
  it('predicts what the trainer predicts, on training rows, NaNs and values at every threshold', async () => {
    const d = dataset(5000);
    const model = train(d, checkParams({ rounds: 40, maxDepth: 5 }));
    const bytes = boosterToOnnx(model, { featureNames: NAMES, target: 'ops' });
    // add rows sitting exactly on each threshold and just below it (float32), the routing edge
    const edge: number[] = [];
    for (const t of model.trees.slice(0, 10)) {
      for (let i = 0; i < t.feature.length; i++) {
        if (t.feature[i] < 0) continue;
        for (const v of [t.threshold[i], nextDown32(t.threshold[i])]) {
          const row = [1, 0, 2, 0.0005];
          row[t.feature[i]] = v;
          edge.push(...row);
        }
      }
    }
    const x = new Float32Array([...d.x, ...edge]);
    const rows = x.length / 4;
    const ours = predict(model, x, rows);
    const reg = await loadRegressor(bytes, ['ops', ...NAMES]);
    try {
      expect(reg.binding).toMatchObject({ layout: 'matrix', features: NAMES });
      const theirs = await reg.predict(x, rows);
      let maxAbs = 0;
      for (let r = 0; r < rows; r++) maxAbs = Math.max(maxAbs, Math.abs(ours[r] - theirs[r]));
      // onnxruntime sums float32 leaf values; a routing difference would be a whole leaf (>> 1e-3)
      console.log(`onnxruntime vs trainer over ${rows} rows: max abs diff ${maxAbs.toExponential(2)} (labels span ~${spread(d.y).toFixed(0)})`);
      expect(maxAbs).toBeLessThan(1e-3);
    } finally {
      await reg.close();
    }
  });

  it('routes every row to the trainer\'s leaf: one tree, where a wrong turn changes the output by a whole leaf', async () => {
    const d = dataset(5000, 11);
    const model = train(d, checkParams({ rounds: 1, maxDepth: 6, eta: 1 }));
    const t = model.trees[0];
    const leaves = [...t.value].filter((_, i) => t.feature[i] < 0).sort((a, b) => a - b);
    let minGap = Infinity;
    for (let i = 1; i < leaves.length; i++) minGap = Math.min(minGap, leaves[i] - leaves[i - 1]);
    const reg = await loadRegressor(boosterToOnnx(model, { featureNames: NAMES, target: 'ops' }), NAMES);
    try {
      const got = await reg.predict(d.x, d.rows);
      const want = predict(model, d.x, d.rows);
      let maxAbs = 0;
      for (let r = 0; r < d.rows; r++) maxAbs = Math.max(maxAbs, Math.abs(got[r] - want[r]));
      expect(minGap).toBeGreaterThan(1e-3);
      expect(maxAbs).toBeLessThan(minGap / 100);
    } finally {
      await reg.close();
    }
  });

  it('refuses bytes that are not ONNX, a model naming a column the dataset lacks, and an unnamed matrix', () => {
    expect(() => bindModel(Buffer.from('hello, I am a CSV\n1,2,3\n'), ['a'], 'm.onnx')).toThrow(/m.onnx is not an ONNX model/);
    const d = dataset(200);
    const bytes = boosterToOnnx(train(d, checkParams({ rounds: 2 })), { featureNames: NAMES, target: 'ops' });
    expect(() => bindModel(bytes, ['cpu', 'mem', 'io'], 'm.onnx')).toThrow(/reads feature "threads", which the dataset lacks/);
    const m = onnx.ModelProto.decode(bytes);
    m.metadataProps = m.metadataProps.filter((p) => p.key !== FEATURES_KEY);
    expect(() => bindModel(onnx.ModelProto.encode(m).finish(), NAMES)).toThrow(ModelError);
    expect(() => bindModel(onnx.ModelProto.encode(m).finish(), NAMES)).toThrow(/takes 4 features but does not name them/);
    (m.graph as any).input[0].type.tensorType.shape.dim = [{ dimParam: 'N' }, { dimValue: 4 }, { dimValue: 2 }];
    expect(() => bindModel(onnx.ModelProto.encode(m).finish(), NAMES)).toThrow(/has shape \[N, 4, 2\]/);
  });
});

describe('a compatible regressor with one input per column', () => {
  it('is bound by its input names and run by onnxruntime, the columns fed in its order', async () => {
    // what onnxmltools writes for a model given one initial type per column: [N,1] inputs
    // concatenated, then the ensemble. Built here from herd's own export, re-plumbed.
    const d = dataset(500);
    const model = train(d, checkParams({ rounds: 5, maxDepth: 3 }));
    const m = onnx.ModelProto.decode(boosterToOnnx(model, { featureNames: NAMES, target: 'ops' }));
    const g = m.graph!;
    const A = onnx.AttributeProto.AttributeType;
    g.node!.unshift(onnx.NodeProto.create({ opType: 'Concat', input: NAMES, output: ['features'], attribute: [{ name: 'axis', type: A.INT, i: 1 }] }));
    g.input = NAMES.map((name) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }] } } } }));
    m.metadataProps = [];
    const bytes = onnx.ModelProto.encode(m).finish();
    // the dataset's columns in another order, with extras: bound by name
    const reg = await loadRegressor(bytes, ['io', 'ops', 'threads', 'cpu', 'mem']);
    try {
      expect(reg.binding).toMatchObject({ layout: 'columns', features: NAMES });
      const got = await reg.predict(d.x, d.rows);
      const want = predict(model, d.x, d.rows);
      for (let r = 0; r < d.rows; r++) expect(Math.abs(got[r] - want[r])).toBeLessThan(1e-4);
    } finally {
      await reg.close();
    }
    expect(() => bindModel(bytes, ['cpu', 'mem', 'threads'])).toThrow(/reads feature "io", which the dataset lacks/);
  });
});

function nextDown32(v: number): number {
  const f = new Float32Array([v]);
  const i = new Int32Array(f.buffer);
  i[0] += v > 0 ? -1 : 1;
  return f[0];
}

function spread(y: Float64Array) {
  let lo = Infinity, hi = -Infinity;
  for (const v of y) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return hi - lo;
}
