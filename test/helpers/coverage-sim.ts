// A simulator of allocation programs with known truth, for interval coverage tests: it draws
// allocation and free sequences in phases, samples them with the recorder's rules (the
// countdowns of native/hook.c: Geometric(p) gaps per table range, an exponential byte
// countdown for byte-Poisson), feeds the sampled events to the real LiveHeap and reads the
// real interval, and compares it with the exact live total at chosen moments.

import { OP_ALLOC, OP_FREE } from '../../lib/format/source.js';
import type { HistogramBucket, Sampling } from '../../lib/format/types.js';
import { interval95, unseenOf } from '../../lib/model/estimate.js';
import { LiveHeap } from '../../lib/model/live.js';
import { prng } from './profiles.js';

export { prng } from './profiles.js';

/** The recorder's sampling decision, per thread of allocations, as native/hook.c makes it. */
export function makeSampler(sampling: Sampling, rand: () => number): (size: number) => boolean {
  const unit = (): number => {
    let u = rand();
    while (u === 0) u = rand();
    return u;
  };
  if (sampling.kind === 'poisson') {
    const R = sampling.meanBytes;
    let countdown = Math.max(1, Math.ceil(-R * Math.log(unit())));
    return (size) => {
      if (countdown > size) {
        countdown -= size;
        return false;
      }
      countdown = Math.max(1, Math.ceil(-R * Math.log(unit()))); // a hit drops the overshoot
      return true;
    };
  }
  const { bounds, probs } = sampling;
  const log1mp = probs.map((p) => Math.log1p(-p));
  const draw = (r: number): number => Math.max(1, Math.floor(Math.log(unit()) / log1mp[r]!) + 1);
  const countdown = probs.map((p, r) => (p > 0 && p < 1 ? draw(r) : 0));
  return (size) => {
    let r = 0;
    while (r < bounds.length && size >= bounds[r]!) r++;
    if (r === bounds.length) return true;
    const p = probs[r]!;
    if (p >= 1) return true;
    if (p <= 0) return false;
    if (countdown[r]! > 1) {
      countdown[r]!--;
      return false;
    }
    countdown[r] = draw(r);
    return true;
  };
}

/** Size classes: CPython-like small objects, medium buffers, and a Pareto heavy tail. */
export const SIZES = {
  small: (rand: () => number): number => 8 * (2 + Math.floor(rand() * rand() * 14)),
  medium: (rand: () => number): number => Math.floor(128 * Math.exp(rand() * Math.log(8191 / 128))),
  large: (rand: () => number): number => Math.min(1e8, Math.floor(8192 / Math.pow(1 - rand(), 1 / 1.3))),
};
export type SizeClass = keyof typeof SIZES;

/** One phase: allocate some of each class, then free a fraction of what is live of each class. */
export interface Phase {
  alloc?: Partial<Record<SizeClass, number>>;
  /** Fraction of the live blocks of each class freed (at random) after the allocations. */
  free?: Partial<Record<SizeClass, number>>;
}

export interface Moment {
  truth: number;
  truthCount: number;
  estimate: number;
  interval: [number, number] | null;
  countEstimate: number;
  countInterval: [number, number] | null;
}

interface Block {
  size: number;
  cls: SizeClass;
  sampled: boolean;
  trace: number;
}

/**
 * Run one seeded program: the moments are the ends of the phases. The histogram the reader
 * sees is the recorder's at stop (every allocation of the whole run), as in a complete profile.
 */
