// The data behind hp-report: memory over time (history buckets with their 95% band and RSS),
// and at every bucket end and at the peak the top stacks of the live heap plus an "other"
// remainder, so the page can draw a flame graph for any point without the whole profile.
// Stacks and frames are deduplicated into tables; entries refer to them by index.

import { OP_ALLOC, OP_FREE, OP_RSS, type ProfileSource } from '../format/source.js';
import type { Frame, Header, Trace } from '../format/types.js';
import { halfWidth95 } from '../format/weights.js';
import { LiveHeap } from '../model/live.js';
import { traceOrPlaceholder } from '../model/sites.js';
import { liveHeapAt } from '../model/snapshot.js';

export interface ReportPoint {
  /** Seconds since start. */
  t: number;
  bytes: number;
  lo: number;
  hi: number;
  rss: number | null;
  /** Flattened triples: stack index, estimated bytes, 95% half-width. Largest first. */
  top: number[];
  /** Live bytes outside the top stacks, and its half-width. */
  other: number;
  otherHw: number;
  peak?: true;
}

export interface ReportData {
  version: 1;
  title: string;
  meta: {
    argv: string[];
    python: string | null;
    pid: number | null;
    hostname: string | null;
    startTimeUs: number;
    sampling: string;
    complete: boolean;
    granularity: number;
    topPerPoint: number;
  };
  /** [function or null, file, line]. */
  frames: Array<[string | null, string, number]>;
  /** Frame indices, root first. An empty stack is an allocation with no Python stack. */
  stacks: number[][];
  points: ReportPoint[];
  /** Index in `points` of the peak (the default selection). */
  peakIndex: number;
}

export interface ReportOptions {
  /** Stacks kept per point (the rest is summed into "other"). */
  top: number;
  /** About this many history points. */
  targetPoints: number;
  title: string;
}

function samplingText(h: Header): string {
  const s = h.sampling;
  if (s.kind === 'poisson') return `byte-Poisson, mean ${s.meanBytes} bytes between samples`;
  if (s.bounds.length === 0) return 'every allocation recorded';
  return `size table {${s.bounds.map((b, i) => `${b}: ${s.probs[i]}`).join(', ')}}`;
}

/** Interns frames and stacks. */
class Tables {
  readonly frames: ReportData['frames'] = [];
  readonly stacks: number[][] = [];
  private readonly frameIndex = new Map<string, number>();
  private readonly traceIndex = new Map<number, number>();

  /** Where trace ids are resolved (replaced when the profile is reopened for a second pass). */
  constructor(public lookup: (id: number) => Trace | undefined) {}

  private frame(f: Frame): number {
    const key = `${f.function ?? ''}\0${f.file}\0${f.line}`;
    let i = this.frameIndex.get(key);
    if (i === undefined) {
      i = this.frames.length;
      this.frames.push([f.function, f.file, f.line]);
      this.frameIndex.set(key, i);
    }
    return i;
  }

  stackOfTrace(id: number): number {
    let i = this.traceIndex.get(id);
    if (i === undefined) {
      const trace = traceOrPlaceholder(this.lookup, id);
      const frames = trace.frames.map((f) => this.frame(f)).reverse();
      if (trace.dropped > 0) frames.unshift(this.frame({ function: `[${trace.dropped} outer frames not recorded]`, file: '', line: 0 }));
      i = this.stacks.length;
      this.stacks.push(frames);
      this.traceIndex.set(id, i);
    }
    return i;
  }
}

const round = (x: number): number => Math.max(0, Math.round(x));

/** The smallest of 1, 2, 5 x 10^k µs that is at least `us`. */
export function niceGranularityUs(us: number): number {
  let g = 1;
  for (;;) {
    for (const m of [1, 2, 5]) if (g * m >= us) return g * m;
    g *= 10;
  }
}

/**
 * Top `n` slots of a heap by live bytes, largest first (ties by trace id), in O(slots log n) with
 * a bounded min-heap: a profile with 10^5 traces is measured at every bucket end without sorting
 * them all.
 */
export function topSlots(heap: LiveHeap, n: number): number[] {
  const chosen: number[] = [];
  const bytes = heap.bytes;
  const trace = heap.traceOfSlot;
  // "a is smaller than b": the heap keeps the smallest chosen slot at its root.
  const less = (a: number, b: number): boolean => bytes[a]! < bytes[b]! || (bytes[a] === bytes[b] && trace[a]! > trace[b]!);
  const siftDown = (i: number): void => {
    const len = chosen.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < len && less(chosen[l]!, chosen[m]!)) m = l;
      if (r < len && less(chosen[r]!, chosen[m]!)) m = r;
      if (m === i) return;
      [chosen[i], chosen[m]] = [chosen[m]!, chosen[i]!];
      i = m;
    }
  };
  const siftUp = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(chosen[i]!, chosen[p]!)) return;
      [chosen[i], chosen[p]] = [chosen[p]!, chosen[i]!];
      i = p;
    }
  };
  for (let s = 0; s < heap.slots; s++) {
    if (heap.sampled[s]! <= 0 || !(bytes[s]! > 0)) continue;
    if (chosen.length < n) {
      chosen.push(s);
      siftUp(chosen.length - 1);
    } else if (n > 0 && less(chosen[0]!, s)) {
      chosen[0] = s;
      siftDown(0);
    }
  }
  return chosen.sort((a, b) => (less(a, b) ? 1 : less(b, a) ? -1 : 0));
}

