// hp-stats: the size distribution in power-of-two ranges (sampled count, estimated count and
// bytes with 95% intervals; the recorder's exact histogram and a sampler self-check when
// the profile has one), and --suggest: a variance-optimal sampling table for a budget.

import { cliTable } from '../lazy.js';
import { OutputWriter, formatBytes, parser, runMain, UsageError, warn, setQuiet } from '../cli.js';
import type { HistogramBucket, Sampling } from '../format/types.js';
import { putEstimate, unseenOf, whole, wholeInterval95, type Unseen } from '../model/estimate.js';
import { probabilityFunction } from '../format/weights.js';
import { checkSampler, rangeBounds, rangeUnseen, SizeTable, type SamplerCheck } from '../model/sizes.js';
import { formatTable, optimalPlan, type RangeLoad } from '../model/suggest.js';
import { commandReadOptions, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { manyInputs, openInputs } from '../profile-inputs.js';
import { inputArg, reportIncomplete, useOptions, wantsJson } from './common.js';
import { EXACT, formatByteInterval, formatCountInterval, formatShare } from './human.js';

const USAGE = `$0 [PROFILE|STATS|-] [--json] [--suggest [--budget N/s|P%]]

The allocation size distribution in power-of-two ranges: per range the sampled
allocations and the estimated count and bytes (95% intervals). When the recorder wrote its
exact histogram (always in --mode stats, at stop in profile mode) the exact counts are shown
too, with a check that the sampler recorded each range at its configured probability.
--suggest proposes the sampling table (in hp-record --sample syntax) that minimizes the
variance of the total-bytes estimate for an event budget: --budget 2000/s (events per
second of the run), --budget 1% (of all allocations), default the events this run recorded.
Several profiles (or a quoted glob 'run.*', profile mode) are counted together.
A table on a terminal; NDJSON otherwise (or with --json).`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run', 'the size table, with the sampler check when the recorder wrote its histogram'],
  ['$0 run --suggest --budget 2000/s', 'a sampling table for about 2000 events a second'],
  ['$0 run --json | head -3', 'the same as NDJSON'],
];

export interface RangeRow {
  range: number;
  min: number;
  max: number;
  sampled: number;
  count: number;
  countVar: number;
  bytes: number;
  bytesVar: number;
  recorder: HistogramBucket | null;
  check: SamplerCheck | null;
  /** Nothing drawn at p < 1 where allocations may have been: what could hide behind no draw. */
  unseen: Unseen | null;
}

/** Rows from the first to the last range with data; `sampling` null skips the sampler check. */
export function rangeRows(table: SizeTable, hist: HistogramBucket[] | null, sampling: Sampling | null): RangeRow[] {
  const last = table.lastUsedRange(hist);
  let first = 0;
  while (first <= last && !(table.sampled[first]! > 0 || (hist?.[first]?.count ?? 0) > 0)) first++;
  const rows: RangeRow[] = [];
  for (let i = first; i <= last; i++) {
    const [min, max] = rangeBounds(i);
    const h = hist?.[i] ?? (hist ? { count: 0, bytes: 0, sampled: 0 } : null);
    rows.push({
      range: i,
      min,
      max,
      sampled: table.sampled[i]!,
      count: table.count[i]!,
      countVar: table.countVar[i]!,
      bytes: table.bytes[i]!,
      bytesVar: table.bytesVar[i]!,
      recorder: h,
      check: h && sampling ? checkSampler(sampling, i, h) : null,
      unseen: sampling && !(table.sampled[i]! > 0) ? rangeUnseen(sampling, i, h) : null,
    });
  }
  return rows;
}

/**
 * A size range's label: its bounds as they are below 1 KiB (512..1023); above, half-open in
 * units (1 KiB..<2 KiB: up to 2047 bytes), since "1 KiB..2 KiB" beside "2 KiB..4 KiB" would
 * read as ranges that share 2 KiB.
 */
