// The median the benchmark sections report (the mean of the two middle values for an even count).
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// A distribution-free confidence interval for the median of what the runs sample: the order
// statistics [x(k), x(n+1-k)] with the largest k for which Binomial(n, 1/2) puts at most
// (1 - level) / 2 below k (each run falls below the true median with probability 1/2,
// whatever the distribution). Its coverage is at least level. null when n is too small for
// any such k (fewer than 6 runs at 95%): the runs then cannot bound the median at that level.
export const medianInterval = (xs, level = 0.95) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const tail = (1 - level) / 2;
  let k = 0; // P(X <= k - 1) <= tail, X ~ Binomial(n, 1/2)
  let below = 0; // P(X <= k - 1)
  let term = 2 ** -n; // P(X = k)
  while (k < n && below + term <= tail) {
    below += term;
    term = (term * (n - k)) / (k + 1);
    k++;
  }
  if (k === 0) return null;
  return { lo: s[k - 1], hi: s[n - k], coverage: 1 - 2 * below };
};
