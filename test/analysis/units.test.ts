// Pure pieces of the analysis: size ranges and the sampler check, the sampling-plan
// optimizer, folded-stack formatting, the events NDJSON reader's validation.

import { Readable } from 'node:stream';
import t from 'tap';
import { NdjsonSource } from '../../lib/format/ndjson.js';
import type { ReadIssue } from '../../lib/format/types.js';
import { FoldedStacks, foldedStack } from '../../lib/model/folded.js';
import { checkSampler, probabilityRange, sizeRange } from '../../lib/model/sizes.js';
import { formatTable, optimalPlan, type RangeLoad } from '../../lib/model/suggest.js';
import { prng } from '../fixtures/analysis/memsource.js';

t.test('power-of-two size ranges', async (t) => {
  const cases: Array<[number, number]> = [[0, 0], [1, 0], [2, 1], [3, 1], [4, 2], [127, 6], [128, 7], [8191, 12], [8192, 13], [2 ** 32 - 1, 31], [2 ** 32, 32], [2 ** 40 + 5, 40], [2 ** 52, 52]];
  for (const [s, r] of cases) t.equal(sizeRange(s), r, `size ${s}`);
  t.same(probabilityRange({ kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] }, 6), [1e-4, 1e-4]);
  t.same(probabilityRange({ kind: 'table', bounds: [100], probs: [0.5] }, 6), [0.5, 1], 'a bound inside the range widens the band');
});

t.test('sampler self-check: passes an honest sampler, flags 2p and "sample everything"', async (t) => {
  const sampling = { kind: 'table' as const, bounds: [128, 8192], probs: [1e-4, 0.1] };
  const rand = prng(3);
  let honest = 0;
  for (let i = 0; i < 1e6; i++) if (rand() < 1e-4) honest++;
  t.ok(checkSampler(sampling, 6, { count: 1e6, bytes: 1e8, sampled: honest })!.ok, `honest: ${honest} of 1e6 at 1e-4`);
  t.notOk(checkSampler(sampling, 6, { count: 1e6, bytes: 1e8, sampled: 200 })!.ok, 'twice the rate');
  t.notOk(checkSampler(sampling, 10, { count: 1e5, bytes: 1e8, sampled: 1e5 })!.ok, 'heapprof 1.0.2: everything sampled at p = 0.1');
  t.ok(checkSampler(sampling, 14, { count: 10, bytes: 1e6, sampled: 10 })!.ok, 'p = 1');
  t.notOk(checkSampler(sampling, 14, { count: 10, bytes: 1e6, sampled: 9 })!.ok, 'p = 1 but one missing');
  t.equal(checkSampler(sampling, 3, { count: 0, bytes: 0, sampled: 0 }), null);
});

