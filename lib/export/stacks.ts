// Weighted stacks: the common currency of the exporters (pprof, flow graph, diff, report).
// A stack is one trace (or one site read back from snapshot NDJSON) with its estimated bytes
// and count and their variances; a StackSet is the live heap at one moment, or the
// allocations of one time window.

import { HpError, UsageError, readNdjson, openTextInput } from '../cli.js';
import { OP_ALLOC, type ProfileSource } from '../format/source.js';
import { blankHeader, type Domain, type Frame, type Header, type Trace } from '../format/types.js';
import { Z95 } from '../format/weights.js';
import { emptyEstimate, unseenOf, type Estimate, type Unseen } from '../model/estimate.js';
import { LiveHeap } from '../model/live.js';
import { traceOrPlaceholder } from '../model/sites.js';
import { liveHeapAt, type SnapshotAt } from '../model/snapshot.js';

export interface WeightedStack {
  /** Innermost (leaf) frame first; empty for an allocation with no Python stack. */
  frames: Frame[];
  /** Outer frames beyond the recorder's depth cap that are not listed. */
  dropped: number;
  est: Estimate;
  /** Domain of the allocations, where the profile records it (native recording). */
  domain?: Domain;
  /** Recorder thread id, where recorded. */
  thread?: number;
  /** The 95% interval of the bytes as the input states it (snapshot NDJSON), kept as given. */
  bytesInterval?: [number, number];
}

export type StackSetKind = 'inuse' | 'alloc';

export interface StackSet {
  /** What the set is, for labels: "t=12.5s", "peak (t=3.1s)", "allocations 10s..20s". */
  label: string;
  kind: StackSetKind;
  /** The moment (inuse) or the window start (alloc), µs since start; null when unknown. */
  atUs: number | null;
  /** The window end for alloc sets, µs since start. */
  toUs: number | null;
  header: Header | null;
  stacks: WeightedStack[];
  total: Estimate;
  /** What the total's interval allows for as live undrawn (profiles only; man/hp-estimates.7). */
  unseen?: Unseen | null;
  /** The total's 95% interval as the input states it (snapshot NDJSON with every site), kept as given. */
  totalInterval?: [number, number];
  /** Input lines that were not snapshot sites (NDJSON input only). */
  ignored?: number;
  /** Sites the snapshot line counts but the input does not hold (cut by hp-snapshot --top; NDJSON input only). */
  sitesLeftOut?: number;
  /** The input it was read from, as named on the command line. */
  source?: string;
  /** How the snapshot NDJSON it was read from grouped its sites (its line's group_by); absent for a profile (whole stacks). */
  groupBy?: string;
  /**
   * The profile, when the set was read from one up to its end (peak, end, an --alloc window):
   * the command then says if that end is no end marker (a killed recorder), as hp-snapshot does.
   */
  readToEndOf?: ProfileSource;
}

export function secondsText(us: number): string {
  return `${+(us / 1e6).toFixed(6)}`;
}

/**
 * A second snapshot line in one input (outputs appended to one file): two moments, which summed
 * would be no heap at all. `where` names the line, `firstLine` the snapshot line before it.
 */
export function secondSnapshot(where: string, firstLine: number): HpError {
  return new HpError(`${where}: a second snapshot line (the first is line ${firstLine}): an input holds one hp-snapshot output, not several appended`);
}

/** A requested time after the profile's last event: a usage error that prints the span (and names the profile, when given: one of several inputs). */
export function outOfSpan(option: string, us: number, lastUs: number, profile?: string): UsageError {
  return new UsageError(`${option} ${secondsText(us)}: after the end of ${profile === undefined ? 'the profile' : profile}, which spans 0 .. ${secondsText(lastUs)} s`);
}

export function atLabel(at: SnapshotAt, atUs: number): string {
  if (at.kind === 'peak') return `peak (t=${secondsText(atUs)}s)`;
  if (at.kind === 'end') return `end (t=${secondsText(atUs)}s)`;
  return `t=${secondsText(atUs)}s`;
}