export function simulate(sampling: Sampling, phases: Phase[], seed: number, opts: { histogram?: boolean } = {}): Moment[] {
  const rand = prng(seed);
  const sampler = makeSampler(sampling, prng(seed ^ 0x5bd1e995));
  // Build the whole program first: the histogram covers the whole run.
  type Op = { alloc: boolean; block: Block } | { moment: true };
  const ops: Op[] = [];
  const live: Record<SizeClass, Block[]> = { small: [], medium: [], large: [] };
  const hist: HistogramBucket[] = Array.from({ length: 64 }, () => ({ count: 0, bytes: 0, sampled: 0 }));
  const classes = Object.keys(SIZES) as SizeClass[];
  phases.forEach((ph, pi) => {
    for (const cls of classes) {
      for (let i = 0; i < (ph.alloc?.[cls] ?? 0); i++) {
        const size = SIZES[cls](rand);
        const block: Block = { size, cls, sampled: sampler(size), trace: 1 + pi * 3 + classes.indexOf(cls) };
        const b = 31 - Math.clz32(size | 1);
        hist[b]!.count++;
        hist[b]!.bytes += size;
        if (block.sampled) hist[b]!.sampled++;
        live[cls].push(block);
        ops.push({ alloc: true, block });
      }
    }
    for (const cls of classes) {
      const f = ph.free?.[cls] ?? 0;
      if (f <= 0) continue;
      const list = live[cls];
      const keep: Block[] = [];
      for (const block of list) {
        if (rand() < f) ops.push({ alloc: false, block });
        else keep.push(block);
      }
      live[cls] = keep;
    }
    ops.push({ moment: true });
  });
  const unseen = unseenOf(sampling, opts.histogram === false ? null : hist);
  const heap = new LiveHeap(sampling);
  let truth = 0;
  let truthCount = 0;
  const out: Moment[] = [];
  for (const op of ops) {
    if ('moment' in op) {
      const t = heap.total();
      out.push({
        truth,
        truthCount,
        estimate: t.bytes,
        interval: interval95(t.bytes, t.bytesVar, unseen?.bytes, t.exactBytes),
        countEstimate: t.count,
        countInterval: interval95(t.count, t.countVar, unseen?.count, t.exactCount),
      });
      continue;
    }
    const { block } = op;
    truth += op.alloc ? block.size : -block.size;
    truthCount += op.alloc ? 1 : -1;
    if (block.sampled) heap.apply(op.alloc ? OP_ALLOC : OP_FREE, block.trace, block.size);
  }
  return out;
}

/** Per moment: the share of seeds whose interval covers the truth, and of those whose lower limit is above it and whose upper limit is below it. */
export interface Coverage {
  covered: number[];
  lowAbove: number[];
  highBelow: number[];
}

/**
 * Coverage of bytes and of counts over `seeds` seeded programs, per moment (an exact estimate
 * covers when equal). `widen` scales both half-widths of every interval about its estimate
 * (0.8: 20% narrower), to check that the test can tell a wrong width.
 */
export function coverage(sampling: Sampling, phases: Phase[], seeds: number, opts: { histogram?: boolean; widen?: number } = {}): { bytes: Coverage; count: Coverage } {
  const f = opts.widen ?? 1;
  const tally = () => ({ hits: new Array<number>(phases.length).fill(0), low: new Array<number>(phases.length).fill(0), high: new Array<number>(phases.length).fill(0) });
  const bytes = tally();
  const count = tally();
  const check = (into: ReturnType<typeof tally>, i: number, truth: number, est: number, ci: [number, number] | null): void => {
    const [lo, hi] = ci ? [est - f * (est - ci[0]), est + f * (ci[1] - est)] : [est, est];
    if (truth < lo - 0.5) into.low[i]!++;
    else if (truth > hi + 0.5) into.high[i]!++;
    else into.hits[i]!++;
  };
  for (let seed = 1; seed <= seeds; seed++) {
    simulate(sampling, phases, seed, opts).forEach((m, i) => {
      check(bytes, i, m.truth, m.estimate, m.interval);
      check(count, i, m.truthCount, m.countEstimate, m.countInterval);
    });
  }
  const share = (xs: number[]): number[] => xs.map((h) => h / seeds);
  const out = (x: ReturnType<typeof tally>): Coverage => ({ covered: share(x.hits), lowAbove: share(x.low), highBelow: share(x.high) });
  return { bytes: out(bytes), count: out(count) };
}
