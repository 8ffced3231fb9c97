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
