/**
 * ONNX models through onnxruntime-node (the forecast's run time). In the single executable
 * the addon and libonnxruntime.so.1 come from the files it carries (common/natives.ts, wired
 * by build/sea-plugin.mjs); in a checkout from node_modules. The runtime is loaded on first
 * use only: it costs ~30 MB of RSS and the agent does not need it to collect and stream.
 */
import type * as Ort from 'onnxruntime-node';

let runtime: Promise<typeof Ort> | undefined;

export function onnxRuntime(): Promise<typeof Ort> {
  // onnxruntime's telemetry is off unless asked for on Linux; keep it so whatever the build
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  // from ESM (a dev bundle's real import()) the CommonJS exports may sit under .default
  runtime ??= import('onnxruntime-node').then((m: any) => (m.InferenceSession ? m : m.default) as typeof Ort);
  return runtime;
}

export interface TensorIn { data: Float32Array | number[]; dims: number[] }
export interface TensorOut { data: number[]; dims: number[]; type: string }

export interface OnnxModel {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, TensorIn>): Promise<Record<string, TensorOut>>;
  close(): Promise<void>;
}

/** Loads a model from its bytes. One thread: models here are small, and a Pi has 4 cores for containers. */
export async function loadModel(bytes: Uint8Array): Promise<OnnxModel> {
  const ort = await onnxRuntime();
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds) {
      const inputs: Record<string, Ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) inputs[name] = new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
      const out = await session.run(inputs);
      const res: Record<string, TensorOut> = {};
      for (const [name, t] of Object.entries(out)) {
        res[name] = { data: Array.from(t.data as ArrayLike<number | bigint>, Number), dims: [...t.dims], type: t.type };
      }
      return res;
    },
    close: () => session.release(),
  };
}

// ---------------------------------------------------------------- a built-in model for self-checks
// Protocol buffer encoding by hand: the model is ~100 bytes, and this keeps the check free of
// any schema (onnx.proto is not part of herd).
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
const int = (field: number, v: number) => [field << 3, ...varint(v)];
const len = (field: number, body: number[] | string) => {
  const bytes = typeof body === 'string' ? [...Buffer.from(body, 'utf8')] : body;
  return [(field << 3) | 2, ...varint(bytes.length), ...bytes];
};

/** ONNX model computing C = A + B over float[n] (opset 13): checks that onnxruntime loads and runs. */
export function addModel(n = 3): Uint8Array {
  const floatVec = (name: string) => len(1, name).concat(len(2, len(1, [...int(1, 1 /* FLOAT */), ...len(2, len(1, int(1, n)))])));
  const node = [...len(1, 'A'), ...len(1, 'B'), ...len(2, 'C'), ...len(3, 'add'), ...len(4, 'Add')];
  const graph = [...len(1, node), ...len(2, 'herd-selfcheck'), ...len(11, floatVec('A')), ...len(11, floatVec('B')), ...len(12, floatVec('C'))];
  return Uint8Array.from([...int(1, 8 /* IR version */), ...len(2, 'herd'), ...len(7, graph), ...len(8, [...len(1, ''), ...int(2, 13)])]);
}

/** Runs addModel() once: resolves what it computed, or rejects with why onnxruntime cannot run here. */
export async function selfCheck(): Promise<{ version: string; result: number[]; ms: number }> {
  const t0 = performance.now();
  const ort = await onnxRuntime();
  const model = await loadModel(addModel(3));
  try {
    const out = await model.run({ A: { data: [1, 2, 3], dims: [3] }, B: { data: [10, 20, 30], dims: [3] } });
    return { version: ort.env.versions?.common ?? '', result: out.C.data, ms: performance.now() - t0 };
  } finally {
    await model.close();
  }
}
