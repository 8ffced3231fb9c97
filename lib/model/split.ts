// Two independent halves of a sampled profile's draws, for an honest peak (man/hp-estimates.7,
// "The peak"). The highest of the estimates at every moment is biased upwards: where few live
// blocks are drawn, it is mostly the moments when a heavy draw happened to be live. So the draws
// are split as if the recorder had sampled twice, independently: the peak moment is chosen on
// half A and the heap there is estimated on half B, which A's choice does not bias.

import type { SplitState } from '../format/index.js';
import { OP_ALLOC, OP_FREE, type EventBatch } from '../format/source.js';
import type { Header, Sampling } from '../format/types.js';
import { probabilityFunction } from '../format/weights.js';
import { readerKernels, type NativeDecoder } from '../native.js';

/** q = 1 - sqrt(1 - p): drawn twice independently at q, an allocation is in either draw with p. */
export function halfProbability(p: number): number {
  return p >= 1 ? 1 : p > 0 ? -Math.expm1(0.5 * Math.log1p(-p)) : 0;
}

/** Whether every allocation the sampler draws is known exactly (p is 0 or 1 at every size). */
export function exactSampling(sampling: Sampling): boolean {
  return sampling.kind === 'table' && sampling.probs.every((p) => p === 0 || p === 1);
}

/** The sampler of one half: each size drawn with halfProbability of its p. */
export function halfSampling(sampling: Sampling): Sampling {
  // Byte-Poisson: 1 - sqrt(exp(-s/R)) = 1 - exp(-s/2R), byte-Poisson with twice the mean.
  if (sampling.kind === 'poisson') return { kind: 'poisson', meanBytes: 2 * sampling.meanBytes };
  return { kind: 'table', bounds: sampling.bounds.slice(), probs: sampling.probs.map(halfProbability) };
}

/** Which halves hold an event (a bit set). */
export const HALF_A = 1;
export const HALF_B = 2;
const BOTH = HALF_A | HALF_B;

/**
 * The split's seed: from the profile's id (random per recording), so that a profile always
 * splits the same way and different profiles split independently.
 */
export function splitSeed(header: Header): number {
  const id = header.profileId;
  return id && /^[0-9a-f]{8}/i.test(id) ? parseInt(id.slice(0, 8), 16) : 0;
}

/** A 32-bit mix (a bijection with good avalanche). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A uniform draw in [0, 1) from an event's ordinal and the seed. */
function uniformOf(n: number, seed: number): number {
  return mix32((n >>> 0) ^ mix32(((n / 4294967296) >>> 0) ^ seed)) / 4294967296;
}

/** Pairs keyed in the table: trace * 2^21 + size + 1 (0: an empty entry), exact below 2^52. */
const SIZE_KEYED = 2 ** 21;
const TRACE_KEYED = 2 ** 31;
/** Counts of one pair packed in one f64: A only + B only * K + both * K^2, each below K. */
const K = 2 ** 17;
const STEP = [1, K, K * K];

/** Category j's count in packed counts c (without %, which V8 computes by a call on doubles). */
function countOf(c: number, j: number): number {
  const above = Math.floor(c / STEP[j]!);
  return above - Math.floor(above / K) * K;
}

/** Whether a pair is kept in the table (the map keeps the rest). A negative size (hostile NDJSON) is not: its key could be 0, an empty entry. */
function keyable(trace: number, size: number): boolean {
  return size >= 0 && size < SIZE_KEYED && trace < TRACE_KEYED;
}

/**
 * A key's home entry in a table of 2^(32 - shift) entries: the top bits of one multiply
 * (Fibonacci hashing) of the key's low 32 bits mixed with its high ones. native/decoder/kernels.c
 * computes the same. Cheap, because removal recomputes the home of every entry it moves past.
 */
function homeOf(key: number, shift: number): number {
  return Math.imul((key >>> 0) ^ Math.imul((key / 4294967296) >>> 0, 0x85ebca6b), 0x9e3779b1) >>> shift;
}

