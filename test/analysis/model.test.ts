// The analysis model on synthetic event streams with known truth: exactness when nothing is
// sampled away, interval coverage under sampling, the one-pass peak, history buckets.

import t from 'tap';
import type { Sampling } from '../../lib/format/types.js';
import { interval95 } from '../../lib/model/estimate.js';
import { AUTO_MAX_BUCKETS, HistoryBuilder, autoGranularityUs, granularityLevels, niceGranularities } from '../../lib/model/history.js';
import { LiveHeap } from '../../lib/model/live.js';
import { MergedSource } from '../../lib/format/merged.js';
import { buildReportData } from '../../lib/export/report.js';
import { probabilityFunction } from '../../lib/format/weights.js';
import { groupLiveHeap, parseLineSpecs, traceMatches } from '../../lib/model/sites.js';
import { liveHeapAt } from '../../lib/model/snapshot.js';
import { HALF_B, HalfSplit, exactSampling, halfSampling } from '../../lib/model/split.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_RSS } from '../../lib/format/source.js';
import { RssTimeline } from '../../lib/model/rss.js';
import { liveTruth, memSource, population, prng, sample, traceFor, type MemEvent } from '../fixtures/analysis/memsource.js';

const EVERYTHING: Sampling = { kind: 'table', bounds: [], probs: [] };
const traces = Array.from({ length: 8 }, (_, i) => traceFor(i + 1));

t.test('p = 1: every estimate is exact and has no interval', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const rand = prng(seed);
    const pop = population(rand, 600, 8, () => 1 + Math.floor(rand() * 5000));
    const events = sample(pop, () => 1, rand);
    for (const at of [pop[100]!.timeUs, pop[350]!.timeUs, pop[599]!.timeUs + 1]) {
      const snap = await liveHeapAt(memSource(EVERYTHING, traces, events), { kind: 'time', us: at });
      const truth = liveTruth(pop, at);
      for (const [trace, exp] of truth) {
        const slot = snap.heap.findSlot(trace);
        const est = slot >= 0 ? snap.heap.estimateOfSlot(slot) : { bytes: 0, count: 0, bytesVar: 0, countVar: 0 };
        if (est.bytes !== exp.bytes || est.count !== exp.count) t.fail(`seed ${seed} at ${at} trace ${trace}: ${est.bytes}/${est.count} vs ${exp.bytes}/${exp.count}`);
        t.equal(interval95(est.bytes, est.bytesVar), null);
      }
    }
  }
  t.pass('checked 20 seeds x 3 moments');
});

t.test('sampled: the 95% interval of live bytes covers the truth in most runs', async (t) => {
  const samplers: Array<[string, Sampling]> = [
    ['table', { kind: 'table', bounds: [128, 8192], probs: [0.01, 0.2] }],
    ['poisson', { kind: 'poisson', meanBytes: 4096 }],
  ];
  for (const [name, sampling] of samplers) {
    const p = probabilityFunction(sampling);
    let covered = 0;
    const seeds = 200;
    for (let seed = 1; seed <= seeds; seed++) {
      const rand = prng(1000 + seed);
      const sizes = (): number => (rand() < 0.7 ? 16 + Math.floor(rand() * 100) : rand() < 0.8 ? 200 + Math.floor(rand() * 4000) : 10000 + Math.floor(rand() * 50000));
      const pop = population(rand, 3000, 5, sizes);
      const events = sample(pop, p, rand);
      const snap = await liveHeapAt(memSource(sampling, traces, events, { batchSize: 512 }), { kind: 'end' });
      let truth = 0;
      for (const v of liveTruth(pop, Infinity).values()) truth += v.bytes;
      const total = snap.heap.total();
      const ci = interval95(total.bytes, total.bytesVar) ?? [total.bytes, total.bytes];
      if (truth >= ci[0] && truth <= ci[1]) covered++;
    }
    t.ok(covered >= 0.85 * seeds, `${name}: covered ${covered}/${seeds}`);
    t.ok(covered < seeds, `${name}: a 95% interval that never misses is too wide (${covered}/${seeds})`);
  }
});

