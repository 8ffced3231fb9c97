// Horvitz-Thompson estimates as they leave the model: a value, its estimated variance, and
// the NDJSON fields a command writes for them (value, and a 95% interval unless exact).

import { halfWidth95 } from '../format/weights.js';

/** Sums of per-event weighted contributions for one group of sampled allocations. */
export interface Estimate {
  /** Estimated bytes: sum of s/p. */
  bytes: number;
  /** Estimated variance of `bytes`: sum of s^2 (1-p)/p^2. */
  bytesVar: number;
  /** Estimated allocation count: sum of 1/p. */
  count: number;
  /** Estimated variance of `count`: sum of (1-p)/p^2. */
  countVar: number;
  /** Sampled allocations behind the estimate (events actually in the file). */
  sampled: number;
}

export function emptyEstimate(): Estimate {
  return { bytes: 0, bytesVar: 0, count: 0, countVar: 0, sampled: 0 };
}

export function addEstimate(into: Estimate, e: Estimate): void {
  into.bytes += e.bytes;
  into.bytesVar += e.bytesVar;
  into.count += e.count;
  into.countVar += e.countVar;
  into.sampled += e.sampled;
}

/** [lo, hi] of the 95% interval, clamped at 0 below; null when the estimate is exact. */
export function interval95(value: number, variance: number): [number, number] | null {
  const h = halfWidth95(variance);
  if (h <= 0) return null;
  return [Math.max(0, value - h), value + h];
}

/** Estimates are printed as integers: bytes and counts are whole, and noise is far above 1. */
export function whole(x: number): number {
  const r = Math.round(x);
  return r === 0 ? 0 : r; // never -0 in JSON
}

/**
 * Write `name`, and `name_lo`/`name_hi` (the 95% interval, rounded outwards) when the
 * estimate has any uncertainty. Negative values (possible only on a stream cut in the
 * middle, where frees precede their allocations) are clamped to 0.
 */
export function putEstimate(out: Record<string, unknown>, name: string, value: number, variance: number): void {
  const v = Math.max(0, value);
  out[name] = whole(v);
  const ci = interval95(v, variance);
  if (ci) {
    out[`${name}_lo`] = whole(Math.floor(ci[0]));
    out[`${name}_hi`] = whole(Math.ceil(ci[1]));
  }
}
