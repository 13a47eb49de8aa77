/**
 * Which dataset columns an ONNX regressor reads, checked before it runs. Two shapes are
 * accepted: herd's own (one float input [N, F] whose columns metadata_props names), or
 * one float input [N, 1] per feature named by its column (as onnxmltools writes a model
 * given one initial type per column). Anything else is refused with what to change.
 */
import { onnx } from 'onnx-proto';
import { FEATURES_KEY } from './onnx-export';

export class ModelError extends Error {}

export interface Binding {
  /** 'matrix': one input of all columns; 'columns': one input per column. */
  layout: 'matrix' | 'columns';
  /** Input names, in feed order (one for 'matrix'). */
  inputs: string[];
  /** Dataset columns the model reads, in its order. */
  features: string[];
  output: string;
  metadata: Record<string, string>;
}

type Dim = number | string;

function dimsOf(v: onnx.IValueInfoProto): Dim[] | undefined {
  const shape = v.type?.tensorType?.shape;
  if (!shape) return undefined;
  return (shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null ? Number(d.dimValue) : '?'));
}

const show = (dims: Dim[] | undefined) => (dims ? `[${dims.join(', ')}]` : 'an unknown shape');

export function decodeModel(bytes: Uint8Array, source = 'the model'): onnx.ModelProto {
  let m: onnx.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelError(`${source} is not an ONNX model (${(e as Error).message})`);
  }
  if (!m.graph || !m.graph.node?.length || !Number(m.irVersion)) throw new ModelError(`${source} is not an ONNX model (no graph of operators in it)`);
  return m;
}

/** Binds a model's inputs to a dataset's columns; throws ModelError naming what does not fit. */
export function bindModel(bytes: Uint8Array, columns: string[], source = 'the model'): Binding {
  const m = decodeModel(bytes, source);
  const graph = m.graph!;
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !initializers.has(i.name ?? ''));
  const metadata = Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
  const output = graph.output?.[0]?.name;
  if (!output || inputs.length === 0) throw new ModelError(`${source} has no ${output ? 'input' : 'output'}`);
  for (const i of inputs) {
    const t = i.type?.tensorType?.elemType;
    if (t !== onnx.TensorProto.DataType.FLOAT) throw new ModelError(`${source}: input "${i.name}" is not a float tensor; herd feeds float32 features`);
  }
  const lacking = (names: string[]) => {
    const miss = names.filter((n) => !columns.includes(n));
    if (miss.length) throw new ModelError(`${source} reads feature${miss.length > 1 ? 's' : ''} ${miss.map((n) => `"${n}"`).join(', ')}, which the dataset lacks (its columns: ${columns.join(', ')})`);
  };
  if (inputs.length === 1) {
    const dims = dimsOf(inputs[0]);
    const name = inputs[0].name!;
    if (dims && dims.length === 2 && typeof dims[1] === 'number') {
      const raw = metadata[FEATURES_KEY];
      if (raw === undefined) {
        if (dims[1] === 1) {
          lacking([name]);
          return { layout: 'columns', inputs: [name], features: [name], output, metadata };
        }
        throw new ModelError(`${source}: input "${name}" takes ${dims[1]} features but does not name them; give it metadata_props "${FEATURES_KEY}" (a JSON array of column names) or one [N, 1] input per column`);
      }
      let features: unknown;
      try {
        features = JSON.parse(raw);
      } catch {
        features = undefined;
      }
      if (!Array.isArray(features) || features.length !== dims[1] || !features.every((f) => typeof f === 'string')) {
        throw new ModelError(`${source}: metadata "${FEATURES_KEY}" must be a JSON array of ${dims[1]} column names, matching input "${name}" ${show(dims)}`);
      }
      lacking(features);
      return { layout: 'matrix', inputs: [name], features, output, metadata };
    }
    throw new ModelError(`${source}: input "${name}" has shape ${show(dims)}; herd feeds a [N, F] float matrix (or one [N, 1] input per column)`);
  }
  for (const i of inputs) {
    const dims = dimsOf(i);
    if (!dims || !(dims.length === 2 && dims[1] === 1) && dims.length !== 1) {
      throw new ModelError(`${source}: input "${i.name}" has shape ${show(dims)}; with one input per column each must be [N, 1]`);
    }
  }
  const names = inputs.map((i) => i.name!);
  lacking(names);
  return { layout: 'columns', inputs: names, features: names, output, metadata };
}
