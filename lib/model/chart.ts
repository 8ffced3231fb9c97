// A terminal line chart (asciichart) of one or more series over a shared x axis, with
// y labels in the caller's units and a one-line x caption. Deterministic: colour only
// when asked for, and more points than columns are reduced by taking each column's maximum
// (peaks are what a memory chart is for); fewer points than half the columns are each drawn
// over as many whole columns as fit, so that a short history fills the terminal's width.

import { asciichart } from '../lazy.js';

export interface ChartSeries {
  name: string;
  values: number[];
}

export interface ChartOptions {
  height: number;
  /** Columns available for data points. */
  width: number;
  yFormat: (v: number) => string;
  /** x value of each point (same length as the series), for the caption. */
  x: number[] | null;
  xFormat: (v: number) => string;
  colors: boolean;
}


/** Reduce to at most `width` points, each the maximum of the points it covers. */
export function downsampleMax(values: number[], width: number): number[] {
  if (values.length <= width) return values.slice();
  const out: number[] = [];
  for (let c = 0; c < width; c++) {
    const a = Math.floor((c * values.length) / width);
    const b = Math.max(a + 1, Math.floor(((c + 1) * values.length) / width));
    let m = -Infinity;
    for (let i = a; i < b; i++) if (values[i]! > m) m = values[i]!;
    out.push(m);
  }
  return out;
}

export function renderChart(series: ChartSeries[], o: ChartOptions): string {
  const usable = series.filter((s) => s.values.length > 0);
  if (usable.length === 0) return '(no data to chart)\n';
  const width = Math.max(2, o.width);
  const reduced = usable.map((s) => downsampleMax(s.values, width));
  // Each point is a bucket (a span of time): drawn k columns wide, it keeps its value.
  const k = Math.max(1, Math.floor(width / Math.max(...reduced.map((d) => d.length))));
  const data = k === 1 ? reduced : reduced.map((d) => d.flatMap((v) => new Array<number>(k).fill(v)));
  let max = 0;
  for (const d of data) for (const v of d) if (v > max) max = v;
  const labels: string[] = [];
  for (let i = 0; i <= o.height; i++) labels.push(o.yFormat((max * i) / Math.max(1, o.height)));
  const labelWidth = Math.max(...labels.map((l) => l.length));
  const ac = asciichart();
  const COLORS = [ac.blue, ac.green, ac.magenta, ac.yellow];
  const chart = ac.plot(data, {
    height: o.height,
    min: 0,
    max: max > 0 ? max : 1,
    // asciichart puts the whole label in one cell at (offset - label length): with offset 2
    // the label starts the row and the axis follows it directly.
    offset: 2,
    format: (v: number) => `${o.yFormat(v).padStart(labelWidth)} `,
    ...(o.colors ? { colors: COLORS.slice(0, data.length) } : {}),
  });
  const lines = [chart];
  if (o.x && o.x.length > 0) {
    const first = o.xFormat(o.x[0]!);
    const last = o.xFormat(o.x[o.x.length - 1]!);
    const span = Math.max(...data.map((d) => d.length));
    const pad = ' '.repeat(labelWidth + 2);
    const gap = Math.max(1, span - first.length - last.length);
    lines.push(`${pad}${first}${' '.repeat(gap)}${last}`);
  }
  if (usable.length > 1) {
    // Without colour the series cannot be told apart: callers draw one chart per series then.
    lines.push(usable.map((s, i) => `${o.colors ? `${COLORS[i % COLORS.length]}──${ac.reset}` : '──'} ${s.name}`).join('   '));
  }
  return `${lines.join('\n')}\n`;
}