function rangeLabel(min: number, max: number): string {
  const f = (n: number): string => (n < 1024 ? String(n) : formatBytes(n).replace('.0 ', ' '));
  if (min === max) return f(min);
  if (max < 1024) return `${f(min)}..${f(max)}`;
  return `${f(min)}..<${f(max + 1)}`;
}

/** A range's or the total's estimates, with what could hide undrawn and the part drawn at p = 1. */
interface Estimated {
  sampled: number;
  count: number;
  countVar: number;
  bytes: number;
  bytesVar: number;
  unseen?: Unseen | null;
  exactCount?: number;
  exactBytes?: number;
}

/** The NDJSON fields of a range or the total: count and bytes with the intervals the table shows. */
function putEstimated(o: Record<string, unknown>, e: Estimated): void {
  putEstimate(o, 'count', e.count, e.countVar, e.unseen?.count, e.exactCount);
  putEstimate(o, 'bytes', e.bytes, e.bytesVar, e.unseen?.bytes, e.exactBytes);
}

/**
 * The interval cells of a range or the total: the 95% intervals of its count and bytes as its
 * NDJSON line has them, `exact` where every allocation drawn was drawn at p = 1, and nothing where
 * nothing was drawn (the NDJSON has no interval there either).
 */
function intervalCells(e: Estimated): [string, string] {
  const count = wholeInterval95(e.count, e.countVar, e.unseen?.count, e.exactCount);
  const bytes = wholeInterval95(e.bytes, e.bytesVar, e.unseen?.bytes, e.exactBytes);
  const none = e.sampled > 0 ? EXACT : '';
  return [count ? formatCountInterval(count[0], count[1]) : none, bytes ? formatByteInterval(bytes[0], bytes[1]) : none];
}

function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** `2000`, `2000/s` (events per second) or `1%` (of all allocations) as a number of events. */
export function parseBudget(text: string, totalAllocations: number, durationS: number): number {
  const t = text.trim();
  let m = /^([0-9.eE+-]+)%$/.exec(t);
  if (m) {
    const pct = Number(m[1]);
    if (!(pct > 0 && pct <= 100)) throw new UsageError(`--budget: expected a percentage in (0, 100], got '${text}'`);
    return (pct / 100) * totalAllocations;
  }
  m = /^([0-9.eE+-]+)(\/s)?$/.exec(t);
  if (m) {
    const rate = Number(m[1]);
    if (!(rate > 0)) throw new UsageError(`--budget: expected events per second > 0, got '${text}'`);
    if (!(durationS > 0)) throw new UsageError('--budget: this profile has no duration (no timed events); give a percentage instead, e.g. --budget 1%');
    return rate * durationS;
  }
  throw new UsageError(`--budget: expected N/s (events per second) or P% (of allocations), got '${text}'`);
}

