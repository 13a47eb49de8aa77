/**
 * `herd decisions --plot FILE.svg [--from T] [--to T]`: every node's host CPU over a time
 * range, with the controller's decisions marked under the time axis - a tick per evaluation,
 * a triangle per move (filled: carried out, coloured by how it ended; hollow: recommended,
 * waiting for approval). The data come from the coordinator (ListNodes, QuerySamples,
 * ListDecisions); the picture is drawn with Herd's one SVG writer (common/svg-chart.ts).
 */
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { chartPanel, escapeXml, svgDocument, type ChartMark } from '../common/svg-chart';

export interface PlotRange {
  fromMs: number;
  toMs: number;
}

/** Longest range a plot covers (the store's retention is shorter by default anyway). */
export const MAX_RANGE_MS = 31 * 24 * 3600_000;
/** Points per node line: enough for a smooth line, few enough for a small file. */
const POINTS = 400;
/** Decisions read (ListDecisions' own limit). */
export const MAX_PLOTTED_DECISIONS = 1000;

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A time as the flags take it: `now`, a duration ago (`90s`, `30m`, `2h`, `1d`), an ISO 8601
 * date and time (`2026-12-07T03:00:00Z`), or ms since the epoch. A sentence otherwise.
 */
export function parseTime(raw: string, nowMs: number, flag: string): number | string {
  const v = raw.trim();
  if (v === 'now') return nowMs;
  const ago = /^(\d+(?:\.\d+)?)([smhd])$/.exec(v);
  if (ago) return nowMs - Math.round(Number(ago[1]) * UNITS[ago[2]]);
  if (/^\d{12,}$/.test(v)) return Number(v);
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  return `${flag} must be now, a duration ago (90s, 30m, 2h, 1d), an ISO 8601 time (2026-12-07T03:00:00Z) or ms since the epoch, not "${v.slice(0, 60)}"`;
}

/** --from and --to as a range (default: the last hour); a sentence naming what is wrong otherwise. */
export function parseRange(from: string | undefined, to: string | undefined, nowMs: number): PlotRange | string {
  const toMs = parseTime(to ?? 'now', nowMs, '--to');
  if (typeof toMs === 'string') return toMs;
  const fromMs = parseTime(from ?? '1h', nowMs, '--from');
  if (typeof fromMs === 'string') return fromMs;
  if (fromMs >= toMs) return `--from (${new Date(fromMs).toISOString()}) must be before --to (${new Date(toMs).toISOString()})`;
  if (toMs - fromMs > MAX_RANGE_MS) return `the range from --from to --to is longer than 31 days; plot a shorter one`;
  if (fromMs > nowMs) return `--from (${new Date(fromMs).toISOString()}) is in the future: there is nothing to plot yet`;
  return { fromMs, toMs };
}

/** Why FILE cannot be written (before asking the cluster anything), or undefined. */
export function unwritable(file: string): string | undefined {
  if (!file.toLowerCase().endsWith('.svg')) return `--plot takes a file name ending in .svg, not "${file}"`;
  const path = resolve(file);
  try {
    if (statSync(path).isDirectory()) return `--plot ${file} is a directory; give a file name such as ${file.replace(/\/$/, '')}/decisions.svg`;
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return `cannot write ${file}: a part of ${dirname(path)} is not a directory`;
    if (code !== 'ENOENT') return `cannot write ${file}: ${(err as Error).message}`;
  }
  try {
    if (!statSync(dirname(path)).isDirectory()) return `cannot write ${file}: ${dirname(path)} is not a directory`;
    accessSync(dirname(path), constants.W_OK);
  } catch (err) {
    return `cannot write ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `the directory ${dirname(path)} does not exist` : (err as Error).message}`;
  }
  return undefined;
}

export interface PlotNode {
  id: string;
  /** [ms, host CPU busy %]. */
  points: Array<[number, number]>;
}

