// The sampler checks itself, on every CPython 3.9-3.13 found: over >= 10^5 allocations per size
// range the sampled fraction matches the configured p within 5 standard errors, for p in
// {1e-4, 1e-2, 0.1, 1} and for byte-Poisson (heapprof 1.0.2 sampled everything and failed this).
// The recorder's histogram counts every allocation it saw; its events must agree with it.

import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, readRecording, runPython, supportedPythons } from '../helpers/python.js';

// The workload's table {256: 1e-4, 2048: 1e-2, 16384: 0.1}, >= 16384 always, as power-of-two
// histogram buckets: bucket i holds [2^i, 2^(i+1)), so each range is a run of whole buckets.
const RANGES = [
  { name: '< 256', first: 0, last: 7, p: 1e-4 },
  { name: '256..2047', first: 8, last: 10, p: 1e-2 },
  { name: '2048..16383', first: 11, last: 13, p: 0.1 },
  { name: '>= 16384', first: 14, last: 63, p: 1 },
];

const bucketOf = (size: number): number => (size < 2 ? 0 : Math.floor(Math.log2(size)));

for (const py of supportedPythons()) {
  t.test(`CPython ${py.version}: size-range table`, async (t) => {
    const base = join(tmpDir(), 'table');
    const r = runPython(py, [join(NATIVE_FIXTURES, 'sampler.py'), 'table', base]);
    t.equal(r.code, 0, r.stderr);
    const rec = await readRecording(base);
    t.same(rec.issues, []);
    t.same(rec.header.sampling, { kind: 'table', bounds: [256, 2048, 16384], probs: [1e-4, 1e-2, 0.1] }, 'exact configuration in the header');
    const hist = rec.histogram;
    if (!hist) return t.fail('no histogram in the profile');

    const eventsPerBucket = new Map<number, number>();
    for (const e of rec.events) if (e.op === 'alloc') eventsPerBucket.set(bucketOf(e.size), (eventsPerBucket.get(bucketOf(e.size)) ?? 0) + 1);
    const mismatched = hist.map((b, i) => [i, b.sampled, eventsPerBucket.get(i) ?? 0]).filter(([, s, e]) => s !== e);
    t.same(mismatched, [], 'alloc events per bucket = the histogram\'s sampled counts');

    for (const range of RANGES) {
      let count = 0;
      let sampled = 0;
      for (let i = range.first; i <= range.last && i < hist.length; i++) {
        count += hist[i]!.count;
        sampled += hist[i]!.sampled;
      }
      t.ok(count >= 1e5, `${range.name}: ${count} allocations seen (>= 10^5)`);
      const expected = count * range.p;
      const se = Math.sqrt(count * range.p * (1 - range.p));
      if (range.p === 1) t.equal(sampled, count, `${range.name}: p=1 samples every allocation`);
      else t.ok(Math.abs(sampled - expected) <= 5 * se, `${range.name}: sampled ${sampled}, expected ${expected.toFixed(1)} ± 5×${se.toFixed(2)}`);
    }
  });

  t.test(`CPython ${py.version}: byte-Poisson`, async (t) => {
    const base = join(tmpDir(), 'poisson');
    const r = runPython(py, [join(NATIVE_FIXTURES, 'sampler.py'), 'poisson', base]);
    t.equal(r.code, 0, r.stderr);
    const { count, alloc_size: size, mean_bytes: R } = JSON.parse(r.stdout) as { count: number; alloc_size: number; mean_bytes: number };
    const rec = await readRecording(base);
    t.same(rec.issues, []);
    t.same(rec.header.sampling, { kind: 'poisson', meanBytes: R });
    // Other allocations of exactly this size are rare; they can only add a handful.
    const sampled = rec.events.filter((e) => e.op === 'alloc' && e.size === size).length;
    const p = -Math.expm1(-size / R);
    const expected = count * p;
    const se = Math.sqrt(count * p * (1 - p));
    t.ok(Math.abs(sampled - expected) <= 5 * se, `${size}-byte buffers: sampled ${sampled}, expected ${expected.toFixed(1)} ± 5×${se.toFixed(2)}`);
    const hist = rec.histogram!;
    const total = hist.reduce((n, b) => n + b.sampled, 0);
    t.equal(total, rec.events.filter((e) => e.op === 'alloc').length, 'histogram sampled total = alloc events');
  });
}

// The countdowns' geometric and exponential gaps take log U from the hook's own log (no libm
// call on the sampled path): it must stay within a few ulps of libm's, so that no gap differs.
const first = supportedPythons()[0];
if (first) {
  t.test(`the sampler's log against libm's (CPython ${first.version})`, async (t) => {
    const r = runPython(first, [join(NATIVE_FIXTURES, 'logunit.py'), '400000']);
    t.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { count: number; max_ulp: number; gaps_differing: number; out_of_range_nan: boolean };
    t.ok(res.count >= 400000, `${res.count} draws compared`);
    t.ok(res.max_ulp <= 4, `within 4 ulp of libm (largest ${res.max_ulp.toFixed(2)})`);
    t.equal(res.gaps_differing, 0, 'no gap or countdown differs from the one libm would give');
    t.ok(res.out_of_range_nan, 'k outside 1..2^53 gives NaN');
  });
}
