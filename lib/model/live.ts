// The live heap by trace: per trace, the weighted sums (bytes, count and their variances)
// of sampled allocations not yet freed. Memory is bounded by the number of traces, never by
// the number of events; each event is weighted as it is applied.

import { OP_ALLOC, OP_FREE, type EventBatch } from '../format/source.js';
import type { Sampling } from '../format/types.js';
import { probabilityFunction } from '../format/weights.js';
import { readerKernels } from '../native.js';
import type { Estimate } from './estimate.js';

/** Trace ids below this are mapped through a flat array; rarer, larger ids through a Map. */
const DIRECT_IDS = 1 << 22;

/**
 * Per-event weights, computed once per sampler (sources share one Sampling object). A size
 * table's weights are constant between its bounds: a few comparisons find them. Byte-Poisson
 * weights vary with every size: those below POISSON_TABLE_SIZES come from a table (a small one,
 * to stay in cache), larger ones from the formula.
 */
interface Weights {
  /** Table sampler: the range bounds (empty for byte-Poisson). */
  bounds: Float64Array;

  /**
   * Table sampler: the range of every size with 32 - clz32(size) = j (sizes in [2^(j-1), 2^j),
   * and 0 for j = 0), or -1 where a bound splits that bucket. Finding a range by comparing
   * against every bound was a fifth of hp-history's time.
   */
  bucketRange: Int8Array;

  /** Per range (bounds.length + 1 of them), or per size below POISSON_TABLE_SIZES: w = 1/p and (1-p)w^2, both 0 where p = 0. */
  w: Float64Array;
  cv: Float64Array;
}
const POISSON_TABLE_SIZES = 4096;
const weightCache = new WeakMap<Sampling, Weights>();

function weightsOf(sampling: Sampling, probability: (size: number) => number): Weights {
  let t = weightCache.get(sampling);
  if (t) return t;
  const fill = (p: number, w: Float64Array, cv: Float64Array, i: number): void => {
    if (p > 0) {
      w[i] = 1 / p;
      cv[i] = (1 - p) * w[i]! * w[i]!;
    }
  };
  if (sampling.kind === 'table') {
    const n = sampling.bounds.length;
    t = { bounds: Float64Array.from(sampling.bounds), bucketRange: new Int8Array(33), w: new Float64Array(n + 1), cv: new Float64Array(n + 1) };
    for (let i = 0; i <= n; i++) fill(i < n ? sampling.probs[i]! : 1, t.w, t.cv, i);
    const rangeOf = (size: number): number => sampling.bounds.filter((b) => size >= b).length;
    for (let j = 0; j <= 32; j++) {
      const lo = j === 0 ? 0 : 2 ** (j - 1);
      const hi = j === 0 ? 0 : 2 ** j - 1;
      const r = rangeOf(lo);
      t.bucketRange[j] = r === rangeOf(hi) && r < 127 ? r : -1;
    }
  } else {
    t = { bounds: new Float64Array(0), bucketRange: new Int8Array(0), w: new Float64Array(POISSON_TABLE_SIZES), cv: new Float64Array(POISSON_TABLE_SIZES) };
    for (let s = 0; s < POISSON_TABLE_SIZES; s++) fill(probability(s), t.w, t.cv, s);
  }
  weightCache.set(sampling, t);
  return t;
}

