// hp-snapshot: the live heap at one moment (--at T, peak or end), one NDJSON line per site,
// largest first, after a header line with the total.

import { OutputWriter, parser, runMain, UsageError, warn, formatBytes, setQuiet } from '../cli.js';
import { interval95, putEstimate, putEstimates, unseenOf } from '../model/estimate.js';
import { GROUP_BY, groupLiveHeap, type GroupBy, type SiteEstimate } from '../model/sites.js';
import { liveHeapAt, type SnapshotAt } from '../model/snapshot.js';
import { liveHeapAtIndexed } from '../format/index.js';
import { commandReadOptions, isNdjsonArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { BY_CHOICES, manyInputs, openInputs } from '../profile-inputs.js';
import { formatSeconds, inputArg, positiveInt, reportIncomplete, secondsOption, resolveMarkOptions } from './common.js';
import { addEstimate, emptyEstimate } from '../model/estimate.js';
import { DOMAIN_CHOICES, DOMAIN_DESCRIBE, THREAD_DESCRIBE, traceFilter } from './domain-options.js';
import { nativeCallerLabel, threadLabel } from '../model/sites.js';

export const SNAPSHOT_SCHEMA = 1;

const USAGE = `$0 [PROFILE|-]... [--at SECONDS|peak|end|mark:LABEL] [--group-by trace|line|function|file|thread] [--domain all|python|native|mmap] [--thread ID] [--top N] [--by pid]

The live heap at one moment: what had been allocated and not yet freed, estimated from the
sampled events (each weighted by 1/p) with a 95% interval. Writes a "snapshot" line (the
moment and the total), then one "site" line per site, largest first (schema in
hp-snapshot(1)). --at peak is the moment of highest estimated live bytes; --at end (the
default) is what was never freed. Reads a profile, events NDJSON, or stdin (-).

Several profiles (hp-snapshot run run.[0-9]*, or a quoted glob 'run.*' that hp-snapshot expands)
are read as one process: aligned on wall-clock time (--at counts from the earliest start) and
summed; --by pid splits them, with the process ("pid 1234") as every stack's root frame.`;

export function parseAt(value: unknown): SnapshotAt {
  const v = String(value ?? 'end');
  if (v === 'end') return { kind: 'end' };
  if (v === 'peak') return { kind: 'peak' };
  const us = secondsOption(v, 'at');
  if (us === undefined || v.trim() === '') throw new UsageError(`--at: expected seconds, 'peak', 'end' or mark:LABEL, got '${v}'`);
  return { kind: 'time', us };
}

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
  rec.sampled = s.est.sampled;
  if (by !== 'trace') rec.traces = s.traces;
  return rec;
}

export function main(argv: string[]): void {
  runMain('hp-snapshot', async () => {
    const args = parser('hp-snapshot', argv, USAGE)
      .strict(false)
      .strictOptions()
      .option('at', { requiresArg: true, type: 'string', default: 'end', describe: "Seconds since start, 'peak', 'end' or mark:LABEL" })
      .option('group-by', { requiresArg: true, choices: GROUP_BY as unknown as string[], default: 'trace', describe: 'Site = whole trace, or the innermost frame\'s line, function or file' })
      .option('top', { requiresArg: true, type: 'number', describe: 'Only the N largest sites' })
      .option('domain', { requiresArg: true, choices: DOMAIN_CHOICES as unknown as string[], default: 'all', describe: DOMAIN_DESCRIBE })
      .option('thread', { requiresArg: true, type: 'string', describe: THREAD_DESCRIBE })
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage as an error' })
      .option('by', { requiresArg: true, choices: BY_CHOICES as unknown as string[], describe: 'Split several profiles by process (the pid as the root frame)' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(args.quiet === true);
    const inputs = args._.map(String);
    const byPid = args.by === 'pid';
    const merged = byPid || manyInputs(inputs);
    const input = merged ? '' : inputArg(args._, 'hp-snapshot');
    if (!merged) await resolveMarkOptions(args, ['at'], () => input);
    const at = parseAt(args.at);
    const by = args['group-by'] as GroupBy;
    const top = args.top === undefined ? Infinity : positiveInt(args.top, 'top');
    const keep = traceFilter(args.domain, args.thread);
    const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: args.strict });
    // A large hpx v2 profile goes through its seek index (BASE.hpi, built on first use):
    // the same result, decoding at most one checkpoint interval. Otherwise a full read.
    const indexed = merged || (await isNdjsonArg(input)) ? null : await liveHeapAtIndexed(input, at, opts);
    const source = indexed ? indexed.source : merged ? await openInputs(inputs, opts, byPid) : await openSource(input, opts);
    const out = new OutputWriter();
    try {
      const snap = indexed ? indexed.snapshot : await liveHeapAt(source, at);
      done();
      const sites = groupLiveHeap(snap.heap, (id) => source.trace(id), by, keep);
      let total = snap.heap.total();
      if (keep) {
        // Only the kept traces count (sites are disjoint, so their estimates add up).
        total = emptyEstimate();
        for (const s of sites) addEstimate(total, s.est);
      }
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
      const unseen = unseenOf(source.header.sampling, source.histogram);
      putEstimates(head, total, unseen);
      head.sampled = total.sampled;
      head.sites = sites.length;
      head.last_event = snap.lastUs / 1e6;
      if (snap.readToEnd) head.complete = source.complete;
      await out.line(head);
      const n = Math.min(top, sites.length);
      for (let i = 0; i < n; i++) await out.line(siteRecord(sites[i]!, i + 1, by));
      await out.flush();
      if (snap.readToEnd) reportIncomplete(source);
      const ci = interval95(total.bytes, total.bytesVar, unseen?.bytes, total.exactBytes);
      const what = at.kind === 'peak' ? `peak at ${formatSeconds(snap.atUs)}` : at.kind === 'end' ? 'live at end' : `live at ${formatSeconds(snap.atUs)}`;
      warn(`${what}: ${formatBytes(Math.max(0, total.bytes))}${ci ? ` (95%: ${formatBytes(ci[0])} .. ${formatBytes(ci[1])})` : ''} in ${sites.length} site${sites.length === 1 ? '' : 's'}`);
    } finally {
      done();
      await source.close();
    }
  });
}
