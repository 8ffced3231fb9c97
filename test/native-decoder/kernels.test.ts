// The addon's reading kernels against the TypeScript loops they replace when built: the block
// decoder (decodeBlockInto vs decodeEventBlock), the live heap's update (LiveHeap.applyRun's C
// kernel vs applyRunTs) and the reader's tally (EventTally's kernel vs addTs). Each must give
// bit-identical results on every input, hostile ones included, or leave the input to the
// TypeScript loop: readers' output may not depend on whether the addon was built.

import t from 'tap';
import { FormatError } from '../../lib/format/bytes.js';
import * as events from '../../lib/format/events.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_LOST, OP_RSS, type EventBatch } from '../../lib/format/source.js';
import { EventTally } from '../../lib/format/tally.js';
import type { Sampling } from '../../lib/format/types.js';
import { LiveHeap } from '../../lib/model/live.js';
import { nativeDecoder, nativeDecoderStatus } from '../../lib/native.js';
import { prng, randomPayload, randomSpec, tmpDir, blockOffsets } from '../helpers/profiles.js';
import { writeProfile } from '../../lib/format/hpx.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function emptyBatch(n: number): EventBatch {
  return { length: 0, op: new Uint8Array(n), timeUs: new Float64Array(n), trace: new Uint32Array(n), size: new Float64Array(n) };
}

/** The events of a batch as comparable rows (sizes and times compared as bit patterns). */
function rows(b: EventBatch): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length; i++) out.push(`${b.op[i]} ${Object.is(b.timeUs[i], -0) ? '-0' : b.timeUs[i]} ${b.trace[i]} ${b.size[i]}`);
  return out;
}