/**
 * Splits the draws of a sampled profile into two independent samples A and B, each an
 * allocation drawn with q = halfProbability(p): a drawn allocation is in A only, B only or both
 * in proportions q(1-q) : q(1-q) : q^2, i.e. (1-q)/(2-q) each for one half alone, so that it is
 * in A with probability q and in B with probability q, independently. Allocations drawn at
 * p = 1 are in both. A free names its trace and size, not its allocation: it leaves one of the
 * live draws of that trace and size, chosen in proportion to how many each category holds (a
 * free with none live, of an allocation from before the recording, gets a fresh draw). The
 * draws come from each event's ordinal among the sampled ones and the seed (splitSeed). `totalA` is A's estimate of the
 * live bytes (each byte weighted 1/q).
 *
 * The live draws are counted in an open-addressing table (linear probing, deletion by backward
 * shift), so memory follows the pairs live now, not every pair ever seen.
 */
export class HalfSplit {
  totalA = 0;
  private ordinal = 0;
  private readonly q: (size: number) => number;
  private mask = 1023;
  /** 32 - log2(entries): a home is the top bits of a 32-bit hash. */
  private shift = 22;
  private used = 0;
  /**
   * The table: per entry its key and its packed counts side by side, 16 bytes, so that a
   * look-up costs one cache miss and the table stays small (a profile can hold hundreds of
   * thousands of pairs live). Entry i is tab[2i], tab[2i + 1].
   */
  private tab = new Float64Array(2 * 1024);
  /** What warm() read (kept, so that its loads are not optimized away). */
  warmth = 0;
  /** Pairs the table cannot hold (a size or trace id past the key's range, a count past K): by "trace:size". */
  private readonly others = new Map<string, [number, number, number]>();
  /** How many of those are pairs of the keyed range (whose count outgrew the table). */
  private keyedOthers = 0;
  /** The addon's loop (table sampler only), the probability bounds and half probabilities it reads, and its state. */
  private readonly kernel: NativeDecoder | null;
  private readonly kBounds: Float64Array;
  private readonly kQ: Float64Array;
  private readonly kState = new Float64Array(7);

  constructor(
    sampling: Sampling,
    private readonly seed = 0,
    state?: SplitState,
  ) {
    this.q = probabilityFunction(halfSampling(sampling));
    this.kernel = sampling.kind === 'table' ? readerKernels() : null;
    this.kBounds = Float64Array.from(sampling.kind === 'table' ? sampling.bounds : []);
    this.kQ = Float64Array.from(sampling.kind === 'table' ? sampling.probs.map(halfProbability) : []);
    if (state) {
      this.ordinal = state.ordinal;
      this.totalA = state.totalA;
      const pairs = state.pairs;
      for (let k = 0; k + 5 <= pairs.length; k += 5) {
        const [trace, size, a, b, both] = [pairs[k]!, pairs[k + 1]!, pairs[k + 2]!, pairs[k + 3]!, pairs[k + 4]!];
        if (keyable(trace, size) && a < K && b < K && both < K) {
          const e = this.insert(trace * SIZE_KEYED + size + 1); // (may grow the table: read this.tab after)
          this.tab[2 * e + 1] = a + b * K + both * K * K;
        } else {
          this.others.set(`${trace}:${size}`, [a, b, both]);
          if (keyable(trace, size)) this.keyedOthers++;
        }
      }
    }
  }

  /** The halves (HALF_A | HALF_B) that hold this ALLOC or FREE event; A's total follows it. */
  event(op: number, trace: number, size: number): number {
    const q = this.q(size);
    if (q >= 1 || q <= 0) {
      // Known exactly (or never drawn: such an event weighs nothing in either half).
      if (q >= 1) this.totalA += op === OP_ALLOC ? size : -size;
      return BOTH;
    }
    const u = uniformOf(this.ordinal++, this.seed);
    const which = keyable(trace, size) ? this.keyed(op, trace * SIZE_KEYED + size + 1, u, q) : this.other(op, `${trace}:${size}`, u, q);
    if (which === 1) return HALF_B;
    this.totalA += (op === OP_ALLOC ? size : -size) / q;
    return which === 0 ? HALF_A : BOTH;
  }

  /** splitBatch's results for the last batch: per event, the halves that hold it and A's total after it. */
  halves = new Uint8Array(1 << 14);
  totals = new Float64Array(1 << 14);

