// Horvitz-Thompson weights: probabilities per sampler, and that weighting each sampled event
// by 1/p gives unbiased totals whose variance estimate is right (checked by simulation).

import t from 'tap';
import { byteVariance, countWeight, halfWidth95, sampleProbability } from '../../lib/format/weights.js';
import type { Sampling } from '../../lib/format/types.js';
import { prng } from '../helpers/profiles.js';

const table: Sampling = { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] };
const poisson: Sampling = { kind: 'poisson', meanBytes: 512 * 1024 };

t.test('size-range table: first bound greater than the size; p=1 at and above the last', async (t) => {
  t.equal(sampleProbability(table, 0), 1e-4);
  t.equal(sampleProbability(table, 127), 1e-4);
  t.equal(sampleProbability(table, 128), 0.1);
  t.equal(sampleProbability(table, 8191), 0.1);
  t.equal(sampleProbability(table, 8192), 1);
  t.equal(sampleProbability(table, 2 ** 40), 1);
  t.equal(countWeight(table, 100), 1e4);
  t.equal(byteVariance(table, 10000), 0);
  t.equal(sampleProbability({ kind: 'table', bounds: [], probs: [] }, 5), 1);
  t.equal(countWeight({ kind: 'table', bounds: [64], probs: [0] }, 5), 0);
});

t.test('byte-Poisson: 1-exp(-s/R), accurate for tiny sizes', async (t) => {
  t.equal(sampleProbability(poisson, 0), 0);
  const s = 16;
  const x = s / (512 * 1024);
  // 1-exp(-x) = x - x^2/2 + ...: computed without cancellation for tiny x.
  t.ok(Math.abs(sampleProbability(poisson, s) - (x - (x * x) / 2)) / x < 1e-9);
  t.ok(Math.abs(sampleProbability(poisson, 512 * 1024) - (1 - Math.exp(-1))) < 1e-15);
  // byte weight s/p ≈ R + s/2 for s ≪ R
  const w = s * countWeight(poisson, s);
  t.ok(Math.abs(w - (512 * 1024 + s / 2)) < 1);
});

for (const sampling of [table, poisson]) {
  t.test(`${sampling.kind}: estimates are unbiased and 95% intervals cover ~95% of the time`, async (t) => {
    const rnd = prng(42);
    const sizes: number[] = [];
    for (let i = 0; i < 20000; i++) sizes.push(rnd() < 0.7 ? 16 + Math.floor(rnd() * 100) : rnd() < 0.9 ? 200 + Math.floor(rnd() * 8000) : 10000 + Math.floor(rnd() * 100000));
    const truth = sizes.reduce((a, b) => a + b, 0);
    let covered = 0;
    let sumEstimates = 0;
    const trials = 400;
    for (let k = 0; k < trials; k++) {
      let est = 0;
      let v = 0;
      for (const s of sizes) {
        if (rnd() < sampleProbability(sampling, s)) {
          est += s * countWeight(sampling, s);
          v += byteVariance(sampling, s);
        }
      }
      sumEstimates += est;
      const h = halfWidth95(v);
      if (truth >= est - h && truth <= est + h) covered++;
    }
    const mean = sumEstimates / trials;
    t.ok(Math.abs(mean - truth) / truth < 0.01, `mean estimate ${mean.toFixed(0)} vs truth ${truth}`);
    t.ok(covered / trials > 0.9 && covered / trials <= 1, `coverage ${covered}/${trials}`);
  });
}
