// hp-report: one self-contained HTML file (no network) with memory over time and its 95% band,
// a flame graph of the live heap at any clicked time (the peak first) and the top sites.

import { basename } from 'node:path';
import { UsageError, formatBytes, parser, runMain, setQuiet, warn } from '../cli.js';
import { commandReadOptions, isStreamArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import type { ProfileSource } from '../format/source.js';
import { MergedSource } from '../format/merged.js';
import { BY_CHOICES, FirstRss, attachedSentences, manyInputs, openInputs } from '../profile-inputs.js';
import { checkOutputArg, writeResult } from '../export/output.js';
import { inputArg, parseAt, reportIncomplete, resolveMarkOptions, useOptions } from './common.js';

const NAME = 'hp-report';

const USAGE = `Usage: $0 PROFILE... -o report.html [--at T] [--top N] [--points N] [--min-share F] [--title TEXT] [--by pid]

Write one self-contained HTML file (inline SVG, canvas and JavaScript; it loads nothing from the
network) with: the estimated live heap over time with its 95% band, the process RSS and, for
--native recordings, the live heap of each domain (python, native, mmap); a flame graph of
the live heap at the peak that redraws for any time clicked on the plot, with a search box, a
switch hiding the import machinery and, for --native recordings, a thread menu; hovering a
frame shows its bytes, interval, share and number of live allocations; and the top sites at
that time (or their high-water marks over a range dragged on the plot). Reads its input
twice (the peak, then the points of the plot), so PROFILE must be a file: a profile (BASE for BASE.hpm + BASE.hpd)
or an events NDJSON file (hp-events' output), not stdin.

Every point of the plot carries the live heap as a call tree of every trace, pruned to the frames
holding at least --min-share of it, and its top sites: the page stays small and fast for profiles
with 10^5 traces.

Several profiles (hp-report run run.[0-9]*, or a quoted glob 'run.*') make one report, aligned on
wall-clock time and summed; --by pid puts each process at the root of the flame graph. A recording
attached to a running process (hp-record --pid) says on the page that the heap from before the
attach is unknown, with the RSS at attach as the baseline.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run -o report.html && xdg-open report.html', 'the report of a profile'],
  ["$0 run -o report.html --at end --title 'nightly job'", 'open it on the end of the run'],
  ['$0 run -o - | gzip > report.html.gz', 'to stdout'],
];

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = useOptions(parser(NAME, argv, USAGE, EXAMPLES).parserConfiguration({ 'parse-positional-numbers': false }).strict(false).strictOptions(), ['at', 'top', 'output', 'strict'], {
      at: { describe: "The moment shown first: seconds since start, 'peak' (default), 'end' or mark:LABEL" },
      top: { default: 30, describe: 'Top sites listed per point' },
      output: { describe: 'The HTML file to write (- for stdout)' },
    })
      .option('min-share', { type: 'number', default: 0.002, requiresArg: true, describe: 'Flame graph: leave out frames under this share of the live heap (0.002 = 0.2%)' })
      .option('max-nodes', { type: 'number', default: 3000, requiresArg: true, describe: 'Flame graph: at most N frames per point (the largest)' })
      .option('points', { type: 'number', default: 200, requiresArg: true, describe: 'About this many points on the plot (2 to 5000)' })
      .option('title', { type: 'string', requiresArg: true, describe: 'Page title (default: heapprof report: PROFILE)' })
      .option('by', { requiresArg: true, choices: BY_CHOICES as unknown as string[], describe: 'Several profiles: the process as the flame graph\'s root frame' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(Boolean(args.quiet));
    const inputs = args._.map(String);
    if (inputs.length === 0) throw new UsageError('no profile named');
    const byPid = args.by === 'pid';
    const merged = byPid || manyInputs(inputs);
    const input = merged ? inputs[0]! : inputArg(inputs, NAME);
    if (inputs.includes('-')) throw new UsageError('the report reads its input twice: name a profile or an NDJSON file, not stdin');
    for (const i of inputs) if (await isStreamArg(i)) throw new UsageError(`${i}: the report reads its input twice: name a profile or an NDJSON file, not a pipe`);
    await resolveMarkOptions(args, ['at'], () => (merged ? inputs : input));
    if (args.output === undefined) throw new UsageError('-o FILE is required (use -o - for stdout)');
    await checkOutputArg(args.output, inputs);
    if (!(args['min-share'] >= 0 && args['min-share'] < 1)) throw new UsageError('--min-share: expected a fraction in [0, 1)');
    if (!(Number.isInteger(args['max-nodes']) && args['max-nodes'] >= 1)) throw new UsageError('--max-nodes: expected a whole number >= 1');
    // Each point carries a call tree: the page (and the time to build it) grows with them.
    if (!(Number.isInteger(args.points) && args.points >= 2 && args.points <= 5000)) throw new UsageError(`--points ${args.points}: expected a whole number from 2 to 5000`);

    const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) });
    // The report's builder and page load after the options are read: --help and usage errors start faster.
    const [{ buildReportData }, { renderReportHtml }] = await Promise.all([import('../export/report.js'), import('../export/report-page.js')]);
    let html: string;
    let summary = '';
    try {
      const attached: string[] = [];
      const open = async (): Promise<ProfileSource> => (merged ? openInputs(inputs, opts, byPid, { rssByProcess: true }) : openSource(input, opts));
      let read: ProfileSource | null = null;
      const data = await buildReportData(async () => {
        const source = await open();
        read ??= source;
        // The first open also tells whether a process was attached to (and its RSS then).
        if (attached.length === 0) attached.push(...(await attachedFacts(source, open)));
        return source;
      }, {
        minShare: args['min-share'],
        maxNodes: args['max-nodes'],
        sites: args.top as number,
        targetPoints: args.points,
        title: args.title ?? `heapprof report: ${inputs.length > 1 ? `${inputs.length} profiles` : basename(input)}`,
        ...(args.at !== undefined ? { at: parseAt(String(args.at)) } : {}),
      });
      if (attached.length > 0) data.meta.attached = attached;
      html = renderReportHtml(data);
      for (const line of attached) warn(line);
      // The page says it too; a killed recorder's report is no less one on stderr (as hp-snapshot).
      if (read !== null && !data.meta.complete) reportIncomplete(read);
      const peak = data.points[data.peakIndex]!;
      summary = `${data.points.length.toLocaleString('en-US')} points, ${data.meta.traces.toLocaleString('en-US')} traces, ${data.nodes.length.toLocaleString('en-US')} flame graph frames; peak ${formatBytes(peak.bytes)} at ${peak.t} s; ${formatBytes(html.length)} of HTML`;
    } finally {
      done();
    }
    await writeResult(args.output, html, false);
    warn(summary); // once the page is written: a failed write must not follow a success line
  });
}

/**
 * The attach sentences for a source whose header (or whose merged processes' headers) says it
 * was attached; reads a second copy up to the first RSS sample (the one written at attach).
 */
async function attachedFacts(source: ProfileSource, open: () => Promise<ProfileSource>): Promise<string[]> {
  const any = source instanceof MergedSource ? source.sources.some((s) => s.header.attached) : Boolean(source.header.attached);
  if (!any) return [];
  const probe = await open();
  try {
    const first = new FirstRss();
    if (probe instanceof MergedSource) {
      for await (const _ of probe.batches()) {
        if (probe.firstRss.every((r, i) => r !== null || !probe.sources[i]!.header.attached)) break;
      }
    } else {
      for await (const batch of probe.batches()) {
        first.see(batch);
        if (first.value !== null) break;
      }
    }
    return attachedSentences(probe, first.value);
  } finally {
    await probe.close();
  }
}
