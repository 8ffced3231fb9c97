// HalfSplit.run through the addon's loop (native/decoder/kernels.c, hpx_split_run) against the
// same split in TypeScript alone: the halves of every event, half A's total after it and the
// state left must be identical, bit for bit, whatever the stream holds, or the peak (and the
// seek index built from it) would depend on whether the addon was built. The streams mix what
// the kernel hands back to TypeScript (sizes past 2 MiB, negative sizes from hostile NDJSON,
// trace ids past 2^31, counts past a packed field's 2^17, a table to grow) with what it does
// itself, across batch boundaries and through a state restored mid-way.

import t from 'tap';
import { OP_ALLOC, OP_END, OP_FREE, OP_LOST, OP_RSS, type EventBatch } from '../../lib/format/source.js';
import type { Sampling } from '../../lib/format/types.js';
import { HALF_A, HALF_B, HalfSplit } from '../../lib/model/split.js';
import { nativeDecoder, nativeDecoderStatus } from '../../lib/native.js';
import { prng } from '../helpers/profiles.js';

const dec = nativeDecoder();

/** A split that never uses the addon (the fallback where it is not built). */
function tsOnly(sampling: Sampling, seed: number, state?: ReturnType<HalfSplit['state']>): HalfSplit {
  return Object.assign(new HalfSplit(sampling, seed, state), { kernel: null });
}

/** A random stream: allocations of a pool of pairs, frees of live ones (and some of never-allocated pairs), other events between. */
function stream(seed: number, n: number, opts: { pairs: number; odd: boolean }): EventBatch {
  const rand = prng(seed);
  const b: EventBatch = { length: n, op: new Uint8Array(n), timeUs: new Float64Array(n), trace: new Uint32Array(n), size: new Float64Array(n) };
  const live: Array<[number, number]> = [];
  const pair = (): [number, number] => {
    const r = rand();
    if (opts.odd && r < 0.02) return [1 + Math.floor(rand() * 4), 2 ** 21 + Math.floor(rand() * 3)]; // past the key's sizes
    if (opts.odd && r < 0.03) return [2 ** 31 + Math.floor(rand() * 3), 200]; // past its trace ids
    if (opts.odd && r < 0.035) return [2, -5 - Math.floor(rand() * 3)]; // hostile NDJSON
    if (opts.odd && r < 0.04) return [1, 9000]; // above the last bound: p = 1
    if (opts.odd && r < 0.05) return [1, 50]; // the p = 0 range
    return [1 + Math.floor(rand() * opts.pairs), 128 + Math.floor(rand() * 64) * 8];
  };
  for (let i = 0; i < n; i++) {
    b.timeUs[i] = i;
    const r = rand();
    if (opts.odd && r < 0.02) {
      b.op[i] = [OP_RSS, OP_LOST, OP_END][Math.floor(rand() * 3)]!;
      b.size[i] = 4096;
      continue;
    }
    if (live.length > 0 && r < 0.47) {
      const j = Math.floor(rand() * live.length);
      const [tr, sz] = live[j]!;
      live[j] = live[live.length - 1]!;
      live.pop();
      b.op[i] = OP_FREE;
      b.trace[i] = tr;
      b.size[i] = sz;
    } else if (r < 0.5) {
      const [tr, sz] = pair();
      b.op[i] = OP_FREE; // nothing of it live (allocated before the recording)
      b.trace[i] = tr;
      b.size[i] = sz;
    } else {
      const [tr, sz] = pair();
      live.push([tr, sz]);
      b.op[i] = OP_ALLOC;
      b.trace[i] = tr;
      b.size[i] = sz;
    }
  }
  return b;
}

/** Run both splits over the stream in batches of `step` events; the first difference, or null. */
function compare(sampling: Sampling, seed: number, b: EventBatch, step: number, restoreAt = -1): string | null {
  let native = new HalfSplit(sampling, seed);
  let ts = tsOnly(sampling, seed);
  const hn = new Uint8Array(b.length);
  const ht = new Uint8Array(b.length);
  const tn = new Float64Array(b.length);
  const tt = new Float64Array(b.length);
  for (let from = 0; from < b.length; from += step) {
    if (restoreAt >= 0 && from >= restoreAt && from - step < restoreAt) {
      // Continue from the states (what the seek index's tail keeps): each side from the other's.
      const sn = native.state();
      const st = ts.state();
      native = new HalfSplit(sampling, seed, st);
      ts = tsOnly(sampling, seed, sn);
    }
    const to = Math.min(b.length, from + step);
    native.run(b, from, to, hn, tn);
    ts.run(b, from, to, ht, tt);
    for (let i = from; i < to; i++) {
      if (hn[i] !== ht[i]) return `event ${i}: halves ${hn[i]} (addon) and ${ht[i]} (TypeScript)`;
      if (!Object.is(tn[i], tt[i])) return `event ${i}: A's total ${tn[i]} (addon) and ${tt[i]} (TypeScript)`;
    }
  }
  if (native.totalA !== ts.totalA) return `final totals ${native.totalA} and ${ts.totalA}`;
  const a = native.state();
  const c = ts.state();
  if (a.ordinal !== c.ordinal || a.pairs.length !== c.pairs.length || a.pairs.some((v, i) => v !== c.pairs[i])) return 'the states differ';
  return null;
}

