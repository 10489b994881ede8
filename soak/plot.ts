// The soak's plot: one SVG, no dependency. One small chart per metric, one
// colour per process id, one polyline per incarnation (a restarted process
// starts a new line: the gap between lines is its restart), the fitted line of
// every judged series dashed over its fit window (red when it fails; a master
// has one per role), and a mark at the top of each chart for every fault
// (hover for what and where). Samples left out of the fit (just after a fault
// on that process) are drawn as hollow dots.

import { worst, type Fit } from './fit.js';

export interface PlotLine {
  id: string;
  /** One incarnation: id#pid. */
  key: string;
  points: ReadonlyArray<{ t: number; v: number; excluded?: boolean }>;
}

export interface PlotFit {
  id: string;
  /** The fitted series: id#pid, or id#pid/role for a master. */
  key: string;
  fit: Fit;
}

export interface PlotChart {
  title: string;
  unit: string;
  lines: PlotLine[];
  fits: PlotFit[];
}

export interface PlotInput {
  title: string;
  subtitle: string;
  /** Minutes from the start of the run. */
  durationMin: number;
  faults: ReadonlyArray<{ t: number; kind: string; target: string }>;
  charts: PlotChart[];
}

const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2',
  '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#843c39',
];

const W = 560;
const H = 280;
const M = { left: 58, right: 16, top: 44, bottom: 36 };
const COLS = 2;

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** niceTicks: about `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    return niceTicks(lo - pad, hi + pad, count);
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  if (out[out.length - 1]! < hi) out.push(Number((out[out.length - 1]! + step).toFixed(10)));
  return out;
}

const fmt = (v: number): string => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toPrecision(3).replace(/\.?0+$/, ''));

function chart(c: PlotChart, x0: number, y0: number, durationMin: number, faults: PlotInput['faults'], colour: (id: string) => string | undefined): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const vals = c.lines.flatMap((s) => s.points.map((p) => p.v));
  const lo = vals.length ? Math.min(0, ...vals) : 0;
  const hi = vals.length ? Math.max(...vals) : 1;
  const yt = niceTicks(lo, hi, 5);
  const ymin = yt[0]!;
  const ymax = yt[yt.length - 1]!;
  const xt = niceTicks(0, Math.max(durationMin, 0.1), 6).filter((v) => v >= 0);
  const xmax = Math.max(xt[xt.length - 1]!, durationMin);
  const X = (t: number): number => x0 + M.left + (t / xmax) * pw;
  const Y = (v: number): number => y0 + M.top + ph - ((v - ymin) / (ymax - ymin || 1)) * ph;
  const out: string[] = [];
  const failing = c.fits.filter((s) => s.fit.status === 'fail').length;
  const noise = c.fits.filter((s) => s.fit.status === 'noise').length;
  const judged = c.fits.filter((s) => s.fit.status !== 'short');
  const w = judged.length > 0 ? worst(judged.map((s) => ({ ...s.fit, key: s.key }))) : undefined;
  const thr = c.fits[0]?.fit.threshold;
  out.push(`<g class="chart">`);
  out.push(`<text x="${x0 + M.left}" y="${y0 + 18}" class="title">${esc(`${c.title} (${c.unit})`)}</text>`);
  const sub = w
    ? `worst slope ${fmt(w.slope!)} ${c.unit}/min (${w.key}); threshold ${thr === undefined ? '?' : fmt(thr)}; ${judged.length} judged, ${failing} failing${noise ? `, ${noise} noise` : ''}`
    : `no series judged (all too short); threshold ${thr === undefined ? '?' : fmt(thr)} ${c.unit}/min`;
  out.push(`<text x="${x0 + M.left}" y="${y0 + 34}" class="sub${failing ? ' bad' : ''}">${esc(sub)}</text>`);
  // Grid and axes.
  for (const v of yt) {
    out.push(`<line x1="${X(0)}" x2="${X(xmax)}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" class="grid"/>`);
    out.push(`<text x="${X(0) - 6}" y="${(Y(v) + 4).toFixed(1)}" class="tick" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const v of xt) {
    out.push(`<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${Y(ymin)}" y2="${Y(ymin) + 4}" class="axis"/>`);
    out.push(`<text x="${X(v).toFixed(1)}" y="${Y(ymin) + 16}" class="tick" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<text x="${X(xmax)}" y="${Y(ymin) + 30}" class="tick" text-anchor="end">minutes</text>`);
  out.push(`<rect x="${X(0)}" y="${Y(ymax)}" width="${pw}" height="${ph}" class="frame"/>`);
  // Faults: a mark at the top edge.
  for (const f of faults) {
    const x = X(f.t).toFixed(1);
    out.push(
      `<path d="M${x} ${Y(ymax)} l-3 -6 h6 z" fill="${colour(f.target) ?? '#555'}"><title>${esc(`${fmt(f.t)} min: ${f.kind} ${f.target}`)}</title></path>`,
    );
  }
  // Lines, one per incarnation.
  for (const s of c.lines) {
    const col = colour(s.id) ?? '#555';
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    if (pts.length === 0) continue;
    const d = pts.map((p) => `${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${d}" fill="none" stroke="${col}" stroke-width="1.3"><title>${esc(s.key)}</title></polyline>`);
    for (const p of pts) {
      if (p.excluded) out.push(`<circle cx="${X(p.t).toFixed(1)}" cy="${Y(p.v).toFixed(1)}" r="2" fill="#fff" stroke="${col}" stroke-width="0.8"/>`);
    }
    if (pts.length === 1) out.push(`<circle cx="${X(pts[0]!.t).toFixed(1)}" cy="${Y(pts[0]!.v).toFixed(1)}" r="1.5" fill="${col}"/>`);
  }
  // Fits, over their windows, on top.
  for (const s of c.fits) {
    const f = s.fit;
    if (f.status === 'short' || f.slope === null || f.intercept === null || f.from === null || f.to === null) continue;
    const bad = f.status === 'fail';
    out.push(
      `<line x1="${X(f.from).toFixed(1)}" y1="${Y(f.intercept + f.slope * f.from).toFixed(1)}" x2="${X(f.to).toFixed(1)}" y2="${Y(f.intercept + f.slope * f.to).toFixed(1)}" ` +
        `stroke="${bad ? '#d62728' : (colour(s.id) ?? '#555')}" stroke-width="${bad ? 2.5 : 1.2}" stroke-dasharray="5 3"><title>${esc(`${s.key}: ${fmt(f.slope)} ${c.unit}/min (threshold ${fmt(f.threshold)}, ${f.status})`)}</title></line>`,
    );
  }
  out.push(`</g>`);
  return out.join('\n');
}

