// hp-snapshot: the live heap at one moment (--at T, peak or end), one NDJSON line per site,
// largest first, after a header line with the total.

import { OutputWriter, parser, runMain, warn, setQuiet } from '../cli.js';
import { putEstimate, putEstimates, unseenOf, wholeInterval95 } from '../model/estimate.js';
import { groupLiveHeap, traceOrPlaceholder, type GroupBy, type SiteEstimate } from '../model/sites.js';
import { liveHeapAt } from '../model/snapshot.js';
import { commandReadOptions, isNdjsonArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { BY_CHOICES, manyInputs, openInputs } from '../profile-inputs.js';
import { checkWithinSpan, formatSeconds, inputArg, parseAt, refuseStatsMode, reportIncomplete, resolveMarkOptions, traceGrouping, useOptions, wantsJson } from './common.js';
import { bytesWithInterval, sitesTable } from './human.js';
import { checkThread, traceFilter } from './domain-options.js';
import { nativeCallerLabel, tellingCallers, tellingThreads, threadLabel } from '../model/sites.js';

export const SNAPSHOT_SCHEMA = 1;

const USAGE = `$0 [PROFILE|-]... [--at SECONDS|peak|end|mark:LABEL] [--group-by trace|line|function|file|thread] [--domain all|python|native|mmap] [--thread ID] [--top N] [--json] [--by pid]

The live heap at one moment: what had been allocated and not yet freed, estimated from the
sampled events (each weighted by 1/p) with a 95% interval. On a terminal, a table of the
largest sites; otherwise (or with --json) a "snapshot" line (the moment and the total), then
one "site" line per site, largest first (schema in hp-snapshot(1)). --at peak (the default)
is the moment of highest estimated live bytes; --at end is what was never freed. Reads a
profile, events NDJSON, or stdin (-).

Several profiles (hp-snapshot run run.[0-9]*, or a quoted glob 'run.*' that hp-snapshot expands)
are read as one process: aligned on wall-clock time (--at counts from the earliest start) and
summed; --by pid splits them, with the process ("pid 1234") as every stack's root frame.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run --top 10', 'the 10 largest sites at the peak, as a table on a terminal'],
  ['$0 run --at end --group-by line', 'what was never freed, by line of code'],
  ['$0 run --at 12.5 | hp-collapse > flame.txt', 'folded stacks at 12.5 s for a flame graph'],
];

/** One site as a snapshot NDJSON line (shared with hp-collapse's reader and the tests). */
export function siteRecord(s: SiteEstimate, rank: number, by: GroupBy): Record<string, unknown> {
  const rec: Record<string, unknown> = { type: 'site', rank, site: s.site.label };
  if (by === 'trace') rec.trace = s.site.trace;
  rec.frames = s.site.frames.map((f) => (f.native ? { function: f.function, file: f.file, line: f.line, native: true } : { function: f.function, file: f.file, line: f.line }));
  if (s.site.domain !== 'python' && by !== 'thread') rec.domain = s.site.domain;
  if (s.site.nativeCaller) rec.native_caller = nativeCallerLabel(s.site.nativeCaller);
  if (s.site.thread) rec.thread = by === 'thread' ? threadLabel(s.site.thread) : s.site.thread.id;
  if (s.site.dropped > 0) rec.dropped = s.site.dropped;
  putEstimate(rec, 'bytes', s.est.bytes, s.est.bytesVar);
  putEstimate(rec, 'count', s.est.count, s.est.countVar);
  // The variances themselves, for readers that sum sites (hp-diff at a coarser grouping): the
  // variance an interval implies is larger than the estimate's own wherever the interval is skewed.
  if (s.est.bytesVar > 0) rec.bytes_var = Math.round(s.est.bytesVar);
  if (s.est.countVar > 0) rec.count_var = Number(s.est.countVar.toPrecision(12));
  rec.sampled = s.est.sampled;
  if (by !== 'trace') rec.traces = s.traces;
  return rec;
}

export function main(argv: string[]): void {
  runMain('hp-snapshot', async () => {
    const args = useOptions(parser('hp-snapshot', argv, USAGE, EXAMPLES).strict(false).strictOptions(), ['at', 'group-by', 'domain', 'thread', 'top', 'json', 'strict'])
      .option('by', { requiresArg: true, choices: BY_CHOICES as unknown as string[], describe: 'Split several profiles by process (the pid as the root frame)' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(args.quiet === true);
    const inputs = args._.map(String);
    const byPid = args.by === 'pid';
    const merged = byPid || manyInputs(inputs);
    const input = merged ? '' : inputArg(args._, 'hp-snapshot');
    await resolveMarkOptions(args, ['at'], () => (merged ? inputs : input));
    const at = parseAt(args.at);
    const by = traceGrouping(String(args['group-by'])) as GroupBy;
    const top = args.top === undefined ? Infinity : (args.top as number);
    const json = wantsJson(args.json);
    const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) });
    const keep = traceFilter(args.domain, args.thread);
    // A large hpx v2 profile goes through its seek index (BASE.hpi, built on first use):
    // the same result, decoding at most one checkpoint interval. Otherwise a full read.
    const indexed = merged || (await isNdjsonArg(input)) ? null : await (await import('../model/checkpoints.js')).liveHeapAtIndexed(input, at, opts);
    const source = indexed ? indexed.source : merged ? await openInputs(inputs, opts, byPid) : await openSource(input, opts);
    const out = new OutputWriter();
    try {
      refuseStatsMode(source);
      const snap = indexed ? indexed.snapshot : await liveHeapAt(source, at);
      done();
      // Only a finished profile has a known span; a time past the last event of one still being
      // written (or of a stream cut by hp-events --to) is the heap as it stands.
      if (at.kind === 'time' && snap.readToEnd && source.complete) checkWithinSpan('--at', at.us, snap.lastUs);
      checkThread(args.thread, source.traces(), source.name, snap.readToEnd ? null : formatSeconds(snap.atUs));
      // Without --native the C allocations were never recorded: their 0 (and the interval the
      // profile's unseen allowance gives it) says nothing about them.
      if ((args.domain === 'native' || args.domain === 'mmap') && source.header.native !== true) {
        warn(`${source.name}: recorded without --native: its C allocations (malloc, mmap) were not recorded, so --domain ${args.domain} finds none`);
      }
      const sites = groupLiveHeap(snap.heap, (id) => source.trace(id), by, keep);
      // Only the kept traces count; a partial total gets the whole one's interval method
      // (its exact part included), as hp-history's per-domain totals do.
      const heap = snap.heap;
      const total = keep ? heap.totalWhere((slot) => keep(traceOrPlaceholder((id) => source.trace(id), heap.traceOfSlot[slot]!))) : heap.total();
      const head: Record<string, unknown> = {
        type: 'snapshot',
        schema: SNAPSHOT_SCHEMA,
        at: snap.atUs / 1e6,
        at_spec: at.kind === 'time' ? 'time' : at.kind,
        group_by: by,
        // The profile's identity, so that consumers of piped NDJSON (hp-pprof: its time and
        // program name) need not see the profile: the same names as hp-events' meta line.
        start_time_us: source.header.startTimeUs,
        argv: source.header.argv,
        pid: source.header.pid,
      };
      if (args.domain !== 'all') head.domain = args.domain;
      if (args.thread !== undefined) head.thread = String(args.thread);
      // The total allows for what could be live undrawn (man/hp-estimates.7).
      // (The heap's own sampler: a sampled profile's peak is estimated on half of its draws.)
      const unseen = unseenOf(heap.sampling, source.histogram);
      putEstimates(head, total, unseen);
      // The allowance itself, so that a reader of this NDJSON (hp-diff, hp-pprof) bounds the
      // total as the profile's own readers do.
      if (unseen) head.unseen = { bytes: unseen.bytes, count: unseen.count };
      head.sampled = total.sampled;
      head.sites = sites.length;
      head.last_event = snap.lastUs / 1e6;
      if (snap.readToEnd) head.complete = source.complete;
      const n = Math.min(top, sites.length);
      // The total's interval as the snapshot line has it (bytes_lo, bytes_hi), for the table's heading and the summary.
      const totalText = bytesWithInterval(total.bytes, wholeInterval95(total.bytes, total.bytesVar, unseen?.bytes, total.exactBytes));
      const what = at.kind === 'peak' ? `peak at ${formatSeconds(snap.atUs)}` : at.kind === 'end' ? `live at end (${formatSeconds(snap.atUs)})` : `live at ${formatSeconds(snap.atUs)}`;
      if (json) {
        await out.line(head);
        for (let i = 0; i < n; i++) await out.line(siteRecord(sites[i]!, i + 1, by));
      } else {
        // Rows of one label (by trace: one function reached by two paths) each name a caller apart.
        const shown = sites.slice(0, n);
        // Rows that only their threads tell apart (one line run by several threads) name their thread.
        const vias = tellingCallers(shown.map((s) => s.site));
        const threads = tellingThreads(shown.map((s) => s.site), vias);
        const rows = shown.map((s, i) => ({ rank: i + 1, bytes: s.est.bytes, interval: wholeInterval95(s.est.bytes, s.est.bytesVar), count: s.est.count, site: s.site.label, via: vias[i], thread: threads[i] }));
        const more = sites.length > n ? `; the ${n} largest shown (--top)` : '';
        const blocks = Math.round(Math.max(0, total.count));
        await out.write(`${what}: ${totalText} live, ${blocks.toLocaleString('en-US')} block${blocks === 1 ? '' : 's'} in ${sites.length.toLocaleString('en-US')} site${sites.length === 1 ? '' : 's'}${more}\n`);
        if (n > 0) await out.write(sitesTable(rows, Math.max(0, total.bytes)));
      }
      await out.flush();
      if (snap.readToEnd) reportIncomplete(source);
      if (json) warn(`${what}: ${totalText} in ${sites.length.toLocaleString('en-US')} site${sites.length === 1 ? '' : 's'}`);
    } finally {
      done();
      await source.close();
    }
  });
}