t.test('estimates are unbiased: the mean over seeds approaches the truth', async (t) => {
  const sampling: Sampling = { kind: 'table', bounds: [128], probs: [0.05] };
  const p = probabilityFunction(sampling);
  const rand0 = prng(7);
  const pop = population(rand0, 2000, 3, () => 8 + Math.floor(rand0() * 200));
  let truth = 0;
  for (const v of liveTruth(pop, Infinity).values()) truth += v.bytes;
  let sum = 0;
  const runs = 300;
  for (let seed = 0; seed < runs; seed++) {
    const snap = await liveHeapAt(memSource(sampling, traces, sample(pop, p, prng(seed)), { batchSize: 256 }), { kind: 'end' });
    sum += snap.heap.total().bytes;
  }
  t.ok(Math.abs(sum / runs - truth) / truth < 0.05, `mean ${sum / runs} vs truth ${truth}`);
});

/**
 * Brute force: the score after each distinct moment, the earliest maximum winning: the weighted
 * total when exact, else half A's total under a fresh split of the same events (with the events
 * half B keeps).
 */
function bruteForcePeak(events: MemEvent[], sampling: Sampling): { us: number; halfB: MemEvent[] } {
  const split = exactSampling(sampling) ? null : new HalfSplit(sampling);
  const p = probabilityFunction(sampling);
  let total = 0;
  let best = { us: 0, score: 0 };
  const halfB: MemEvent[] = [];
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.op !== 'alloc' && e.op !== 'free') continue;
    if (split) {
      if (split.event(e.op === 'alloc' ? OP_ALLOC : OP_FREE, e.trace!, e.size) & HALF_B) halfB.push(e);
    } else total += (e.op === 'alloc' ? 1 : -1) * (e.size / p(e.size));
    const score = split ? split.totalA : total;
    const next = events[i + 1];
    if (!next || next.timeUs !== e.timeUs) {
      if (score > best.score) best = { us: e.timeUs, score };
    }
  }
  return { us: best.us, halfB };
}

t.test('--at peak finds the earliest moment of maximum live bytes, and its state equals --at that time', async (t) => {
  // Exact (p = 1): the peak is the heap's own highest moment.
  // Sampled: the earliest highest moment of half A of the split, and half B's heap there.
  for (const sampling of [EVERYTHING, { kind: 'table', bounds: [64], probs: [0.5] } as Sampling]) {
    const exact = sampling === EVERYTHING;
    for (let seed = 1; seed <= 30; seed++) {
      const rand = prng(seed);
      // Several moments share a microsecond (coarse times), and a long tail after the peak makes
      // the journal materialize a copy (more than 4096 events after the best moment).
      const pop = population(rand, seed % 3 === 0 ? 12000 : 800, 6, () => 1 + Math.floor(rand() * 200)).map((e) => ({ ...e, timeUs: Math.floor(e.timeUs / 3000) * 3000 }));
      const events = sample(pop, probabilityFunction(sampling), rand);
      const expected = bruteForcePeak(events, sampling);
      const peak = await liveHeapAt(memSource(sampling, traces, events, { batchSize: 100 }), { kind: 'peak' });
      const what = `${exact ? 'exact' : 'sampled'}, seed ${seed}`;
      t.equal(peak.atUs, expected.us, `${what}: peak time`);
      t.same(peak.heap.sampling, exact ? sampling : halfSampling(sampling), `${what}: the heap's sampler`);
      // The state there, from the events the expected split keeps.
      const kept = exact ? events : expected.halfB;
      const at = await liveHeapAt(memSource(peak.heap.sampling, traces, kept), { kind: 'time', us: peak.atUs });
      const a = groupLiveHeap(peak.heap, (id) => traces[id - 1], 'trace').map((s) => [s.site.key, s.est.bytes, s.est.count, s.est.sampled]);
      const b = groupLiveHeap(at.heap, (id) => traces[id - 1], 'trace').map((s) => [s.site.key, s.est.bytes, s.est.count, s.est.sampled]);
      t.same(a, b, `${what}: state at peak`);
    }
  }
});

