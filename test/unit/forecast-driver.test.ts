import { describe, expect, it } from 'vitest';
import { train } from '../../coordinator/forecast/trainer/booster';
import { trainInWorker } from '../../coordinator/forecast/driver';
import { checkParams } from '../../coordinator/forecast/trainer/params';

describe('training in a worker thread', () => {
  it('gives the model the trainer gives in-process, reports every round, and leaves the event loop free', async () => {
    const rows = 20_000;
    const x = new Float32Array(rows * 3);
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      x.set([r % 97, (r * 7) % 13, r % 2 ? NaN : r % 5], r * 3);
      y[r] = (r % 97) * 0.5 + ((r * 7) % 13 > 6 ? 10 : 0);
    }
    const params = checkParams({ rounds: 30 });
    const rounds: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const model = await trainInWorker({ train: { x, y, rows, features: 3 }, params }, { onRound: (r) => rounds.push(r) });
    clearInterval(timer);
    expect(model).toEqual(train({ x, y, rows, features: 3 }, params));
    expect(rounds).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(ticks).toBeGreaterThan(0); // the main thread ran timers meanwhile
  });

  it('rejects with the trainer\'s error', async () => {
    await expect(trainInWorker({ train: { x: new Float32Array(1), y: new Float64Array(1), rows: 1, features: 1 }, params: checkParams() })).rejects.toThrow(/at least 2 rows/);
  });
});