if (!dec) {
  t.plan(0, nativeDecoderStatus());
} else {
  const DEFAULT: Sampling = { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] };
  const ODD: Sampling = { kind: 'table', bounds: [64, 128, 8192], probs: [0, 0.3, 0.7] };

  t.test('the addon splits every stream exactly as TypeScript does', async (t) => {
    for (const [name, sampling] of [['default table', DEFAULT], ['a p = 0 range, p = 1 above 8 KiB', ODD]] as const) {
      for (let seed = 1; seed <= 12; seed++) {
        const odd = seed % 2 === 0;
        const b = stream(seed, 40_000, { pairs: seed % 3 === 0 ? 30 : 5000, odd });
        const step = [40_000, 4096, 777][seed % 3]!;
        const diff = compare(sampling, 0x9e3779b9 ^ seed, b, step, seed % 4 === 0 ? 20_000 : -1);
        t.equal(diff, null, `${name}, seed ${seed} (${odd ? 'with' : 'without'} pairs the kernel leaves, batches of ${step})`);
      }
    }
  });

  t.test('the kernel does the common events itself and leaves the rest', async (t) => {
    const split = new HalfSplit(DEFAULT, 7);
    const kernel = (split as unknown as { kernel: typeof dec }).kernel;
    t.ok(kernel, 'a table sampler uses the addon');
    let calls = 0;
    Object.assign(split, { kernel: { splitRun: (...a: Parameters<typeof dec.splitRun>) => (calls++, dec.splitRun(...a)) } });
    const b = stream(3, 50_000, { pairs: 300, odd: false });
    split.run(b, 0, b.length, new Uint8Array(b.length), new Float64Array(b.length));
    // One call, plus one per growth of the table (300 pairs: none past its first 1,024 entries).
    t.ok(calls <= 2, `${calls} calls for 50,000 events`);
    const poisson = new HalfSplit({ kind: 'poisson', meanBytes: 4096 }, 7);
    t.equal((poisson as unknown as { kernel: unknown }).kernel, null, 'byte-Poisson stays in TypeScript (its q needs Math.expm1)');
  });

  t.test('a count past 2^17 moves to the map, and the kernel defers to it from then on', async (t) => {
    // One pair allocated 300,000 times (its A-only and B-only counts each pass 2^17), then freed.
    const n = 600_000;
    const b: EventBatch = { length: n, op: new Uint8Array(n), timeUs: new Float64Array(n), trace: new Uint32Array(n), size: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      b.op[i] = i < n / 2 ? OP_ALLOC : OP_FREE;
      b.trace[i] = i % 50 === 0 ? 9 : 5; // another pair between, missing from the table now and then
      b.size[i] = 200;
      b.timeUs[i] = i;
    }
    const sampling: Sampling = { kind: 'table', bounds: [8192], probs: [0.9] };
    t.equal(compare(sampling, 11, b, 65_536), null, 'identical');
    const s = new HalfSplit(sampling, 11);
    const halves = new Uint8Array(n);
    s.run(b, 0, n / 2, halves, new Float64Array(n));
    const counts = [0, 0, 0];
    for (let i = 0; i < n / 2; i++) if (b.trace[i] === 5) counts[halves[i] === HALF_A ? 0 : halves[i] === HALF_B ? 1 : 2]!++;
    t.ok(Math.max(...counts) >= 2 ** 17, `a category of one pair holds ${Math.max(...counts)} draws`);
  });

  t.test('splitRun refuses arguments that do not fit, instead of reading or writing past them', async (t) => {
    const b = stream(1, 100, { pairs: 10, odd: false });
    const tab = new Float64Array(2048);
    const state = (): Float64Array => Float64Array.from([0, 0, 0, 1023, 7, 0, 0]);
    const bounds = new Float64Array([128, 8192]);
    const q = new Float64Array([0.01, 0.05]);
    const run = (over: Partial<{ to: number; tab: Float64Array; state: Float64Array; q: Float64Array; halves: Uint8Array }>) =>
      dec.splitRun(b.op, b.timeUs, b.trace, b.size, 0, over.to ?? 100, over.tab ?? tab, over.state ?? state(), bounds, over.q ?? q, over.halves ?? new Uint8Array(100), new Float64Array(100));
    t.equal(run({}), 100, 'a fitting call runs to the end');
    t.throws(() => run({ to: 101 }), /run out of range/);
    t.throws(() => run({ tab: new Float64Array(1000) }), /table does not match its mask/);
    t.throws(() => run({ state: Float64Array.from([0, 0, 0, 1000, 7, 0, 0]) }), /table does not match its mask/);
    t.throws(() => run({ state: Float64Array.from([0, 0, 900, 1023, 7, 0, 0]) }), /state out of range/);
    t.throws(() => run({ state: new Float64Array(3) }), /state must be/);
    t.throws(() => run({ q: new Float64Array(1) }), /one probability per bound/);
    t.throws(() => run({ halves: new Uint8Array(10) }), /outputs shorter than the run/);
  });
}