t.test('history buckets are snapshots at each bucket end; RSS is the nearest sample', async (t) => {
  const rand = prng(42);
  const pop = population(rand, 1500, 8, () => 1 + Math.floor(rand() * 3000));
  const events: MemEvent[] = sample(pop, () => 1, rand);
  // RSS samples about once a second (µs times), merged in time order.
  const rss: MemEvent[] = [];
  for (let us = 150_000; us < pop[pop.length - 1]!.timeUs; us += 1_000_000) rss.push({ op: 'rss', timeUs: us, size: us * 10 });
  const all = [...events, ...rss].sort((a, b) => a.timeUs - b.timeUs);
  const g = 250_000;
  const hb = new HistoryBuilder(EVERYTHING, (id) => traces[id - 1], { granularityUs: g, top: 3, groupBy: 'trace', sites: parseLineSpecs('app.py:20') });
  for await (const batch of memSource(EVERYTHING, traces, all).batches()) hb.consume(batch);
  hb.finish();
  const recs = hb.ready;
  t.ok(recs.length > 5);
  recs.forEach((r, i) => t.equal(r.tUs, (i + 1) * g, 'bucket ends are consecutive multiples'));
  for (const r of recs.filter((_, i) => i % 3 === 0)) {
    const truth = liveTruth(pop, r.tUs);
    let bytes = 0;
    for (const v of truth.values()) bytes += v.bytes;
    t.equal(r.total.bytes, bytes, `live bytes at ${r.tUs}`);
    t.equal(r.followed[0]!.bytes, truth.get(2)?.bytes ?? 0, 'followed line app.py:20 = trace 2 (its leaf is on that line)');
    const nearest = rss.reduce((best, e) => (Math.abs(e.timeUs - r.tUs) < Math.abs(best.timeUs - r.tUs) ? e : best));
    t.equal(r.rssUs, nearest.timeUs, `nearest RSS to ${r.tUs}`);
    const sorted = [...truth.entries()].filter(([, v]) => v.bytes > 0).sort((a, b) => b[1].bytes - a[1].bytes);
    t.equal(r.top[0]?.site.trace, sorted[0]?.[0], 'largest site first');
  }
});

t.test('grouped by line: the top sites of a bucket equal the snapshot, when new lines appear mid-measurement', async (t) => {
  // One large line, then 100 small lines in the same bucket: the per-group sums grow past
  // their initial 64 while the first bucket is measured, and must keep what they held.
  const many = Array.from({ length: 101 }, (_, i) => traceFor(i + 1));
  const events: MemEvent[] = [{ op: 'alloc', timeUs: 10, trace: 1, size: 5_000_000 }];
  for (let i = 2; i <= 101; i++) events.push({ op: 'alloc', timeUs: 200_000 + i, trace: i, size: 10_000 + i });
  for (const groupBy of ['line', 'function', 'file'] as const) {
    const hb = new HistoryBuilder(EVERYTHING, (id) => many[id - 1], { granularityUs: 100_000, top: 3, groupBy, sites: [] });
    for await (const b of memSource(EVERYTHING, many, events, { batchSize: 1000 }).batches()) hb.consume(b);
    hb.finish();
    const last = hb.ready[hb.ready.length - 1]!;
    const snap = await liveHeapAt(memSource(EVERYTHING, many, events), { kind: 'end' });
    const expected = groupLiveHeap(snap.heap, (id) => many[id - 1], groupBy).slice(0, 3).map((s) => [s.site.label, s.est.bytes]);
    t.same(last.top.map((s) => [s.site.label, s.est.bytes]), expected, `--group-by ${groupBy}: top 3 at the end`);
    const labels = last.top.map((s) => s.site.label);
    t.equal(new Set(labels).size, labels.length, `--group-by ${groupBy}: no site twice`);
  }
});