/** A stats-mode profile has a size histogram and no events: a usage error naming hp-stats, not an empty heap. */
export function refuseStatsMode(source: ProfileSource): void {
  if (source.header.mode === 'stats') throw new UsageError(`${source.name}: a --mode stats profile has no events, only allocation counts by size: read it with hp-stats`);
}

/** Per-trace stacks of a live heap (traces with nothing live are left out). */
export function stacksOfHeap(heap: LiveHeap, lookup: (id: number) => Trace | undefined): WeightedStack[] {
  const out: WeightedStack[] = [];
  for (let slot = 0; slot < heap.slots; slot++) {
    if (heap.sampled[slot]! <= 0) continue;
    const trace = traceOrPlaceholder(lookup, heap.traceOfSlot[slot]!);
    const ws: WeightedStack = { frames: trace.frames, dropped: trace.dropped, est: heap.estimateOfSlot(slot) };
    if (trace.domain) ws.domain = trace.domain;
    if (trace.thread) ws.thread = trace.thread.id;
    out.push(ws);
  }
  return out;
}

/** The live heap of a profile at `at`, as stacks (`named`: one of several inputs, which an error names). */
export async function snapshotStacks(source: ProfileSource, at: SnapshotAt, named = false): Promise<StackSet> {
  refuseStatsMode(source);
  const snap = await liveHeapAt(source, at);
  if (at.kind === 'time' && snap.readToEnd && source.complete && at.us > snap.lastUs) throw outOfSpan('--at', at.us, snap.lastUs, named ? source.name : undefined);
  const lookup = (id: number): Trace | undefined => source.trace(id);
  return {
    label: atLabel(at, snap.atUs),
    kind: 'inuse',
    atUs: snap.atUs,
    toUs: null,
    header: source.header,
    stacks: stacksOfHeap(snap.heap, lookup),
    total: snap.heap.total(),
    // The heap's own sampler: a sampled profile's peak is estimated on half of its draws.
    unseen: unseenOf(snap.heap.sampling, source.histogram),
    ...(snap.readToEnd ? { readToEndOf: source } : {}),
  };
}

/**
 * Every sampled allocation made in [fromUs, toUs), weighted, whether or not it was freed
 * later: the alloc_space / alloc_objects view. A LiveHeap that never sees a free is exactly
 * that accumulator.
 */
export async function allocationStacks(source: ProfileSource, fromUs: number, toUs: number, named = false): Promise<StackSet> {
  refuseStatsMode(source);
  const heap = new LiveHeap(source.header.sampling);
  let lastUs = fromUs;
  let spanUs = 0;
  for await (const batch of source.batches()) {
    const { op, timeUs, trace, size } = batch;
    if (batch.length > 0) spanUs = Math.max(spanUs, timeUs[batch.length - 1]!);
    for (let i = 0; i < batch.length; i++) {
      const t = timeUs[i]!;
      if (t < fromUs) continue;
      if (t >= toUs) break;
      if (op[i] === OP_ALLOC) heap.apply(OP_ALLOC, trace[i]!, size[i]!);
      lastUs = t;
    }
  }
  // (A reader that skipped to --from saw nothing when it is past the end: no span to print then.)
  const profile = named ? source.name : 'the profile';
  if (fromUs > spanUs && source.complete) throw spanUs > 0 ? outOfSpan('--from', fromUs, spanUs, profile) : new UsageError(`--from ${secondsText(fromUs)}: after the end of ${profile} (no event at or after it)`);
  // As hp-events and hp-history: a --to past the end of a whole profile is a usage error.
  if (Number.isFinite(toUs) && toUs > spanUs && spanUs > 0 && source.complete) throw outOfSpan('--to', toUs, spanUs, profile);
  const end = Number.isFinite(toUs) ? toUs : lastUs;
  return {
    label: `allocations ${secondsText(fromUs)}s..${Number.isFinite(toUs) ? `${secondsText(toUs)}s` : 'end'}`,
    kind: 'alloc',
    atUs: fromUs,
    toUs: end,
    header: source.header,
    stacks: stacksOfHeap(heap, (id) => source.trace(id)),
    total: heap.total(),
    unseen: unseenOf(source.header.sampling, source.histogram),
    // A window that ends before the last event read is whole, whatever came after it.
    ...(toUs > spanUs ? { readToEndOf: source } : {}),
  };
}

