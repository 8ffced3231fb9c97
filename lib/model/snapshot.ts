// The live heap at one moment: a time T, the end of the profile (what was never freed), or
// the peak (the moment of highest estimated live bytes, found in one pass by keeping a
// journal of what changed since the best moment so far instead of copying the heap).
//
// The highest of many estimates is biased upwards: where few live blocks are drawn, the
// estimate at its highest is mostly the moments when a heavy draw happened to be live, and its
// interval can lie wholly above the truth. So a sampled profile's peak is found on one half of
// a random split of the draws and estimated on the other half (lib/model/split.ts).

import { OP_ALLOC, OP_FREE, type ProfileSource } from '../format/source.js';
import { LiveHeap } from './live.js';
import { exactSampling, HALF_B, HalfSplit, halfSampling, splitSeed } from './split.js';

export type SnapshotAt = { kind: 'time'; us: number } | { kind: 'peak' } | { kind: 'end' };

export interface LiveSnapshot {
  heap: LiveHeap;
  /** The moment the heap describes, µs since start. */
  atUs: number;
  /** Time of the last event read, µs since start. */
  lastUs: number;
  /** True when the whole stream was read (false when a --at T stopped early). */
  readToEnd: boolean;
}

/**
 * Keeps the state of the heap at the moment its estimated live bytes were highest. Moments
 * are event times: the state after every event at one microsecond has been applied (the
 * same state `--at T` reports for that T). Ties keep the earliest moment.
 */
export class PeakTracker {
  peakBytes = 0;
  peakUs = 0;
  /** Per journaled event: the slot and its values before the event (5), totals before (5). */
  private journalSlot = new Int32Array(1024);
  private journalOld = new Float64Array(1024 * 10);
  private journalLength = 0;
  /** While false, the heap itself is (modulo the journal) the peak state. */
  private copy: LiveHeap | null = null;

  constructor(private readonly heap: LiveHeap) {}

  /**
   * Call when the state at moment `us` is final (before the first event of a later moment);
   * `score` is what the peak is the highest of (by default the tracked heap's bytes).
   */
  moment(us: number, score = this.heap.totalBytes): void {
    if (score > this.peakBytes) {
      this.peakBytes = score;
      this.peakUs = us;
      this.journalLength = 0;
      this.copy = null;
    }
  }

  /** Call before applying an event that touches `slot`. */
  beforeChange(slot: number): void {
    if (this.copy) {
      // The peak state keeps the tracked heap's slots, in its order (empty for traces met since),
      // whichever way it is kept: a result, or a checkpoint of it, is the same either way.
      while (this.copy.slots <= slot) this.copy.slotOf(this.heap.traceOfSlot[this.copy.slots]!);
      return;
    }
    const limit = Math.max(4096, 2 * this.heap.slots);
    if (this.journalLength >= limit) {
      // The journal has grown past the heap's size: materialize the peak state once.
      this.copy = this.heap.clone();
      this.undoJournal(this.copy);
      return;
    }
    if (this.journalLength === this.journalSlot.length) {
      const s = new Int32Array(this.journalSlot.length * 2);
      s.set(this.journalSlot);
      this.journalSlot = s;
      const o = new Float64Array(this.journalOld.length * 2);
      o.set(this.journalOld);
      this.journalOld = o;
    }
    const h = this.heap;
    const j = this.journalLength++;
    this.journalSlot[j] = slot;
    const o = this.journalOld;
    const k = j * 10;
    o[k] = h.bytes[slot]!;
    o[k + 1] = h.bytesVar[slot]!;
    o[k + 2] = h.count[slot]!;
    o[k + 3] = h.countVar[slot]!;
    o[k + 4] = h.sampled[slot]!;
    o[k + 5] = h.totalBytes;
    o[k + 6] = h.totalBytesVar;
    o[k + 7] = h.totalCount;
    o[k + 8] = h.totalCountVar;
    o[k + 9] = h.totalSampled;
  }

