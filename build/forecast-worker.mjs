// The forecast trainer's worker thread as one string (coordinator/forecast/driver.ts
// starts it with eval: the single executable has no file to start a worker from).
import { buildSync } from 'esbuild';

export function forecastWorkerDefine() {
  const r = buildSync({
    entryPoints: [new URL('../coordinator/forecast/worker.ts', import.meta.url).pathname],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    logLevel: 'warning',
  });
  return { HERD_FORECAST_WORKER: JSON.stringify(r.outputFiles[0].text) };
}