/** Variance back from a 95% interval [lo, hi] around `value` (the upper side: lo is clamped at 0). */
function varianceFromInterval(value: number, lo: unknown, hi: unknown): number {
  if (typeof hi === 'number' && hi > value) return ((hi - value) / Z95) ** 2;
  if (typeof lo === 'number' && lo < value) return ((value - lo) / Z95) ** 2;
  return 0;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** A site line's frames (hp-snapshot writes them innermost first, as {function, file, line}). */
function framesOf(raw: unknown, where: string): Frame[] {
  if (!Array.isArray(raw)) throw new HpError(`${where}: site line without a "frames" array`);
  return raw.map((f) => {
    if (!f || typeof f !== 'object' || typeof (f as Record<string, unknown>).file !== 'string') throw new HpError(`${where}: each frame needs a "file"`);
    const o = f as Record<string, unknown>;
    const frame: Frame = { function: typeof o.function === 'string' ? o.function : null, file: o.file as string, line: num(o.line) ?? 0 };
    if (o.native === true) frame.native = true;
    return frame;
  });
}

/**
 * Read hp-snapshot NDJSON (schema 1, hp-snapshot(1)): a "snapshot" line with the moment, then one
 * "site" line per site with its frames (innermost first), estimated bytes and count and their 95%
 * intervals, from which the variances are recovered. Lines of other types are counted and skipped;
 * a malformed site line is an error naming its line.
 */
export async function readSnapshotNdjson(arg: string): Promise<StackSet> {
  const name = arg === '-' ? 'stdin' : arg;
  if (arg === '-' && process.stdin.isTTY) throw new UsageError('reading snapshot NDJSON from a terminal: pipe hp-snapshot into me, or name a profile');
  const stacks: WeightedStack[] = [];
  const total = emptyEstimate();
  let atUs: number | null = null;
  let header: Header | null = null;
  let label = name;
  let sawSite = false;
  let foreign = 0;
  let unseen: Unseen | null = null;
  let groupBy: string | undefined;
  let head: Record<string, unknown> | null = null;
  let headLine = 0;
  let siteLines = 0;
  let lines = 0;
  for await (const { lineNumber, value } of readNdjson(openTextInput(arg), name)) {
    lines++;
    const rec = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
    if (rec?.type === 'snapshot') {
      // Two snapshots in one stream (outputs appended to one file) are two moments, not one heap.
      if (head) throw secondSnapshot(`${name}: line ${lineNumber}`, headLine);
      headLine = lineNumber;
      const t = num(rec.at);
      if (t !== null) {
        atUs = Math.round(t * 1e6);
        label = rec.at_spec === 'peak' ? `peak (t=${secondsText(atUs)}s)` : rec.at_spec === 'end' ? `end (t=${secondsText(atUs)}s)` : `t=${secondsText(atUs)}s`;
      }
      // The profile's start and command line, when the snapshot carries them (schema 1 since 2.0.1).
      const start = num(rec.start_time_us);
      if (start !== null) {
        header = { ...blankHeader(), startTimeUs: start, pid: num(rec.pid), argv: Array.isArray(rec.argv) ? rec.argv.map(String) : [] };
      }
      unseen = unseenField(rec.unseen);
      if (typeof rec.group_by === 'string') groupBy = rec.group_by;
      head = rec;
      continue;
    }
    if (rec?.type !== 'site') {
      foreign++;
      continue;
    }
    const where = `${name}: line ${lineNumber}`;
    const bytes = num(rec.bytes);
    if (bytes === null) throw new HpError(`${where}: site line without a numeric "bytes"`);
    const count = num(rec.count) ?? 0;
    // The variance as the line gives it, else the one its interval implies, which is larger
    // for a skewed interval: sums of sites (a coarser grouping) then come out wider.
    const variance = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);
    const est: Estimate = {
      bytes,
      bytesVar: variance(rec.bytes_var) ?? varianceFromInterval(bytes, rec.bytes_lo, rec.bytes_hi),
      count,
      countVar: variance(rec.count_var) ?? varianceFromInterval(count, rec.count_lo, rec.count_hi),
      sampled: num(rec.sampled) ?? 0,
    };
    total.bytes += est.bytes;
    total.bytesVar += est.bytesVar;
    total.count += est.count;
    total.countVar += est.countVar;
    total.sampled += est.sampled;
    const ws: WeightedStack = { frames: framesOf(rec.frames, where), dropped: num(rec.dropped) ?? 0, est };
    if (rec.domain === 'native' || rec.domain === 'mmap' || rec.domain === 'python') ws.domain = rec.domain;
    if (typeof rec.thread === 'number') ws.thread = rec.thread;
    const interval = intervalOf(rec, 'bytes');
    if (interval) ws.bytesInterval = interval;
    stacks.push(ws);
    siteLines++;
    sawSite = true;
  }
  // As every NDJSON reader: nothing at all is an error, not an empty heap.
  if (lines === 0) throw new HpError(`${name}: empty input (expected hp-snapshot NDJSON)`);
  if (!sawSite && foreign > 0) throw new HpError(`${name}: no snapshot site lines (${foreign} other lines): expected hp-snapshot output (for hp-events output, give --at or --alloc)`);
  const set: StackSet = { label, kind: 'inuse', atUs, toUs: null, header, stacks, total, ignored: foreign, unseen, ...(groupBy ? { groupBy } : {}) };
  // With every site present (not cut by --top), the snapshot line's total is this heap's:
  // its figures and interval as written, not rebuilt from the rounded sites.
  const headBytes = head ? num(head.bytes) : null;
  const headSites = head ? num(head.sites) : null;
  if (headSites !== null && headSites > siteLines) set.sitesLeftOut = headSites - siteLines;
  if (head && headBytes !== null && headSites === siteLines) {
    total.bytes = headBytes;
    total.count = num(head.count) ?? total.count;
    const interval = intervalOf(head, 'bytes');
    if (interval) set.totalInterval = interval;
  }
  return set;
}

