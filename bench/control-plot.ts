/**
 * The control experiment's figure, drawn with Herd's one SVG writer (common/svg-chart.ts): one
 * row per scenario, ops of all workloads over time on the left, use of the cluster's capacity
 * on the right, one line per run, a triangle under the time axis where a policy moved a
 * container (in its line's colour).
 */
import { chartPanel, escapeXml, niceMax, svgDocument } from '../common/svg-chart';
import type { Move } from './control-model';

export interface PlotRun {
  scenario: string;
  label: string;
  bucketMs: number;
  /** Ops per second of all workloads in each bucket. */
  ops: number[];
  /** Use of the cluster's capacity in each bucket, 0..1. */
  load: number[];
  /** Migrations, ms since the run's start. */
  moves: Move[];
}

const COLORS: Record<string, string> = {
  control: '#7f7f7f', ideal: '#2ca02c', 'cpu-greedy': '#1f77b4', 'cpu-greedy-mt': '#1f77b4', 'oltp-disk': '#1f77b4', balance: '#d62728',
};
const W = 440;
const H = 180;
const num = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(2));

function chart(x0: number, y0: number, title: string, runs: PlotRun[], pick: (r: PlotRun) => number[], yMax: number, yFmt: (v: number) => string, marks: boolean): string {
  const seconds = Math.max(1, ...runs.map((r) => (pick(r).length * r.bucketMs) / 1000));
  const step = seconds > 200 ? 60 : 30;
  const xTicks = Array.from({ length: Math.floor(seconds / step) + 1 }, (_, i) => ({ at: i * step, label: String(i * step) }));
  const color = (r: PlotRun) => COLORS[r.label] ?? '#9467bd';
  return chartPanel({
    x: x0, y: y0, width: W, height: H, title, xMin: 0, xMax: seconds, yMax, yFmt, xTicks, xLabel: 'seconds',
    lines: runs.map((r) => ({ points: pick(r).map((v, i): [number, number] => [((i + 0.5) * r.bucketMs) / 1000, v]), color: color(r), width: 1.8, dashed: r.label === 'ideal' })),
    marks: marks ? runs.flatMap((r, k) => r.moves.map((m) => ({ x: m.ms / 1000, row: k, color: color(r), title: `${r.label}: ${m.herdId} ${m.from} -> ${m.to} at ${(m.ms / 1000).toFixed(0)} s` }))) : [],
  });
}

export function plotExperiment(results: PlotRun[], subtitle: string): string {
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const labels = [...new Set(results.map((r) => r.label))];
  const width = 2 * W;
  const height = 50 + scenarios.length * H + 24;
  const parts: string[] = [];
  for (const [i, s] of scenarios.entries()) {
    const runs = results.filter((r) => r.scenario === s);
    const yOps = niceMax(Math.max(1, ...runs.flatMap((r) => r.ops).filter(Number.isFinite)) * 1.05);
    parts.push(chart(0, 50 + i * H, `${s}: ops/s of all workloads`, runs, (r) => r.ops, yOps, num, true));
    parts.push(chart(W, 50 + i * H, `${s}: use of the cluster's capacity`, runs, (r) => r.load, 1, (v) => `${Math.round(v * 100)}%`, false));
  }
  let x = 10;
  for (const l of labels) {
    parts.push(`<line x1="${x}" x2="${x + 18}" y1="${height - 12}" y2="${height - 12}" stroke="${COLORS[l] ?? '#9467bd'}" stroke-width="2"${l === 'ideal' ? ' stroke-dasharray="5,3"' : ''}/><text x="${x + 22}" y="${height - 8}" font-size="11">${escapeXml(l)}</text>`);
    x += 40 + 7 * l.length;
  }
  return svgDocument(width, height, 'Herd control experiment: workload ops and host load per placement', `${subtitle}; triangles: migrations (colour of the run)`, parts);
}
