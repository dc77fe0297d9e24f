/**
 * Small SVG charts (line charts, heatmaps) for results people would rather look at, and PNG
 * rendering of them with resvg. Labels are plain text; fonts come from the system.
 */
import { writeFileSync, renameSync } from "node:fs";

export interface Series {
  name: string;
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  logX?: boolean;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const span = max - min;
  const step0 = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6 || (a > 0 && a < 1e-3)) return v.toExponential(1);
  return String(+v.toPrecision(6));
}

export function lineChartSvg(series: Series[], o: LineChartOptions): string {
  const W = o.width ?? 720, H = o.height ?? 440;
  const m = { l: 80, r: 30, t: 50, b: 60 };
  const all = series.flatMap((s) => s.points);
  const tx = (x: number) => (o.logX ? Math.log2(x) : x);
  let x0 = Math.min(...all.map((p) => tx(p[0]))), x1 = Math.max(...all.map((p) => tx(p[0])));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.08;
  y0 -= pad; y1 += pad;
  const X = (x: number) => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="18">${esc(o.title)}</text>`);
  for (const v of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end" font-size="12">${fmt(v)}</text>`);
  }
  const xs = o.logX ? [...new Set(all.map((p) => p[0]))].sort((a, b) => a - b) : niceTicks(x0, x1);
  for (const v of xs) {
    parts.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${X(v)}" y="${H - m.b + 18}" text-anchor="middle" font-size="12">${fmt(v)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 16}" text-anchor="middle" font-size="14">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(20 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle" font-size="14">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}"/>`);
    for (const p of pts) parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3.5" fill="${c}"/>`);
    if (series.length > 1) {
      parts.push(`<rect x="${m.l + 12}" y="${m.t + 10 + i * 18}" width="12" height="12" fill="${c}"/>`);
      parts.push(`<text x="${m.l + 30}" y="${m.t + 20 + i * 18}" font-size="12">${esc(s.name)}</text>`);
    }
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Render an SVG to PNG bytes. */
export async function svgToPng(svg: string): Promise<Uint8Array> {
  const { Resvg } = await import("@resvg/resvg-js");
  const r = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" }, background: "white" });
  return r.render().asPng();
}

/** Write `<base>.svg` and `<base>.png` atomically; returns both paths. */
export async function writeChart(base: string, svg: string): Promise<[string, string]> {
  const svgPath = `${base}.svg`, pngPath = `${base}.png`;
  writeFileSync(`${svgPath}.tmp`, svg);
  renameSync(`${svgPath}.tmp`, svgPath);
  writeFileSync(`${pngPath}.tmp`, await svgToPng(svg));
  renameSync(`${pngPath}.tmp`, pngPath);
  return [svgPath, pngPath];
}

export interface HeatmapOptions {
  title: string;
  rowLabel: string;
  colLabel: string;
  rowNames?: string[];
  colNames?: string[];
  /** diverging blue-white-red scale centred on 0 (for differences) */
  diverging?: boolean;
  /** how to print a cell's value */
  format?: (v: number) => string;
}

function lerp(a: number, b: number, t: number) { return Math.round(a + (b - a) * t); }

function colour(v: number, lo: number, hi: number, diverging: boolean): string {
  if (diverging) {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    const t = Math.max(-1, Math.min(1, v / m));
    return t >= 0 ? `rgb(255,${lerp(255, 60, t)},${lerp(255, 60, t)})` : `rgb(${lerp(255, 60, -t)},${lerp(255, 90, -t)},255)`;
  }
  const t = hi > lo ? (v - lo) / (hi - lo) : 0;
  // white -> deep blue
  return `rgb(${lerp(247, 8, t)},${lerp(251, 48, t)},${lerp(255, 107, t)})`;
}

export function heatmapSvg(m: number[][], o: HeatmapOptions): string {
  const rows = m.length, cols = m[0]?.length ?? 0;
  const cell = Math.max(28, Math.min(64, Math.floor(640 / Math.max(cols, 1))));
  const ml = 90, mt = 60, mb = 50, mr = 20;
  const W = ml + cols * cell + mr, H = mt + rows * cell + mb;
  const flat = m.flat();
  const lo = Math.min(...flat), hi = Math.max(...flat);
  const fmtv = o.format ?? ((v: number) => (Math.abs(v) < 1 ? v.toFixed(2) : String(+v.toPrecision(3))));
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="26" text-anchor="middle" font-size="16">${esc(o.title)}</text>`];
  for (let r = 0; r < rows; r++) {
    parts.push(`<text x="${ml - 8}" y="${mt + r * cell + cell / 2 + 4}" text-anchor="end" font-size="12">${esc(o.rowNames?.[r] ?? String(r))}</text>`);
    for (let c = 0; c < cols; c++) {
      const v = m[r]![c]!;
      const fill = colour(v, lo, hi, !!o.diverging);
      parts.push(`<rect x="${ml + c * cell}" y="${mt + r * cell}" width="${cell}" height="${cell}" fill="${fill}" stroke="white"/>`);
      if (cell >= 32) {
        const dark = !o.diverging && hi > lo && (v - lo) / (hi - lo) > 0.55;
        parts.push(`<text x="${ml + c * cell + cell / 2}" y="${mt + r * cell + cell / 2 + 4}" text-anchor="middle" font-size="10" fill="${dark ? "white" : "#222"}">${esc(fmtv(v))}</text>`);
      }
    }
  }
  for (let c = 0; c < cols; c++) {
    parts.push(`<text x="${ml + c * cell + cell / 2}" y="${mt + rows * cell + 16}" text-anchor="middle" font-size="12">${esc(o.colNames?.[c] ?? String(c))}</text>`);
  }
  parts.push(`<text x="${ml + (cols * cell) / 2}" y="${H - 10}" text-anchor="middle" font-size="13">${esc(o.colLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${mt + (rows * cell) / 2}) rotate(-90)" text-anchor="middle" font-size="13">${esc(o.rowLabel)}</text>`);
  parts.push("</svg>");
  return parts.join("\n");
}