t.test('sampler self-check: exact binomial tails, so rare draws at count * p << 1 are not flagged', async (t) => {
  const sampling = { kind: 'table' as const, bounds: [128, 8192], probs: [1e-4, 0.1] };
  // One draw of 200 allocations at p = 1e-4: a 2% event (the normal approximation said 7 SE).
  const one = checkSampler(sampling, 6, { count: 200, bytes: 12800, sampled: 1 })!;
  t.ok(one.ok, `1 of 200 at 1e-4: ${one.sigmas.toFixed(2)} SE`);
  t.ok(Math.abs(one.sigmas - 2.058) < 0.01, 'the deviate of P(X >= 1) = 1 - (1 - 1e-4)^200 = 0.0198');
  // Honest samplers at count * p from 0.002 to 20: never flagged in 20,000 runs each.
  const rand = prng(7);
  for (const [count, p, range] of [[20, 1e-4, 6], [200, 1e-4, 6], [5000, 1e-4, 6], [30, 0.1, 9], [200, 0.1, 9]] as const) {
    let flagged = 0;
    let worst = 0;
    for (let run = 0; run < 20000; run++) {
      let sampled = 0;
      for (let i = 0; i < count; i++) if (rand() < p) sampled++;
      const c = checkSampler(sampling, range, { count, bytes: count, sampled })!;
      if (!c.ok) flagged++;
      worst = Math.max(worst, c.sigmas);
    }
    t.equal(flagged, 0, `${count} allocations at p = ${p}: none of 20,000 honest runs flagged (largest ${worst.toFixed(2)} SE)`);
  }
  // Still flags what it must: 3 draws of 200 at 1e-4 (P = 1.3e-6, 4.7 SE: not yet), 4 (6.4e-9, 5.7 SE: yes).
  t.ok(checkSampler(sampling, 6, { count: 200, bytes: 1, sampled: 3 })!.ok, '3 of 200 at 1e-4: within 5 SE');
  t.notOk(checkSampler(sampling, 6, { count: 200, bytes: 1, sampled: 4 })!.ok, '4 of 200 at 1e-4: flagged');
  // Too few draws at p = 0.1: 0 of 200 has probability 7e-10.
  t.notOk(checkSampler(sampling, 9, { count: 200, bytes: 1, sampled: 0 })!.ok, '0 of 200 at 0.1: flagged');
  t.ok(checkSampler(sampling, 9, { count: 30, bytes: 1, sampled: 0 })!.ok, '0 of 30 at 0.1 (p = 0.04): not flagged');
});

function variance(loads: RangeLoad[], probs: number[]): number {
  return loads.reduce((a, l, i) => a + l.squares * (1 / probs[i]! - 1), 0);
}

t.test('plan optimizer: meets the budget, p proportional to rms size, beats random feasible plans', async (t) => {
  const rand = prng(11);
  for (let trial = 0; trial < 25; trial++) {
    const loads: RangeLoad[] = [];
    for (let i = 0; i < 16; i++) {
      const count = rand() < 0.15 ? 0 : Math.floor(10 ** (2 + rand() * 4));
      const mean = 2 ** i * (1 + rand());
      loads.push({ count, squares: count * mean * mean * (1 + rand() * 0.3) });
    }
    const total = loads.reduce((a, l) => a + l.count, 0);
    const budget = total * (0.001 + rand() * 0.05);
    const plan = optimalPlan(loads, budget);
    const used = loads.reduce((a, l, i) => a + l.count * plan.probs[i]!, 0);
    t.ok(Math.abs(used - budget) / budget < 1e-6, `trial ${trial}: spends the budget exactly before rounding`);
    t.ok(Math.abs(plan.expectedEvents - budget) / budget < 0.06, `trial ${trial}: rounded table within 6% of the budget`);
    // Unclamped, non-empty ranges share one ratio p / rms.
    const ratios = loads.map((l, i) => (l.count > 0 && plan.probs[i]! < 1 ? plan.probs[i]! / Math.sqrt(l.squares / l.count) : null)).filter((x): x is number => x !== null);
    for (const r of ratios) t.ok(Math.abs(r / ratios[0]! - 1) < 1e-9);
    const best = variance(loads, plan.probs);
    for (let k = 0; k < 40; k++) {
      // A random plan scaled to the same budget (clamped at 1, rescaled until it fits).
      let q = loads.map(() => 0.01 + rand());
      for (let it = 0; it < 60; it++) {
        const spend = loads.reduce((a, l, i) => a + l.count * q[i]!, 0);
        q = q.map((x) => Math.min(1, (x * budget) / spend));
      }
      if (variance(loads, q) < best * (1 - 1e-9)) t.fail(`trial ${trial}: a random plan beat the optimum`);
    }
  }
  t.equal(formatTable([128, 8192], [1e-4, 0.1]), '{128: 1e-4, 8192: 0.1}');
  t.equal(formatTable([64], [2.5e-5]), '{64: 2.5e-5}');
  const all = optimalPlan([{ count: 10, squares: 1000 }], 100);
  t.same([all.bounds, all.tableProbs], [[], []], 'a budget above the allocation count records everything: {}');
});

