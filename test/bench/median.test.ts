// The benchmark's interval for a median (bench/median.js): the order statistics it picks match
// the binomial tails computed another way, and intervals built from skewed, noisy runs (as
// timings are) cover the true median at least 95% of the time.

import t from 'tap';
import { median, medianInterval } from '../../bench/median.js';

const choose = (n: number, k: number): number => {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return c;
};

t.test('the order statistics are the largest the binomial tail allows', async (t) => {
  for (let n = 1; n <= 40; n++) {
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const iv = medianInterval(xs);
    // P(X <= j) for X ~ Binomial(n, 1/2), summed directly.
    const cdf = (j: number) => {
      let s = 0;
      for (let i = 0; i <= j; i++) s += choose(n, i) / 2 ** n;
      return s;
    };
    let k = 0;
    while (k < n && cdf(k) <= 0.025) k++;
    if (k === 0) {
      t.equal(iv, null, `n = ${n}: no interval`);
      continue;
    }
    t.same([iv.lo, iv.hi], [k, n + 1 - k], `n = ${n}: [x(${k}), x(${n + 1 - k})]`);
    t.ok(Math.abs(iv.coverage - (1 - 2 * cdf(k - 1))) < 1e-12 && iv.coverage >= 0.95, `n = ${n}: coverage ${iv.coverage.toFixed(4)}`);
  }
  t.equal(medianInterval([1, 2, 3, 4, 5]), null, 'five runs cannot bound a median at 95%');
  t.same(medianInterval([9, 1, 5, 3, 7, 2, 8, 6, 4]), { lo: 2, hi: 8, coverage: 1 - 20 / 512 }, 'nine runs, unsorted');
});

t.test('intervals from skewed runs cover the true median', async (t) => {
  // Timings: a floor plus exponential noise (median of the noise: ln 2), 9 and 15 rounds.
  let seed = 12345;
  const unif = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return (seed + 0.5) / 2 ** 31;
  };
  const truth = 1.1 + 0.05 * Math.LN2;
  for (const n of [9, 15]) {
    let covered = 0;
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      const xs = Array.from({ length: n }, () => 1.1 - 0.05 * Math.log(unif()));
      const iv = medianInterval(xs);
      if (iv.lo <= truth && truth <= iv.hi) covered++;
    }
    const rate = covered / trials;
    t.ok(rate >= 0.95 && rate <= 0.985, `n = ${n}: covered ${(100 * rate).toFixed(1)}% (nominal ${(100 * medianInterval(Array.from({ length: n }, (_, i) => i)).coverage).toFixed(1)}%)`);
  }
  t.equal(median([3, 1, 2]), 2);
});