const dec = nativeDecoder();
if (!dec) {
  t.plan(0, nativeDecoderStatus());
} else {
  const out = new Float64Array(3);
  /** Both decoders on one payload: the C one must agree with the TS one or refuse the block. */
  const compare = (t: Tap.Test, payload: Buffer, count: number, timeUs: number, fromUs: number, toUs: number, what: string): 'ok' | 'refused' | 'bad' => {
    const ts = emptyBatch(Math.max(count, 1));
    let tsResult: { sawEnd: boolean; maxTrace: number } | string;
    try {
      const sawEnd = events.decodeEventBlock(payload, count, timeUs, ts, fromUs, toUs);
      tsResult = { sawEnd, maxTrace: events.decodedMaxTrace };
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      tsResult = e.message;
    }
    const c = emptyBatch(Math.max(count, 1));
    const ok = dec.decodeBlockInto(payload, count, timeUs, fromUs, toUs, c.op, c.timeUs, c.trace, c.size, out);
    if (typeof tsResult === 'string') {
      if (ok) t.fail(`${what}: C accepted a block TS rejects (${tsResult})`);
      return 'bad';
    }
    if (!ok) {
      t.fail(`${what}: C refused a block TS accepts`);
      return 'refused';
    }
    c.length = out[0]!;
    if (rows(c).join('\n') !== rows(ts).join('\n')) t.same(rows(c), rows(ts), `${what}: same events`);
    if ((out[1] === 1) !== tsResult.sawEnd) t.fail(`${what}: END seen differs`);
    if (out[2] !== tsResult.maxTrace) t.fail(`${what}: maxTrace ${out[2]} vs ${tsResult.maxTrace}`);
    return 'ok';
  };

  t.test('decodeBlockInto: the same events as the TS decoder, and the same verdicts, on random payloads', async (t) => {
    const rnd = prng(77);
    const verdicts = { ok: 0, bad: 0, refused: 0 };
    for (let trial = 0; trial < 4000; trial++) {
      const wide = trial % 2 === 1;
      const { payload, count } = randomPayload(rnd, wide);
      const timeUs = Math.floor(rnd() * 1e6);
      // A third of the reads keep only a time range, as hp-snapshot --from/--to reads do.
      const ranged = trial % 3 === 0;
      const fromUs = ranged ? timeUs + Math.floor(rnd() * 2000) : -Infinity;
      const toUs = ranged ? fromUs + Math.floor(rnd() * 5000) : Infinity;
      verdicts[compare(t, payload, count, timeUs, fromUs, toUs, `trial ${trial}${wide ? ' (wide)' : ''}`)]++;
    }
    t.equal(verdicts.refused, 0, 'C never refuses what TS accepts');
    t.ok(verdicts.ok > 500 && verdicts.bad > 500, `both verdicts exercised (${verdicts.ok} decoded, ${verdicts.bad} rejected by both)`);
  });

  t.test('decodeBlockInto: blocks of recorded-like profiles, whole and by time range; maxTrace as TS reports it', async (t) => {
    const dir = tmpDir('hp-kernels-');
    for (let seed = 1; seed <= 8; seed++) {
      const base = join(dir, `r${seed}`);
      await writeProfile(base, randomSpec(seed, 3000 + seed * 500));
      const hpd = readFileSync(`${base}.hpd`);
      for (const off of blockOffsets(hpd)) {
        const length = hpd.readUInt32LE(off + 4);
        const count = hpd.readUInt32LE(off + 8);
        const timeUs = Number(hpd.readBigUInt64LE(off + 12));
        const payload = hpd.subarray(off + 24, off + 24 + length);
        t.equal(compare(t, payload, count, timeUs, -Infinity, Infinity, `seed ${seed} block at ${off}`), 'ok');
        t.equal(compare(t, payload, count, timeUs, timeUs + 1000, timeUs + 50_000, `seed ${seed} block at ${off}, ranged`), 'ok');
      }
    }
    // maxTrace: the largest id written in full (REPEATs add none), kept or not.
    const payload = Buffer.from([(9 << 2) | 0, 5, 10, (300 << 2) & 0x7f | 0x80, 300 >> 5, 5, 10, 2, 1]);
    const block = { index: 0, offset: 0, count: 3, timeUs: 100, payload };
    const r = events.decodeBlock(block, emptyBatch, 120, 200);
    t.same(r, { ok: true, sawEnd: false, maxTrace: 300 }, 'maxTrace counts events outside the range');
    const c = emptyBatch(3);
    t.equal(dec.decodeBlockInto(payload, 3, 100, 120, 200, c.op, c.timeUs, c.trace, c.size, out), true);
    t.same([...out], [0, 0, 300]);
  });

  t.test('decodeBlockInto refuses columns shorter than the count instead of writing past them', async (t) => {
    const payload = Buffer.from([0, 1, 10, 4, 1, 10]);
    const c = emptyBatch(1);
    t.equal(dec.decodeBlockInto(payload, 2, 0, -Infinity, Infinity, c.op, c.timeUs, c.trace, c.size, out), false);
    t.throws(() => dec.decodeBlockInto(payload, 2, 0, -Infinity, Infinity, c.op, c.timeUs, c.op as never, c.size, out), /columns must be/);
  });

  const samplers: Array<[string, Sampling]> = [
    ['table', { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] }],
    ['table with a range never sampled', { kind: 'table', bounds: [64, 100, 5000, 2 ** 33], probs: [0.5, 0, 0.25, 0.9] }],
    ['byte-Poisson', { kind: 'poisson', meanBytes: 512 * 1024 }],
    ['everything', { kind: 'table', bounds: [], probs: [] }],
  ];

  /** A random batch: ALLOCs, FREEs (some of blocks never allocated), other ops, odd sizes and far trace ids. */
  const randomBatch = (rnd: () => number, n: number, t0: number): EventBatch => {
    const b = emptyBatch(n);
    const live: Array<[number, number]> = [];
    let time = t0;
    const ids = [1, 2, 3, 7, 1000, 4095, 4096, 70_000, (1 << 22) - 1, 1 << 22, 2 ** 32 - 1];
    for (let i = 0; i < n; i++) {
      time += rnd() < 0.9 ? Math.floor(rnd() * 10) : rnd() < 0.5 ? 0 : Math.floor(rnd() * 1e5);
      const r = rnd();
      let op: number;
      let trace = 0;
      let size: number;
      if (r < 0.45 || live.length === 0) {
        op = OP_ALLOC;
        trace = rnd() < 0.8 ? ids[Math.floor(rnd() * 5)]! : ids[Math.floor(rnd() * ids.length)]!;
        const u = rnd();
        size = u < 0.3 ? Math.floor(rnd() * 200) : u < 0.6 ? Math.floor(rnd() * 20_000) : u < 0.9 ? Math.floor(2 ** (rnd() * 34)) : u < 0.95 ? rnd() * 5000 : 0;
        live.push([trace, size]);
      } else if (r < 0.9) {
        op = OP_FREE;
        const k = Math.floor(rnd() * live.length);
        [[trace, size]] = live.splice(k, 1) as [[number, number]];
      } else if (r < 0.94) {
        op = OP_FREE; // a free of a block never allocated
        trace = ids[Math.floor(rnd() * ids.length)]!;
        size = Math.floor(rnd() * 5000);
      } else {
        op = [OP_RSS, OP_LOST, OP_END][Math.floor(rnd() * 3)]!;
        size = Math.floor(rnd() * 1e6);
      }
      b.op[i] = op;
      b.timeUs[i] = time;
      b.trace[i] = trace;
      b.size[i] = size;
    }
    b.length = n;
    return b;
  };

  const sameHeap = (t: Tap.Test, a: LiveHeap, b: LiveHeap, what: string): void => {
    const fields = ['totalBytes', 'totalBytesVar', 'totalCount', 'totalCountVar', 'totalSampled', 'lastRunUs', 'unmatchedFrees', 'slots'] as const;
    for (const f of fields) if (!Object.is(a[f], b[f])) t.fail(`${what}: ${f} ${a[f]} vs ${b[f]}`);
    for (const col of ['bytes', 'bytesVar', 'count', 'countVar', 'sampled'] as const) {
      const x = Buffer.from(a[col].buffer, 0, a.slots * 8);
      const y = Buffer.from(b[col].buffer, 0, b.slots * 8);
      if (!x.equals(y)) t.fail(`${what}: column ${col} differs`);
    }
  };

  t.test('applyRun: the C kernel leaves the heap bit-identical to applyRunTs', async (t) => {
    const rnd = prng(2024);
    for (const [name, sampling] of samplers) {
      for (let trial = 0; trial < 40; trial++) {
        const c = new LiveHeap(sampling);
        const ts = new LiveHeap(sampling);
        let time = 0;
        for (let batchNo = 0; batchNo < 5; batchNo++) {
          const b = randomBatch(rnd, 50 + Math.floor(rnd() * 4000), time);
          time = b.timeUs[b.length - 1]!;
          // Walk the batch as the readers do: runs up to a bucket end, stepping over other ops.
          let i = 0;
          let j = 0;
          while (i < b.length) {
            // Mostly runs long enough for the kernel (shorter ones stay in TypeScript).
            const until = rnd() < 0.5 ? b.timeUs[Math.min(b.length - 1, i + Math.floor(rnd() * 2000))]! : Infinity;
            const to = rnd() < 0.2 ? Math.min(b.length, i + Math.floor(rnd() * 300)) : b.length;
            const ci = c.applyRun(b, i, to, until);
            j = ts.applyRunTs(b, i, to, until);
            if (ci !== j) {
              t.fail(`${name} trial ${trial}: stopped at ${ci} vs ${j}`);
              break;
            }
            i = ci === i ? i + 1 : ci;
          }
          sameHeap(t, c, ts, `${name} trial ${trial} batch ${batchNo}`);
        }
        t.ok(c.unmatchedFrees > 0 && c.slots > 5, `${name} trial ${trial}: unmatched frees and many traces exercised`);
      }
    }
  });

  t.test('tallyRun: the C kernel counts as addTs does', async (t) => {
    const rnd = prng(99);
    for (const checkFrees of [true, false]) {
      for (let trial = 0; trial < 60; trial++) {
        const c = new EventTally(checkFrees);
        const ts = new EventTally(checkFrees);
        let time = 0;
        for (let batchNo = 0; batchNo < 4; batchNo++) {
          const b = randomBatch(rnd, 10 + Math.floor(rnd() * 3000), time);
          time = b.timeUs[b.length - 1]!;
          c.add(b);
          ts.addTs(b, 0, b.length);
          t.same(c.state(), ts.state(), `checkFrees ${checkFrees} trial ${trial} batch ${batchNo}`);
        }
        if (checkFrees) t.ok(c.unmatched > 0 && c.lost > 0, 'unmatched frees and lost events exercised');
      }
    }
  });

  t.test('the kernels refuse arguments that do not fit, instead of reading past them', async (t) => {
    const b = randomBatch(prng(1), 100, 0);
    const h = new LiveHeap(samplers[0]![1]);
    const f = new Float64Array(8);
    const args = (from: number, to: number, state = f): Parameters<typeof dec.applyRun> => [
      b.op, b.timeUs, b.trace, b.size, from, to, Infinity, new Int32Array(8), h.sampled, h.bytes, h.bytesVar, h.count, h.countVar,
      false, new Float64Array([128, 8192]), new Int8Array(33), new Float64Array(3), new Float64Array(3), state,
    ];
    t.throws(() => dec.applyRun(...args(0, 101)), /run out of range/);
    t.throws(() => dec.applyRun(...args(5, 4)), /run out of range/);
    t.throws(() => dec.applyRun(...args(0, 10, new Float64Array(2))), /state must be/);
    const bad = args(0, 10);
    bad[16] = new Float64Array(1);
    t.throws(() => dec.applyRun(...bad), /weights do not match/);
    const badBucket = args(0, 10);
    badBucket[15] = new Int8Array(33).fill(9);
    t.throws(() => dec.applyRun(...badBucket), /bucket range out of range/);
    const wrongType = args(0, 10);
    wrongType[8] = new Float32Array(256) as never;
    t.throws(() => dec.applyRun(...wrongType), /wrong type/);
    t.throws(() => dec.tallyRun(b.op, b.timeUs, b.trace, b.size, 0, 1000, true, new Int32Array(4), new Float64Array(6)), /run out of range/);
    // A direct table naming slots past the columns stops the kernel (the TS loop then grows them).
    const direct = new Int32Array(16).fill(1000);
    const s = new Float64Array(8);
    b.op[0] = OP_ALLOC;
    b.trace[0] = 3;
    t.equal(dec.applyRun(b.op, b.timeUs, b.trace, b.size, 0, 10, Infinity, direct, h.sampled, h.bytes, h.bytesVar, h.count, h.countVar, false, new Float64Array([128, 8192]), new Int8Array(33), new Float64Array(3), new Float64Array(3), s), 0);
    t.equal(s[7], 1, 'stopped for the caller');
  });
}
