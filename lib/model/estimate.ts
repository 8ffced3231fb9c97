// Horvitz-Thompson estimates as they leave the model: a value, its estimated variance, and
// the NDJSON fields a command writes for them (value, and a 95% interval unless exact).
//
// Intervals (man/hp-estimates.7): a weighted sum of sampled allocations is skewed, and when
// few or no live allocations of a sampled size range were drawn its plug-in variance is near
// 0 although much may be live unseen. So the interval is the gamma interval of Fay and Feuer
// (1997) for weighted sums of rare events: the uncertain part y (allocations drawn with p < 1)
// with variance v is taken as gamma-distributed with that mean and variance for the lower
// limit, and, for the upper limit, with one more allocation of the largest weight that could
// be live unseen ("pseudo-observation"). With equal weights this is the exact Poisson
// (Garwood) interval; with nothing drawn the upper limit is ln(40) = 3.69 such weights, the
// 97.5% bound on what can hide behind zero draws. Allocations drawn at p = 1 are exact and
// added outside the gamma part. The two limits share the 5%: where the allowance for an
// unseen heavier range puts the upper limit past Garwood's, so that it errs less than 2.5% of
// the time, the lower limit takes the rest, up to the whole 5% (a one-sided 95% bound) when
// the upper limit practically cannot err.

import { halfWidth95, histogramIn, probabilityFunction } from '../format/weights.js';
import type { HistogramBucket, Sampling } from '../format/types.js';

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
  /** Part of `bytes` from allocations drawn with p = 1 (known exactly); 0 when not tracked. */
  exactBytes?: number;
  /** Part of `count` from allocations drawn with p = 1. */
  exactCount?: number;
}

export function emptyEstimate(): Estimate {
  return { bytes: 0, bytesVar: 0, count: 0, countVar: 0, sampled: 0, exactBytes: 0, exactCount: 0 };
}

export function addEstimate(into: Estimate, e: Estimate): void {
  into.bytes += e.bytes;
  into.bytesVar += e.bytesVar;
  into.count += e.count;
  into.countVar += e.countVar;
  into.sampled += e.sampled;
  into.exactBytes = (into.exactBytes ?? 0) + (e.exactBytes ?? 0);
  into.exactCount = (into.exactCount ?? 0) + (e.exactCount ?? 0);
}

/**
 * One allocation that could be live without having been drawn: its weight (bytes/p or 1/p)
 * and its variance contribution (weight^2 (1-p)). The upper limit of a total allows for one.
 */
export interface Pseudo {
  weight: number;
  variance: number;
}

/** What could be live unseen in a profile: one pseudo-observation for bytes, one for counts. */
export interface Unseen {
  bytes: Pseudo;
  count: Pseudo;
}

/**
 * The unseen allocation a total's upper limit allows for, from the sampler and (when the
 * recorder wrote one) its size histogram. Null when nothing can hide: every size is drawn at
 * p = 1, or the histogram shows no allocation in any range drawn at p < 1.
 *
 * Table sampler: per range with p < 1, a typical allocation of the range (mean size from the
 * histogram's buckets in the range; without a histogram the range's largest size, which is
 * conservative) weighs size/p; the largest such weight is taken. Byte-Poisson: a live mass M
 * of allocations escapes sampling with probability exp(-M/R) whatever its sizes, so the
 * weight is R (the limit of s/p(s) for small s); counts use the mean count weight 1/p(s) of
 * the histogram's allocations (without one, 1/p of 8 bytes, CPython's smallest block).
 */
export function unseenOf(sampling: Sampling, histogram: readonly HistogramBucket[] | null): Unseen | null {
  const pOf = probabilityFunction(sampling);
  if (sampling.kind === 'poisson') {
    const R = sampling.meanBytes;
    // Counts: the mean count weight 1/p(s) of the run's allocations (each histogram bucket at
    // its mean size). Undrawn blocks are mostly small ones, which weigh most: 1/p of the mean
    // size, which large blocks pull up, let count intervals cover 82% in phases with few small
    // blocks live (test/analysis/coverage.test.ts).
    let p = pOf(8);
    if (histogram) {
      let n = 0;
      let weights = 0;
      for (const b of histogram) {
        if (!(b.count > 0)) continue;
        n += b.count;
        weights += b.count / pOf(Math.max(1, b.bytes / b.count));
      }
      if (n <= 0) return null;
      p = n / weights;
    }
    return { bytes: { weight: R, variance: R * R }, count: { weight: 1 / p, variance: (1 - p) / (p * p) } };
  }
  let bytes: Pseudo | null = null;
  let count: Pseudo | null = null;
  for (let r = 0; r < sampling.probs.length; r++) {
    const p = sampling.probs[r]!;
    if (!(p > 0 && p < 1)) continue;
    const lo = r === 0 ? 0 : sampling.bounds[r - 1]!;
    const hi = sampling.bounds[r]!;
    if (hi <= lo) continue;
    let size = hi - 1;
    if (histogram) {
      const h = histogramIn(histogram, lo, hi);
      if (h.count <= 0) continue; // nothing of this range was ever allocated
      // Allocations of 0 bytes only (a range [0, 1)): blocks may hide there, bytes cannot.
      size = h.bytes > 0 ? Math.min(hi - 1, Math.max(lo, h.squares / h.bytes)) : 0;
    }
    const w = size / p;
    if (w > 0 && (!bytes || w > bytes.weight)) bytes = { weight: w, variance: w * w * (1 - p) };
    if (!count || 1 / p > count.weight) count = { weight: 1 / p, variance: (1 - p) / (p * p) };
  }
  return count ? { bytes: bytes ?? { weight: 0, variance: 0 }, count } : null;
}

