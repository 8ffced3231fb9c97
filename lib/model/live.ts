// The live heap by trace: per trace, the weighted sums (bytes, count and their variances)
// of sampled allocations not yet freed. Memory is bounded by the number of traces, never by
// the number of events; each event is weighted as it is applied.

import { OP_ALLOC, OP_FREE } from '../format/source.js';
import type { Sampling } from '../format/types.js';
import { probabilityFunction } from '../format/weights.js';
import type { Estimate } from './estimate.js';

/** Trace ids below this are mapped through a flat array; rarer, larger ids through a Map. */
const DIRECT_IDS = 1 << 22;

export class LiveHeap {
  readonly probability: (size: number) => number;
  /** trace id -> slot + 1 (0 = no slot yet). */
  private direct = new Int32Array(1024);
  private readonly far = new Map<number, number>();
  /** Number of slots in use. */
  slots = 0;
  traceOfSlot = new Uint32Array(256);
  bytes = new Float64Array(256);
  bytesVar = new Float64Array(256);
  count = new Float64Array(256);
  countVar = new Float64Array(256);
  /** Live sampled allocations (an integer kept in a float column). */
  sampled = new Float64Array(256);

  totalBytes = 0;
  totalBytesVar = 0;
  totalCount = 0;
  totalCountVar = 0;
  totalSampled = 0;

  constructor(readonly sampling: Sampling) {
    this.probability = probabilityFunction(sampling);
  }

  /** The slot of a trace id, allocating one on first sight. */
  slotOf(trace: number): number {
    if (trace < DIRECT_IDS) {
      if (trace >= this.direct.length) {
        let n = this.direct.length;
        while (n <= trace) n *= 2;
        const d = new Int32Array(Math.min(n, DIRECT_IDS));
        d.set(this.direct);
        this.direct = d;
      }
      const s = this.direct[trace]!;
      if (s !== 0) return s - 1;
      const slot = this.newSlot(trace);
      this.direct[trace] = slot + 1;
      return slot;
    }
    const s = this.far.get(trace);
    if (s !== undefined) return s;
    const slot = this.newSlot(trace);
    this.far.set(trace, slot);
    return slot;
  }

  /** The slot of a trace id if it has one, else -1. */
  findSlot(trace: number): number {
    if (trace < DIRECT_IDS) return trace < this.direct.length ? this.direct[trace]! - 1 : -1;
    return this.far.get(trace) ?? -1;
  }

  private newSlot(trace: number): number {
    if (this.slots === this.traceOfSlot.length) this.grow(this.slots * 2);
    const slot = this.slots++;
    this.traceOfSlot[slot] = trace;
    return slot;
  }

  private grow(n: number): void {
    const g64 = (a: Float64Array): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const t = new Uint32Array(n);
    t.set(this.traceOfSlot);
    this.traceOfSlot = t;
    this.bytes = g64(this.bytes);
    this.bytesVar = g64(this.bytesVar);
    this.count = g64(this.count);
    this.countVar = g64(this.countVar);
    this.sampled = g64(this.sampled);
  }

  /**
   * Apply one sampled ALLOC (op OP_ALLOC) or FREE (OP_FREE) of `size` bytes under `trace`.
   * A FREE repeats its allocation's trace and size, so subtracting its weighted contribution
   * removes exactly what the ALLOC added. Returns the slot touched.
   */
  apply(op: number, trace: number, size: number): number {
    // Fast path of slotOf (a known trace with a small id): one array read.
    const d = this.direct;
    const known = trace < d.length ? d[trace]! : 0;
    const slot = known !== 0 ? known - 1 : this.slotOf(trace);
    const p = this.probability(size);
    if (p <= 0) return slot; // cannot have been sampled: carries no estimate
    const w = 1 / p;
    const cv = (1 - p) * w * w;
    const bv = size * size * cv;
    const b = size * w;
    // Arrays in locals: one field load each, then plain typed-array stores.
    const bytes = this.bytes;
    const bytesVar = this.bytesVar;
    const count = this.count;
    const countVar = this.countVar;
    const sampled = this.sampled;
    if (op === OP_ALLOC) {
      bytes[slot] = bytes[slot]! + b;
      bytesVar[slot] = bytesVar[slot]! + bv;
      count[slot] = count[slot]! + w;
      countVar[slot] = countVar[slot]! + cv;
      sampled[slot] = sampled[slot]! + 1;
      this.totalBytes += b;
      this.totalBytesVar += bv;
      this.totalCount += w;
      this.totalCountVar += cv;
      this.totalSampled += 1;
    } else if (op === OP_FREE) {
      const left = sampled[slot]! - 1;
      sampled[slot] = left;
      if (left === 0) {
        // Back to nothing live: reset exactly, so rounding never accumulates across cycles.
        bytes[slot] = 0;
        bytesVar[slot] = 0;
        count[slot] = 0;
        countVar[slot] = 0;
      } else {
        bytes[slot] = bytes[slot]! - b;
        bytesVar[slot] = bytesVar[slot]! - bv;
        count[slot] = count[slot]! - w;
        countVar[slot] = countVar[slot]! - cv;
      }
      const totalLeft = --this.totalSampled;
      if (totalLeft === 0) {
        this.totalBytes = 0;
        this.totalBytesVar = 0;
        this.totalCount = 0;
        this.totalCountVar = 0;
      } else {
        this.totalBytes -= b;
        this.totalBytesVar -= bv;
        this.totalCount -= w;
        this.totalCountVar -= cv;
      }
    }
    return slot;
  }

  estimateOfSlot(slot: number): Estimate {
    return {
      bytes: this.bytes[slot]!,
      bytesVar: Math.max(0, this.bytesVar[slot]!),
      count: this.count[slot]!,
      countVar: Math.max(0, this.countVar[slot]!),
      sampled: this.sampled[slot]!,
    };
  }

  total(): Estimate {
    return {
      bytes: this.totalBytes,
      bytesVar: Math.max(0, this.totalBytesVar),
      count: this.totalCount,
      countVar: Math.max(0, this.totalCountVar),
      sampled: this.totalSampled,
    };
  }

  /** An independent copy (the peak tracker keeps one). */
  clone(): LiveHeap {
    const c = new LiveHeap(this.sampling);
    c.direct = this.direct.slice();
    for (const [k, v] of this.far) c.far.set(k, v);
    c.slots = this.slots;
    c.traceOfSlot = this.traceOfSlot.slice();
    c.bytes = this.bytes.slice();
    c.bytesVar = this.bytesVar.slice();
    c.count = this.count.slice();
    c.countVar = this.countVar.slice();
    c.sampled = this.sampled.slice();
    c.totalBytes = this.totalBytes;
    c.totalBytesVar = this.totalBytesVar;
    c.totalCount = this.totalCount;
    c.totalCountVar = this.totalCountVar;
    c.totalSampled = this.totalSampled;
    return c;
  }
}