/**
 * Two processes read as one: a parent from 0 to 0.79 s and a child started 0.05 s later that
 * ends at 0.58 s, each with sparse RSS samples; the child never frees its 2 MB.
 */
function parentAndChild() {
  const proc = (startUs: number, pid: number, events: MemEvent[]) => {
    const s = memSource(EVERYTHING, traces, events);
    Object.assign(s.header, { startTimeUs: 1_700_000_000_000_000 + startUs, pid });
    return s;
  };
  const parentEvents: MemEvent[] = [
    { op: 'rss', timeUs: 1000, size: 10e6 },
    { op: 'alloc', timeUs: 2000, trace: 1, size: 1e6 },
    { op: 'rss', timeUs: 750_000, size: 20e6 },
    { op: 'end', timeUs: 790_000, size: 0 },
  ];
  const childEvents: MemEvent[] = [
    { op: 'alloc', timeUs: 1000, trace: 2, size: 2e6 },
    { op: 'rss', timeUs: 520_000, size: 30e6 },
    { op: 'end', timeUs: 530_000, size: 0 },
  ];
  return [proc(0, 1, parentEvents), proc(50_000, 2, childEvents)];
}

t.test('several processes: RSS is the sum of each process\'s nearest sample, over those alive in the bucket', async (t) => {
  const g = 100_000;
  const open = parentAndChild;
  const merged = new MergedSource(open(), false, undefined, { rssByProcess: true });
  const hb = new HistoryBuilder(EVERYTHING, (id) => merged.trace(id), { granularityUs: g, top: 0, groupBy: 'trace', sites: [], processStartsUs: [0, 50_000] });
  for await (const b of merged.batches()) hb.consume(b);
  hb.finish();
  const rss = (tUs: number) => hb.ready.find((r) => r.tUs === tUs)!.rss;
  t.equal(rss(100_000), 10e6 + 30e6, '0.1 s: the child has started, its only sample is nearest');
  t.equal(rss(600_000), 20e6 + 30e6, '0.6 s: the child ended inside the bucket and still counts');
  t.equal(rss(700_000), 20e6, '0.7 s: the child ended before the bucket: no RSS of it');
  t.equal(rss(800_000), 20e6, 'the last bucket holds the parent\'s last sample, not 0');
  t.equal(hb.ready[hb.ready.length - 1]!.tUs, 800_000);
  t.equal(hb.ready[hb.ready.length - 1]!.total.bytes, 3e6, 'the child\'s heap stays after its end');

  // --by pid: one builder per process on the same timeline, each run to the common end, adds
  // up to the combined series, RSS and live bytes alike.
  const perPid = await Promise.all(open().map(async (src, i) => {
    const one = new MergedSource([src], false, 1_700_000_000_000_000, { rssByProcess: true });
    const b = new HistoryBuilder(EVERYTHING, (id) => one.trace(id), { granularityUs: g, top: 0, groupBy: 'trace', sites: [], processStartsUs: [one.offsetUs(0)] });
    for await (const batch of one.batches()) b.consume(batch);
    return b;
  }));
  const endUs = Math.max(...perPid.map((b) => b.lastEventUs));
  for (const b of perPid) b.finish(endUs);
  t.same(perPid.map((b) => b.ready.length), [8, 8], 'both series run to the end of the latest process');
  for (const rec of hb.ready) {
    const parts = perPid.map((b) => b.ready.find((r) => r.tUs === rec.tUs)!);
    t.equal(parts[0]!.total.bytes + parts[1]!.total.bytes, rec.total.bytes, `live bytes at ${rec.tUs} µs add up`);
    t.equal((parts[0]!.rss ?? 0) + (parts[1]!.rss ?? 0), rec.rss, `RSS at ${rec.tUs} µs adds up`);
  }

  // hp-report's points follow the same rule (lib/model/rss.ts): the same RSS at every bucket end.
  const report = await buildReportData(async () => new MergedSource(open(), false, undefined, { rssByProcess: true }), { targetPoints: 8, minShare: 0, maxNodes: 10, sites: 0, title: 'x' });
  for (const rec of hb.ready) {
    const point = report.points.find((p) => !p.peak && Math.round(p.t * 1e6) === rec.tUs);
    t.equal(point?.rss, rec.rss, `report at ${rec.tUs / 1e6} s: hp-history's RSS`);
  }
});