// ---- the gamma distribution: log-gamma, regularized P(a, x), and its quantile ----

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized lower incomplete gamma P(a, x) (series below a+1, continued fraction above). */
export function gammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 100000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.min(1, sum * front);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 100000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.max(0, 1 - front * h);
}

/**
 * Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz), on the side
 * of x where it converges fast (the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) otherwise).
 */
export function betaI(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - betaI(b, a, 1 - x);
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x)) / a;
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m < 100000; m++) {
    // The even step, then the odd one, of the fraction's terms.
    for (const num of [(m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)), (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))]) {
      d = 1 + num * d;
      if (Math.abs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      d = 1 / d;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-15) break;
  }
  return Math.min(1, Math.max(0, front * h));
}

/** P(X >= k) for X ~ Binomial(n, p). */
export function binomialAtLeast(n: number, p: number, k: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  return betaI(k, n - k + 1, p);
}

/** P(X <= k) for X ~ Binomial(n, p). */
export function binomialAtMost(n: number, p: number, k: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  return betaI(n - k, k + 1, 1 - p);
}

/** Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(q: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  if (q < pl) {
    const r = Math.sqrt(-2 * Math.log(q));
    return (((((c[0]! * r + c[1]!) * r + c[2]!) * r + c[3]!) * r + c[4]!) * r + c[5]!) / ((((d[0]! * r + d[1]!) * r + d[2]!) * r + d[3]!) * r + 1);
  }
  if (q > 1 - pl) return -normalQuantile(1 - q);
  const r0 = q - 0.5;
  const r = r0 * r0;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * r0) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/**
 * The q-quantile of a gamma distribution with shape a and scale 1. Wilson-Hilferty above
 * shape 1000 (relative error far below sampling noise there); below, Newton's method on P(a, x)
 * from that start, kept inside a bracket by bisection.
 */
export function gammaQuantile(q: number, a: number): number {
  if (!(a > 0)) return 0;
  const z = normalQuantile(q);
  const k = 1 / (9 * a);
  let x = a * Math.pow(Math.max(0, 1 - k + z * Math.sqrt(k)), 3);
  if (a > 1000) return x;
  let lo = 0;
  let hi = Math.max(1, a);
  while (gammaP(a, hi) < q) hi *= 2;
  if (!(x > lo && x < hi)) x = (lo + hi) / 2;
  const lg = lnGamma(a);
  for (let i = 0; i < 200; i++) {
    const f = gammaP(a, x) - q;
    if (f < 0) lo = x;
    else hi = x;
    const pdf = Math.exp((a - 1) * Math.log(x) - x - lg);
    let next = pdf > 0 ? x - f / pdf : NaN;
    if (!(next > lo && next < hi)) next = (lo + hi) / 2;
    if (Math.abs(next - x) <= 1e-12 * x || hi - lo <= 1e-12 * hi) return next;
    x = next;
  }
  return x;
}

const Q_LO = 0.025;
const Q_HI = 0.975;
const Q_ONE_SIDED = 0.05;

/**
 * [lo, hi] of the 95% interval of an estimate `value` with variance `variance`; null when it is
 * exact (no variance and nothing that could hide unseen). `exact` is the part of `value` known
 * without error (drawn at p = 1). `unseen`, for totals, is the allocation that could be live
 * undrawn: the upper limit allows half of one (or of one like the total's own, if heavier)
 * when allocations were drawn with p < 1, a whole one when none were. Without it the upper
 * limit allows one more allocation like the estimate's own (its variance-weighted mean weight
 * v/y), which makes a site's interval Garwood's. The lower limit is the q point of the gamma
 * of what was drawn, q = 5% minus what the gamma of Garwood's upper limit puts above the upper
 * limit: 2.5% for a site, up to 5% for a total whose allowance dominates.
 */
