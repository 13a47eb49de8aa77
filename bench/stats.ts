/**
 * What every bench reports the same way: a figure's runs and its baseline's runs (taken
 * alternately in the same process run), summarised as median, worst and spread, and the
 * ratio of each run to the baseline run next to it. A bench ends with one `FIGURE {json}`
 * line per figure, which `node bench/run.mjs all` gathers into one table.
 */

export interface Spread {
  median: number;
  /** The worst run: the highest time, or the lowest rate when higher is better. */
  worst: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: number[], higherIsBetter = false): Spread {
  if (xs.length === 0) throw new Error('no runs to summarise');
  const s = [...xs].sort((a, b) => a - b);
  const min = s[0];
  const max = s[s.length - 1];
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, worst: higherIsBetter ? min : max, min, max, n: s.length };
}

export interface Figure {
  /** What is measured, in a user's words. */
  name: string;
  unit: string;
  /** Higher is better (a rate) rather than lower (a time, a cost). */
  higherIsBetter?: boolean;
  herd: number[];
  baselineName?: string;
  /** A higher herd/baseline ratio is the better one (default: as higherIsBetter). */
  ratioHigherIsBetter?: boolean;
  /** Runs of the baseline, the i-th taken next to the i-th of `herd`. */
  baseline?: number[];
  target?: string;
}

export interface FigureLine {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  herd: Spread;
  baselineName?: string;
  baseline?: Spread;
  /** herd / baseline, run by run (pairs in run order). */
  ratio?: Spread;
  target?: string;
}

/** Per-pair ratios, so a slow minute of the machine hits both sides of a pair alike. */
export function summarise(f: Figure): FigureLine {
  const up = f.higherIsBetter ?? false;
  const line: FigureLine = { name: f.name, unit: f.unit, higherIsBetter: up, herd: spread(f.herd, up), target: f.target };
  if (f.baseline && f.baseline.length) {
    const pairs = Math.min(f.herd.length, f.baseline.length);
    const ratios = Array.from({ length: pairs }, (_, i) => f.herd[i] / f.baseline![i]);
    line.baselineName = f.baselineName;
    line.baseline = spread(f.baseline, up);
    // A worse ratio is a higher one for times, a lower one for rates.
    line.ratio = spread(ratios, f.ratioHigherIsBetter ?? up);
  }
  return line;
}

const num = (x: number, unit: string) => {
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return `${x.toLocaleString('en', { maximumFractionDigits: digits })}${unit ? ' ' + unit : ''}`;
};

export function describe(s: Spread, unit: string): string {
  return `median ${num(s.median, unit)}, worst ${num(s.worst, unit)} (${num(s.min, '')}-${num(s.max, '')}, n=${s.n})`;
}

export function ratioText(r: Spread): string {
  return `${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)}, worst ${r.worst.toFixed(2)}x)`;
}

/** Prints a figure for people, then the FIGURE line the `all` runner reads. */
export function report(f: Figure): FigureLine {
  const l = summarise(f);
  console.log(`${l.name}:`);
  if (l.ratio) console.log(`  herd / ${l.baselineName}: ${ratioText(l.ratio)}`);
  console.log(`  herd: ${describe(l.herd, l.unit)}`);
  if (l.baseline) console.log(`  ${l.baselineName}: ${describe(l.baseline, l.unit)}`);
  if (l.target) console.log(`  target: ${l.target}`);
  console.log(`FIGURE ${JSON.stringify(l)}`);
  return l;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