export function main(argv: string[]): void {
  runMain('hp-stats', async () => {
    const args = useOptions(parser('hp-stats', argv, USAGE, EXAMPLES), ['json', 'strict'], { json: { describe: 'NDJSON even on a terminal: one line per range, a total, and the suggestion (--no-json: the table even into a pipe)' } })
      .strict(false)
      .strictOptions()
      .option('suggest', { type: 'boolean', default: false, describe: 'Propose a sampling table' })
      .option('budget', { requiresArg: true, type: 'string', describe: 'Event budget for --suggest: N/s or P%' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(args.quiet === true);
    if (args.budget !== undefined && !args.suggest) throw new UsageError('--budget needs --suggest');
    const inputs = args._.map(String);
    const merged = manyInputs(inputs);
    const input = merged ? '' : inputArg(args._, 'hp-stats');
    const json = wantsJson(args.json);
    const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) });
    const source = merged ? await openInputs(inputs, opts, false) : await openSource(input, opts);
    const out = new OutputWriter();
    try {
      const sampling = source.header.sampling;
      const table = new SizeTable(sampling);
      for await (const batch of source.batches()) table.consume(batch);
      done();
      reportIncomplete(source);
      // Events cut to a window (hp-events --from/--to) are a part of the run, and the recorder's
      // histogram counts the whole run: beside the window's estimates its counts would read as
      // the truth they estimate, and its checks as checks of them. (It still bounds what could
      // hide: a range the whole run never used is empty in any window.)
      const window = source.window;
      const windowed = window !== undefined && (window.fromUs !== null || window.toUs !== null);
      if (windowed && source.histogram) warn(`${source.name}: events of a window of the run (hp-events --from/--to): the recorder's histogram counts the whole run, so its columns and check are left out`);
      const hist = windowed ? null : source.histogram;
      // In stats mode nothing is sampled by design: there is no sampler to check.
      const statsMode = source.header.mode === 'stats';
      const rows = rangeRows(table, hist, statsMode ? null : sampling);
      const totals = rows.reduce(
        (a, r) => {
          a.sampled += r.sampled;
          a.count += r.count;
          a.countVar += r.countVar;
          a.bytes += r.bytes;
          a.bytesVar += r.bytesVar;
          a.hCount += r.recorder?.count ?? 0;
          a.hBytes += r.recorder?.bytes ?? 0;
          a.hSampled += r.recorder?.sampled ?? 0;
          return a;
        },
        { sampled: 0, count: 0, countVar: 0, bytes: 0, bytesVar: 0, hCount: 0, hBytes: 0, hSampled: 0 },
      );
      // The total is bounded as every reader's totals are (man/hp-estimates.7): the ranges drawn
      // at p = 1 are exact, and the upper limit allows for allocations of a sampled range that
      // no draw saw (without it, a run whose small blocks were all missed had its count's
      // interval end at a fifth of the recorder's count).
      const totalEstimate: Estimated = {
        ...totals,
        unseen: statsMode ? null : unseenOf(sampling, source.histogram),
        exactCount: rows.reduce((a, r) => a + (r.sampled > 0 && r.countVar <= 0 ? r.count : 0), 0),
        exactBytes: rows.reduce((a, r) => a + (r.sampled > 0 && r.bytesVar <= 0 ? r.bytes : 0), 0),
      };
      const bad = rows.filter((r) => r.check && !r.check.ok);
      if (json) {
        for (const r of rows) {
          const o: Record<string, unknown> = { type: 'range', min: r.min, max: r.max, sampled: r.sampled };
          putEstimated(o, r);
          if (r.recorder) o.recorder = { count: r.recorder.count, bytes: r.recorder.bytes, sampled: r.recorder.sampled };
          if (r.check) o.check = { ok: r.check.ok, rate: r.check.rate, p_min: r.check.pMin, p_max: r.check.pMax, sigmas: Number(r.check.sigmas.toFixed(2)) };
          await out.line(o);
        }
        const t: Record<string, unknown> = { type: 'total', sampled: totals.sampled };
        putEstimated(t, totalEstimate);
        if (hist) t.recorder = { count: totals.hCount, bytes: totals.hBytes, sampled: totals.hSampled };
        t.duration = table.coveredSeconds(window);
        if (windowed) t.window = { from: window.fromUs === null ? null : window.fromUs / 1e6, to: window.toUs === null ? null : window.toUs / 1e6 };
        await out.line(t);
      } else if (statsMode) {
        // The seed's HEAP USAGE SUMMARY: exact counts and bytes per range, and their shares.
        const head = ['size (bytes)', 'count', 'bytes', '% of count', '% of bytes'];
        const tbl = new (cliTable())({ head, style: { head: [], border: [], compact: true }, colAligns: ['left', 'right', 'right', 'right', 'right'] });
        // As every table's shares: a range that held something is never 0.0% (nor all of a total it shares).
        const share = formatShare;
        for (const r of rows) {
          const h = r.recorder ?? { count: 0, bytes: 0, sampled: 0 };
          tbl.push([rangeLabel(r.min, r.max), formatCount(h.count), formatBytes(h.bytes), share(h.count, totals.hCount), share(h.bytes, totals.hBytes)]);
        }
        tbl.push(['total', formatCount(totals.hCount), formatBytes(totals.hBytes), '', '']);
        await out.write(`${tbl.toString()}\n`);
        if (!hist) warn(`${source.name}: stats-mode profile without a histogram (the recorder did not stop cleanly?)`);
      } else {
        const head = ['size (bytes)', 'sampled', 'est. count', '95% interval', 'est. bytes', '95% interval'];
        if (hist) head.push('count', 'bytes', 'sampled/count', 'p', 'check');
        const tbl = new (cliTable())({ head, style: { head: [], border: [], compact: true }, colAligns: head.map((h, i) => (i === 0 || h === 'check' ? 'left' : 'right')) as Array<'left' | 'right'> });
        // The range of p over the range's sizes (one value when p is the same for all of them).
        const pText = (c: SamplerCheck): string => (fmtP(c.pMin) === fmtP(c.pMax) ? fmtP(c.pMin) : `${fmtP(c.pMin)}..${fmtP(c.pMax)}`);
        for (const r of rows) {
          const [countCi, bytesCi] = intervalCells(r);
          // A range drawn at p = 0 that held allocations has no estimate at all, not an estimate of 0.
          const left = r.check !== null && r.check.pMax === 0 && r.recorder!.count > 0;
          const row = [rangeLabel(r.min, r.max), formatCount(r.sampled), left ? '-' : formatCount(r.count), left ? '' : countCi, left ? '-' : formatBytes(r.bytes), left ? '' : bytesCi];
          if (hist) {
            const c = r.check;
            row.push(formatCount(r.recorder!.count), formatBytes(r.recorder!.bytes), c ? fmtP(c.rate) : '', c ? pText(c) : '', c ? (left ? 'not sampled' : c.ok ? 'ok' : `MISMATCH ${c.sigmas > 99 ? '>99' : c.sigmas.toFixed(0)} SE`) : '');
          }
          tbl.push(row);
        }
        const [countCi, bytesCi] = intervalCells(totalEstimate);
        const total = ['total', formatCount(totals.sampled), formatCount(totals.count), countCi, formatBytes(totals.bytes), bytesCi];
        if (hist) total.push(formatCount(totals.hCount), formatBytes(totals.hBytes), totals.hCount > 0 ? fmtP(totals.hSampled / totals.hCount) : '', '', bad.length ? `${bad.length} MISMATCH` : 'ok');
        tbl.push(total);
        await out.write(`${tbl.toString()}\n`);
      }
      if (bad.length > 0) {
        warn(`sampler check failed in ${bad.length} size range${bad.length === 1 ? '' : 's'}: the recorder sampled at a rate its header does not claim, so estimates there are biased`);
      }
      if (args.suggest) await suggest(out, json, rows, table.coveredSeconds(window), table, hist, statsMode ? null : sampling, args.budget);
      await out.flush();
    } finally {
      done();
      await source.close();
    }
  });
}