  /** Split a whole batch into this.halves and this.totals (see run); returns A's total before it. */
  splitBatch(batch: EventBatch): number {
    const before = this.totalA;
    if (this.halves.length < batch.length) {
      this.halves = new Uint8Array(batch.length);
      this.totals = new Float64Array(batch.length);
    }
    this.run(batch, 0, batch.length, this.halves, this.totals);
    return before;
  }

  /**
   * Split events [from, to) of a batch: halves[i] gets event(i)'s result for an ALLOC or FREE
   * (0 for any other event) and totals[i] A's total after event i. The addon's loop
   * (native/decoder/kernels.c) does it where it is built, for a table sampler, with the same
   * arithmetic in the same order (test/analysis/split-kernel.test.ts compares the two); events
   * it leaves (pairs the table does not hold, a table to grow) go through event() here.
   */
  run(batch: EventBatch, from: number, to: number, halves: Uint8Array, totals: Float64Array): void {
    const { op, trace, size } = batch;
    const kernel = this.kernel;
    const st = this.kState;
    let i = from;
    while (i < to) {
      if (kernel) {
        st[0] = this.ordinal;
        st[1] = this.totalA;
        st[2] = this.used;
        st[3] = this.mask;
        st[4] = this.seed >>> 0;
        st[5] = this.keyedOthers > 0 ? 1 : 0;
        i = kernel.splitRun(op, batch.timeUs, trace, size, i, to, this.tab, st, this.kBounds, this.kQ, halves, totals);
        this.ordinal = st[0]!;
        this.totalA = st[1]!;
        this.used = st[2]!;
        if (i >= to) break;
      } else if (((i - from) & 1023) === 0) this.warm(trace, size, i, Math.min(to, i + 1024));
      const o = op[i]!;
      halves[i] = o === OP_ALLOC || o === OP_FREE ? this.event(o, trace[i]!, size[i]!) : 0;
      totals[i] = this.totalA;
      i++;
    }
  }

  /**
   * Touch the table entries of events [from, to) of a batch before they are split: the loads
   * are independent, so the processor overlaps their cache misses, and event() then finds its
   * entries in cache. Only a hint, with no effect on the split.
   */
  private warm(trace: Uint32Array, size: Float64Array, from: number, to: number): void {
    const tab = this.tab;
    const shift = this.shift;
    let acc = 0;
    for (let i = from; i < to; i++) {
      const s = size[i]!;
      const t = trace[i]!;
      if (keyable(t, s)) acc += tab[2 * homeOf(t * SIZE_KEYED + s + 1, shift)]!;
    }
    this.warmth = acc;
  }

  /** A fresh draw: 0 (A only), 1 (B only) or 2 (both), in proportions q(1-q) : q(1-q) : q^2. */
  private static fresh(u: number, q: number): number {
    const one = (1 - q) / (2 - q);
    return u < one ? 0 : u < 2 * one ? 1 : 2;
  }

  /** The group a free leaves: 0, 1 or 2 in proportion to the a, b and n - a - b live draws they hold. */
  private static held(u: number, a: number, b: number, n: number): number {
    const r = Math.floor(u * n);
    return r < a ? 0 : r < a + b ? 1 : 2;
  }

  /** The map's name of a table key: "trace:size". */
  private static nameOf(key: number): string {
    return `${Math.floor((key - 1) / SIZE_KEYED)}:${(key - 1) % SIZE_KEYED}`;
  }

  private keyed(op: number, key: number, u: number, q: number): number {
    let e = this.find(key);
    if (e < 0 && this.others.size > 0) {
      // A pair whose count outgrew the table lives in the map from then on.
      const name = HalfSplit.nameOf(key);
      if (this.others.has(name)) return this.other(op, name, u, q, true);
    }
    if (op !== OP_ALLOC) {
      if (e < 0) return HalfSplit.fresh(u, q);
      const c = this.tab[2 * e + 1]!;
      const both = Math.floor(c / (K * K));
      const ab = c - both * K * K;
      const b = Math.floor(ab / K);
      const a = ab - b * K;
      const n = a + b + both;
      const which = HalfSplit.held(u, a, b, n);
      if (n === 1) this.remove(e);
      else this.tab[2 * e + 1] = c - STEP[which]!;
      return which;
    }
    const which = HalfSplit.fresh(u, q);
    if (e < 0) e = this.insert(key);
    const c = this.tab[2 * e + 1]!;
    if (countOf(c, which) === K - 1) {
      // This category of the pair is about to pass what a packed count holds: it moves to the map.
      this.remove(e);
      const held: [number, number, number] = [countOf(c, 0), countOf(c, 1), countOf(c, 2)];
      held[which]!++;
      this.others.set(HalfSplit.nameOf(key), held);
      this.keyedOthers++;
    } else this.tab[2 * e + 1] = c + STEP[which]!;
    return which;
  }

