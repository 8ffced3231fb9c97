// hp-history: estimated live bytes over time, one NDJSON line per time bucket (with the
// top sites, chosen lines and the nearest RSS sample), or a terminal chart with --chart.

import { OutputWriter, formatBytes, parser, runMain, UsageError, warn, setQuiet } from '../cli.js';
import { putEstimate } from '../model/estimate.js';
import { renderChart } from '../model/chart.js';
import { HistoryBuilder, type BucketRecord } from '../model/history.js';
import { GROUP_BY, parseLineSpecs, type GroupBy, type LineSpec } from '../model/sites.js';
import { openSeeked } from '../format/index.js';
import { commandReadOptions, isNdjsonArg, openSource } from '../source-arg.js';
import { formatSeconds, inputArg, positiveInt, reportIncomplete, secondsOption, resolveMarkOptions } from './common.js';
import { sourceMarks } from '../format/marks.js';
import { escapeControls } from '../escape.js';
import type { Mark } from '../format/types.js';

const USAGE = `$0 [PROFILE|-] [--granularity SECONDS] [--top N] [--sites FILE:LINE,...] [--chart]

Estimated live heap over time. One NDJSON line per time bucket (schema in hp-history(1)):
the bucket's end time t, the estimated live bytes and count there with 95% intervals, the
RSS sample nearest to t, the top N sites, and the bytes of each --sites line. --chart
draws live bytes (and RSS) in the terminal instead. The default granularity gives about 60
buckets over the profile (1 s with --follow). Reads a profile, events NDJSON, or stdin (-).`;