export function interval95(value: number, variance: number, unseen?: Pseudo | null, exact = 0): [number, number] | null {
  // An allowance of no weight (a range that held only 0-byte allocations hides no bytes) is none.
  if (unseen && !(unseen.weight > 0)) unseen = null;
  const v = Math.max(0, variance);
  // No variance: whatever was drawn was drawn at p = 1 and is known exactly.
  const k = v <= 0 ? Math.max(0, value) : Math.min(Math.max(0, exact), Math.max(0, value));
  const y = Math.max(0, value - k);
  const selfWeight = y > 0 && v > 0 ? v / y : 0;
  let w = selfWeight;
  let vp = selfWeight * selfWeight;
  if (unseen && unseen.weight > w) {
    w = unseen.weight;
    vp = unseen.variance;
  }
  if (v <= 0 && w <= 0) return null;
  // A total with allocations drawn allows half an allocation (mid-p, Jeffreys' x + 1/2): a
  // whole one, of the weight of the range that weighs most, made totals over-cover (97.5%).
  // With nothing uncertain drawn, a whole one: Garwood's bound for a count of 0.
  const share = unseen && y > 0 && v > 0 ? 0.5 : 1;
  const vu = v + share * vp;
  const yu = y + share * w;
  const hi = Math.max(y, vu > 0 ? (vu / yu) * gammaQuantile(Q_HI, (yu * yu) / vu) : yu);
  if (!(y > 0 && v > 0)) return [k + y, k + hi];
  // The lower limit takes what the upper limit leaves of the 5%. Without anything unseen, the
  // upper limit is Garwood's: the 97.5% point of the gamma of what was drawn plus one more
  // allocation like those (shape y^2/v + 1, scale v/y). The share of the 5% the upper limit
  // spends is what that gamma puts above it: 2.5% for a site, less where the allowance for a
  // heavier unseen range moves the upper limit past it, and about 0 where that allowance
  // dominates. The lower limit is the gamma's (1 - 0.95 - that share) point, between its 2.5%
  // point (two-sided) and its 5% point (a one-sided 95% bound, valid on its own).
  const shape = (y * y) / v;
  const scale = v / y;
  // (With no heavier allowance, the upper limit is at or below Garwood's: the share is 2.5%.)
  const spent = w === selfWeight ? 1 - Q_HI : 1 - gammaP(shape + 1, hi / scale);
  const qLo = Math.min(Q_ONE_SIDED, Math.max(Q_LO, 1 - 0.95 - spent));
  return [k + scale * gammaQuantile(qLo, shape), k + hi];
}

/**
 * The variance a symmetric (normal) interval would need to reach this estimate's upper limit:
 * for combining estimates by adding variances (changes between two heaps) and for views that
 * draw a ± half-width.
 */
export function upperVariance(value: number, variance: number, unseen?: Pseudo | null, exact = 0): number {
  const ci = interval95(value, variance, unseen, exact);
  if (!ci) return 0;
  const h = (ci[1] - Math.max(0, value)) / halfWidth95(1);
  return h * h;
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
export function putEstimate(out: Record<string, unknown>, name: string, value: number, variance: number, unseen?: Pseudo | null, exact = 0): void {
  out[name] = whole(Math.max(0, value));
  const ci = wholeInterval95(value, variance, unseen, exact);
  if (ci) {
    out[`${name}_lo`] = ci[0];
    out[`${name}_hi`] = ci[1];
  }
}

/**
 * The 95% interval as every output shows it (NDJSON's `_lo`/`_hi`, the tables, the report):
 * interval95 of the value clamped at 0, its limits rounded outwards to whole numbers; null
 * when the estimate is exact.
 */
export function wholeInterval95(value: number, variance: number, unseen?: Pseudo | null, exact = 0): [number, number] | null {
  const ci = interval95(Math.max(0, value), variance, unseen, exact);
  return ci ? [whole(Math.floor(ci[0])), whole(Math.ceil(ci[1]))] : null;
}

/** putEstimate for an Estimate's bytes and count, with the profile's unseen allowance (totals). */
export function putEstimates(out: Record<string, unknown>, e: Estimate, unseen?: Unseen | null): void {
  putEstimate(out, 'bytes', e.bytes, e.bytesVar, unseen?.bytes, e.exactBytes ?? 0);
  putEstimate(out, 'count', e.count, e.countVar, unseen?.count, e.exactCount ?? 0);
}
