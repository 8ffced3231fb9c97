// hp-snapshot: the live heap at one moment (--at T, peak or end), one NDJSON line per site,
// largest first, after a header line with the total.

import { OutputWriter, parser, runMain, UsageError, warn, formatBytes, setQuiet } from '../cli.js';
import { interval95, putEstimate } from '../model/estimate.js';
import { GROUP_BY, groupLiveHeap, type GroupBy, type SiteEstimate } from '../model/sites.js';
import { liveHeapAt, type SnapshotAt } from '../model/snapshot.js';
import { liveHeapAtIndexed } from '../format/index.js';
import { commandReadOptions, isNdjsonArg, openSource } from '../source-arg.js';
import { formatSeconds, inputArg, positiveInt, reportIncomplete, secondsOption, resolveMarkOptions } from './common.js';

export const SNAPSHOT_SCHEMA = 1;

const USAGE = `$0 [PROFILE|-] [--at SECONDS|peak|end|mark:LABEL] [--group-by trace|line|function|file] [--top N]

The live heap at one moment: what had been allocated and not yet freed, estimated from the
sampled events (each weighted by 1/p) with a 95% interval. Writes a "snapshot" line (the
moment and the total), then one "site" line per site, largest first (schema in
hp-snapshot(1)). --at peak is the moment of highest estimated live bytes; --at end (the
default) is what was never freed. Reads a profile, events NDJSON, or stdin (-).`;

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
  rec.frames = s.site.frames.map((f) => ({ function: f.function, file: f.file, line: f.line }));
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
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage as an error' })
      .parseSync();
    setQuiet(args.quiet === true);
    const input = inputArg(args._, 'hp-snapshot');
    await resolveMarkOptions(args, ['at'], () => input);
    const at = parseAt(args.at);
    const by = args['group-by'] as GroupBy;
    const top = args.top === undefined ? Infinity : positiveInt(args.top, 'top');
    const { opts, done } = commandReadOptions({ strict: args.strict });
    // A large hpx v2 profile goes through its seek index (BASE.hpi, built on first use):
    // the same result, decoding at most one checkpoint interval. Otherwise a full read.
    const indexed = (await isNdjsonArg(input)) ? null : await liveHeapAtIndexed(input, at, opts);
    const source = indexed ? indexed.source : await openSource(input, opts);
    const out = new OutputWriter();
    try {
      const snap = indexed ? indexed.snapshot : await liveHeapAt(source, at);
      done();
      const sites = groupLiveHeap(snap.heap, (id) => source.trace(id), by);
      const total = snap.heap.total();
      const head: Record<string, unknown> = {
        type: 'snapshot',
        schema: SNAPSHOT_SCHEMA,
        at: snap.atUs / 1e6,
        at_spec: at.kind === 'time' ? 'time' : at.kind,
        group_by: by,
      };
      putEstimate(head, 'bytes', total.bytes, total.bytesVar);
      putEstimate(head, 'count', total.count, total.countVar);
      head.sampled = total.sampled;
      head.sites = sites.length;
      head.last_event = snap.lastUs / 1e6;
      if (snap.readToEnd) head.complete = source.complete;
      await out.line(head);
      const n = Math.min(top, sites.length);
      for (let i = 0; i < n; i++) await out.line(siteRecord(sites[i]!, i + 1, by));
      await out.flush();
      if (snap.readToEnd) reportIncomplete(source);
      const ci = interval95(total.bytes, total.bytesVar);
      const what = at.kind === 'peak' ? `peak at ${formatSeconds(snap.atUs)}` : at.kind === 'end' ? 'live at end' : `live at ${formatSeconds(snap.atUs)}`;
      warn(`${what}: ${formatBytes(Math.max(0, total.bytes))}${ci ? ` (95%: ${formatBytes(ci[0])} .. ${formatBytes(ci[1])})` : ''} in ${sites.length} site${sites.length === 1 ? '' : 's'}`);
    } finally {
      done();
      await source.close();
    }
  });
}