t.test('several processes as one summed stream (hp-events): the last RSS is the last process\'s, not 0', async (t) => {
  // The stream hp-events writes for several profiles: RSS summed, ENDs dropped. A process that
  // ends while another runs on gives up its RSS there; the last one to end leaves its last
  // sample standing, as one profile's stream does, so that hp-events 'run.*' | hp-history -
  // ends on the RSS hp-history 'run.*' ends on, not on 0.
  const merged = new MergedSource(parentAndChild(), false);
  const rss: Array<[number, number]> = [];
  const hb = new HistoryBuilder(EVERYTHING, (id) => merged.trace(id), { granularityUs: 100_000, top: 0, groupBy: 'trace', sites: [] });
  for await (const b of merged.batches()) {
    for (let i = 0; i < b.length; i++) if (b.op[i] === OP_RSS) rss.push([b.timeUs[i]!, b.size[i]!]);
    hb.consume(b);
  }
  hb.finish();
  t.same(rss, [[1000, 10e6], [570_000, 40e6], [580_000, 10e6], [750_000, 20e6]], 'summed; the child\'s end gives up its RSS; no 0 after the last end');
  t.equal(hb.ready[hb.ready.length - 1]!.rss, 20e6, 'the last bucket holds the parent\'s last sample, not 0');
});

/** Processes merged as one profile, read by both RSS rules: hp-history's as it streams, and RssTimeline (hp-report) from every sample. */
async function rssBothWays(procs: Array<{ startUs: number; events: MemEvent[]; pid: number }>, g: number): Promise<{ hb: HistoryBuilder; timeline: RssTimeline }> {
  const sources = procs.map((p) => {
    const s = memSource(EVERYTHING, traces, p.events);
    Object.assign(s.header, { startTimeUs: 1_700_000_000_000_000 + p.startUs, pid: p.pid });
    return s;
  });
  const merged = new MergedSource(sources, false, undefined, { rssByProcess: true });
  const starts = procs.map((_, i) => merged.offsetUs(i));
  const hb = new HistoryBuilder(EVERYTHING, (id) => merged.trace(id), { granularityUs: g, top: 0, groupBy: 'trace', sites: [], processStartsUs: starts });
  const timeline = new RssTimeline(starts);
  for await (const b of merged.batches()) {
    hb.consume(b);
    for (let i = 0; i < b.length; i++) {
      if (b.op[i] === OP_RSS) timeline.sample(b.trace[i]! - 1, b.timeUs[i]!, b.size[i]!);
      else if (b.op[i] === OP_END) timeline.end(b.trace[i]! - 1, b.timeUs[i]!);
    }
  }
  hb.finish();
  return { hb, timeline };
}

t.test('RSS by one rule: hp-history as it streams, RssTimeline (hp-report) from every sample', async (t) => {
  // Random processes with random RSS samples (sparse and dense, before and after bucket ends,
  // gaps beyond the look-ahead), some ending: every bucket's RSS and its time agree.
  for (let seed = 1; seed <= 40; seed++) {
    const rand = prng(seed);
    const n = 1 + Math.floor(rand() * 3);
    const g = [50_000, 100_000, 1_000_000, 3_000_000][Math.floor(rand() * 4)]!;
    const procs = Array.from({ length: n }, (_, i) => {
      const startUs = i === 0 ? 0 : Math.floor(rand() * 4_000_000);
      const events: MemEvent[] = [{ op: 'alloc', timeUs: 1, trace: 1, size: 100 }];
      let tUs = Math.floor(rand() * 500_000);
      const life = 1_000_000 + Math.floor(rand() * 9_000_000);
      while (tUs < life) {
        events.push({ op: 'rss', timeUs: tUs, size: 1e6 + Math.floor(rand() * 1e8) });
        tUs += rand() < 0.2 ? Math.floor(rand() * 5_000_000) : Math.floor(rand() * 900_000);
      }
      if (i > 0 || rand() < 0.5) events.push({ op: 'end', timeUs: life, size: 0 });
      return { startUs, events, pid: 100 + i };
    });
    const { hb, timeline } = await rssBothWays(procs, g);
    let same = 0;
    for (const rec of hb.ready) {
      const at = timeline.at(rec.tUs, g);
      if (at?.bytes === (rec.rss ?? undefined) && (at?.us ?? null) === rec.rssUs) same++;
      else t.fail(`seed ${seed}, ${n} processes, g ${g}: at ${rec.tUs} µs history ${rec.rss} (${rec.rssUs}) vs timeline ${JSON.stringify(at)}`);
    }
    t.equal(same, hb.ready.length, `seed ${seed}: ${n} processes, g ${g / 1e6} s, ${hb.ready.length} buckets agree`);
  }
});

