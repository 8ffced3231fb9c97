// The power-of-two size table (the seed's HEAP USAGE SUMMARY ranges): per range, sampled
// allocations and their Horvitz-Thompson estimates from events, the recorder's exact
// histogram when it wrote one, and a check of the sampler against it.

import { OP_ALLOC, OP_END, type EventBatch } from '../format/source.js';
import type { HistogramBucket, Sampling } from '../format/types.js';
import { probabilityFunction } from '../format/weights.js';
import { binomialAtLeast, binomialAtMost, normalQuantile, type Unseen } from './estimate.js';

/** Range index of a size: 0 for 0 and 1, i for [2^i, 2^(i+1)). */
export function sizeRange(size: number): number {
  if (size < 2) return 0;
  if (size < 4294967296) return 31 - Math.clz32(size);
  let i = Math.floor(Math.log2(size));
  if (2 ** i > size) i--;
  else if (2 ** (i + 1) <= size) i++;
  return i;
}

/** Smallest and largest size in range i. */
export function rangeBounds(i: number): [number, number] {
  return i === 0 ? [0, 1] : [2 ** i, 2 ** (i + 1) - 1];
}

export const RANGES = 64;

/** Per-range sums over sampled allocations, weighted per event. */
export class SizeTable {
  readonly sampled = new Float64Array(RANGES);
  readonly count = new Float64Array(RANGES);
  readonly countVar = new Float64Array(RANGES);
  readonly bytes = new Float64Array(RANGES);
  readonly bytesVar = new Float64Array(RANGES);
  /** Estimated sum of s^2 over all allocations (sampled or not): what the plan optimizer needs. */
  readonly squares = new Float64Array(RANGES);
  lastUs = 0;
  /** Time of the run's END marker, null when the events have none (cut or incomplete). */
  endUs: number | null = null;
  private readonly probability: (size: number) => number;

  constructor(readonly sampling: Sampling) {
    this.probability = probabilityFunction(sampling);
  }

  consume(batch: EventBatch): void {
    const { op, size, timeUs } = batch;
    const n = batch.length;
    for (let i = 0; i < n; i++) {
      const t = timeUs[i]!;
      if (t > this.lastUs) this.lastUs = t;
      if (op[i] !== OP_ALLOC) {
        if (op[i] === OP_END) this.endUs = t;
        continue;
      }
      const s = size[i]!;
      const p = this.probability(s);
      if (p <= 0) continue;
      const r = sizeRange(s);
      const w = 1 / p;
      const cv = (1 - p) * w * w;
      this.sampled[r]! += 1;
      this.count[r]! += w;
      this.countVar[r]! += cv;
      this.bytes[r]! += s * w;
      this.bytesVar[r]! += s * s * cv;
      this.squares[r]! += s * s * w;
    }
  }

  /**
   * Seconds the counts cover: the run (its last event), or, for events cut to a window
   * (hp-events --from/--to), the window's part of the run: from its start (or the run's) to its
   * end, or to the run's end where that came first.
   */
  coveredSeconds(window: { fromUs: number | null; toUs: number | null } | undefined): number {
    if (!window || (window.fromUs === null && window.toUs === null)) return this.lastUs / 1e6;
    const from = window.fromUs ?? 0;
    const to = window.toUs === null ? this.lastUs : this.endUs !== null ? Math.min(window.toUs, this.endUs) : Math.max(window.toUs, this.lastUs);
    return Math.max(0, to - from) / 1e6;
  }

  /** Index of the last range with any data (events or histogram), -1 if none. */
  lastUsedRange(hist: HistogramBucket[] | null): number {
    let last = -1;
    for (let i = 0; i < RANGES; i++) {
      if (this.sampled[i]! > 0 || (hist && hist[i] && hist[i]!.count > 0)) last = i;
    }
    return last;
  }
}

