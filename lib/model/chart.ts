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
  /** The values are bytes (yFormat writes KiB/MiB with one decimal): steps it writes exactly. */
  yBytes?: boolean;
}

/** Steps of the y axis, times a power of ten: round numbers whose multiples stay round. */
const STEP_MANTISSAS = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8];

/**
 * The top of a y axis of `rows` rows for data up to `max`: the smallest `rows` times a round step
 * (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that reaches `max`, so that every
 * row's label is a multiple of the step, written exactly, and the top one is not below the data
 * (150,065 under rows of 10,000 gets a top of 180,000, not a label of 150100). Bytes are stepped in
 * the unit of `max` (KiB, MiB...) by at least 0.1 of it, which one decimal writes exactly, or by
 * whole bytes.
 */
export function niceTop(max: number, rows: number, bytes = false): number {
  if (!(max > 0)) return 1;
  const r = Math.max(1, Math.floor(rows));
  let unit = 1;
  if (bytes) while (max >= unit * 1024 && unit < 1024 ** 4) unit *= 1024;
  // Steps are multiples of `least` units: a tenth (one decimal) in KiB and above, a whole byte.
  const least = bytes ? (unit === 1 ? 1 : 0.1) : 0;
  const raw = max / r / unit;
  for (let e = Math.floor(Math.log10(raw)); ; e++) {
    for (const m of STEP_MANTISSAS) {
      const step = Number((m * 10 ** e).toPrecision(12));
      if (step * r * unit < max || step < least) continue;
      if (least > 0 && Math.abs(step / least - Math.round(step / least)) > 1e-9) continue;
      return step * r * unit;
    }
  }
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
  let dataMax = 0;
  for (const d of data) for (const v of d) if (v > dataMax) dataMax = v;
  // A round top, so that each row's label is what the row stands for.
  const max = niceTop(dataMax, o.height, o.yBytes === true);
  const labels: string[] = [];
  for (let i = 0; i <= o.height; i++) labels.push(o.yFormat((max * i) / Math.max(1, o.height)));
  const labelWidth = Math.max(...labels.map((l) => l.length));
  const ac = asciichart();
  const COLORS = [ac.blue, ac.green, ac.magenta, ac.yellow];
  const chart = ac.plot(data, {
    height: o.height,
    min: 0,
    max,
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