/** Events applyRunTs takes each time the C kernel stops for it. */
const TS_STEP = 64;
/** Runs shorter than this go to applyRunTs: the kernel's call costs more than they do. */
const MIN_KERNEL_RUN = 128;
/** The kernel's scalar state (see applyRun in native/decoder/addon.cc); one reader thread uses it at a time. */
const kernelState = new Float64Array(8);

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

  /** Frees ignored because their trace had nothing live (corrupt or hostile input). */
  unmatchedFrees = 0;

  /** Time of the last event applyRun applied. */
  lastRunUs = 0;

  /**
   * Apply events [from, to) of a batch, as apply() would one by one, stopping before the first
   * event that is not an ALLOC or FREE or that is later than `untilUs`. Returns the index it
   * stopped at; `lastRunUs` is then the latest time of any event applied so far. The loop every
   * full-profile reader spends its time in: run by the C kernel when the addon is built
   * (native/decoder/kernels.c, the same arithmetic in the same order; on the bench's profile
   * 1.7 ns an event against 13), by applyRunTs otherwise. Events the kernel leaves (a trace
   * met for the first time, a byte-Poisson size beyond the weight table) go through
   * applyRunTs a few at a time.
   */
  applyRun(batch: EventBatch, from: number, to: number, untilUs: number): number {
    const kernel = readerKernels();
    // A call into the addon costs about as much as 70 events in TypeScript: short runs (fine
    // buckets of a sparse profile) stay here.
    if (kernel === null || to - from < MIN_KERNEL_RUN || batch.timeUs[from + MIN_KERNEL_RUN - 1]! > untilUs) {
      return this.applyRunTs(batch, from, to, untilUs);
    }
    const weights = weightsOf(this.sampling, this.probability);
    const poisson = this.sampling.kind === 'poisson';
    const state = kernelState;
    let i = from;
    for (;;) {
      state[0] = this.totalBytes;
      state[1] = this.totalBytesVar;
      state[2] = this.totalCount;
      state[3] = this.totalCountVar;
      state[4] = this.totalSampled;
      state[5] = this.lastRunUs;
      state[6] = this.unmatchedFrees;
      i = kernel.applyRun(batch.op, batch.timeUs, batch.trace, batch.size, i, to, untilUs, this.direct,
        this.sampled, this.bytes, this.bytesVar, this.count, this.countVar, poisson, weights.bounds, weights.bucketRange, weights.w, weights.cv, state);
      this.totalBytes = state[0]!;
      this.totalBytesVar = state[1]!;
      this.totalCount = state[2]!;
      this.totalCountVar = state[3]!;
      this.totalSampled = state[4]!;
      this.lastRunUs = state[5]!;
      this.unmatchedFrees = state[6]!;
      if (state[7] === 0) return i; // done: the same stopping rules as applyRunTs
      // The event at i needs TypeScript (the kernel checked it is an ALLOC or FREE in time).
      i = this.applyRunTs(batch, i, Math.min(to, i + TS_STEP), untilUs);
    }
  }

  /** applyRun in TypeScript: the reference the C kernel is tested against, and its fallback. */
  applyRunTs(batch: EventBatch, from: number, to: number, untilUs: number): number {
    const { op, timeUs, trace, size } = batch;
    const weights = weightsOf(this.sampling, this.probability);
    const W = weights.w;
    const CV = weights.cv;
    const bounds = weights.bounds;
    const nb = bounds.length;
    const bucketRange = weights.bucketRange;
    const poisson = this.sampling.kind === 'poisson';
    let direct = this.direct;
    let bytes = this.bytes;
    let bytesVar = this.bytesVar;
    let count = this.count;
    let countVar = this.countVar;
    let sampled = this.sampled;
    let tb = this.totalBytes;
    let tbv = this.totalBytesVar;
    let tc = this.totalCount;
    let tcv = this.totalCountVar;
    let ts = this.totalSampled;
    let last = this.lastRunUs;
    let i = from;
    for (; i < to; i++) {
      const o = op[i]!;
      if (o > OP_FREE) break;
      const t = timeUs[i]!;
      if (t > untilUs) break;
      if (t > last) last = t;
      const id = trace[i]!;
      let slot = id < direct.length ? direct[id]! - 1 : -1;
      if (slot < 0) {
        // First sight of a trace (or a far id): may grow the columns.
        slot = this.slotOf(id);
        direct = this.direct;
        bytes = this.bytes;
        bytesVar = this.bytesVar;
        count = this.count;
        countVar = this.countVar;
        sampled = this.sampled;
      }
      const s = size[i]!;
      let w: number;
      let cv: number;
      if (!poisson) {
        let r = s <= 0xffffffff ? bucketRange[32 - Math.clz32(s)]! : -1;
        if (r < 0) {
          r = 0;
          for (let k = 0; k < nb; k++) r += s >= bounds[k]! ? 1 : 0; // no data-dependent branch
        }
        w = W[r]!;
        cv = CV[r]!;
      } else if (s < POISSON_TABLE_SIZES && s >>> 0 === s) {
        w = W[s]!;
        cv = CV[s]!;
      } else {
        const p = this.probability(s);
        w = p > 0 ? 1 / p : 0;
        cv = (1 - p) * w * w;
      }
      if (w === 0) continue; // cannot have been sampled: carries no estimate
      // A FREE of a trace with nothing live, tested in the order that rarely branches: a trace
      // with nothing live is rare, while ALLOC and FREE interleave unpredictably.
      const had = sampled[slot]!;
      if (!(had > 0) && o === OP_FREE) {
        // A free of a block never allocated (the reader warns): never a negative count.
        this.unmatchedFrees++;
        continue;
      }
      const b = s * w;
      const bv = s * s * cv;
      // +1 for an ALLOC, -1 for a FREE: no branch on which.
      const sg = 1 - 2 * o;
      const left = had + sg;
      sampled[slot] = left;
      // What the event moves, the site's and the total's alike.
      let db = sg * b;
      let dbv = sg * bv;
      let dc = sg * w;
      let dcv = sg * cv;
      if (left === 0 && sg < 0) {
        // Back to nothing live: reset exactly, so rounding never accumulates across cycles; the
        // total loses what the site held (a free whose size no live block of the trace had, in
        // a stream cut by a window, would otherwise leave total and sites apart).
        db = -bytes[slot]!;
        dbv = -bytesVar[slot]!;
        dc = -count[slot]!;
        dcv = -countVar[slot]!;
        bytes[slot] = 0;
        bytesVar[slot] = 0;
        count[slot] = 0;
        countVar[slot] = 0;
      } else {
        bytes[slot] = bytes[slot]! + db;
        bytesVar[slot] = bytesVar[slot]! + dbv;
        count[slot] = count[slot]! + dc;
        countVar[slot] = countVar[slot]! + dcv;
      }
      ts += sg;
      if (ts === 0 && sg < 0) {
        tb = 0;
        tbv = 0;
        tc = 0;
        tcv = 0;
      } else {
        tb += db;
        tbv += dbv;
        tc += dc;
        tcv += dcv;
      }
    }
    this.totalBytes = tb;
    this.totalBytesVar = tbv;
    this.totalCount = tc;
    this.totalCountVar = tcv;
    this.totalSampled = ts;
    this.lastRunUs = last;
    return i;
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
      if (!(sampled[slot]! > 0)) {
        this.unmatchedFrees++; // a free of a block never allocated: never a negative count
        return slot;
      }
      const left = sampled[slot]! - 1;
      sampled[slot] = left;
      let db = b;
      let dbv = bv;
      let dc = w;
      let dcv = cv;
      if (left === 0) {
        // Back to nothing live: reset exactly, and the total loses what the site held (as in applyRun).
        db = bytes[slot]!;
        dbv = bytesVar[slot]!;
        dc = count[slot]!;
        dcv = countVar[slot]!;
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
        this.totalBytes -= db;
        this.totalBytesVar -= dbv;
        this.totalCount -= dc;
        this.totalCountVar -= dcv;
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

  /**
   * The total, with the part known exactly: traces whose live sampled allocations were all
   * drawn at p = 1 (no variance). Intervals add that part outside their skewed (gamma) part;
   * a trace mixing both counts whole as uncertain, which only widens its interval. One pass
   * over the traces.
   */
  total(): Estimate {
    return this.totalWhere(null);
  }

  /**
   * The total over the slots `keep` accepts (all when null), with its exact part as total()
   * has it: every partial total (a domain, a thread) gets the same interval method.
   */
  totalWhere(keep: ((slot: number) => boolean) | null): Estimate {
    if (keep) {
      const out = { bytes: 0, bytesVar: 0, count: 0, countVar: 0, sampled: 0, exactBytes: 0, exactCount: 0 };
      for (let s = 0; s < this.slots; s++) {
        if (!(this.sampled[s]! > 0) || !keep(s)) continue;
        out.bytes += this.bytes[s]!;
        out.bytesVar += this.bytesVar[s]!;
        out.count += this.count[s]!;
        out.countVar += this.countVar[s]!;
        out.sampled += this.sampled[s]!;
        if (this.bytesVar[s]! <= 0 && this.countVar[s]! <= 0) {
          out.exactBytes += this.bytes[s]!;
          out.exactCount += this.count[s]!;
        }
      }
      out.bytesVar = Math.max(0, out.bytesVar);
      out.countVar = Math.max(0, out.countVar);
      return out;
    }
    let exactBytes = 0;
    let exactCount = 0;
    for (let s = 0; s < this.slots; s++) {
      if (this.sampled[s]! > 0 && this.bytesVar[s]! <= 0 && this.countVar[s]! <= 0) {
        exactBytes += this.bytes[s]!;
        exactCount += this.count[s]!;
      }
    }
    return {
      bytes: this.totalBytes,
      bytesVar: Math.max(0, this.totalBytesVar),
      count: this.totalCount,
      countVar: Math.max(0, this.totalCountVar),
      sampled: this.totalSampled,
      exactBytes,
      exactCount,
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
