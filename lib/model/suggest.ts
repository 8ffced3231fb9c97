// A variance-optimal sampling table for an event budget: the size-class optimization the
// jemalloc profiling notes leave open, solved per power-of-two size range.
//
// With n_i allocations in range i, S_i = sum of their squared sizes and Bernoulli
// probability p_i, the Horvitz-Thompson estimate of total bytes has variance
//     V(p) = sum_i S_i (1/p_i - 1)
// and the recorder writes E(p) = sum_i n_i p_i events. Minimizing V subject to E <= B with
// 0 < p_i <= 1: the Lagrangian gives -S_i/p_i^2 + lambda n_i = 0, so p_i = c * sqrt(S_i/n_i),
// proportional to the root-mean-square size of the range; ranges that would exceed 1 are
// clamped to 1 (always recorded) and c is raised until the budget is spent exactly
// (water filling, found by bisection since E is increasing in c).

import { rangeBounds } from './sizes.js';

export interface RangeLoad {
  /** Allocations in the range over the run (exact from a histogram, or estimated). */
  count: number;
  /** Sum of squared sizes over those allocations (estimated). */
  squares: number;
}

export interface SamplingPlan {
  /** Probability per range (index = power-of-two range), before rounding into a table. */
  probs: number[];
  /** The table: sizes below bounds[i] (and not below bounds[i-1]) use probs[i]; the rest p=1. */
  bounds: number[];
  tableProbs: number[];
  /** Expected recorded events and the variance of the total-bytes estimate, for the rounded table. */
  expectedEvents: number;
  bytesVariance: number;
}

/** p = min(1, c * rms) for each range; ranges without allocations get the nominal rms of the range. */
function probsFor(c: number, rms: number[]): number[] {
  return rms.map((r) => Math.min(1, c * r));
}

export function optimalPlan(loads: RangeLoad[], budgetEvents: number): SamplingPlan {
  const rms = loads.map((l, i) => {
    if (l.count > 0 && l.squares > 0) return Math.sqrt(l.squares / l.count);
    const [lo, hi] = rangeBounds(i);
    return Math.sqrt(Math.max(lo, 1) * Math.max(hi, 1));
  });
  const total = loads.reduce((a, l) => a + l.count, 0);
  const eventsAt = (c: number): number => loads.reduce((a, l, i) => a + l.count * Math.min(1, c * rms[i]!), 0);
  let probs: number[];
  if (budgetEvents >= total) {
    probs = loads.map(() => 1);
  } else {
    let lo = 0;
    let hi = 1 / Math.min(...rms.filter((r) => r > 0));
    for (let k = 0; k < 200; k++) {
      const mid = (lo + hi) / 2;
      if (eventsAt(mid) > budgetEvents) hi = mid;
      else lo = mid;
    }
    probs = probsFor(lo, rms);
  }
  // A range with no allocations costs nothing either way: give it the probability of the
  // next range up that has some, so it merges into that range's table entry.
  for (let i = probs.length - 1; i >= 0; i--) {
    if (loads[i]!.count > 0) continue;
    probs[i] = i + 1 < probs.length ? probs[i + 1]! : 1;
  }
  const rounded = probs.map(roundProbability);
  // Ranges at the top that are all p=1 need no entry: the table's last bound covers them.
  let firstAlways = rounded.length;
  while (firstAlways > 0 && rounded[firstAlways - 1] === 1) firstAlways--;
  const bounds: number[] = [];
  const tableProbs: number[] = [];
  for (let i = 0; i < firstAlways; i++) {
    const upper = rangeBounds(i)[1] + 1;
    const p = rounded[i]!;
    if (tableProbs.length > 0 && tableProbs[tableProbs.length - 1] === p) bounds[bounds.length - 1] = upper;
    else {
      bounds.push(upper);
      tableProbs.push(p);
    }
  }
  let expectedEvents = 0;
  let bytesVariance = 0;
  loads.forEach((l, i) => {
    const p = rounded[i]!;
    expectedEvents += l.count * p;
    bytesVariance += l.squares * (1 / p - 1);
  });
  return { probs, bounds, tableProbs, expectedEvents, bytesVariance };
}

/** Two significant digits, never 0 (a range with p = 0 could never be estimated). */
export function roundProbability(p: number): number {
  if (p >= 1) return 1;
  const r = Number(p.toPrecision(2));
  return r > 0 ? r : Number.MIN_VALUE;
}

/** A probability as the seed's --sample syntax writes it: 1e-4, 0.1, 2.5e-3. */
export function formatProbability(p: number): string {
  if (p >= 0.001) return String(p);
  return p.toExponential().replace(/\.0+e/, 'e');
}

/** `{128: 1e-4, 8192: 0.1}`: the seed's dictionary syntax, as hp-record --sample reads it. */
export function formatTable(bounds: number[], probs: number[]): string {
  return `{${bounds.map((b, i) => `${b}: ${formatProbability(probs[i]!)}`).join(', ')}}`;
}