t.test('RSS between processes (each started so far has ended) is 0 at the last end, not unknown', async (t) => {
  // Two runs recorded one after the other ('run.*'): a bucket in the gap had RSS null, where
  // nothing is live and a piped merged hp-events stream states 0.
  const procs = [
    { startUs: 0, events: [{ op: 'alloc', timeUs: 1, trace: 1, size: 100 }, { op: 'rss', timeUs: 100_000, size: 20e6 }, { op: 'end', timeUs: 400_000, size: 0 }] as MemEvent[] },
    { startUs: 3_000_000, events: [{ op: 'alloc', timeUs: 1, trace: 1, size: 100 }, { op: 'rss', timeUs: 100_000, size: 30e6 }, { op: 'end', timeUs: 500_000, size: 0 }] as MemEvent[] },
  ];
  const g = 250_000;
  const { hb, timeline } = await rssBothWays(procs.map((p, i) => ({ ...p, pid: 100 + i })), g);
  const at = (tUs: number) => hb.ready.find((r) => r.tUs === tUs)!;
  t.equal(at(500_000).rss, 20e6, 'the bucket the first process ended in keeps its sample');
  for (const tUs of [750_000, 1_500_000, 2_750_000]) {
    t.same([at(tUs).rss, at(tUs).rssUs], [0, 400_000], `${tUs / 1e6} s, between the processes: 0 at the first one's end`);
    t.same(timeline.at(tUs, g), { bytes: 0, us: 400_000 }, `${tUs / 1e6} s: hp-report's rule says the same`);
  }
  t.equal(at(3_250_000).rss, 30e6, 'the second process\'s sample once it runs');
  // The merged stream as hp-events writes it (RSS summed, no processes), read as one profile is
  // from a pipe: 0 in the gap too, not the second process's first sample ahead of its start.
  const summed = new MergedSource(
    procs.map((p, i) => {
      const s = memSource(EVERYTHING, traces, p.events);
      Object.assign(s.header, { startTimeUs: 1_700_000_000_000_000 + p.startUs, pid: 100 + i });
      return s;
    }),
    false,
  );
  const piped = new HistoryBuilder(EVERYTHING, (id) => summed.trace(id), { granularityUs: g, top: 0, groupBy: 'trace', sites: [] });
  for await (const b of summed.batches()) piped.consume(b);
  piped.finish();
  for (const tUs of [750_000, 1_500_000, 2_750_000]) {
    t.equal(piped.ready.find((r) => r.tUs === tUs)!.rss, 0, `${tUs / 1e6} s from the merged stream: 0`);
  }
});