  private undoJournal(h: LiveHeap): void {
    const o = this.journalOld;
    for (let j = this.journalLength - 1; j >= 0; j--) {
      const slot = this.journalSlot[j]!;
      const k = j * 10;
      h.bytes[slot] = o[k]!;
      h.bytesVar[slot] = o[k + 1]!;
      h.count[slot] = o[k + 2]!;
      h.countVar[slot] = o[k + 3]!;
      h.sampled[slot] = o[k + 4]!;
      h.totalBytes = o[k + 5]!;
      h.totalBytesVar = o[k + 6]!;
      h.totalCount = o[k + 7]!;
      h.totalCountVar = o[k + 8]!;
      h.totalSampled = o[k + 9]!;
    }
    this.journalLength = 0;
  }

  /**
   * Continue from a peak found earlier (the seek index's tail): `peak` is its state, with the
   * tracked heap's slots.
   */
  resume(peak: LiveHeap, us: number, score: number): void {
    this.copy = peak;
    this.peakUs = us;
    this.peakBytes = score;
    this.journalLength = 0;
  }

  /** The peak state. Consumes the tracked heap (call once, after the last moment). */
  result(): LiveHeap {
    if (this.copy) return this.copy;
    this.undoJournal(this.heap);
    return this.heap;
  }
}

/** Where a replay resumes: a heap restored from a checkpoint, and the clock it had reached. */
export interface ReplayStart {
  heap: LiveHeap;
  curUs: number;
  lastUs: number;
}

/**
 * Read `source` and return its live heap at `at` (from `resume`, when the source starts at
 * a checkpoint's block instead of the beginning). Event times that go backwards (heapprof
 * 1.0.x used the wall clock) are treated as the latest time seen, so moments never repeat.
 */
export async function liveHeapAt(source: ProfileSource, at: SnapshotAt, resume?: ReplayStart): Promise<LiveSnapshot> {
  // A sampled profile's peak: found on half A, the heap kept is half B's (man/hp-estimates.7).
  const split = at.kind === 'peak' && !resume && !exactSampling(source.header.sampling) ? new HalfSplit(source.header.sampling, splitSeed(source.header)) : null;
  const heap = resume?.heap ?? new LiveHeap(split ? halfSampling(source.header.sampling) : source.header.sampling);
  const tracker = at.kind === 'peak' ? new PeakTracker(heap) : null;
  const stopAfterUs = at.kind === 'time' ? at.us : Infinity;
  let curUs = resume?.curUs ?? 0;
  let lastUs = resume?.lastUs ?? 0;
  let stopped = false;
  outer: for await (const batch of source.batches()) {
    const { op, timeUs, trace, size } = batch;
    const n = batch.length;
    if (!tracker) {
      // Runs of ALLOC/FREE events up to the moment go to the heap in one call; the clock is the
      // latest time seen, as in the event-by-event loop below.
      let i = 0;
      while (i < n) {
        if (op[i]! <= OP_FREE) {
          const stop = heap.applyRun(batch, i, n, stopAfterUs);
          if (stop > i) {
            if (heap.lastRunUs > curUs) curUs = heap.lastRunUs;
            lastUs = curUs;
            i = stop;
            continue;
          }
        }
        const t = timeUs[i]! < curUs ? curUs : timeUs[i]!;
        if (t > stopAfterUs) {
          stopped = true;
          break outer;
        }
        lastUs = t;
        i++;
      }
      continue;
    }
    // The split of the whole batch first (the addon's loop where built), then its results per event.
    let totalA = split ? split.splitBatch(batch) : 0;
    for (let i = 0; i < n; i++) {
      let t = timeUs[i]!;
      if (t < curUs) t = curUs;
      if (t > stopAfterUs) {
        stopped = true;
        break outer;
      }
      lastUs = t;
      const o = op[i]!;
      if (o !== OP_ALLOC && o !== OP_FREE) continue;
      if (t !== curUs) {
        tracker?.moment(curUs, split ? totalA : heap.totalBytes);
        curUs = t;
      }
      if (split) {
        totalA = split.totals[i]!;
        if (!(split.halves[i]! & HALF_B)) continue;
      }
      if (tracker) tracker.beforeChange(heap.slotOf(trace[i]!));
      heap.apply(o, trace[i]!, size[i]!);
    }
  }
  if (tracker) {
    tracker.moment(curUs, split ? split.totalA : heap.totalBytes);
    return { heap: tracker.result(), atUs: tracker.peakUs, lastUs, readToEnd: true };
  }
  return {
    heap,
    atUs: at.kind === 'time' ? at.us : lastUs,
    lastUs,
    readToEnd: !stopped,
  };
}
