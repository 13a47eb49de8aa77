/**
 * Trains in a worker thread, so the process (a coordinator serving its cluster) keeps
 * answering while a model trains: a 1M-row training takes seconds of CPU.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Booster, Dataset } from './trainer/booster';
import type { TrainParams } from './trainer/params';

declare const HERD_FORECAST_WORKER: string | undefined;

export interface TrainRequest {
  train: Dataset;
  valid?: Dataset;
  params: TrainParams;
}

export type WorkerMessage =
  | { kind: 'round'; round: number; trainRmse: number; validRmse?: number }
  | { kind: 'done'; model: Booster }
  | { kind: 'error'; message: string };

let code: Promise<string> | undefined;

/** The worker's code: bundled by the build; from a checkout (tests), bundled now with esbuild. */
function workerCode(): Promise<string> {
  if (typeof HERD_FORECAST_WORKER === 'string') return Promise.resolve(HERD_FORECAST_WORKER);
  code ??= import('esbuild').then(async (esbuild) => {
    const r = await esbuild.build({
      entryPoints: [path.join(__dirname, 'worker.ts')], // vitest defines __dirname for sources
      bundle: true,
      write: false,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'warning',
    });
    return r.outputFiles[0].text;
  });
  return code;
}

export interface TrainOptions {
  onRound?: (round: number, trainRmse: number, validRmse: number | undefined) => void;
}

/** Trains in a new worker thread; the thread ends with the training. */
export async function trainInWorker(req: TrainRequest, opts: TrainOptions = {}): Promise<Booster> {
  const worker = new Worker(await workerCode(), { eval: true, name: 'herd-forecast-trainer' });
  try {
    return await new Promise<Booster>((resolve, reject) => {
      worker.on('message', (m: WorkerMessage) => {
        if (m.kind === 'round') opts.onRound?.(m.round, m.trainRmse, m.validRmse);
        else if (m.kind === 'done') resolve(m.model);
        else reject(new Error(m.message));
      });
      worker.on('error', reject);
      worker.on('exit', (c) => reject(new Error(`the trainer thread exited (code ${c}) before finishing`)));
      worker.postMessage(req);
    });
  } finally {
    await worker.terminate();
  }
}