  private other(op: number, name: string, u: number, q: number, keyedPair = false): number {
    const held = this.others.get(name);
    if (op !== OP_ALLOC) {
      if (!held) return HalfSplit.fresh(u, q);
      const n = held[0] + held[1] + held[2];
      const which = HalfSplit.held(u, held[0], held[1], n);
      held[which]!--;
      if (n === 1) {
        this.others.delete(name);
        if (keyedPair) this.keyedOthers--;
      }
      return which;
    }
    const which = HalfSplit.fresh(u, q);
    if (held) held[which]!++;
    else this.others.set(name, which === 0 ? [1, 0, 0] : which === 1 ? [0, 1, 0] : [0, 0, 1]);
    return which;
  }

  /** The state to continue from (the seek index's tail; pairs in (trace, size) order, so equal states encode equally). */
  state(): SplitState {
    const rows: number[][] = [];
    for (let e = 0; e <= this.mask; e++) {
      const key = this.tab[2 * e]!;
      if (key === 0) continue;
      const c = this.tab[2 * e + 1]!;
      rows.push([Math.floor((key - 1) / SIZE_KEYED), (key - 1) % SIZE_KEYED, countOf(c, 0), countOf(c, 1), countOf(c, 2)]);
    }
    for (const [name, held] of this.others) {
      const [trace, size] = name.split(':').map(Number);
      rows.push([trace!, size!, ...held]);
    }
    rows.sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!);
    return { ordinal: this.ordinal, totalA: this.totalA, pairs: Float64Array.from(rows.flat()) };
  }

  /** The entry of key, or -1. */
  private find(key: number): number {
    const tab = this.tab;
    const mask = this.mask;
    let i = homeOf(key, this.shift);
    for (;;) {
      const k = tab[2 * i]!;
      if (k === key) return i;
      if (k === 0) return -1;
      i = (i + 1) & mask;
    }
  }

  /** A new entry for key, with no counts. */
  private insert(key: number): number {
    // At most 3/4 full: linear probing's runs stay short (about 2.5 entries looked at on a miss).
    if (4 * (this.used + 1) > 3 * (this.mask + 1)) this.grow();
    const i = this.place(key);
    this.tab[2 * i] = key;
    this.tab[2 * i + 1] = 0;
    this.used++;
    return i;
  }

  /** The first empty entry of key's probe run. */
  private place(key: number): number {
    const mask = this.mask;
    let i = homeOf(key, this.shift);
    while (this.tab[2 * i] !== 0) i = (i + 1) & mask;
    return i;
  }

  /** Empty entry i, moving later entries of its probe run back so that every look-up still finds them. */
  private remove(i: number): void {
    const tab = this.tab;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const key = tab[2 * j]!;
      if (key === 0) break;
      const home = homeOf(key, this.shift);
      // Entry j stays where it is when its home lies cyclically in (i, j].
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      tab[2 * i] = key;
      tab[2 * i + 1] = tab[2 * j + 1]!;
      i = j;
    }
    tab[2 * i] = 0;
    this.used--;
  }

  private grow(): void {
    const old = this.tab;
    this.mask = 2 * (this.mask + 1) - 1;
    this.shift--;
    this.tab = new Float64Array(2 * (this.mask + 1));
    for (let e = 0; e < old.length; e += 2) {
      const key = old[e]!;
      if (key === 0) continue;
      const i = this.place(key);
      this.tab[2 * i] = key;
      this.tab[2 * i + 1] = old[e + 1]!;
    }
  }
}
