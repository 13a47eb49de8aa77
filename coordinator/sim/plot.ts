/**
 * The picture a user judges a policy by: for each run, host load over time (each node's line
 * on a small cluster; the mean with the min-max band and the busiest on a large one), the
 * workload's ops against the ideal bound, and every migration as a tick (red: rolled back).
 * Pure: returns SVG text; the CLI writes it.
 */
import type { SimResult } from './engine';

const W = 960;
const PANEL = 250;
const PAD = { l: 60, r: 20, t: 28, b: 22 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#d62728', '#393b79', '#637939'];

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '0');

export function plotRuns(results: readonly SimResult[], title: string): string {
  const height = results.length * PANEL * 2 + 40;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`, `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`];
  results.forEach((r, k) => {
    const y0 = 30 + k * PANEL * 2;
    parts.push(loadPanel(r, y0), opsPanel(r, y0 + PANEL));
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function frame(y0: number, label: string, yLabel: string, yMax: number, tEnd: number): string[] {
  const x1 = W - PAD.r;
  const y1 = y0 + PANEL - PAD.b;
  const out = [`<rect x="${PAD.l}" y="${y0 + PAD.t}" width="${x1 - PAD.l}" height="${y1 - y0 - PAD.t}" fill="none" stroke="#999"/>`, `<text x="${PAD.l}" y="${y0 + PAD.t - 6}" font-size="12">${esc(label)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const y = y1 - ((y1 - y0 - PAD.t) * i) / 4;
    out.push(`<line x1="${PAD.l}" x2="${x1}" y1="${f(y)}" y2="${f(y)}" stroke="#eee"/>`, `<text x="${PAD.l - 4}" y="${f(y + 4)}" text-anchor="end">${fmtNum((yMax * i) / 4)}</text>`);
  }
  const hours = tEnd / 3_600_000;
  const unit = hours >= 3 ? 'h' : 'min';
  const end = unit === 'h' ? hours : hours * 60;
  for (let i = 0; i <= 6; i++) {
    const x = PAD.l + ((x1 - PAD.l) * i) / 6;
    out.push(`<text x="${f(x)}" y="${y1 + 14}" text-anchor="middle">${((end * i) / 6).toFixed(end < 10 ? 1 : 0)} ${unit}</text>`);
  }
  out.push(`<text x="14" y="${y0 + PANEL / 2}" transform="rotate(-90 14 ${y0 + PANEL / 2})" text-anchor="middle">${esc(yLabel)}</text>`);
  return out;
}

const fmtNum = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(x < 10 ? 2 : 0));

function scaler(r: SimResult, y0: number, yMax: number) {
  const tEnd = Math.max(1, r.series.tMs[r.series.tMs.length - 1] ?? 1);
  const x1 = W - PAD.r;
  const y1 = y0 + PANEL - PAD.b;
  return { tEnd, x: (t: number) => PAD.l + ((x1 - PAD.l) * t) / tEnd, y: (v: number) => y1 - ((y1 - y0 - PAD.t) * Math.min(v, yMax)) / yMax, top: y0 + PAD.t, bottom: y1 };
}

const path = (xs: number[], ys: number[]) => xs.map((x, i) => `${i ? 'L' : 'M'}${f(x)},${f(ys[i])}`).join('');

function loadPanel(r: SimResult, y0: number): string {
  const s = scaler(r, y0, 1);
  const { tMs, nodeUtil } = r.series;
  const out = frame(y0, `${r.metrics.policy}: host CPU load (${r.nodeIds.length} nodes), ${r.metrics.migrations} migrations marked`, 'host load', 1, s.tEnd);
  const xs = tMs.map(s.x);
  if (r.nodeIds.length <= COLORS.length) {
    r.nodeIds.forEach((id, n) => {
      out.push(`<path d="${path(xs, nodeUtil.map((u) => s.y(u[n])))}" fill="none" stroke="${COLORS[n]}" stroke-width="1.3"/>`);
      out.push(`<text x="${W - PAD.r - 4}" y="${s.top + 12 + 12 * n}" text-anchor="end" fill="${COLORS[n]}">${esc(id)}</text>`);
    });
  } else {
    const stats = nodeUtil.map((u) => {
      let min = 1, max = 0, sum = 0, on = 0;
      for (const v of u) if (v > 0) (on++, (sum += v), (min = Math.min(min, v)), (max = Math.max(max, v)));
      return { min: on ? min : 0, max, mean: on ? sum / on : 0 };
    });
    const band = path(xs, stats.map((p) => s.y(p.max))) + xs.slice().reverse().map((x, i) => `L${f(x)},${f(s.y(stats[stats.length - 1 - i].min))}`).join('') + 'Z';
    out.push(`<path d="${band}" fill="#1f77b4" fill-opacity="0.15" stroke="none"/>`);
    out.push(`<path d="${path(xs, stats.map((p) => s.y(p.mean)))}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`);
    out.push(`<text x="${W - PAD.r - 4}" y="${s.top + 12}" text-anchor="end" fill="#1f77b4">mean of hosts in use; band: least to most loaded</text>`);
  }
  for (const m of r.migrations) {
    const x = f(s.x(m.atMs));
    out.push(`<line x1="${x}" x2="${x}" y1="${s.bottom}" y2="${s.bottom - 8}" stroke="${m.ok ? '#d62728' : '#000'}" stroke-opacity="${r.migrations.length > 500 ? 0.15 : 0.8}"/>`);
  }
  return out.join('\n');
}

function opsPanel(r: SimResult, y0: number): string {
  const max = Math.max(1e-9, ...r.series.ideal, ...r.series.ops) * 1.05;
  const s = scaler(r, y0, max);
  const xs = r.series.tMs.map(s.x);
  const out = frame(y0, `${r.metrics.policy}: workload ops per second (solid) vs the ideal bound (dashed): ${(100 * r.metrics.opsVsIdeal).toFixed(1)}% of ideal`, 'ops/s', max, s.tEnd);
  out.push(`<path d="${path(xs, r.series.ideal.map(s.y))}" fill="none" stroke="#999" stroke-dasharray="4 3" stroke-width="1.2"/>`);
  out.push(`<path d="${path(xs, r.series.ops.map(s.y))}" fill="none" stroke="#2ca02c" stroke-width="1.5"/>`);
  for (const m of r.migrations) {
    const x = f(s.x(m.atMs));
    out.push(`<line x1="${x}" x2="${x}" y1="${s.bottom}" y2="${s.bottom - 8}" stroke="${m.ok ? '#d62728' : '#000'}" stroke-opacity="${r.migrations.length > 500 ? 0.15 : 0.8}"/>`);
  }
  return out.join('\n');
}
