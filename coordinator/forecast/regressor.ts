/**
 * Runs an ONNX regressor (herd's or a compatible one) with onnxruntime over rows of a
 * dataset: the driver side of the forecast (the binding and the trainer are pure).
 */
import { loadModel, type OnnxModel, type TensorIn } from '../../common/onnx';
import { bindModel, type Binding, ModelError } from './onnx-binding';

export interface Regressor {
  binding: Binding;
  /** Predicts for a row-major float32 matrix whose columns are binding.features, in order. */
  predict(x: Float32Array, rows: number): Promise<Float64Array>;
  close(): Promise<void>;
}

export async function loadRegressor(bytes: Uint8Array, columns: string[], source = 'the model'): Promise<Regressor> {
  const binding = bindModel(bytes, columns, source);
  let model: OnnxModel;
  try {
    model = await loadModel(bytes);
  } catch (e) {
    throw new ModelError(`onnxruntime cannot load ${source}: ${(e as Error).message}`);
  }
  const F = binding.features.length;
  return {
    binding,
    async predict(x, rows) {
      const feeds: Record<string, TensorIn> = {};
      if (binding.layout === 'matrix') feeds[binding.inputs[0]] = { data: x, dims: [rows, F] };
      else {
        binding.inputs.forEach((name, c) => {
          const col = new Float32Array(rows);
          for (let r = 0; r < rows; r++) col[r] = x[r * F + c];
          feeds[name] = { data: col, dims: [rows, 1] };
        });
      }
      const out = (await model.run(feeds))[binding.output];
      if (!out || out.data.length !== rows) throw new ModelError(`the model's output "${binding.output}" has ${out?.data.length ?? 0} values for ${rows} rows; herd needs one prediction per row`);
      return Float64Array.from(out.data);
    },
    close: () => model.close(),
  };
}