/** Lowest and highest sampling probability any size in range i has under `sampling`. */
export function probabilityRange(sampling: Sampling, i: number): [number, number] {
  const prob = probabilityFunction(sampling);
  const [lo, hi] = rangeBounds(i);
  if (sampling.kind === 'poisson') return [prob(lo), prob(hi)]; // increasing in size
  let min = prob(lo);
  let max = min;
  for (const b of sampling.bounds) {
    if (b > lo && b <= hi) {
      const p = prob(b);
      if (p < min) min = p;
      if (p > max) max = p;
    }
  }
  return [min, max];
}

export interface SamplerCheck {
  /** Observed sampled/count from the recorder's histogram. */
  rate: number;
  pMin: number;
  pMax: number;
  /**
   * How far outside the expected band the sampled count is, as the standard normal deviate
   * with the same one-sided tail probability as the exact binomial tail (0 when inside).
   */
  sigmas: number;
  ok: boolean;
}

/**
 * Does the recorder's own count of sampled allocations in a range agree with the configured
 * probability? Each allocation of the range is drawn with a probability in [pMin, pMax], so
 * its sampled count lies between Binomial(count, pMin) and Binomial(count, pMax) in
 * distribution; a count in the exact tail beyond either, as unlikely as `limit` standard
 * deviations of a normal (one-sided 2.9e-7 at 5), is flagged. Exact, not the normal
 * approximation: at count * p far below 1 (a few hundred allocations at p = 1e-4), one draw is
 * a 2% event, not 7 standard errors. This is what would have caught heapprof 1.0.2 sampling
 * everything while weighting by 1/p.
 */
export function checkSampler(sampling: Sampling, i: number, h: HistogramBucket, limit = 5): SamplerCheck | null {
  if (h.count <= 0) return null;
  const [pMin, pMax] = probabilityRange(sampling, i);
  const n = h.count;
  const k = Math.min(h.sampled, n);
  let tail = 1;
  if (h.sampled > n) tail = 0; // more draws than allocations: no sampler does that
  else if (k < n * pMin) tail = binomialAtMost(n, pMin, k);
  else if (k > n * pMax) tail = binomialAtLeast(n, pMax, k);
  // A tail below the smallest double reads as that double's deviate, about 38.
  const sigmas = tail >= 0.5 ? 0 : -normalQuantile(Math.max(tail, Number.MIN_VALUE));
  return { rate: h.sampled / n, pMin, pMax, sigmas, ok: sigmas <= limit };
}

/**
 * What size range i could hold without one draw: one allocation of the heaviest weight any of its
 * sizes has (counts 1/p, bytes s/p; man/hp-estimates.7), so that a range with nothing drawn has
 * an upper limit (Garwood's for a count of 0) instead of none. Null when nothing can hide: every
 * size of the range is drawn at p = 1 (or at p = 0, which no estimate covers), or the recorder's
 * histogram counted no allocation there.
 */
export function rangeUnseen(sampling: Sampling, i: number, h: HistogramBucket | null): Unseen | null {
  if (h && !(h.count > 0)) return null;
  const prob = probabilityFunction(sampling);
  const [lo, hi] = rangeBounds(i);
  // The candidates: the range's ends and each side of a table bound inside it (p is constant
  // between bounds, so s/p peaks at the top of each piece; byte-Poisson's s/p grows with s).
  const sizes = [lo, hi];
  if (sampling.kind === 'table') for (const b of sampling.bounds) if (b > lo && b <= hi) sizes.push(b - 1, b);
  let bytes = 0;
  let count = 0;
  let pOfBytes = 1;
  let pOfCount = 1;
  for (const s of sizes) {
    const p = prob(s);
    if (!(p > 0 && p < 1)) continue;
    if (Math.max(1, s) / p > bytes) [bytes, pOfBytes] = [Math.max(1, s) / p, p];
    if (1 / p > count) [count, pOfCount] = [1 / p, p];
  }
  if (count <= 0) return null;
  // The recorder counted allocations here but no bytes (all of 0 bytes): no bytes can hide.
  if (h && !(h.bytes > 0)) bytes = 0;
  return { bytes: { weight: bytes, variance: bytes * bytes * (1 - pOfBytes) }, count: { weight: count, variance: count * count * (1 - pOfCount) } };
}