/** A line's NAME_lo..NAME_hi, when it gives both. */
function intervalOf(rec: Record<string, unknown>, name: string): [number, number] | null {
  const lo = num(rec[`${name}_lo`]);
  const hi = num(rec[`${name}_hi`]);
  return lo !== null && hi !== null && lo <= hi ? [lo, hi] : null;
}

/** hp-snapshot's "unseen" field: {bytes: {weight, variance}, count: {...}}; null if absent or malformed. */
function unseenField(v: unknown): Unseen | null {
  const pseudo = (x: unknown): { weight: number; variance: number } | null => {
    if (!x || typeof x !== 'object') return null;
    const { weight, variance } = x as Record<string, unknown>;
    return typeof weight === 'number' && typeof variance === 'number' && Number.isFinite(weight) && Number.isFinite(variance) && weight >= 0 && variance >= 0 ? { weight, variance } : null;
  };
  if (!v || typeof v !== 'object') return null;
  const bytes = pseudo((v as Record<string, unknown>).bytes);
  const count = pseudo((v as Record<string, unknown>).count);
  return bytes && count ? { bytes, count } : null;
}

/**
 * One heap from a command-line input: a profile (or events NDJSON) read at `at` (default end),
 * or, for `-` or an NDJSON file with no `at`, hp-snapshot output.
 */
export async function loadStackSet(
  arg: string,
  at: SnapshotAt | null,
  open: (arg: string) => Promise<ProfileSource>,
  isNdjson: (arg: string) => Promise<boolean>,
  named = false,
): Promise<StackSet> {
  if (at === null && (await isNdjson(arg))) return readSnapshotNdjson(arg);
  const source = await open(arg);
  try {
    return await snapshotStacks(source, at ?? { kind: 'peak' }, named);
  } finally {
    await source.close();
  }
}
