// Traces held compactly (man/hpx.5, LIMITS, memory): a profile may define millions of them, and
// an object per trace (the Trace, its frame array, a Map entry) cost about 500 bytes each. Here a
// trace is a run of 32-bit words in one pool (dropped, depth, then one frame index per frame)
// found through a flat offset table; a Trace object is made only when someone asks for one.

import type { Frame, Trace } from './types.js';

/** Trace ids below this are found through a flat table; larger (rare) ids through a Map. */
const DIRECT_IDS = 1 << 22;

export class TraceTable {
  /** id -> pool offset + 1 (0 = not defined), for ids < DIRECT_IDS. */
  private direct = new Int32Array(1024);
  private readonly far = new Map<number, number>();
  private pool = new Int32Array(4096);
  private used = 0;
  /** Traces given as objects (trace 0, placeholders for undefined ids): few. */
  private readonly objects = new Map<number, Trace>();
  private count = 0;

  /** Frames by internal index (the pool's frame words point here). */
  private readonly frameList: Frame[] = [];

  /** Register a frame; the returned index goes into addTrace's frame list. */
  addFrame(frame: Frame): number {
    this.frameList.push(frame);
    return this.frameList.length - 1;
  }

  /** A frame by its index (from addFrame). */
  frameAt(i: number): Frame {
    return this.frameList[i]!;
  }

  get size(): number {
    return this.count;
  }

  /** Define trace `id` from frame indexes (from addFrame), innermost first. */
  addTrace(id: number, dropped: number, frameIndexes: ArrayLike<number>): void {
    const depth = frameIndexes.length;
    const need = this.used + 2 + depth;
    if (need > this.pool.length) {
      let m = this.pool.length * 2;
      while (m < need) m *= 2;
      const p = new Int32Array(m);
      p.set(this.pool.subarray(0, this.used));
      this.pool = p;
    }
    const at = this.used;
    this.pool[at] = Math.min(dropped, 0x7fffffff);
    this.pool[at + 1] = depth;
    for (let i = 0; i < depth; i++) this.pool[at + 2 + i] = frameIndexes[i]!;
    this.used = need;
    if (!this.has(id)) this.count++;
    this.objects.delete(id);
    this.setOffset(id, at + 1);
  }

  /** Define trace `id` as an object (kept as is). */
  set(id: number, trace: Trace): void {
    if (!this.has(id)) this.count++;
    this.setOffset(id, 0);
    this.objects.set(id, trace);
  }

  private setOffset(id: number, v: number): void {
    if (id < DIRECT_IDS) {
      if (id >= this.direct.length) this.direct = grown(this.direct, id);
      this.direct[id] = v;
    } else if (v === 0) this.far.delete(id);
    else this.far.set(id, v);
  }

  private offsetOf(id: number): number {
    if (id < DIRECT_IDS) return id < this.direct.length ? this.direct[id]! : 0;
    return this.far.get(id) ?? 0;
  }

  has(id: number): boolean {
    return this.offsetOf(id) !== 0 || this.objects.has(id);
  }

  /** The trace as an object (a new one per call for pooled traces: callers keep what they need). */
  get(id: number): Trace | undefined {
    const o = this.offsetOf(id);
    if (o === 0) return this.objects.get(id);
    const at = o - 1;
    const depth = this.pool[at + 1]!;
    const frames: Frame[] = new Array(depth);
    for (let i = 0; i < depth; i++) frames[i] = this.frameList[this.pool[at + 2 + i]!]!;
    return { id, frames, dropped: this.pool[at]! };
  }

  /**
   * A pooled trace's frame indexes (innermost first, a view into the pool: read it before the
   * next addTrace) and dropped count; undefined for a trace kept as an object or not defined.
   */
  frameIndexesOf(id: number): { dropped: number; frames: Int32Array } | undefined {
    const o = this.offsetOf(id);
    if (o === 0) return undefined;
    const at = o - 1;
    return { dropped: this.pool[at]!, frames: this.pool.subarray(at + 2, at + 2 + this.pool[at + 1]!) };
  }

  /** Every defined id, ascending. */
  ids(): number[] {
    const out: number[] = [];
    const direct = this.direct;
    for (let id = 0; id < direct.length; id++) if (direct[id] !== 0 || this.objects.has(id)) out.push(id);
    for (const id of this.far.keys()) out.push(id);
    for (const id of this.objects.keys()) if (id >= direct.length) out.push(id);
    return out.sort((a, b) => a - b);
  }
}

/** Live sampled allocations per trace id (a flat table for ids below 2^22, a Map above). */
export class TraceCounts {
  private direct = new Int32Array(1024);
  private readonly far = new Map<number, number>();

  add(id: number): void {
    if (id < 1 << 22) {
      if (id >= this.direct.length) this.direct = grown(this.direct, id);
      this.direct[id]!++;
    } else this.far.set(id, (this.far.get(id) ?? 0) + 1);
  }

  /**
   * The flat part of the table: counts of ids below its length (all below 2^22 once met). Valid
   * until the next add() of a larger id; a caller may update counts in it directly.
   */
  directTable(): Int32Array {
    return this.direct;
  }

  /** Take one away; false (and nothing changed) when there was none. */
  remove(id: number): boolean {
    if (id < 1 << 22) {
      if (id >= this.direct.length || this.direct[id] === 0) return false;
      this.direct[id]!--;
      return true;
    }
    const n = this.far.get(id) ?? 0;
    if (n === 0) return false;
    if (n === 1) this.far.delete(id);
    else this.far.set(id, n - 1);
    return true;
  }
}

/** A copy of `a` at least `index + 1` long (doubling), for tables indexed by id. */
function grown(a: Int32Array<ArrayBuffer>, index: number): Int32Array<ArrayBuffer> {
  let m = a.length * 2;
  while (m <= index) m *= 2;
  const d = new Int32Array(m);
  d.set(a);
  return d;
}
