// hp-report: one self-contained HTML file (no network) with memory over time and its 95% band,
// a flame graph of the live heap at any clicked time (the peak first) and the top sites.

import { basename } from 'node:path';
import { UsageError, formatBytes, parser, runMain, setQuiet, warn } from '../cli.js';
import { openProfile } from '../format/profile.js';
import { commandReadOptions } from '../source-arg.js';
import { writeResult } from '../export/output.js';
import { buildReportData } from '../export/report.js';
import { parseAt } from '../export/stacks.js';
import { renderReportHtml } from '../export/report-page.js';
import { resolveMarkOptions } from './common.js';

const NAME = 'hp-report';

const USAGE = `Usage: $0 PROFILE -o report.html [--at T] [--points N] [--min-share F] [--title TEXT]

Write one self-contained HTML file (inline SVG, canvas and JavaScript; it loads nothing from the
network) with: the estimated live heap over time with its 95% band and the process RSS; a flame
graph of the live heap at the peak that redraws for any time clicked on the plot; and the top
sites at that time. Reads the profile twice (history, then peak), so PROFILE must be a file.

  hp-record -o run -- app.py && hp-report run -o report.html && xdg-open report.html

Every point of the plot carries the live heap as a call tree of every trace, pruned to the frames
holding at least --min-share of it, and its top sites: the page stays small and fast for profiles
with 10^5 traces.`;

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = parser(NAME, argv, USAGE)
      .parserConfiguration({ 'parse-positional-numbers': false })
      .strict(false)
      .strictOptions()
      .option('output', { alias: 'o', type: 'string', requiresArg: true, describe: 'The HTML file to write (- for stdout)' })
      .option('min-share', { type: 'number', default: 0.002, requiresArg: true, describe: 'Flame graph: leave out frames under this share of the live heap (0.002 = 0.2%)' })
      .option('max-nodes', { type: 'number', default: 3000, requiresArg: true, describe: 'Flame graph: at most N frames per point (the largest)' })
      .option('sites', { type: 'number', default: 30, requiresArg: true, describe: 'Top sites listed per point' })
      .option('points', { type: 'number', default: 200, requiresArg: true, describe: 'About this many points on the plot' })
      .option('at', { type: 'string', requiresArg: true, describe: "The moment shown first: seconds since start, 'peak' (default) or 'end'" })
      .option('title', { type: 'string', requiresArg: true, describe: 'Page title (default: heapprof report: PROFILE)' })
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage in the profile as an error' })
      .parseSync();
    setQuiet(Boolean(args.quiet));
    const inputs = args._.map(String);
    if (inputs.length !== 1) throw new UsageError(inputs.length === 0 ? 'no profile named' : `one profile expected, got ${inputs.length}`);
    const input = inputs[0]!;
    if (input === '-') throw new UsageError('the report reads the profile twice: name a profile file, not stdin');
    await resolveMarkOptions(args, ['at'], () => input);
    if (args.output === undefined) throw new UsageError('-o FILE is required (use -o - for stdout)');
    if (!(args['min-share'] >= 0 && args['min-share'] < 1)) throw new UsageError('--min-share: expected a fraction in [0, 1)');
    if (!(Number.isInteger(args['max-nodes']) && args['max-nodes'] >= 1)) throw new UsageError('--max-nodes: expected a whole number >= 1');
    if (!(Number.isInteger(args.sites) && args.sites >= 0)) throw new UsageError('--sites: expected a whole number >= 0');
    if (!(Number.isInteger(args.points) && args.points >= 2)) throw new UsageError('--points: expected a whole number >= 2');

    const { opts, done } = commandReadOptions({ strict: Boolean(args.strict) });
    let html: string;
    try {
      const data = await buildReportData(() => openProfile(input, opts), {
        minShare: args['min-share'],
        maxNodes: args['max-nodes'],
        sites: args.sites,
        targetPoints: args.points,
        title: args.title ?? `heapprof report: ${basename(input)}`,
        ...(args.at !== undefined ? { at: parseAt(args.at) } : {}),
      });
      html = renderReportHtml(data);
      const peak = data.points[data.peakIndex]!;
      warn(`${data.points.length} points, ${data.meta.traces} traces, ${data.nodes.length} flame graph frames; peak ${formatBytes(peak.bytes)} at ${peak.t} s; ${formatBytes(html.length)} of HTML`);
    } finally {
      done();
    }
    await writeResult(args.output, html, false);
  });
}
