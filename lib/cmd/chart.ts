// hp-chart: chart one numeric field of any NDJSON stream in the terminal, so that
// `hp-history run | hp-chart` (or `--field rss`, `--field top.0.bytes`) works.

import { formatBytes, OutputWriter, openTextInput, parser, readNdjson, runMain, warn, HpError, setQuiet } from '../cli.js';
import { CHART_HUGE, renderChart } from '../model/chart.js';
import { CHART_HEIGHT, CHART_WIDTH, chartColumns, inputArg, useOptions } from './common.js';

const USAGE = `$0 [FILE|-] [--field PATH] [-x PATH] [--height N] [--width N]

Chart a numeric field of each NDJSON line (default live_bytes, as hp-history writes) in the
terminal. PATH is dotted and may index arrays (rss, top.0.bytes, sites.app.py:12.bytes:
keys that contain dots are matched longest first). Lines without the field are skipped and counted. Values whose field name mentions bytes or rss are labelled in KiB/MiB/GiB.`;

const EXAMPLES: Array<[string, string]> = [
  ['hp-history run --json | $0', 'live bytes over time'],
  ['hp-history run --json | $0 --field rss', 'the process RSS over time'],
  ['hp-history run --sites app.py:30 --json | $0 --field sites.app.py:30.bytes', 'one line of code over time'],
];

/**
 * Follow a dotted path (`top.0.bytes`) into a parsed JSON value. A key that itself contains
 * dots (`sites.app.py:12.bytes`) is found by trying the longest run of segments first.
 */
export function getPath(value: unknown, path: string): unknown {
  const parts = path.split('.');
  let cur: unknown = value;
  let i = 0;
  while (i < parts.length) {
    if (cur === null || typeof cur !== 'object') return undefined;
    const obj = cur as Record<string, unknown>;
    let j = parts.length;
    while (j > i && !Object.prototype.hasOwnProperty.call(obj, parts.slice(i, j).join('.'))) j--;
    if (j === i) return undefined;
    cur = obj[parts.slice(i, j).join('.')];
    i = j;
  }
  return cur;
}

export function main(argv: string[]): void {
  runMain('hp-chart', async () => {
    const args = useOptions(parser('hp-chart', argv, USAGE, EXAMPLES).strict(false).strictOptions(), ['height', 'width'], {
      height: { describe: `Rows (${CHART_HEIGHT.min} to ${CHART_HEIGHT.max})` },
      width: { describe: `Columns, ${CHART_WIDTH.min} to ${CHART_WIDTH.max} (default: $COLUMNS or the terminal width, else 72)` },
    })
      .option('field', { requiresArg: true, type: 'string', default: 'live_bytes', describe: 'Dotted path of the value to chart' })
      .option('x', { requiresArg: true, type: 'string', describe: 'Dotted path of the x value, for the caption [default: t]' })
      .option('bytes', { type: 'boolean', describe: 'Label the y axis in bytes (default: when the field name mentions bytes or rss)' })
      .parseSync();
    setQuiet(args.quiet === true);
    const input = inputArg(args._, 'hp-chart');
    const name = input === '-' ? 'stdin' : input;
    const xPath = args.x ?? 't';
    const values: number[] = [];
    const xs: number[] = [];
    let skipped = 0;
    for await (const { value, lineNumber } of readNdjson(openTextInput(input), name)) {
      const v = getPath(value, args.field);
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        skipped++;
        continue;
      }
      // Finite, but no axis reaches it (its round steps would overflow): bad data, not a crash.
      if (Math.abs(v) > CHART_HUGE) throw new HpError(`${name}: line ${lineNumber}: '${args.field}' ${v}: too large to chart (at most ${CHART_HUGE} either side of 0)`);
      values.push(v);
      const x = getPath(value, xPath);
      xs.push(typeof x === 'number' ? x : NaN);
    }
    if (values.length === 0) throw new HpError(`${name}: no line has a numeric '${args.field}'${skipped ? ` (${skipped} lines without it)` : ''}`);
    if (skipped > 0) warn(`${name}: skipped ${skipped} line${skipped === 1 ? '' : 's'} without a numeric '${args.field}'`);
    const asBytes = args.bytes ?? /bytes|rss/i.test(args.field);
    const width = chartColumns(args.width);
    const haveX = xs.every((x) => Number.isFinite(x));
    if (!haveX && args.x !== undefined) {
      const missing = xs.filter((x) => !Number.isFinite(x)).length;
      warn(`${name}: no x caption: ${missing} of ${xs.length} charted line${xs.length === 1 ? '' : 's'} ha${missing === 1 ? 's' : 've'} no numeric '${xPath}'`);
    }
    // The caption's two x values, every digit of their integer part and as many decimals as the
    // points' closest spacing has (t 10837, not 10840, on a three-hour run; t 0.01 on a 0.02 s one).
    const finiteXs = xs.filter((x) => Number.isFinite(x));
    let spacing = Infinity;
    for (let i = 1; i < finiteXs.length; i++) {
      const gap = Math.abs(finiteXs[i]! - finiteXs[i - 1]!);
      if (gap > 0 && gap < spacing) spacing = gap;
    }
    if (spacing === Infinity) spacing = 0;
    const decimals = spacing > 0 ? Math.min(6, Math.max(0, Math.ceil(-Math.log10(spacing) - 1e-9))) : Math.max(0, ...finiteXs.map((x) => (String(x).split('.')[1] ?? '').length)) || 0;
    const plain = (v: number): string => (Math.abs(v) >= 1e12 ? v.toExponential(3) : v.toFixed(Math.min(6, decimals)));
    // A row's label is its value, a multiple of a round step (lib/model/chart.ts): written with
    // every digit it has (1.225e+6, not 1.23e+6; 12475, not 12480), float noise dropped.
    const exact = (v: number): string => {
      const x = Number(v.toPrecision(12));
      return Math.abs(x) >= 1e6 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential() : String(x);
    };
    const out = new OutputWriter();
    await out.write(
      `${args.field}\n${renderChart([{ name: args.field, values }], {
        height: args.height!,
        width,
        yFormat: asBytes ? formatBytes : exact,
        yBytes: asBytes,
        x: haveX ? xs : null,
        xFormat: (x) => `${xPath} ${plain(x)}`,
        colors: false,
      })}`,
    );
    await out.flush();
  });
}