t.test('automatic granularity: a nice length, 60 to 150 buckets, or at most one per chart column', async (t) => {
  const nice = niceGranularities();
  for (const seconds of [0.3, 3, 75, 1800, 50_000]) {
    for (const maxBuckets of [undefined, 86, 40]) {
      const events: MemEvent[] = [];
      for (let i = 0; i <= 1000; i++) events.push({ op: 'alloc', timeUs: Math.round((i / 1000) * seconds * 1e6), trace: 1 + (i % 8), size: 100 });
      const hb = new HistoryBuilder(EVERYTHING, (id) => traces[id - 1], { granularityUs: null, top: 1, groupBy: 'line', sites: [], ...(maxBuckets ? { maxBuckets } : {}) });
      for await (const b of memSource(EVERYTHING, traces, events, { batchSize: 64 }).batches()) hb.consume(b);
      hb.finish();
      const what = `${seconds} s, at most ${maxBuckets ?? AUTO_MAX_BUCKETS}`;
      t.ok(nice.includes(hb.granularityUs), `${what}: ${hb.granularityUs} µs is a nice length`);
      const max = maxBuckets ?? AUTO_MAX_BUCKETS;
      t.ok(hb.ready.length >= max / 2.5 && hb.ready.length <= max, `${what}: ${hb.ready.length} buckets`);
      const last = hb.ready[hb.ready.length - 1]!;
      t.equal(last.total.bytes, 100 * 1001, `${what}: the last bucket holds everything`);
      t.ok(last.tUs >= seconds * 1e6, 'the last bucket covers the last event');
      t.ok(hb.ready.every((r) => r.top.length === 1), 'every reported bucket has its sites');
    }
  }
});

t.test('nice lengths: 1-2-5 below a minute, minutes, hours, days; each level among them', async (t) => {
  const nice = niceGranularities();
  t.same(nice.filter((g) => g < 60e6).map((g) => g / 1e3), [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000]);
  t.same(nice.filter((g) => g >= 60e6 && g < 86_400e6).map((g) => g / 60e6), [1, 2, 5, 10, 20, 30, 60, 120, 180, 360, 720]);
  for (const level of granularityLevels()) t.ok(nice.includes(level), `level ${level} µs`);
  t.equal(autoGranularityUs(5_700_000, 86), 100_000, '5.7 s on an 86-column chart: 0.1 s');
  t.equal(autoGranularityUs(12_000_000, AUTO_MAX_BUCKETS), 100_000, '12 s into a pipe: 0.1 s (120 buckets)');
  t.equal(autoGranularityUs(3600e6, 86), 60e6, 'an hour on a chart: 1 min');
  t.equal(autoGranularityUs(12_000_000, 150, 2e6), 2e6, 'never finer than the fine buckets');
  t.equal(autoGranularityUs(50e6, 150, 2e5), 1e6, 'and a multiple of them');
});

t.test('sites: any frame on the line counts, file matched by path suffix', async (t) => {
  const tr = { id: 9, frames: [{ function: 'leaf', file: '/usr/lib/python3/json/decoder.py', line: 353 }, { function: 'load', file: '/home/u/proj/app.py', line: 12 }], dropped: 0 };
  t.same(traceMatches(tr, parseLineSpecs('app.py:12, proj/app.py:12,decoder.py:353,app.py:13,pp.py:12')), [0, 1, 2]);
  t.throws(() => parseLineSpecs('app.py'), /expected FILE:LINE/);
});

t.test('a free resets its trace exactly when nothing is left live', async (t) => {
  const heap = new LiveHeap({ kind: 'table', bounds: [128], probs: [0.3] });
  for (let k = 0; k < 1000; k++) {
    heap.apply(0, 1, 17);
    heap.apply(0, 1, 99);
    heap.apply(1, 1, 17);
    heap.apply(1, 1, 99);
  }
  t.equal(heap.total().bytes, 0);
  t.equal(heap.estimateOfSlot(heap.findSlot(1)).bytesVar, 0);
});

