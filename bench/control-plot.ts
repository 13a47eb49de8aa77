/**
 * The control experiment's figure, hand-written SVG (no dependency for a few polylines): one
 * row per scenario, ops of all workloads over time on the left, use of the cluster's capacity
 * on the right, one line per run, a triangle under the time axis where a policy moved a
 * container (in its line's colour).
 */
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
const PAD = { l: 56, r: 12, t: 26, b: 40 };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const num = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(2));
/** A round axis top at or above x: 1, 2 or 5 times a power of ten, times 4 ticks. */
function niceMax(x: number): number {
  const tick = x / 4;
  const p = 10 ** Math.floor(Math.log10(Math.max(tick, 1e-9)));
  return 4 * ([1, 2, 2.5, 5, 10].find((m) => m * p >= tick) ?? 10) * p;
}

function chart(x0: number, y0: number, title: string, runs: PlotRun[], pick: (r: PlotRun) => number[], yMax: number, yFmt: (v: number) => string, marks: boolean): string {
  const seconds = Math.max(1, ...runs.map((r) => (pick(r).length * r.bucketMs) / 1000));
  const pw = W - PAD.l - PAD.r;
  const ph = H - PAD.t - PAD.b;
  const X = (s: number) => x0 + PAD.l + (s / seconds) * pw;
  const Y = (v: number) => y0 + PAD.t + ph - (Math.min(v, yMax) / yMax) * ph;
  const out = [`<text x="${x0 + PAD.l}" y="${y0 + 16}" font-size="12" font-weight="bold">${esc(title)}</text>`];
  out.push(`<rect x="${X(0)}" y="${Y(yMax)}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    out.push(`<line x1="${X(0)}" x2="${X(seconds)}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/><text x="${X(0) - 4}" y="${Y(v) + 4}" font-size="10" text-anchor="end">${yFmt(v)}</text>`);
  }
  const step = seconds > 200 ? 60 : 30;
  for (let s = 0; s <= seconds; s += step) out.push(`<text x="${X(s)}" y="${Y(0) + 14}" font-size="10" text-anchor="middle">${s}</text>`);
  out.push(`<text x="${X(seconds / 2)}" y="${Y(0) + 27}" font-size="10" text-anchor="middle">seconds</text>`);
  for (const [k, r] of runs.entries()) {
    const color = COLORS[r.label] ?? '#9467bd';
    const pts = pick(r).flatMap((v, i) => (Number.isFinite(v) ? [`${X(((i + 0.5) * r.bucketMs) / 1000).toFixed(1)},${Y(v).toFixed(1)}`] : [])).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="1.8"${r.label === 'ideal' ? ' stroke-dasharray="5,3"' : ''}/>`);
    if (!marks) continue;
    for (const m of r.moves) {
      const x = X(m.ms / 1000);
      const y = Y(0) - 2 - 7 * k;
      out.push(`<path d="M${x.toFixed(1)},${y - 6} l-4,6 h8 z" fill="${color}"><title>${esc(`${r.label}: ${m.herdId} ${m.from} -> ${m.to} at ${(m.ms / 1000).toFixed(0)} s`)}</title></path>`);
    }
  }
  return out.join('\n');
}

export function plotExperiment(results: PlotRun[], subtitle: string): string {
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const labels = [...new Set(results.map((r) => r.label))];
  const width = 2 * W;
  const height = 50 + scenarios.length * H + 24;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Herd control experiment: workload ops and host load per placement</text>`,
    `<text x="10" y="38" font-size="11">${esc(subtitle)}; triangles: migrations (colour of the run)</text>`,
  ];
  for (const [i, s] of scenarios.entries()) {
    const runs = results.filter((r) => r.scenario === s);
    const yOps = niceMax(Math.max(1, ...runs.flatMap((r) => r.ops).filter(Number.isFinite)) * 1.05);
    parts.push(chart(0, 50 + i * H, `${s}: ops/s of all workloads`, runs, (r) => r.ops, yOps, num, true));
    parts.push(chart(W, 50 + i * H, `${s}: use of the cluster's capacity`, runs, (r) => r.load, 1, (v) => `${Math.round(v * 100)}%`, false));
  }
  let x = 10;
  for (const l of labels) {
    parts.push(`<line x1="${x}" x2="${x + 18}" y1="${height - 12}" y2="${height - 12}" stroke="${COLORS[l] ?? '#9467bd'}" stroke-width="2"${l === 'ideal' ? ' stroke-dasharray="5,3"' : ''}/><text x="${x + 22}" y="${height - 8}" font-size="11">${esc(l)}</text>`);
    x += 40 + 7 * l.length;
  }
  parts.push('</svg>');
  return parts.join('\n');
}