/** A decision as ListDecisions answers it (herd.v1.Decision), the fields the plot reads. */
export interface PlotDecision {
  id: string;
  at_ms: number | string;
  mode: string;
  trigger: string;
  note: string;
  actions: Array<{ herd_id: string; from_node_id: string; to_node_id: string; policy: string; reason: string; status: string; detail: string }>;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#d62728'];
/** A move's colour by how it ended; a recommended one is drawn hollow. */
const STATUS: Record<string, string> = { SUCCEEDED: '#2ca02c', started: '#1f77b4', ROLLED_BACK: '#000000', FAILED: '#d62728', skipped: '#999999', recommended: '#ff7f0e' };
const W = 960;
const H = 360;

function clockLabel(ms: number, spanMs: number): string {
  const iso = new Date(ms).toISOString();
  if (spanMs > 2 * 86_400_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return spanMs > 20 * 60_000 ? iso.slice(11, 16) : iso.slice(11, 19);
}

/** The picture: pure, returns SVG text. */
export function plotDecisions(range: PlotRange, nodes: PlotNode[], decisions: PlotDecision[]): string {
  const span = range.toMs - range.fromMs;
  const inRange = decisions.filter((d) => Number(d.at_ms) >= range.fromMs && Number(d.at_ms) <= range.toMs).sort((a, b) => Number(a.at_ms) - Number(b.at_ms));
  const marks: ChartMark[] = [];
  for (const d of inRange) {
    const at = Number(d.at_ms);
    marks.push({ x: at, shape: 'tick', color: '#bbbbbb', title: `${d.id} (${d.mode}, ${d.trigger}): ${d.note}`, attrs: { class: 'evaluation', 'data-decision': d.id } });
    d.actions.forEach((a, row) =>
      marks.push({
        x: at,
        row,
        color: STATUS[a.status] ?? '#9467bd',
        hollow: a.status === 'recommended',
        title: `${d.id}: ${a.herd_id} ${a.from_node_id} -> ${a.to_node_id} [${a.status}${a.detail ? `: ${a.detail}` : ''}] ${a.policy}: ${a.reason}`,
        attrs: { class: 'move', 'data-decision': d.id, 'data-herd-id': a.herd_id },
      }),
    );
  }
  const moves = marks.filter((m) => m.attrs?.class === 'move').length;
  const panel = chartPanel({
    x: 0,
    y: 44,
    width: W,
    height: H,
    pad: { l: 56, r: 36, t: 26, b: 40 },
    title: `host CPU busy per node; ${inRange.length} evaluations (grey ticks), ${moves} moves (triangles)`,
    xMin: range.fromMs,
    xMax: range.toMs,
    yMax: 100,
    yFmt: (v) => `${v.toFixed(0)}%`,
    xTicks: Array.from({ length: 7 }, (_, i) => range.fromMs + (span * i) / 6).map((at) => ({ at, label: clockLabel(at, span) })),
    xLabel: 'UTC',
    yLabel: 'host CPU busy',
    lines: nodes.map((n, i) => ({ points: n.points, color: COLORS[i % COLORS.length], label: n.id })),
    marks,
  });
  let x = 10;
  const legend = Object.entries(STATUS).map(([status, color]) => {
    const item = `<path d="M${x + 4},${H + 60} l-4,6 h8 z" fill="${status === 'recommended' ? 'white' : color}" stroke="${color}"/><text x="${x + 12}" y="${H + 66}" font-size="11">${escapeXml(status === 'recommended' ? 'recommended (not carried out)' : status)}</text>`;
    x += 30 + 7 * (status === 'recommended' ? 29 : status.length);
    return item;
  });
  const subtitle = `${new Date(range.fromMs).toISOString()} to ${new Date(range.toMs).toISOString()}; ${nodes.length} nodes`;
  return svgDocument(W, H + 80, "Herd: host load and the controller's moves", subtitle, [panel, ...legend]);
}

type Call = (method: string, req: unknown) => Promise<any>;

/** Reads what the plot needs from the coordinator and writes FILE; answers a line for the user. */
export async function writeDecisionsPlot(call: Call, file: string, range: PlotRange): Promise<string> {
  const { nodes } = await call('ListNodes', {});
  const step = Math.max(1000, Math.ceil((range.toMs - range.fromMs) / POINTS));
  const lines: PlotNode[] = [];
  for (const n of [...nodes].sort((a: any, b: any) => String(a.node_id).localeCompare(String(b.node_id)))) {
    let points: Array<[number, number]> = [];
    try {
      const r = await call('QuerySamples', { entity: n.node_id, metric: 'host.cpu.total', from_ms: range.fromMs, to_ms: range.toMs, step_ms: step });
      points = r.points.map((p: any): [number, number] => [Number(p.ts_ms), Number(p.value)]);
    } catch (err) {
      if ((err as { code?: number }).code !== 5 /* NOT_FOUND: no samples of this node stored yet */) throw err;
    }
    lines.push({ id: n.node_id, points });
  }
  const { decisions } = await call('ListDecisions', { limit: MAX_PLOTTED_DECISIONS });
  const svg = plotDecisions(range, lines, decisions);
  try {
    writeFileSync(file, svg);
  } catch (err) {
    throw new Error(`cannot write ${file}: ${(err as Error).message}`);
  }
  const shown = decisions.filter((d: PlotDecision) => Number(d.at_ms) >= range.fromMs && Number(d.at_ms) <= range.toMs);
  return `plot: ${file} (${lines.length} nodes, ${shown.length} decisions, ${shown.reduce((a: number, d: PlotDecision) => a + d.actions.length, 0)} moves)`;
}
