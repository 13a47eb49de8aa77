/**
 * From a table to training and validation sets, split by time: the validation rows are
 * the latest ones (a model is judged on a later period than it learned from, the lesson
 * of Resource Central and Autopilot). Without a time column, file order is time order.
 */
import type { Dataset } from './trainer/booster';
import { column, matrixOf, type Table, TableError } from './table';

export interface SplitOptions {
  target: string;
  features: string[];
  /** Column to order rows by (ascending); rows keep file order when absent. */
  time?: string;
  /** Share of the latest rows held out for validation, in [0, 0.9]. */
  validFraction: number;
}

export interface Split {
  train: Dataset;
  valid?: Dataset;
}

export function splitByTime(t: Table, o: SplitOptions, source = 'the CSV'): Split {
  if (!(o.validFraction >= 0 && o.validFraction <= 0.9)) throw new TableError(`the validation fraction must be between 0 and 0.9, not ${o.validFraction}`);
  const x = matrixOf(t, o.features, source);
  const y = column(t, o.target, source);
  let order = Array.from({ length: t.rows }, (_, i) => i);
  if (o.time) {
    const ts = column(t, o.time, source);
    for (let r = 0; r < t.rows; r++) if (Number.isNaN(ts[r])) throw new TableError(`${source}, line ${t.lines[r]}, column "${o.time}": the time is missing; every row needs one to be split by time`);
    order = order.sort((a, b) => ts[a] - ts[b] || a - b);
  }
  const nValid = Math.floor(t.rows * o.validFraction);
  const nTrain = t.rows - nValid;
  if (nTrain < 2) throw new TableError(`${source}: only ${nTrain} row(s) left to train on after holding out ${nValid} for validation; lower the validation fraction`);
  const F = o.features.length;
  const take = (rows: number[]): Dataset => {
    const dx = new Float32Array(rows.length * F);
    const dy = new Float64Array(rows.length);
    rows.forEach((r, i) => {
      dx.set(x.subarray(r * F, r * F + F), i * F);
      dy[i] = y[r];
    });
    return { x: dx, y: dy, rows: rows.length, features: F };
  };
  return { train: take(order.slice(0, nTrain)), valid: nValid > 0 ? take(order.slice(nTrain)) : undefined };
}
