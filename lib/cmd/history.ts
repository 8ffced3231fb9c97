// hp-history: estimated live bytes over time, one NDJSON line per time bucket (with the
// top sites, chosen lines and the nearest RSS sample), or a terminal chart with --chart.

import { OutputWriter, formatBytes, parser, runMain, UsageError, warn, setQuiet } from '../cli.js';
import { putEstimate, unseenOf, type Unseen } from '../model/estimate.js';
import { renderChart } from '../model/chart.js';
import { AUTO_MAX_BUCKETS, HistoryBuilder, autoGranularityUs, type BucketRecord, type HistoryOptions } from '../model/history.js';
import { parseLineSpecs, type GroupBy, type LineSpec } from '../model/sites.js';
import { MergedSource } from '../format/merged.js';
import type { ReadOptions } from '../format/source.js';
import { BY_CHOICES, FirstRss, attachedSentences, manyInputs, openInputs, profileBases } from '../profile-inputs.js';
import { commandReadOptions, isNdjsonArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { chartColumns, checkWindow, checkWithinSpan, formatSeconds, inputArg, noteEmptyWindow, positiveInt, refuseStatsMode, reportIncomplete, resolveMarkOptions, secondsOption, traceGrouping, useOptions, wantsJson } from './common.js';
import { DOMAINS } from '../format/types.js';
import { sourceMarks } from '../format/marks.js';
import { escapeControls } from '../escape.js';
import type { Mark } from '../format/types.js';

const USAGE = `$0 [PROFILE|-]... [--granularity SECONDS] [--top N] [--sites FILE:LINE,...] [--json] [--by pid]

Estimated live heap over time. On a terminal, a chart of live bytes (and RSS); otherwise (or
with --json) one NDJSON line per time bucket (schema in hp-history(1)): the bucket's end time
t, the estimated live bytes and count there with 95% intervals, the RSS sample nearest to t,
the top N sites, and the bytes of each --sites line. Without --granularity the bucket is the
shortest nice length (1, 2, 5 x 10^k ms; 1, 2, 5, 10, 20, 30 s; 1, 2, 5, 10, 20, 30 min; 1, 2,
3, 6, 12 h; 1, 2, 5 x 10^k days) that gives at most one bucket per chart column on a terminal,
or at most 150 buckets (so 60 to 150) into a pipe; 1 s with --follow. Reads a profile, events
NDJSON, or stdin (-).

Several profiles (hp-history run run.[0-9]*, or a quoted glob 'run.*' that hp-history expands)
are read as one: aligned on wall-clock time (t counts from the earliest start), live bytes and
RSS summed (RSS over the processes alive during the bucket, each one's nearest sample). --by pid
writes one series per process instead, each to the end of the latest, adding up to the sum:
every line has a "pid" field (without --granularity the profiles are read twice, to find the
common bucket length).
A recording attached to a running process (hp-record --pid) does not know the heap from before:
a line on stderr says so, with the process's RSS at attach as the baseline.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run', 'a chart of the live heap over time, on a terminal'],
  ['$0 run --granularity 0.5 --top 3 --json | head', 'buckets of 0.5 s with their 3 largest sites'],
  ["$0 run --sites app.py:30 --json | hp-chart --field sites.app.py:30.bytes", 'follow one line of code'],
];

/** One bucket's NDJSON line; `unseen` is what the totals allow for as live undrawn (man/hp-estimates.7). */
export function bucketLine(rec: BucketRecord, specs: LineSpec[], unseen: Unseen | null = null, marks: Mark[] = []): Record<string, unknown> {
  const line: Record<string, unknown> = { t: rec.tUs / 1e6 };
  putEstimate(line, 'live_bytes', rec.total.bytes, rec.total.bytesVar, unseen?.bytes, rec.total.exactBytes);
  putEstimate(line, 'live_count', rec.total.count, rec.total.countVar, unseen?.count, rec.total.exactCount);
  line.rss = rec.rss;
  line.rss_t = rec.rssUs === null ? null : rec.rssUs / 1e6;
  // Native recording: the live heap by domain (python_bytes, native_bytes, mmap_bytes), each
  // what hp-snapshot --domain gives: the same totals, allowance and interval.
  if (rec.domains) DOMAINS.forEach((d, i) => putEstimate(line, `${d}_bytes`, rec.domains![i]!.bytes, rec.domains![i]!.bytesVar, unseen?.bytes, rec.domains![i]!.exactBytes));
  line.top = rec.top.map((s) => {
    const o: Record<string, unknown> = { site: s.site.label };
    if (s.site.trace !== null) o.trace = s.site.trace;
    putEstimate(o, 'bytes', s.est.bytes, s.est.bytesVar);
    return o;
  });
  if (specs.length > 0) {
    const sites: Record<string, unknown> = {};
    specs.forEach((spec, i) => {
      const o: Record<string, unknown> = {};
      const e = rec.followed[i]!;
      putEstimate(o, 'bytes', e.bytes, e.bytesVar);
      sites[spec.text] = o;
    });
    line.sites = sites;
  }
  if (marks.length > 0) line.marks = marks.map((m) => ({ t: m.timeUs / 1e6, label: m.label }));
  return line;
}

/** The longest --granularity: some 32 years, so that a bucket's end stays an exact number of µs. */
const MAX_GRANULARITY_S = 1e9;

export function main(argv: string[]): void {
  runMain('hp-history', async () => {
    const args = useOptions(parser('hp-history', argv, USAGE, EXAMPLES).strict(false).strictOptions(), ['from', 'to', 'group-by', 'top', 'json', 'strict', 'height', 'width'], {
      top: { default: 5, describe: 'Sites listed per bucket (0 for none)' },
      from: { describe: 'First bucket end to report (seconds since start, or mark:LABEL)' },
      to: { describe: 'Last bucket end to report (seconds since start, or mark:LABEL)' },
    })
      .option('granularity', { requiresArg: true, type: 'number', describe: 'Bucket length in seconds, giving at most 100000 buckets (default: a nice length giving at most one bucket per chart column, or 60 to 150 buckets into a pipe)' })
      .option('sites', { requiresArg: true, type: 'string', describe: "Follow these lines: 'app.py:12,lib/x.py:40' (a trace counts if any of its frames is on the line)" })
      .option('chart', { type: 'boolean', describe: 'The chart even into a pipe (an older name for --no-json)' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Keep reading a profile being written, until the recorder stops' })
      .option('by', { requiresArg: true, choices: BY_CHOICES as unknown as string[], describe: 'One series per process (several profiles)' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(args.quiet === true);
    const inputs = args._.map(String);
    const byPid = args.by === 'pid';
    const merged = byPid || manyInputs(inputs);
    if (merged && args.follow) throw new UsageError('--follow reads one profile');
    const input = merged ? '' : inputArg(args._, 'hp-history');
    if (args.chart === true && args.json === true) throw new UsageError('--chart and --json ask for two outputs: --chart is the chart (an older name for --no-json)');
    const chart = args.chart === true || !wantsJson(args.json);
    const given = { from: args.from, to: args.to }; // as written: mark:LABEL, for messages
    await resolveMarkOptions(args, ['from', 'to'], () => (merged ? inputs : input));
    if (args.granularity !== undefined && !(args.granularity > 0 && args.granularity <= MAX_GRANULARITY_S)) throw new UsageError(`--granularity: expected seconds > 0 and at most ${MAX_GRANULARITY_S}, got '${args.granularity}'`);
    let granularityUs = args.granularity === undefined ? null : Math.max(1, Math.round(args.granularity * 1e6));
    if (granularityUs === null && args.follow) granularityUs = 1e6;
    const top = positiveInt(args.top, 'top');
    const groupBy = traceGrouping(String(args['group-by'])) as GroupBy;
    const specs = args.sites === undefined ? [] : parseLineSpecs(args.sites);
    const fromUs = secondsOption(args.from, 'from');
    const toUs = secondsOption(args.to, 'to');
    checkWindow({ text: given.from, us: fromUs }, { text: given.to, us: toUs });
    // The heap at any moment depends on everything before it, so reading starts at 0.
    const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict), follow: args.follow });
    // With --from on a large hpx v2 profile, start at the seek index's last checkpoint before
    // it (BASE.hpi, built on first use) instead of decoding everything before --from.
    const builderOptions = (g: number | null): HistoryOptions => ({
      granularityUs: g,
      // Automatic granularity: one bucket per chart column at most, else about 60 to 150.
      maxBuckets: chart ? chartColumns(args.width) : AUTO_MAX_BUCKETS,
      top: chart ? 0 : top,
      groupBy,
      sites: specs,
      ...(fromUs !== undefined ? { fromUs } : {}),
      ...(toUs !== undefined ? { toUs } : {}),
      follow: args.follow,
    });
    if (byPid) {
      const out = new OutputWriter();
      try {
        await historyByPid(inputs, opts, granularityUs, builderOptions, specs, out, chart ? { height: args.height!, width: args.width } : null);
      } finally {
        done();
      }
      return;
    }
    const seeked = !merged && fromUs !== undefined && fromUs > 0 && !args.follow && !(await isNdjsonArg(input)) ? await (await import('../model/checkpoints.js')).openSeeked(input, fromUs, opts) : null;
    // Several profiles: RSS events per process, which the builder sums by its own rule.
    const source = seeked ? seeked.source : merged ? await openInputs(inputs, opts, false, { rssByProcess: true }) : await openSource(input, opts);
    refuseStatsMode(source);
    const out = new OutputWriter();
    const firstRss = new FirstRss();
    try {
      const processStartsUs = source instanceof MergedSource ? source.sources.map((_, i) => source.offsetUs(i)) : undefined;
      const builder = new HistoryBuilder(source.header.sampling, (id) => source.trace(id), { ...builderOptions(granularityUs), domains: source.header.native === true, ...(processStartsUs ? { processStartsUs } : {}) });
      const records: BucketRecord[] = [];
      let buckets = 0;
      // Each bucket line lists the marks in (t - granularity, t]; the chart lists them below it.
      // A profile's marks are known from the start; an events stream (and --follow) brings them
      // as it is read, each before the events after it, so they are read again when more came.
      let marks = sourceMarks(source);
      const readMarks = (): void => {
        if (source.marks && source.marks().length > marks.length) marks = sourceMarks(source);
      };
      const marksIn = (r: BucketRecord): Mark[] => (marks.length === 0 ? marks : marks.filter((m) => m.timeUs <= r.tUs && m.timeUs > r.tUs - builder.granularityUs));
      const drain = async (): Promise<void> => {
        if (builder.ready.length === 0) return;
        const ready = builder.ready.splice(0);
        buckets += ready.length;
        readMarks();
        // A profile's histogram is known from the start; events NDJSON brings it at its end,
        // so buckets written before then use the sampler's bounds alone (more conservative).
        const unseen = unseenOf(source.header.sampling, source.histogram);
        if (chart) records.push(...ready);
        else await out.write(ready.map((r) => `${JSON.stringify(bucketLine(r, specs, unseen, marksIn(r)))}\n`).join(''));
      };
      if (seeked?.checkpoint) {
        const cp = seeked.checkpoint;
        seeked.restore(builder.heap);
        builder.seek(cp.lastUs, cp.lastRss >= 0 ? { bytes: cp.lastRss, us: cp.lastRssUs } : null);
      }
      for await (const batch of source.batches()) {
        firstRss.see(batch);
        builder.consume(batch);
        await drain();
        if (builder.done) break;
      }
      builder.finish();
      await drain();
      done();
      const lastUs = builder.lastEventUs;
      if (!args.follow && source.complete && (fromUs !== undefined || toUs !== undefined)) {
        // The last bucket ends at the first multiple of the granularity at or after the last
        // event, and is written with its own t: a --from or --to up to its end names a bucket
        // this command writes (hp-history run --from T, T taken from its own output).
        const lastBucketUs = Math.max(builder.granularityUs, Math.ceil(lastUs / builder.granularityUs) * builder.granularityUs);
        for (const [option, us] of [['--from', fromUs], ['--to', toUs]] as const) if (us !== undefined && us > lastBucketUs) checkWithinSpan(option, us, lastUs);
      }
      const attached = attachedSentences(source, seeked ? null : firstRss.value);
      const baseline = source instanceof MergedSource ? null : attached.length > 0 ? firstRss.value : null;
      if (chart) await out.write(historyChart(records, args.height!, args.width, baseline) + chartMarks(records, sourceMarks(source)));
      await out.flush();
      for (const line of attached) warn(line);
      if (!builder.done) reportIncomplete(source);
      if (args.granularity !== undefined && !args.follow && builder.granularityUs > lastUs) {
        warn(`--granularity ${args.granularity}: longer than the profile (${formatSeconds(lastUs)}): one bucket; try --granularity ${autoGranularityUs(lastUs, chart ? chartColumns(args.width) : AUTO_MAX_BUCKETS) / 1e6}`);
      }
      for (const [i, spec] of specs.entries()) if (!builder.followedSeen(i)) warn(`--sites ${spec.text}: no allocation on this line in the profile (its line is flat zero)`);
      if (buckets === 0) noteEmptyWindow(given.from, given.to, `no bucket end (buckets of ${formatSeconds(builder.granularityUs)}): nothing written; widen it or choose a --granularity`);
      warn(`${buckets} bucket${buckets === 1 ? '' : 's'} of ${formatSeconds(builder.granularityUs)}`);
    } finally {
      done();
      await source.close();
    }
  });
}

/** The marks within the charted buckets, one line each, under the chart. */
function chartMarks(records: BucketRecord[], marks: Mark[]): string {
  if (records.length === 0) return '';
  const lastUs = records[records.length - 1]!.tUs;
  const shown = marks.filter((m) => m.timeUs <= lastUs);
  if (shown.length === 0) return '';
  return `marks:\n${shown.map((m) => `  ${formatSeconds(m.timeUs).padStart(12)}  ${escapeControls(m.label)}\n`).join('')}`;
}

/**
 * --by pid: one HistoryBuilder per profile, all aligned on the earliest start and sharing one
 * bucket length (the summed history's automatic one when none is given: a first pass). Each
 * series runs to the end of the latest process, as the summed one does: a process that has
 * ended keeps what it never freed (and holds no RSS), and each carries its own profile's
 * allowance for unseen allocations.
 */
async function historyByPid(
  inputs: string[],
  opts: ReadOptions,
  granularityUs: number | null,
  builderOptions: (g: number | null) => HistoryOptions,
  specs: LineSpec[],
  out: OutputWriter,
  chart: { height: number; width: number | undefined } | null,
): Promise<void> {
  const bases = profileBases(inputs);
  if (bases.includes('-')) throw new UsageError('--by pid reads profiles, not stdin');
  const headers = await Promise.all(bases.map(async (b) => {
    const s = await openSource(b, opts);
    const h = s.header;
    await s.close();
    return h;
  }));
  const alignUs = Math.min(...headers.map((h) => h.startTimeUs));
  if (granularityUs === null) {
    const all = await openInputs(bases, opts, false);
    try {
      const probe = new HistoryBuilder(all.header.sampling, (id) => all.trace(id), { ...builderOptions(null), top: 0, sites: [] });
      for await (const batch of all.batches()) probe.consume(batch);
      probe.finish();
      granularityUs = probe.granularityUs;
    } finally {
      await all.close();
    }
  }
  const lines: Array<{ tUs: number; pid: number | string; line: Record<string, unknown>; rec: BucketRecord }> = [];
  const notes: string[] = [];
  let incomplete = false;
  const series: Array<{ builder: HistoryBuilder; take: () => void }> = [];
  for (let i = 0; i < bases.length; i++) {
    const one = new MergedSource([await openSource(bases[i]!, opts)], false, alignUs, { rssByProcess: true });
    const pid = headers[i]!.pid ?? bases[i]!;
    try {
      const builder = new HistoryBuilder(one.header.sampling, (id) => one.trace(id), { ...builderOptions(granularityUs), domains: one.header.native === true, processStartsUs: [one.offsetUs(0)] });
      const take = (): void => {
        if (builder.ready.length === 0) return;
        // As in the summed history: this profile's histogram bounds what it never sampled;
        // before the process started, nothing of it can be live: its 0 is exact.
        const unseen = unseenOf(one.header.sampling, one.histogram);
        const startUs = one.offsetUs(0);
        for (const rec of builder.ready.splice(0)) lines.push({ tUs: rec.tUs, pid, line: { pid, ...bucketLine(rec, specs, rec.tUs < startUs ? null : unseen) }, rec });
      };
      for await (const batch of one.batches()) {
        builder.consume(batch);
        take();
      }
      series.push({ builder, take });
      notes.push(...attachedSentences(one, null));
      if (!one.complete) incomplete = true;
    } finally {
      await one.close();
    }
  }
  // The merged timeline ends with the latest process; its last bucket is every series' last.
  const endUs = Math.max(...series.map((s) => s.builder.lastEventUs));
  for (const { builder, take } of series) {
    builder.finish(endUs);
    take();
  }
  lines.sort((a, b) => a.tUs - b.tUs || String(a.pid).localeCompare(String(b.pid), 'en', { numeric: true }));
  if (chart) {
    const width = chartColumns(chart.width);
    const ts = [...new Set(lines.map((l) => l.tUs))].sort((a, b) => a - b);
    const pids = [...new Set(lines.map((l) => l.pid))];
    const series = pids.map((pid) => {
      const byT = new Map(lines.filter((l) => l.pid === pid).map((l) => [l.tUs, Math.max(0, l.rec.total.bytes)]));
      return { name: `pid ${pid}`, values: ts.map((t) => byT.get(t) ?? 0) };
    });
    const colors = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
    await out.write(`live heap (estimated) by process: ${pids.map((p) => `pid ${p}`).join(', ')}\n${renderChart(series, { height: chart.height, width, yFormat: formatBytes, yBytes: true, x: ts, xFormat: formatSeconds, colors })}`);
  } else {
    await out.write(lines.map((l) => `${JSON.stringify(l.line)}\n`).join(''));
  }
  await out.flush();
  for (const n of notes) warn(n);
  if (incomplete) warn('some profiles are incomplete (no end marker: the recorder is still running, crashed, or stopped early on a failed write); used everything up to their end');
  warn(`${bases.length} processes, ${lines.length} buckets of ${formatSeconds(granularityUs)}`);
}

function historyChart(records: BucketRecord[], height: number, widthOpt: number | undefined, baselineRss: number | null = null): string {
  const width = chartColumns(widthOpt);
  const colors = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  const live = { name: 'live heap (estimated)', values: records.map((r) => Math.max(0, r.total.bytes)) };
  if (colors && records.some((r) => r.domains)) {
    // Native recording: the Python and C parts beside the total.
    const part = (i: number, name: string) => ({ name, values: records.map((r) => Math.max(0, r.domains?.[i]?.bytes ?? 0)) });
    const rssLine = { name: 'RSS', values: records.map((r) => r.rss ?? 0) };
    return renderChart([live, part(0, 'python'), part(1, 'native'), ...(records.some((r) => r.rss !== null) ? [rssLine] : [])], { height, width, yFormat: formatBytes, yBytes: true, x: records.map((r) => r.tUs), xFormat: formatSeconds, colors });
  }
  const hasRss = records.some((r) => r.rss !== null);
  const rss = { name: 'RSS', values: records.map((r) => r.rss ?? 0) };
  const x = records.map((r) => r.tUs);
  const o = { height, width, yFormat: formatBytes, yBytes: true, x, xFormat: formatSeconds, colors };
  if (baselineRss !== null) {
    // Attached: what the process held before is unknown; its RSS then is the baseline.
    const caption = `attached to a running process: the heap before attaching is unknown; RSS at attach ${formatBytes(baselineRss)}`;
    return `${caption}\n${historyChart(records, height, widthOpt, null)}`;
  }
  if (!hasRss) return `live heap (estimated)\n${renderChart([live], o)}`;
  if (colors) return renderChart([live, rss], o);
  // Without colour two lines in one chart cannot be told apart: draw them one above the other.
  return `live heap (estimated)\n${renderChart([live], o)}\nRSS\n${renderChart([rss], o)}`;
}
