/**
 * Herd's one SVG writer: a chart panel (frame, grid, axis labels, lines, a band, marks under
 * the time axis) and the document around panels. The simulator's plot (`herd sim --plot`),
 * the control experiment's figure (bench/control-plot.ts) and `herd decisions --plot` draw
 * with it. Hand-written SVG: a few polylines need no dependency. Pure: returns text.
 */

export interface ChartLine {
  /** [x, y] in data units; non-finite points are left out. */
  points: Array<[number, number]>;
  color: string;
  width?: number;
  dashed?: boolean;
  /** Written at the panel's top right in the line's colour. */
  label?: string;
}

export interface ChartMark {
  x: number;
  color: string;
  /** Shown as a tooltip. */
  title?: string;
  /** 'tick': a short line up from the axis; 'triangle': a small triangle, stacked by row. */
  shape?: 'tick' | 'triangle';
  row?: number;
  opacity?: number;
  hollow?: boolean;
  /** Extra attributes (e.g. class, data-*), already escaped by the caller via attr(). */
  attrs?: Record<string, string>;
}

export interface ChartPanel {
  /** Top left corner and size of the whole panel, title and axis labels included. */
  x: number;
  y: number;
  width: number;
  height: number;
  pad?: { l: number; r: number; t: number; b: number };
  title: string;
  xMin: number;
  xMax: number;
  yMax: number;
  yFmt?: (v: number) => string;
  /** Labels under the x axis, at data x. */
  xTicks: Array<{ at: number; label: string }>;
  xLabel?: string;
  yLabel?: string;
  lines: ChartLine[];
  /** A filled area between two lines of the same xs (e.g. least to most loaded). */
  band?: { xs: number[]; low: number[]; high: number[]; color: string };
  marks?: ChartMark[];
}

const DEFAULT_PAD = { l: 56, r: 12, t: 26, b: 40 };

export const escapeXml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '0');

/** 1.2k, 3.4M, 0.25: short axis numbers. */
export const fmtNum = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(x < 10 ? 2 : 0));

/** A round axis top at or above x: 1, 2, 2.5 or 5 times a power of ten, times 4 ticks. */
export function niceMax(x: number): number {
  const tick = x / 4;
  const p = 10 ** Math.floor(Math.log10(Math.max(tick, 1e-9)));
  return 4 * ([1, 2, 2.5, 5, 10].find((m) => m * p >= tick) ?? 10) * p;
}

/** The panel's mapping from data to picture coordinates. */
export function scales(p: ChartPanel) {
  const pad = p.pad ?? DEFAULT_PAD;
  const left = p.x + pad.l;
  const right = p.x + p.width - pad.r;
  const top = p.y + pad.t;
  const bottom = p.y + p.height - pad.b;
  const span = p.xMax - p.xMin || 1;
  const yMax = p.yMax > 0 ? p.yMax : 1;
  return {
    left, right, top, bottom,
    X: (x: number) => left + ((x - p.xMin) / span) * (right - left),
    Y: (v: number) => bottom - (Math.max(0, Math.min(v, yMax)) / yMax) * (bottom - top),
  };
}

export function chartPanel(p: ChartPanel): string {
  const { left, right, top, bottom, X, Y } = scales(p);
  const yFmt = p.yFmt ?? fmtNum;
  const out = [`<text x="${f(left)}" y="${f(p.y + 16)}" font-size="12" font-weight="bold">${escapeXml(p.title)}</text>`, `<rect x="${f(left)}" y="${f(top)}" width="${f(right - left)}" height="${f(bottom - top)}" fill="none" stroke="#ccc"/>`];
  for (let i = 0; i <= 4; i++) {
    const v = (p.yMax * i) / 4;
    out.push(`<line x1="${f(left)}" x2="${f(right)}" y1="${f(Y(v))}" y2="${f(Y(v))}" stroke="#eee"/><text x="${f(left - 4)}" y="${f(Y(v) + 4)}" font-size="10" text-anchor="end">${escapeXml(yFmt(v))}</text>`);
  }
  for (const t of p.xTicks) out.push(`<text x="${f(X(t.at))}" y="${f(bottom + 14)}" font-size="10" text-anchor="middle">${escapeXml(t.label)}</text>`);
  if (p.xLabel) out.push(`<text x="${f((left + right) / 2)}" y="${f(bottom + 27)}" font-size="10" text-anchor="middle">${escapeXml(p.xLabel)}</text>`);
  if (p.yLabel) out.push(`<text x="${f(p.x + 12)}" y="${f((top + bottom) / 2)}" transform="rotate(-90 ${f(p.x + 12)} ${f((top + bottom) / 2)})" font-size="10" text-anchor="middle">${escapeXml(p.yLabel)}</text>`);
  if (p.band) {
    const b = p.band;
    const upper = b.xs.map((x, i) => `${i ? 'L' : 'M'}${f(X(x))},${f(Y(b.high[i]))}`).join('');
    const lower = b.xs.map((x, i) => [x, b.low[i]] as const).reverse().map(([x, v]) => `L${f(X(x))},${f(Y(v))}`).join('');
    out.push(`<path d="${upper}${lower}Z" fill="${b.color}" fill-opacity="0.15" stroke="none"/>`);
  }
  let labelRow = 0;
  for (const l of p.lines) {
    const pts = l.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${f(X(x))},${f(Y(y))}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="${l.width ?? 1.5}"${l.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
    if (l.label) out.push(`<text x="${f(right - 4)}" y="${f(top + 12 + 12 * labelRow++)}" font-size="10" text-anchor="end" fill="${l.color}">${escapeXml(l.label)}</text>`);
  }
  for (const m of p.marks ?? []) {
    const x = X(m.x);
    const extra = Object.entries(m.attrs ?? {}).map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('');
    const title = m.title ? `<title>${escapeXml(m.title)}</title>` : '';
    const opacity = m.opacity !== undefined ? ` stroke-opacity="${m.opacity}" fill-opacity="${m.opacity}"` : '';
    if ((m.shape ?? 'triangle') === 'tick') {
      out.push(`<line x1="${f(x)}" x2="${f(x)}" y1="${f(bottom)}" y2="${f(bottom - 8)}" stroke="${m.color}"${opacity}${extra}>${title}</line>`);
    } else {
      const y = bottom - 2 - 7 * (m.row ?? 0);
      out.push(`<path d="M${f(x)},${f(y - 6)} l-4,6 h8 z" fill="${m.hollow ? 'white' : m.color}" stroke="${m.color}"${opacity}${extra}>${title}</path>`);
    }
  }
  return out.join('\n');
}

/** The document around panels: white background, a title and a subtitle. */
export function svgDocument(width: number, height: number, title: string, subtitle: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    subtitle ? `<text x="10" y="38" font-size="11">${escapeXml(subtitle)}</text>` : '',
    ...body,
    '</svg>',
  ].join('\n');
}
