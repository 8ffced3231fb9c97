// Weighted stacks: the common currency of the exporters (pprof, flow graph, diff, report).
// A stack is one trace (or one site read back from snapshot NDJSON) with its estimated bytes
// and count and their variances; a StackSet is the live heap at one moment, or the
// allocations of one time window.

import { existsSync } from 'node:fs';
import { HpError, UsageError, readNdjson, openTextInput } from '../cli.js';
import { openProfile, profileBase } from '../format/profile.js';
import { OP_ALLOC, type ProfileSource, type ReadOptions } from '../format/source.js';
import type { Frame, Header, Trace } from '../format/types.js';
import { Z95 } from '../format/weights.js';
import { emptyEstimate, type Estimate } from '../model/estimate.js';
import { LiveHeap } from '../model/live.js';
import { traceOrPlaceholder } from '../model/sites.js';
import { liveHeapAt, type SnapshotAt } from '../model/snapshot.js';

export interface WeightedStack {
  /** Innermost (leaf) frame first; empty for an allocation with no Python stack. */
  frames: Frame[];
  /** Outer frames beyond the recorder's depth cap that are not listed. */
  dropped: number;
  est: Estimate;
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
  /** Input lines that were not snapshot sites (NDJSON input only). */
  ignored?: number;
}

/** `--at` values: seconds since start, `peak` or `end`. */
export function parseAt(text: string, option = '--at'): SnapshotAt {
  const t = String(text).trim();
  if (t === 'peak') return { kind: 'peak' };
  if (t === 'end') return { kind: 'end' };
  const s = Number(t);
  if (t === '' || !Number.isFinite(s) || s < 0) throw new UsageError(`${option} ${t}: expected seconds since start, 'peak' or 'end'`);
  return { kind: 'time', us: Math.round(s * 1e6) };
}

/** Seconds for an option like --from/--to (null when absent). */
export function parseSeconds(value: unknown, option: string): number | null {
  if (value === undefined || value === null) return null;
  const s = Number(value);
  if (!Number.isFinite(s) || s < 0) throw new UsageError(`${option} ${String(value)}: expected seconds since start`);
  return Math.round(s * 1e6);
}

export function secondsText(us: number): string {
  return `${+(us / 1e6).toFixed(6)}`;
}

export function atLabel(at: SnapshotAt, atUs: number): string {
  if (at.kind === 'peak') return `peak (t=${secondsText(atUs)}s)`;
  if (at.kind === 'end') return `end (t=${secondsText(atUs)}s)`;
  return `t=${secondsText(atUs)}s`;
}

/** True when `arg` names a profile (BASE, BASE.hpm or BASE.hpd with the .hpm present). */
export function isProfileArg(arg: string): boolean {
  if (arg === '-') return false;
  return existsSync(`${profileBase(arg)}.hpm`);
}

export async function withProfile<T>(arg: string, opts: ReadOptions, body: (p: ProfileSource) => Promise<T>): Promise<T> {
  const source = await openProfile(arg, opts);
  try {
    return await body(source);
  } finally {
    await source.close();
  }
}

/** Per-trace stacks of a live heap (traces with nothing live are left out). */
export function stacksOfHeap(heap: LiveHeap, lookup: (id: number) => Trace | undefined): WeightedStack[] {
  const out: WeightedStack[] = [];
  for (let slot = 0; slot < heap.slots; slot++) {
    if (heap.sampled[slot]! <= 0) continue;
    const trace = traceOrPlaceholder(lookup, heap.traceOfSlot[slot]!);
    out.push({ frames: trace.frames, dropped: trace.dropped, est: heap.estimateOfSlot(slot) });
  }
  return out;
}

/** The live heap of a profile at `at`, as stacks. */
export async function snapshotStacks(source: ProfileSource, at: SnapshotAt): Promise<StackSet> {
  const snap = await liveHeapAt(source, at);
  const lookup = (id: number): Trace | undefined => source.trace(id);
  return {
    label: atLabel(at, snap.atUs),
    kind: 'inuse',
    atUs: snap.atUs,
    toUs: null,
    header: source.header,
    stacks: stacksOfHeap(snap.heap, lookup),
    total: snap.heap.total(),
  };
}

/**
 * Every sampled allocation made in [fromUs, toUs), weighted, whether or not it was freed
 * later: the alloc_space / alloc_objects view. A LiveHeap that never sees a free is exactly
 * that accumulator.
 */
