// Horvitz-Thompson weights: the probability each sampled event was drawn with, from the
// header's sampler and the event's size. Readers weight per event, before any sum.

import type { Sampling } from './types.js';

/**
 * A fast p(size) for one sampler: the hot loops of every reader call it once per event, so
 * the sampler is looked at once, not per call.
 */
export function probabilityFunction(sampling: Sampling): (size: number) => number {
  if (sampling.kind === 'poisson') {
    const R = sampling.meanBytes;
    // -expm1 keeps full precision for sizes far below R, where 1-exp would cancel.
    return (size) => (size > 0 ? -Math.expm1(-size / R) : 0);
  }
  const bounds = Float64Array.from(sampling.bounds);
  const probs = Float64Array.from(sampling.probs);
  const n = bounds.length;
  // Few ranges in practice (the seed's default has two), so a linear scan beats a search.
  return (size) => {
    for (let i = 0; i < n; i++) if (size < bounds[i]!) return probs[i]!;
    return 1;
  };
}

/** Probability that an allocation of `size` bytes was sampled. */
export function sampleProbability(sampling: Sampling, size: number): number {
  return probabilityFunction(sampling)(size);
}

/** Count weight 1/p (0 when p = 0: such events cannot occur, and if they do they carry no estimate). */
export function countWeight(sampling: Sampling, size: number): number {
  const p = sampleProbability(sampling, size);
  return p > 0 ? 1 / p : 0;
}

/**
 * Per sampled event, its contribution to the unbiased estimate of the variance of a
 * Horvitz-Thompson byte total: w(w-1)s^2 with w = 1/p, i.e. s^2 (1-p)/p^2. Summed over the
 * sampled events this estimates the population variance sum s^2 (1-p)/p (both samplers).
 */
export function byteVariance(sampling: Sampling, size: number): number {
  const p = sampleProbability(sampling, size);
  if (p <= 0 || p >= 1) return 0;
  return (size * size * (1 - p)) / (p * p);
}

/** Same for a count total: w(w-1) = (1-p)/p^2 per sampled event. */
export function countVariance(sampling: Sampling, size: number): number {
  const p = sampleProbability(sampling, size);
  if (p <= 0 || p >= 1) return 0;
  return (1 - p) / (p * p);
}

/**
 * 95% interval half-width from a summed variance (normal approximation).
 * Callers report [estimate - h, estimate + h], clamped at 0 below.
 */
export const Z95 = 1.959963984540054;
export function halfWidth95(variance: number): number {
  return variance > 0 ? Z95 * Math.sqrt(variance) : 0;
}

/** The seed's default table {128: 1e-4, 8192: 0.1}. */
export const DEFAULT_SAMPLING: Sampling = Object.freeze({
  kind: 'table',
  bounds: [128, 8192],
  probs: [1e-4, 0.1],
}) as Sampling;

/**
 * What the recorder's histogram counted in sizes lo .. hi - 1: allocations, bytes, and the sum of
 * squared sizes with each bucket's sizes taken at its mean. Entry 0 holds sizes 0..1, entry i > 0
 * sizes [2^i, 2^(i+1)); a bucket a bound splits counts by the width of the overlap.
 */
export function histogramIn(histogram: readonly { count: number; bytes: number }[] | null, lo: number, hi: number): { count: number; bytes: number; squares: number } {
  let count = 0;
  let bytes = 0;
  let squares = 0;
  histogram?.forEach((b, i) => {
    const bLo = i === 0 ? 0 : 2 ** i;
    const bHi = 2 ** (i + 1);
    if (bHi <= lo || bLo >= hi || !(b.count > 0)) return;
    const share = (Math.min(hi, bHi) - Math.max(lo, bLo)) / (bHi - bLo);
    count += b.count * share;
    bytes += b.bytes * share;
    squares += (b.bytes * b.bytes * share) / b.count;
  });
  return { count, bytes, squares };
}

/** A size range the table sampler drew with p = 0 although the recorder's histogram saw allocations in it. */
export interface UnsampledRange {
  /** Sizes lo .. hi - 1 bytes. */
  lo: number;
  hi: number;
  /** Allocations and bytes the histogram counted there (buckets a bound splits: by their overlap). */
  count: number;
  bytes: number;
}

/**
 * The ranges recorded at p = 0 that held allocations: no event of theirs was ever drawn, so no
 * estimate includes them and no interval can bound them (hp-record accepts p = 0 to leave a
 * range out on purpose). Empty without a histogram, for byte-Poisson, or when none.
 */
export function unsampledRanges(sampling: Sampling, histogram: readonly { count: number; bytes: number }[] | null): UnsampledRange[] {
  if (sampling.kind !== 'table' || !histogram) return [];
  const out: UnsampledRange[] = [];
  for (let r = 0; r < sampling.probs.length; r++) {
    if (sampling.probs[r]! > 0) continue;
    const lo = r === 0 ? 0 : sampling.bounds[r - 1]!;
    const hi = sampling.bounds[r]!;
    const { count, bytes } = histogramIn(histogram, lo, hi);
    if (count >= 0.5) out.push({ lo, hi, count: Math.round(count), bytes: Math.round(bytes) });
  }
  return out;
}

/** The readers' one notice for unsampledRanges (said once per profile), or null when there are none. */
export function unsampledNotice(sampling: Sampling, histogram: readonly { count: number; bytes: number }[] | null): string | null {
  const ranges = unsampledRanges(sampling, histogram);
  if (ranges.length === 0) return null;
  const what = ranges.map((r) => `${r.count.toLocaleString('en-US')} allocation${r.count === 1 ? '' : 's'} of ${r.lo}..${r.hi - 1} bytes (${r.bytes.toLocaleString('en-US')} bytes)`).join(' and ');
  return `sampled with p = 0 (--sample): ${what} are in no estimate; totals leave them out`;
}