/** The live heap as a point: total with its interval, top stacks, the rest as "other". */
function pointOfHeap(heap: LiveHeap, tables: Tables, n: number, tUs: number, rss: number | null): ReportPoint {
  const total = heap.total();
  const hw = halfWidth95(total.bytesVar);
  const top: number[] = [];
  let topBytes = 0;
  let topVar = 0;
  for (const s of topSlots(heap, n)) {
    const v = Math.max(0, heap.bytesVar[s]!);
    top.push(tables.stackOfTrace(heap.traceOfSlot[s]!), round(heap.bytes[s]!), Math.round(halfWidth95(v)));
    topBytes += heap.bytes[s]!;
    topVar += v;
  }
  return {
    t: tUs / 1e6,
    bytes: round(total.bytes),
    lo: round(total.bytes - hw),
    hi: round(total.bytes + hw),
    rss,
    top,
    other: round(total.bytes - topBytes),
    otherHw: Math.round(halfWidth95(Math.max(0, total.bytesVar - topVar))),
  };
}

/**
 * Read the profile twice (it must be seekable; `open` gives a fresh source each time): first for
 * the peak and the profile's length, then for the points of the plot at a fixed granularity, each
 * the state after every event at or before its time.
 */
export async function buildReportData(open: () => Promise<ProfileSource>, opts: ReportOptions): Promise<ReportData> {
  const tables = new Tables(() => undefined);
  let header: Header;
  let peak: ReportPoint;
  let lastUs: number;
  {
    const source = await open();
    try {
      header = source.header;
      tables.lookup = (id) => source.trace(id);
      const snap = await liveHeapAt(source, { kind: 'peak' });
      peak = { ...pointOfHeap(snap.heap, tables, opts.top, snap.atUs, null), peak: true };
      lastUs = snap.lastUs;
    } finally {
      await source.close();
    }
  }
  const granularityUs = niceGranularityUs(Math.max(1, lastUs) / opts.targetPoints);
  const points: ReportPoint[] = [];
  let complete = false;
  const source = await open();
  try {
    tables.lookup = (id) => source.trace(id);
    const heap = new LiveHeap(header.sampling);
    let nextEndUs = granularityUs;
    let curUs = 0;
    let rss: number | null = null;
    let dirty = true;
    let last: ReportPoint | null = null;
    const close = (endUs: number): void => {
      const p: ReportPoint = !dirty && last ? { ...last, t: endUs / 1e6, rss } : pointOfHeap(heap, tables, opts.top, endUs, rss);
      dirty = false;
      last = p;
      points.push(p);
    };
    for await (const batch of source.batches()) {
      const { op, timeUs, trace, size } = batch;
      for (let i = 0; i < batch.length; i++) {
        let t = timeUs[i]!;
        if (t < curUs) t = curUs; // heapprof 1.0.x wall-clock times may step back
        curUs = t;
        while (t > nextEndUs) {
          close(nextEndUs);
          nextEndUs += granularityUs;
        }
        const o = op[i]!;
        if (o === OP_ALLOC || o === OP_FREE) {
          heap.apply(o, trace[i]!, size[i]!);
          dirty = true;
        } else if (o === OP_RSS) rss = size[i]!;
      }
    }
    const lastEnd = Math.max(granularityUs, Math.ceil(curUs / granularityUs) * granularityUs);
    while (nextEndUs <= lastEnd) {
      close(nextEndUs);
      nextEndUs += granularityUs;
    }
    complete = source.complete;
  } finally {
    await source.close();
  }
  // The peak goes in time order; at a bucket end's own time it comes first (it is that state).
  let at = points.findIndex((p) => p.t >= peak.t);
  if (at < 0) at = points.length;
  points.splice(at, 0, peak);
  return {
    version: 1,
    title: opts.title,
    meta: {
      argv: header.argv,
      python: header.pythonVersion,
      pid: header.pid,
      hostname: header.hostname,
      startTimeUs: header.startTimeUs,
      sampling: samplingText(header),
      complete,
      granularity: granularityUs / 1e6,
      topPerPoint: opts.top,
    },
    frames: tables.frames,
    stacks: tables.stacks,
    points,
    peakIndex: at,
  };
}