export async function allocationStacks(source: ProfileSource, fromUs: number, toUs: number): Promise<StackSet> {
  const heap = new LiveHeap(source.header.sampling);
  let lastUs = fromUs;
  for await (const batch of source.batches()) {
    const { op, timeUs, trace, size } = batch;
    for (let i = 0; i < batch.length; i++) {
      const t = timeUs[i]!;
      if (t < fromUs) continue;
      if (t >= toUs) break;
      if (op[i] === OP_ALLOC) heap.apply(OP_ALLOC, trace[i]!, size[i]!);
      lastUs = t;
    }
  }
  const end = Number.isFinite(toUs) ? toUs : lastUs;
  return {
    label: `allocations ${secondsText(fromUs)}s..${Number.isFinite(toUs) ? `${secondsText(toUs)}s` : 'end'}`,
    kind: 'alloc',
    atUs: fromUs,
    toUs: end,
    header: source.header,
    stacks: stacksOfHeap(heap, (id) => source.trace(id)),
    total: heap.total(),
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

/** Frames from a snapshot line: `frames` (objects or "function (file:line)" strings), leaf first unless said otherwise. */
function framesOf(rec: Record<string, unknown>, rootFirst: boolean): Frame[] | null {
  const raw = rec.frames ?? rec.stack;
  if (!Array.isArray(raw)) return null;
  const frames: Frame[] = [];
  for (const f of raw) {
    if (f && typeof f === 'object') {
      const o = f as Record<string, unknown>;
      frames.push({
        function: typeof o.function === 'string' ? o.function : null,
        file: typeof o.file === 'string' ? o.file : '?',
        line: num(o.line) ?? 0,
      });
    } else if (typeof f === 'string') {
      const m = /^(.*) \((.*):(\d+)\)$/.exec(f) ?? /^(.*) \((.*)\)$/.exec(f);
      if (m) frames.push({ function: m[1]!, file: m[2]!, line: m[3] ? Number(m[3]) : 0 });
      else {
        const fl = /^(.*):(\d+)$/.exec(f);
        frames.push(fl ? { function: null, file: fl[1]!, line: Number(fl[2]) } : { function: f, file: '?', line: 0 });
      }
    } else return null;
  }
  return rootFirst ? frames.reverse() : frames;
}

/**
 * Read `hp-snapshot` NDJSON: a `meta` line (optional), then one line per site with its frames,
 * estimated bytes and count and their 95% intervals. Lines of other types are skipped and
 * counted; a site line without frames or bytes is an error naming its line.
 */
export async function readSnapshotNdjson(arg: string): Promise<StackSet> {
  const name = arg === '-' ? 'stdin' : arg;
  if (arg === '-' && process.stdin.isTTY) throw new UsageError('reading snapshot NDJSON from a terminal: pipe hp-snapshot into me, or name a profile');
  const stacks: WeightedStack[] = [];
  const total = emptyEstimate();
  let atUs: number | null = null;
  let label = name;
  let rootFirst = false;
  let sawSite = false;
  let foreign = 0;
  const stats = { invalid: 0 };
  for await (const { lineNumber, value } of readNdjson(openTextInput(arg), name, stats, false)) {
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      foreign++;
      continue;
    }
    const rec = value as Record<string, unknown>;
    const type = rec.type ?? rec.kind;
    if (type === 'meta' || type === 'snapshot') {
      const t = num(rec.at) ?? num(rec.time) ?? num(rec.at_s);
      if (t !== null) {
        atUs = Math.round(t * 1e6);
        label = `t=${secondsText(atUs)}s`;
      }
      const order = rec.frames_order ?? rec.order ?? rec.frame_order;
      if (typeof order === 'string') rootFirst = /^root/.test(order);
      continue;
    }
    if (type !== undefined && type !== 'site') {
      foreign++;
      continue;
    }
    const bytes = num(rec.bytes);
    if (bytes === null) throw new HpError(`${name}: line ${lineNumber}: site line without numeric "bytes"`);
    let frames = framesOf(rec, rootFirst);
    if (frames === null) {
      // A site grouped by line/function/file: one frame from its own fields.
      if (typeof rec.file === 'string') frames = [{ function: typeof rec.function === 'string' ? rec.function : null, file: rec.file, line: num(rec.line) ?? 0 }];
      else if (typeof rec.site === 'string' && rec.site !== '[no Python stack]') frames = framesOf({ frames: [rec.site] }, false);
      else frames = [];
    }
    const count = num(rec.count) ?? 0;
    const est: Estimate = {
      bytes,
      bytesVar: varianceFromInterval(bytes, rec.bytes_lo, rec.bytes_hi),
      count,
      countVar: varianceFromInterval(count, rec.count_lo, rec.count_hi),
      sampled: num(rec.sampled) ?? 0,
    };
    total.bytes += est.bytes;
    total.bytesVar += est.bytesVar;
    total.count += est.count;
    total.countVar += est.countVar;
    total.sampled += est.sampled;
    stacks.push({ frames: frames ?? [], dropped: num(rec.dropped) ?? 0, est });
    sawSite = true;
  }
  if (!sawSite && foreign > 0) throw new HpError(`${name}: no snapshot site lines (${foreign} other lines): expected hp-snapshot output (for hp-events output, give --at or --alloc)`);
  return { label, kind: 'inuse', atUs, toUs: null, header: null, stacks, total, ignored: foreign };
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
): Promise<StackSet> {
  if (at === null && (await isNdjson(arg))) return readSnapshotNdjson(arg);
  const source = await open(arg);
  try {
    return await snapshotStacks(source, at ?? { kind: 'end' });
  } finally {
    await source.close();
  }
}
