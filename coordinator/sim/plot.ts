/**
 * The picture a user judges a policy by: for each run, host load over time (each node's line
 * on a small cluster; the mean with the min-max band and the busiest on a large one), the
 * workload's ops against the ideal bound, and every migration as a tick (red: rolled back).
 * Pure: returns SVG text (Herd's one SVG writer, common/svg-chart.ts); the CLI writes it.
 */
import { chartPanel, svgDocument, type ChartMark, type ChartPanel } from '../../common/svg-chart';
import type { SimResult } from './engine';

const W = 960;
const PANEL = 250;
const PAD = { l: 60, r: 20, t: 28, b: 22 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#d62728', '#393b79', '#637939'];

export function plotRuns(results: readonly SimResult[], title: string): string {
  const height = results.length * PANEL * 2 + 40;
  const body = results.flatMap((r, k) => {
    const y0 = 30 + k * PANEL * 2;
    return [loadPanel(r, y0), opsPanel(r, y0 + PANEL)];
  });
  return svgDocument(W, height, title, '', body);
}

/** What both panels of a run share: the frame, the time axis, the migrations as ticks. */
function panel(r: SimResult, y0: number, title: string, yLabel: string, yMax: number): Omit<ChartPanel, 'lines'> {
  const tEnd = Math.max(1, r.series.tMs[r.series.tMs.length - 1] ?? 1);
  const hours = tEnd / 3_600_000;
  const unit = hours >= 3 ? 'h' : 'min';
  const end = unit === 'h' ? hours : hours * 60;
  const xTicks = Array.from({ length: 7 }, (_, i) => ({ at: (tEnd * i) / 6, label: `${((end * i) / 6).toFixed(end < 10 ? 1 : 0)} ${unit}` }));
  const marks: ChartMark[] = r.migrations.map((m) => ({ x: m.atMs, shape: 'tick', color: m.ok ? '#d62728' : '#000', opacity: r.migrations.length > 500 ? 0.15 : 0.8 }));
  return { x: 0, y: y0, width: W, height: PANEL, pad: PAD, title, xMin: 0, xMax: tEnd, yMax, xTicks, yLabel, marks };
}

function loadPanel(r: SimResult, y0: number): string {
  const { tMs, nodeUtil } = r.series;
  const p = panel(r, y0, `${r.metrics.policy}: host CPU load (${r.nodeIds.length} nodes), ${r.metrics.migrations} migrations marked`, 'host load', 1);
  if (r.nodeIds.length <= COLORS.length) {
    return chartPanel({ ...p, lines: r.nodeIds.map((id, n) => ({ points: tMs.map((t, i): [number, number] => [t, nodeUtil[i][n]]), color: COLORS[n], width: 1.3, label: id })) });
  }
  const stats = nodeUtil.map((u) => {
    let min = 1, max = 0, sum = 0, on = 0;
    for (const v of u) if (v > 0) (on++, (sum += v), (min = Math.min(min, v)), (max = Math.max(max, v)));
    return { min: on ? min : 0, max, mean: on ? sum / on : 0 };
  });
  return chartPanel({
    ...p,
    band: { xs: tMs, low: stats.map((s) => s.min), high: stats.map((s) => s.max), color: '#1f77b4' },
    lines: [{ points: tMs.map((t, i): [number, number] => [t, stats[i].mean]), color: '#1f77b4', label: 'mean of hosts in use; band: least to most loaded' }],
  });
}

function opsPanel(r: SimResult, y0: number): string {
  const max = Math.max(1e-9, ...r.series.ideal, ...r.series.ops) * 1.05;
  const p = panel(r, y0, `${r.metrics.policy}: workload ops per second (solid) vs the ideal bound (dashed): ${(100 * r.metrics.opsVsIdeal).toFixed(1)}% of ideal`, 'ops/s', max);
  const { tMs } = r.series;
  return chartPanel({
    ...p,
    lines: [
      { points: tMs.map((t, i): [number, number] => [t, r.series.ideal[i]]), color: '#999', width: 1.2, dashed: true },
      { points: tMs.map((t, i): [number, number] => [t, r.series.ops[i]]), color: '#2ca02c' },
    ],
  });
}
