// Two independent halves of a sampled profile's draws, for an honest peak (man/hp-estimates.7,
// "The peak"). The highest of the estimates at every moment is biased upwards: where few live
// blocks are drawn, it is mostly the moments when a heavy draw happened to be live. So the draws
// are split as if the recorder had sampled twice, independently: the peak moment is chosen on
// half A and the heap there is estimated on half B, which A's choice does not bias.

import type { SplitState } from '../format/index.js';
import { OP_ALLOC } from '../format/source.js';
import type { Header, Sampling } from '../format/types.js';
import { probabilityFunction } from '../format/weights.js';

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

function hashOf(trace: number, size: number): number {
  let h = Math.imul(trace ^ 0x27d4eb2f, 0x9e3779b1) ^ (size >>> 0) ^ Math.imul((size / 4294967296) >>> 0, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> 0;
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
  private used = 0;
  private full = new Uint8Array(1024);
  private hash = new Uint32Array(1024);
  private keyTrace = new Uint32Array(1024);
  private keySize = new Float64Array(1024);
  /** Per table slot: live draws in A only, B only, both. */
  private counts = new Float64Array(3 * 1024);

  constructor(
    sampling: Sampling,
    private readonly seed = 0,
    state?: SplitState,
  ) {
    this.q = probabilityFunction(halfSampling(sampling));
    if (state) {
      this.ordinal = state.ordinal;
      this.totalA = state.totalA;
      const pairs = state.pairs;
      for (let k = 0; k + 5 <= pairs.length; k += 5) {
        const s = this.insert(pairs[k]!, pairs[k + 1]!);
        this.counts[3 * s] = pairs[k + 2]!;
        this.counts[3 * s + 1] = pairs[k + 3]!;
        this.counts[3 * s + 2] = pairs[k + 4]!;
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
    let slot = this.find(trace, size);
    let which: number; // 0: A only, 1: B only, 2: both
    if (op !== OP_ALLOC && slot >= 0) {
      const c = this.counts;
      const b = 3 * slot;
      const n = c[b]! + c[b + 1]! + c[b + 2]!;
      const r = Math.floor(u * n);
      which = r < c[b]! ? 0 : r < c[b]! + c[b + 1]! ? 1 : 2;
      c[b + which]!--;
      if (n === 1) this.remove(slot);
    } else {
      const one = (1 - q) / (2 - q);
      which = u < one ? 0 : u < 2 * one ? 1 : 2;
      if (op === OP_ALLOC) {
        if (slot < 0) slot = this.insert(trace, size);
        this.counts[3 * slot + which]!++;
      }
    }
    if (which === 1) return HALF_B;
    this.totalA += (op === OP_ALLOC ? size : -size) / q;
    return which === 0 ? HALF_A : BOTH;
  }

  /** The state to continue from (the seek index's tail; pairs in (trace, size) order, so equal states encode equally). */
  state(): SplitState {
    const slots: number[] = [];
    for (let s = 0; s <= this.mask; s++) if (this.full[s]) slots.push(s);
    slots.sort((a, b) => this.keyTrace[a]! - this.keyTrace[b]! || this.keySize[a]! - this.keySize[b]!);
    const pairs = new Float64Array(5 * slots.length);
    slots.forEach((s, i) => {
      pairs[5 * i] = this.keyTrace[s]!;
      pairs[5 * i + 1] = this.keySize[s]!;
      pairs[5 * i + 2] = this.counts[3 * s]!;
      pairs[5 * i + 3] = this.counts[3 * s + 1]!;
      pairs[5 * i + 4] = this.counts[3 * s + 2]!;
    });
    return { ordinal: this.ordinal, totalA: this.totalA, pairs };
  }

  private find(trace: number, size: number): number {
    let i = hashOf(trace, size) & this.mask;
    while (this.full[i]) {
      if (this.keyTrace[i] === trace && this.keySize[i] === size) return i;
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  private insert(trace: number, size: number): number {
    if (2 * (this.used + 1) > this.mask + 1) this.grow();
    const h = hashOf(trace, size);
    let i = h & this.mask;
    while (this.full[i]) i = (i + 1) & this.mask;
    this.full[i] = 1;
    this.hash[i] = h;
    this.keyTrace[i] = trace;
    this.keySize[i] = size;
    this.counts[3 * i] = this.counts[3 * i + 1] = this.counts[3 * i + 2] = 0;
    this.used++;
    return i;
  }

  /** Empty slot i, moving later entries of its probe run back so that every lookup still finds them. */
  private remove(i: number): void {
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (!this.full[j]) break;
      const home = this.hash[j]! & mask;
      // Entry j stays where it is when its home lies cyclically in (i, j].
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      this.full[i] = 1;
      this.hash[i] = this.hash[j]!;
      this.keyTrace[i] = this.keyTrace[j]!;
      this.keySize[i] = this.keySize[j]!;
      this.counts[3 * i] = this.counts[3 * j]!;
      this.counts[3 * i + 1] = this.counts[3 * j + 1]!;
      this.counts[3 * i + 2] = this.counts[3 * j + 2]!;
      i = j;
    }
    this.full[i] = 0;
    this.used--;
  }

  private grow(): void {
    const { full, hash, keyTrace, keySize, counts } = this;
    const cap = 2 * (this.mask + 1);
    this.mask = cap - 1;
    this.full = new Uint8Array(cap);
    this.hash = new Uint32Array(cap);
    this.keyTrace = new Uint32Array(cap);
    this.keySize = new Float64Array(cap);
    this.counts = new Float64Array(3 * cap);
    for (let s = 0; s < full.length; s++) {
      if (!full[s]) continue;
      let i = hash[s]! & this.mask;
      while (this.full[i]) i = (i + 1) & this.mask;
      this.full[i] = 1;
      this.hash[i] = hash[s]!;
      this.keyTrace[i] = keyTrace[s]!;
      this.keySize[i] = keySize[s]!;
      this.counts[3 * i] = counts[3 * s]!;
      this.counts[3 * i + 1] = counts[3 * s + 1]!;
      this.counts[3 * i + 2] = counts[3 * s + 2]!;
    }
  }
}
