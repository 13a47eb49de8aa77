/**
 * A trained booster as an ONNX model: one ai.onnx.ml TreeEnsembleRegressor (opset 3;
 * onnxruntime refuses the operator at 5), written with onnx-proto, ONNX's own schema
 * compiled for protobufjs. `x < threshold` is BRANCH_LT; the thresholds are the trainer's
 * float32 cuts, so onnxruntime's float32 comparisons route every training value as the
 * trainer did; NaN follows nodes_missing_value_tracks_true (the learned default way).
 * The feature columns' names travel in metadata_props, so a loader can check them.
 */
import { onnx } from 'onnx-proto';
import type { Booster } from './trainer/booster';

export const INPUT_NAME = 'features';
export const OUTPUT_NAME = 'prediction';
/** metadata_props keys: JSON arrays/strings naming the input's columns and the target. */
export const FEATURES_KEY = 'herd.features';
export const TARGET_KEY = 'herd.target';

const A = onnx.AttributeProto.AttributeType;

const ints = (name: string, v: ArrayLike<number>) => ({ name, type: A.INTS, ints: Array.from(v) });
const floats = (name: string, v: ArrayLike<number>) => ({ name, type: A.FLOATS, floats: Array.from(v, Math.fround) });
const strings = (name: string, v: string[]) => ({ name, type: A.STRINGS, strings: v.map((s) => Buffer.from(s, 'utf8')) });
const str = (name: string, v: string) => ({ name, type: A.STRING, s: Buffer.from(v, 'utf8') });

function tensorType(dims: (number | string)[]) {
  return {
    tensorType: {
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

export interface ExportInfo {
  featureNames: string[];
  target: string;
  /** Extra metadata (model version, validation RMSE...). */
  metadata?: Record<string, string>;
}

export function boosterToOnnx(model: Pick<Booster, 'baseScore' | 'trees' | 'features'>, info: ExportInfo): Uint8Array {
  if (info.featureNames.length !== model.features) throw new Error(`${info.featureNames.length} feature names for a model of ${model.features} features`);
  const n = { tree: [] as number[], node: [] as number[], feature: [] as number[], mode: [] as string[], value: [] as number[], yes: [] as number[], no: [] as number[], missingYes: [] as number[] };
  const leaf = { tree: [] as number[], node: [] as number[], weight: [] as number[] };
  model.trees.forEach((t, ti) => {
    for (let i = 0; i < t.feature.length; i++) {
      const inner = t.feature[i] >= 0;
      n.tree.push(ti);
      n.node.push(i);
      n.feature.push(inner ? t.feature[i] : 0);
      n.mode.push(inner ? 'BRANCH_LT' : 'LEAF');
      n.value.push(inner ? t.threshold[i] : 0);
      n.yes.push(inner ? t.left[i] : 0);
      n.no.push(inner ? t.right[i] : 0);
      n.missingYes.push(inner ? t.defaultLeft[i] : 0);
      if (!inner) {
        leaf.tree.push(ti);
        leaf.node.push(i);
        leaf.weight.push(t.value[i]);
      }
    }
  });
  const node = {
    opType: 'TreeEnsembleRegressor',
    domain: 'ai.onnx.ml',
    name: 'gbtree',
    input: [INPUT_NAME],
    output: [OUTPUT_NAME],
    attribute: [
      { name: 'n_targets', type: A.INT, i: 1 },
      ints('nodes_treeids', n.tree),
      ints('nodes_nodeids', n.node),
      ints('nodes_featureids', n.feature),
      strings('nodes_modes', n.mode),
      floats('nodes_values', n.value),
      ints('nodes_truenodeids', n.yes),
      ints('nodes_falsenodeids', n.no),
      ints('nodes_missing_value_tracks_true', n.missingYes),
      ints('target_treeids', leaf.tree),
      ints('target_nodeids', leaf.node),
      ints('target_ids', new Array(leaf.tree.length).fill(0)),
      floats('target_weights', leaf.weight),
      floats('base_values', [model.baseScore]),
      str('aggregate_function', 'SUM'),
      str('post_transform', 'NONE'),
    ],
  };
  const metadata = { [FEATURES_KEY]: JSON.stringify(info.featureNames), [TARGET_KEY]: JSON.stringify(info.target), ...info.metadata };
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'herd',
    opsetImport: [
      { domain: 'ai.onnx.ml', version: 3 },
      { domain: '', version: 13 },
    ],
    graph: {
      name: 'herd-forecast',
      node: [node],
      input: [{ name: INPUT_NAME, type: tensorType(['N', model.features]) }],
      output: [{ name: OUTPUT_NAME, type: tensorType(['N', 1]) }],
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(proto).finish();
}