export function plot(input: PlotInput): string {
  const ids = [...new Set(input.charts.flatMap((c) => c.lines.map((s) => s.id)))].sort(byId);
  const colour = (id: string): string | undefined => (ids.includes(id) ? PALETTE[ids.indexOf(id) % PALETTE.length]! : undefined);
  const rows = Math.ceil(input.charts.length / COLS);
  const legendH = 28;
  const headH = 52;
  const width = W * COLS;
  const height = headH + legendH + rows * H + 8;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    `<style>
  .title { font-size: 14px; font-weight: 600; fill: #222 }
  .sub { font-size: 11px; fill: #555 }
  .bad { fill: #d62728; font-weight: 600 }
  .tick { font-size: 10px; fill: #666 }
  .grid { stroke: #eee; stroke-width: 1 }
  .axis { stroke: #999; stroke-width: 1 }
  .frame { fill: none; stroke: #ccc; stroke-width: 1 }
  .legend { font-size: 12px; fill: #333 }
  .head { font-size: 16px; font-weight: 700; fill: #111 }
  .note { font-size: 11px; fill: #666 }
</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="22" class="head">${esc(input.title)}</text>`,
    `<text x="12" y="40" class="note">${esc(input.subtitle)}</text>`,
  );
  let lx = 12;
  for (const id of ids) {
    parts.push(`<rect x="${lx}" y="${headH + 6}" width="14" height="4" fill="${colour(id)!}"/>`);
    parts.push(`<text x="${lx + 18}" y="${headH + 12}" class="legend">${esc(id)}</text>`);
    lx += 26 + id.length * 7.5;
  }
  parts.push(
    `<text x="${width - 12}" y="${headH + 12}" class="note" text-anchor="end">line = one incarnation; dashed = fit; hollow dot = not fitted (after a fault); ▼ = fault</text>`,
  );
  input.charts.forEach((c, i) => {
    parts.push(chart(c, (i % COLS) * W, headH + legendH + Math.floor(i / COLS) * H, input.durationMin, input.faults, colour));
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** byId orders process ids: masters, workers, then servers, numbers numerically. */
export function byId(a: string, b: string): number {
  const rank = (s: string): number => (/^m\d/.test(s) ? 0 : /^w\d/.test(s) ? 1 : s.startsWith('nats') ? 2 : 3);
  return rank(a) - rank(b) || a.localeCompare(b, undefined, { numeric: true });
}