t.test('applyRun weighs every size as apply does, bounds inside power-of-two buckets included', async (t) => {
  const rand = prng(5);
  // Bounds that split buckets (100, 1000, 5000, 3e9) and ones that do not (4096); sizes on
  // every side of each bound, 0, and sizes of 2^32 and more.
  const sampling: Sampling = { kind: 'table', bounds: [100, 1000, 4096, 5000, 3e9], probs: [0.5, 0.25, 0.125, 0.75, 0.3] };
  const edges = [0, 1, 2, 99, 100, 101, 127, 128, 999, 1000, 1001, 1023, 1024, 4095, 4096, 4097, 4999, 5000, 5001, 8191, 8192];
  const sizes = [...edges, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2999999999, 3e9, 3e9 + 1, 2 ** 40, 2 ** 53 - 1];
  for (let k = 0; k < 2000; k++) sizes.push(Math.floor(rand() ** 4 * 2 ** (1 + Math.floor(rand() * 40))));
  // Allocations first, then their frees in the same order: the frees undo the allocations.
  const half = sizes.length;
  const n = 2 * half;
  const events = { length: n, op: new Uint8Array(n), timeUs: new Float64Array(n), trace: new Uint32Array(n), size: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const k = i % half;
    events.op[i] = i < half ? 0 : 1;
    events.timeUs[i] = i;
    events.trace[i] = 1 + (k % 7);
    events.size[i] = sizes[k]!;
  }
  const run = new LiveHeap(sampling);
  const one = new LiveHeap(sampling);
  t.equal(run.applyRun(events, 0, half, Infinity), half);
  for (let i = 0; i < half; i++) one.apply(events.op[i]!, events.trace[i]!, events.size[i]!);
  t.same(run.total(), one.total());
  for (let id = 1; id <= 7; id++) t.same(run.estimateOfSlot(run.findSlot(id)), one.estimateOfSlot(one.findSlot(id)), `trace ${id}`);
  t.equal(run.applyRun(events, half, n, Infinity), n);
  t.equal(run.total().sampled, 0);
  t.equal(run.total().bytes, 0);
});

t.test('history from a restored checkpoint equals the full read from --from on', async (t) => {
  const rand = prng(77);
  const pop = population(rand, 3000, 8, () => 1 + Math.floor(rand() * 3000));
  const sampling: Sampling = { kind: 'table', bounds: [512], probs: [0.3] };
  const events = sample(pop, probabilityFunction(sampling), rand);
  const all: MemEvent[] = [...events];
  for (let us = 400_000; us < pop[pop.length - 1]!.timeUs; us += 1_000_000) all.push({ op: 'rss', timeUs: us, size: us });
  all.sort((a, b) => a.timeUs - b.timeUs);
  const lookup = (id: number) => traces[id - 1];
  for (const g of [250_000, null]) {
    const cut = Math.floor(all.length / 2);
    const fromUs = all[cut + 10]!.timeUs + 1;
    const opts = { granularityUs: g, top: 3, groupBy: 'trace' as const, sites: parseLineSpecs('app.py:30'), fromUs };
    const full = new HistoryBuilder(sampling, lookup, opts);
    for await (const b of memSource(sampling, traces, all).batches()) full.consume(b);
    full.finish();
    // The checkpoint: the state after the first `cut` events, as the seek index stores it.
    const before = new HistoryBuilder(sampling, lookup, { ...opts, fromUs: 0 });
    for await (const b of memSource(sampling, traces, all.slice(0, cut)).batches()) before.consume(b);
    const lastRss = all.slice(0, cut).filter((e) => e.op === 'rss').pop();
    const resumed = new HistoryBuilder(sampling, lookup, opts);
    Object.assign(resumed, { heap: before.heap.clone() });
    resumed.seek(all[cut - 1]!.timeUs, lastRss ? { bytes: lastRss.size, us: lastRss.timeUs } : null);
    for await (const b of memSource(sampling, traces, all.slice(cut)).batches()) resumed.consume(b);
    resumed.finish();
    const strip = (r: (typeof full.ready)[number]) => [r.tUs, r.total.bytes, r.total.bytesVar, r.rss, r.rssUs, r.top.map((s) => [s.site.key, s.est.bytes]), r.followed.map((e) => e.bytes)];
    t.ok(full.ready.length > 3, `granularity ${g}: ${full.ready.length} buckets`);
    t.same(resumed.ready.map(strip), full.ready.map(strip), `granularity ${g}: identical buckets`);
  }
});
