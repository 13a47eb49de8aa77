/**
 * The trainer's thread: receives a dataset and parameters, trains, reports each round and
 * the model. Bundled into a string at build time (build/forecast-worker.mjs) so that the
 * single executable, which has no files to start a worker from, can start it too.
 */
import { parentPort } from 'node:worker_threads';
import { train } from './trainer/booster';
import type { TrainRequest, WorkerMessage } from './driver';

const port = parentPort!;
port.on('message', (req: TrainRequest) => {
  const send = (m: WorkerMessage) => port.postMessage(m);
  try {
    const model = train(req.train, req.params, req.valid, {
      onRound: (round, trainRmse, validRmse) => send({ kind: 'round', round, trainRmse, validRmse }),
    });
    send({ kind: 'done', model });
  } catch (e) {
    send({ kind: 'error', message: (e as Error).message });
  }
});