/**
 * A probability or rate for the table: three significant digits, and a p so close to 1 that
 * they would write 1 as its distance from 1 (a byte-Poisson range of large sizes has
 * p = 1 - 3.4e-4, not 1).
 */
export function fmtP(p: number): string {
  if (p === 0 || p === 1) return String(p);
  if (p < 0.001) return p.toExponential(2);
  const text = String(Number(p.toPrecision(3)));
  return text === '1' ? `1-${(1 - p).toExponential(1)}` : text;
}

/**
 * A percentage with two significant digits (0.94, 18), and whole from 99.5 on (180, not toPrecision's
 * 1.8e+2). A `share` of a whole that is not all of it keeps the decimals that leave it below 100
 * (99.8, not 100).
 */
function percent2(p: number, share = false): string {
  if (p < 99.5) return p.toPrecision(2);
  if (!share || p >= 100) return String(Math.round(p));
  let d = 1;
  while (d < 12 && Number(p.toFixed(d)) >= 100) d++;
  return p.toFixed(d);
}

/** `sampling` is the table the profile was recorded with, for comparison; null in stats mode (none). */
async function suggest(out: OutputWriter, json: boolean, rows: RangeRow[], durationS: number, table: SizeTable, hist: HistogramBucket[] | null, sampling: Sampling | null, budgetText: string | undefined): Promise<void> {
  // Per range: allocations (exact from the histogram when there is one) and the sum of
  // squared sizes (estimated from the events; from the mean size where no event was sampled).
  const maxRange = rows.length ? rows[rows.length - 1]!.range : -1;
  const loads: RangeLoad[] = [];
  for (let i = 0; i <= maxRange; i++) {
    const h = hist?.[i];
    const count = h ? h.count : table.count[i]!;
    let squares: number;
    if (table.count[i]! > 0) squares = (table.squares[i]! / table.count[i]!) * count;
    else if (h && h.count > 0) squares = (h.bytes / h.count) ** 2 * h.count;
    else squares = 0;
    loads.push({ count, squares });
  }
  const totalAllocations = loads.reduce((a, l) => a + l.count, 0);
  const totalBytes = hist ? rows.reduce((a, r) => a + (r.recorder?.bytes ?? 0), 0) : rows.reduce((a, r) => a + r.bytes, 0);
  if (totalAllocations <= 0) throw new UsageError('--suggest: no allocations in this profile to plan from');
  const recorded = hist ? rows.reduce((a, r) => a + (r.recorder?.sampled ?? 0), 0) : rows.reduce((a, r) => a + r.sampled, 0);
  let budget: number;
  if (budgetText !== undefined) budget = parseBudget(budgetText, totalAllocations, durationS);
  else if (recorded > 0) budget = recorded;
  else throw new UsageError('--suggest: this profile recorded no events (stats mode?): give --budget N/s or P%');
  const plan = optimalPlan(loads, budget);
  // The current table under the same model, for comparison.
  const p = sampling ? probabilityFunction(sampling) : null;
  let currentEvents = 0;
  let currentVar = 0;
  loads.forEach((l, i) => {
    if (l.count <= 0 || !p) return;
    const rms = Math.sqrt(l.squares / l.count);
    const pi = p(Math.max(rangeBounds(i)[0], Math.min(rangeBounds(i)[1], rms)));
    currentEvents += l.count * pi;
    currentVar += pi > 0 ? l.squares * (1 / pi - 1) : Infinity;
  });
  const spec = formatTable(plan.bounds, plan.tableProbs);
  const rse = (v: number): number => (totalBytes > 0 ? (1.959963984540054 * Math.sqrt(v)) / totalBytes : 0);
  if (json) {
    await out.line({
      type: 'suggestion',
      sample: spec,
      bounds: plan.bounds,
      probs: plan.tableProbs,
      budget_events: whole(budget),
      expected_events: whole(plan.expectedEvents),
      events_per_second: durationS > 0 ? Number((plan.expectedEvents / durationS).toFixed(1)) : null,
      bytes_ci95_relative: Number(rse(plan.bytesVariance).toPrecision(3)),
      current_expected_events: p ? whole(currentEvents) : null,
      current_bytes_ci95_relative: p && Number.isFinite(currentVar) ? Number(rse(currentVar).toPrecision(3)) : null,
    });
    return;
  }
  const pct = (x: number): string => `±${percent2(100 * x)}%`;
  // Under 10 a second, two digits: a plan of 1 event in a 3 s run is 0.35/s, not 0/s.
  const rate = (r: number): string => (r >= 9.5 ? formatCount(r) : r.toPrecision(2));
  const lines = [
    '',
    `suggested: --sample '${spec}'`,
    `  expected ${formatCount(plan.expectedEvents)} events (${percent2((100 * plan.expectedEvents) / totalAllocations, true)}% of ${formatCount(totalAllocations)} allocations${durationS > 0 ? `, ${rate(plan.expectedEvents / durationS)}/s` : ''}); total bytes ${pct(rse(plan.bytesVariance))} (95%)`,
  ];
  if (p) lines.push(`  current:  ${formatCount(currentEvents)} events; total bytes ${Number.isFinite(currentVar) ? pct(rse(currentVar)) : 'not estimable (a range has p = 0)'} (95%)`);
  await out.write(`${lines.join('\n')}\n`);
}
