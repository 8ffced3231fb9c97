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

/**
 * The magnitudes an axis is built for. Data within CHART_TINY of 0 has no height to draw (an axis
 * of 0..1, on which it is 0); past CHART_HUGE a round step times the rows overflows to Infinity,
 * and a search that starts from a subnormal step (10 ** -Infinity is 0) never ends. hp-chart
 * refuses data past CHART_HUGE, naming its line.
 */
export const CHART_TINY = 1e-300;
export const CHART_HUGE = 1e300;

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
  const r = Math.max(1, Math.floor(rows));
  // Nothing to draw: an axis of 0..1, or of whole bytes (a byte a row), which B labels write exactly.
  if (!(max > CHART_TINY)) return bytes ? r : 1;
  if (!(max <= CHART_HUGE)) throw new RangeError(`niceTop: ${max} is past ${CHART_HUGE}`);
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

/**
 * The bottom and top of a y axis of `rows` steps for data from `lo` to `hi`: 0 and niceTop(hi)
 * for data that is never negative; otherwise a round step (as niceTop's) of which the top and
 * bottom are whole multiples, 0 on a step, the fewest steps below 0 that reach `lo`.
 */
export function niceRange(lo: number, hi: number, rows: number, bytes = false): { min: number; max: number } {
  if (!(lo < -CHART_TINY)) return { min: 0, max: niceTop(hi, rows, bytes) };
  if (!(lo >= -CHART_HUGE && hi <= CHART_HUGE)) throw new RangeError(`niceRange: ${lo}..${hi} is past ${CHART_HUGE}`);
  const r = Math.max(1, Math.floor(rows));
  const top = Math.max(0, hi);
  let unit = 1;
  if (bytes) while (Math.max(top, -lo) >= unit * 1024 && unit < 1024 ** 4) unit *= 1024;
  const least = bytes ? (unit === 1 ? 1 : 0.1) : 0;
  const raw = (top - lo) / r / unit;
  for (let e = Math.floor(Math.log10(raw)); ; e++) {
    for (const m of STEP_MANTISSAS) {
      const step = Number((m * 10 ** e).toPrecision(12));
      if (step < least) continue;
      if (least > 0 && Math.abs(step / least - Math.round(step / least)) > 1e-9) continue;
      const size = step * unit;
      const above = Math.max(0, Math.ceil(top / size - 1e-9));
      const below = Math.ceil(-lo / size - 1e-9);
      if (above + below > r) continue;
      return { min: -below * size, max: (r - below) * size };
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
  let dataMin = 0;
  for (const d of data) {
    for (const v of d) {
      if (v > dataMax) dataMax = v;
      if (v < dataMin) dataMin = v;
    }
  }
  // asciichart draws `height` + 1 rows (its height is the steps between the top and bottom
  // labels): --height N asks for N rows, so N - 1 steps.
  const steps = Math.max(0, o.height - 1);
  // A round top (and bottom), so that each row's label is what the row stands for.
  const { min, max } = niceRange(dataMin, dataMax, steps, o.yBytes === true);
  // Each row's label, top first, as asciichart computes the value of a row; all padded to
  // the widest (a '-' included), so that the axis is one straight column.
  const labels: string[] = [];
  for (let i = 0; i <= steps; i++) labels.push(o.yFormat(steps === 0 ? max : max - (i * (max - min)) / steps));
  const labelWidth = Math.max(...labels.map((l) => l.length));
  const ac = asciichart();
  const COLORS = [ac.blue, ac.green, ac.magenta, ac.yellow];
  const chart = ac.plot(data, {
    height: steps,
    min,
    max,
    // asciichart puts the whole label in one cell at (offset - label length): with offset 2
    // the label starts the row and the axis follows it directly.
    offset: 2,
    format: (v: number, row: number) => `${(labels[row] ?? o.yFormat(v)).padStart(labelWidth)} `,
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