export function bucketLine(rec: BucketRecord, specs: LineSpec[], marks: Mark[] = []): Record<string, unknown> {
  const line: Record<string, unknown> = { t: rec.tUs / 1e6 };
  putEstimate(line, 'live_bytes', rec.total.bytes, rec.total.bytesVar);
  putEstimate(line, 'live_count', rec.total.count, rec.total.countVar);
  line.rss = rec.rss;
  line.rss_t = rec.rssUs === null ? null : rec.rssUs / 1e6;
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

export function main(argv: string[]): void {
  runMain('hp-history', async () => {
    const args = parser('hp-history', argv, USAGE)
      .strict(false)
      .strictOptions()
      .option('granularity', { requiresArg: true, type: 'number', describe: 'Bucket length in seconds (default: about 60 buckets)' })
      .option('top', { requiresArg: true, type: 'number', default: 5, describe: 'Sites listed per bucket (0 for none)' })
      .option('group-by', { requiresArg: true, choices: GROUP_BY as unknown as string[], default: 'trace', describe: 'What a site is, for --top' })
      .option('sites', { requiresArg: true, type: 'string', describe: "Follow these lines: 'app.py:12,lib/x.py:40' (a trace counts if any of its frames is on the line)" })
      .option('chart', { type: 'boolean', default: false, describe: 'Draw live bytes (and RSS) over time instead of writing NDJSON' })
      .option('height', { requiresArg: true, type: 'number', default: 15, describe: 'Chart height in rows' })
      .option('width', { requiresArg: true, type: 'number', describe: 'Chart width in columns (default: terminal width, else 72)' })
      .option('from', { requiresArg: true, type: 'string', describe: 'First bucket end to report (seconds, or mark:LABEL)' })
      .option('to', { requiresArg: true, type: 'string', describe: 'Last bucket end to report (seconds, or mark:LABEL)' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Keep reading a profile being written, until the recorder stops' })
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage as an error' })
      .parseSync();
    setQuiet(args.quiet === true);
    const input = inputArg(args._, 'hp-history');
    await resolveMarkOptions(args, ['from', 'to'], () => input);
    if (args.granularity !== undefined && !(args.granularity > 0)) throw new UsageError(`--granularity: expected seconds > 0, got '${args.granularity}'`);
    let granularityUs = args.granularity === undefined ? null : Math.max(1, Math.round(args.granularity * 1e6));
    if (granularityUs === null && args.follow) granularityUs = 1e6;
    const top = positiveInt(args.top, 'top');
    const specs = args.sites === undefined ? [] : parseLineSpecs(args.sites);
    const fromUs = secondsOption(args.from, 'from');
    const toUs = secondsOption(args.to, 'to');
    if (fromUs !== undefined && toUs !== undefined && toUs < fromUs) throw new UsageError('--to is before --from');
    // The heap at any moment depends on everything before it, so reading starts at 0.
    const { opts, done } = commandReadOptions({ strict: args.strict, follow: args.follow });
    // With --from on a large hpx v2 profile, start at the seek index's last checkpoint before
    // it (BASE.hpi, built on first use) instead of decoding everything before --from.
    const seeked = fromUs !== undefined && fromUs > 0 && !args.follow && !(await isNdjsonArg(input)) ? await openSeeked(input, fromUs, opts) : null;
    const source = seeked ? seeked.source : await openSource(input, opts);
    const out = new OutputWriter();
    try {
      const builder = new HistoryBuilder(source.header.sampling, (id) => source.trace(id), {
        granularityUs,
        top: args.chart ? 0 : top,
        groupBy: args['group-by'] as GroupBy,
        sites: specs,
        ...(fromUs !== undefined ? { fromUs } : {}),
        ...(toUs !== undefined ? { toUs } : {}),
      });
      const records: BucketRecord[] = [];
      let buckets = 0;
      // Each bucket line lists the marks in (t - granularity, t]; the chart lists them below it.
      let marks = sourceMarks(source);
      const marksIn = (r: BucketRecord): Mark[] => {
        if (marks.length === 0) return marks;
        if (args.follow && source.marks && source.marks().length > marks.length) marks = sourceMarks(source);
        return marks.filter((m) => m.timeUs <= r.tUs && m.timeUs > r.tUs - builder.granularityUs);
      };
      const drain = async (): Promise<void> => {
        if (builder.ready.length === 0) return;
        const ready = builder.ready.splice(0);
        buckets += ready.length;
        if (args.chart) records.push(...ready);
        else await out.write(ready.map((r) => `${JSON.stringify(bucketLine(r, specs, marksIn(r)))}\n`).join(''));
      };
      if (seeked?.checkpoint) {
        const cp = seeked.checkpoint;
        seeked.restore(builder.heap);
        builder.seek(cp.lastUs, cp.lastRss >= 0 ? { bytes: cp.lastRss, us: cp.lastRssUs } : null);
      }
      for await (const batch of source.batches()) {
        builder.consume(batch);
        await drain();
        if (builder.done) break;
      }
      builder.finish();
      await drain();
      done();
      if (args.chart) await out.write(historyChart(records, args.height, args.width) + chartMarks(records, marks));
      await out.flush();
      if (!builder.done) reportIncomplete(source);
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

function historyChart(records: BucketRecord[], height: number, widthOpt: number | undefined): string {
  const width = Math.max(10, (widthOpt ?? (process.stdout.isTTY ? process.stdout.columns : 0)) || 72) - 14;
  const colors = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  const live = { name: 'live heap (estimated)', values: records.map((r) => Math.max(0, r.total.bytes)) };
  const hasRss = records.some((r) => r.rss !== null);
  const rss = { name: 'RSS', values: records.map((r) => r.rss ?? 0) };
  const x = records.map((r) => r.tUs);
  const o = { height, width, yFormat: formatBytes, x, xFormat: formatSeconds, colors };
  if (!hasRss) return `live heap (estimated)\n${renderChart([live], o)}`;
  if (colors) return renderChart([live, rss], o);
  // Without colour two lines in one chart cannot be told apart: draw them one above the other.
  return `live heap (estimated)\n${renderChart([live], o)}\nRSS\n${renderChart([rss], o)}`;
}