t.test('folded stacks: root first, merged, sorted, integer values', async (t) => {
  const frames = [
    { function: 'leaf', file: 'a.py', line: 3 },
    { function: 'mid;dle', file: 'b.py', line: 0 },
    { function: null, file: 'c.py', line: 9 },
  ];
  t.equal(foldedStack(frames), 'c.py:9;mid_dle (b.py);leaf (a.py:3)');
  t.equal(foldedStack(frames.slice(0, 1), 4), '[4 outer frames not recorded];leaf (a.py:3)');
  t.equal(foldedStack([]), '[no Python stack]');
  const f = new FoldedStacks();
  f.add('b;c', 1.4);
  f.add('a', 10.2);
  f.add('b;c', 1.4);
  f.add('z', 0.3);
  t.same(f.lines(), ['a 10', 'b;c 3']);
});

async function readAll(text: string, opts: { strict?: boolean } = {}): Promise<{ events: number; issues: string[]; src: NdjsonSource }> {
  const issues: string[] = [];
  const src = await NdjsonSource.open(Readable.from([text]), 'stdin', { ...opts, onIssue: (i: ReadIssue) => issues.push(i.message) });
  let events = 0;
  for await (const b of src.batches()) events += b.length;
  await src.close();
  return { events, issues, src };
}

const META = '{"type":"meta","schema":1,"sampling":{"kind":"table","bounds":[128],"probs":[0.5]}}';

t.test('events NDJSON reader: located errors, foreign lines counted once', async (t) => {
  const ok = await readAll(`${META}\n{"x":1}\n{"type":"trace","id":1,"frames":[{"function":"f","file":"a.py","line":2}]}\n[1,2]\n{"type":"event","t":0.5,"op":"alloc","trace":1,"size":10,"w":2}\n{"type":"summary","complete":true,"events":1,"histogram":null}\n`);
  t.equal(ok.events, 1);
  t.same(ok.issues, ['ignored 2 foreign lines (valid JSON, not hp-events)']);
  t.equal(ok.src.complete, true);
  await t.rejects(readAll(`${META}\n{"type":"event","t":1,"op":"alloc","trace":1,"size":10}\nnot json\n`), /stdin: line 3: not valid JSON/);
  await t.rejects(readAll(`${META}\n{"type":"event","t":1,"op":"grow","trace":1,"size":10}\n`), /stdin: line 2: event: 'op' must be one of/);
  await t.rejects(readAll(`${META}\n{"type":"event","t":-1,"op":"alloc","trace":1,"size":10}\n`), /line 2: event: 't'/);
  await t.rejects(readAll(`{"type":"event","t":1,"op":"alloc","trace":1,"size":10}\n`), /line 1: 'event' line before the meta line/);
  await t.rejects(readAll(''), /empty input/);
  const undef = await readAll(`${META}\n{"type":"event","t":1,"op":"alloc","trace":7,"size":10}\n`);
  t.match(undef.issues[0], /line 2: event uses undefined trace 7/);
  await t.rejects(readAll(`${META}\n{"type":"event","t":1,"op":"alloc","trace":7,"size":10}\n`, { strict: true }), /undefined trace 7/);
});

t.test('seconds as text: exactly the shortest form of us / 1e6', async (t) => {
  const { secondsText } = await import('../../lib/format/ndjson.js');
  const rand = prng(5);
  let bad = 0;
  for (let k = 0; k < 200000; k++) {
    const us = k < 100000 ? k * 7 : Math.floor(rand() * 1e14);
    if (secondsText(us) !== String(us / 1e6)) bad++;
  }
  t.equal(bad, 0);
  t.equal(secondsText(0), '0');
  t.equal(secondsText(1_500_000), '1.5');
  t.equal(secondsText(12), '0.000012');
});
