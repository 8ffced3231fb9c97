// Cross-check: the C reference decoder (native/decoder, via lib/native.ts) and the TS decoder
// read the same events from the same .hpd files — random valid profiles, damaged files
// (flipped bytes, cut tails, garbage between blocks) and blocks with a valid checksum whose
// payload is random bytes (where every varint and kind edge case turns up).

import { readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import t from 'tap';
import { HpError } from '../../lib/cli.js';
import { encodeBlock, writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { nativeDecoder, nativeDecoderStatus, type NativeDecoder } from '../../lib/native.js';
import { OP_NAMES } from '../../lib/format/source.js';
import { blockOffsets, prng, randomPayload, randomSpec, readAll, tmpDir } from '../helpers/profiles.js';

type Ev = { op: string; timeUs: number; trace: number; size: number };

function nativeEvents(dec: NativeDecoder, hpd: Buffer): { events: Ev[]; complete: boolean; skipped: number } {
  const r = dec.decodeHpd(hpd);
  const events: Ev[] = [];
  for (let i = 0; i < r.length; i++) events.push({ op: OP_NAMES[r.op[i]!]!, timeUs: r.timeUs[i]!, trace: r.trace[i]!, size: r.size[i]! });
  return { events, complete: r.complete, skipped: r.problems.filter((p) => p.kind !== 'truncated').length };
}

/** TS side: events, END seen, and how many blocks it reported skipping. */
async function tsEvents(base: string): Promise<{ events: Ev[]; complete: boolean; skipped: number }> {
  const r = await readAll(base);
  const skipped = r.issues.filter((i) => i.file.endsWith('.hpd') && !/undefined trace|truncated|time goes back|lost|after the block holding END|never allocated/.test(i.message)).length;
  return { events: r.events, complete: r.complete, skipped };
}

// The TS side is the TypeScript reader: readers use the C decoder by default when it is built.
process.env.HEAPPROF_NATIVE_READ = '0';

const dec = nativeDecoder();
if (!dec) {
  t.plan(0, nativeDecoderStatus());
} else {
  t.test('CRC-32 matches zlib', async (t) => {
    const rnd = prng(7);
    for (const n of [0, 1, 7, 8, 9, 63, 64, 1000, 100_003]) {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
      t.equal(dec.crc32(b), crc32(b), `length ${n}`);
      t.equal(dec.crc32(b.subarray(n >> 1), dec.crc32(b.subarray(0, n >> 1))), crc32(b), `length ${n} in two parts`);
    }
    t.equal(dec.crc32(Buffer.from('123456789')), 0xcbf43926);
    // Blocks are validated with the zlib inside Node (what node:zlib's crc32 and the TS reader
    // use) when Node exports it, as its own builds do; the damaged-file tests below check
    // that it rejects what the TS reader rejects.
    t.equal(dec.blockCrc32, 'zlib');
  });

  t.test('random valid profiles decode identically', async (t) => {
    const dir = tmpDir('hp-xcheck-');
    for (let seed = 1; seed <= 25; seed++) {
      const base = join(dir, `r${seed}`);
      const spec = randomSpec(seed, 200 + seed * 137);
      spec.complete = seed % 4 !== 0;
      await writeProfile(base, spec);
      const ts = await tsEvents(base);
      const c = nativeEvents(dec, readFileSync(`${base}.hpd`));
      t.equal(c.events.length, spec.events.length + (spec.complete ? 1 : 0), `seed ${seed}: every event`);
      t.same(c.events, ts.events, `seed ${seed}: same events`);
      t.equal(c.complete, ts.complete, `seed ${seed}: same completeness`);
      t.equal(c.skipped, 0);
    }
  });

  t.test('damaged files: same events kept, same blocks skipped', async (t) => {
    const dir = tmpDir('hp-xcheck-');
    const rnd = prng(99);
    for (let trial = 0; trial < 60; trial++) {
      const base = join(dir, `d${trial}`);
      const spec = randomSpec(1000 + trial, 600);
      await writeProfile(base, spec);
      const good = readFileSync(`${base}.hpd`);
      const offsets = blockOffsets(good);
      let bad: Buffer;
      const what = trial % 4;
      if (what === 0) {
        // Flip a few bytes anywhere after the file header.
        bad = Buffer.from(good);
        for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) {
          const at = 32 + Math.floor(rnd() * (bad.length - 32));
          bad[at] = bad[at]! ^ (1 + Math.floor(rnd() * 255));
        }
      } else if (what === 1) {
        // Cut the tail anywhere.
        bad = good.subarray(0, 32 + Math.floor(rnd() * (good.length - 32)));
      } else if (what === 2) {
        // Garbage (with a stray magic) between two blocks.
        const at = offsets[Math.floor(rnd() * offsets.length)]!;
        const junk = Buffer.alloc(5 + Math.floor(rnd() * 60));
        for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
        if (junk.length > 10) junk.write('HBLK', 3, 'latin1');
        bad = Buffer.concat([good.subarray(0, at), junk, good.subarray(at)]);
      } else {
        // A block's length field made to point past the end, then the rest kept.
        bad = Buffer.from(good);
        const at = offsets[Math.floor(rnd() * offsets.length)]!;
        bad.writeUInt32LE(bad.length, at + 4);
      }
      writeFileSync(`${base}.hpd`, bad);
      const ts = await tsEvents(base);
      const c = nativeEvents(dec, bad);
      t.same(c.events, ts.events, `trial ${trial} (${['flip', 'cut', 'junk', 'length'][what]}): same events`);
      t.equal(c.complete, ts.complete, `trial ${trial}: same completeness`);
      t.equal(c.skipped, ts.skipped, `trial ${trial}: same number of skipped blocks`);
    }
  });

  t.test('checksummed blocks of random bytes: same verdicts and events', async (t) => {
    const dir = tmpDir('hp-xcheck-');
    const rnd = prng(4242);
    const spec: ProfileSpec = {
      header: { sampling: { kind: 'table', bounds: [], probs: [] } },
      traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
      events: [{ op: 'alloc', timeUs: 5, trace: 1, size: 10 }],
      complete: false,
    };
    const base = join(dir, 'fuzz');
    await writeProfile(base, spec);
    const head = readFileSync(`${base}.hpd`);
    let accepted = 0;
    let rejected = 0;
    for (let trial = 0; trial < 400; trial++) {
      const blocks: Buffer[] = [head];
      for (let k = 0; k < 3; k++) {
        const { payload, count } = randomPayload(rnd);
        blocks.push(encodeBlock(payload, count, 1000 * trial + k));
      }
      const hpd = Buffer.concat(blocks);
      writeFileSync(`${base}.hpd`, hpd);
      let ts: Awaited<ReturnType<typeof tsEvents>>;
      try {
        ts = await tsEvents(base);
      } catch (e) {
        if (!(e instanceof HpError)) throw e;
        t.fail(`trial ${trial}: TS threw ${e.message}`);
        continue;
      }
      const c = nativeEvents(dec, hpd);
      t.same(c.events, ts.events, `trial ${trial}: same events`);
      t.equal(c.skipped, ts.skipped, `trial ${trial}: same blocks rejected`);
      accepted += 3 - c.skipped;
      rejected += c.skipped;
    }
    // The generator must exercise both outcomes, or the property proves little.
    t.ok(accepted > 100 && rejected > 100, `both verdicts exercised (${accepted} accepted, ${rejected} rejected)`);
  });

  t.test('bad file headers are errors in both', async (t) => {
    const dir = tmpDir('hp-xcheck-');
    const base = join(dir, 'h');
    await writeProfile(base, randomSpec(5, 50));
    const good = readFileSync(`${base}.hpd`);
    for (const at of [0, 4, 6, 8, 24, 28]) {
      const bad = Buffer.from(good);
      bad[at] = bad[at]! ^ 0x01;
      writeFileSync(`${base}.hpd`, bad);
      let tsError = false;
      try {
        await readAll(base);
      } catch (e) {
        if (!(e instanceof HpError)) throw e;
        tsError = true;
      }
      t.throws(() => dec.decodeHpd(bad), `C rejects a header damaged at byte ${at}`);
      // Byte 8 is the profile id: TS sees a mismatched pair; C (no .hpm) sees a bad checksum.
      t.ok(tsError, `TS rejects a header damaged at byte ${at}`);
    }
  });

  t.test('scanHpd sums what decodeHpd returns', async (t) => {
    const dir = tmpDir('hp-xcheck-');
    const base = join(dir, 's');
    const spec = randomSpec(77, 5000);
    await writeProfile(base, spec);
    const s = dec.scanHpd(`${base}.hpd`);
    const allocs = spec.events.filter((e) => e.op === 'alloc');
    const frees = spec.events.filter((e) => e.op === 'free');
    t.equal(s.allocs, allocs.length);
    t.equal(s.frees, frees.length);
    t.equal(s.allocBytes, allocs.reduce((a, e) => a + e.size, 0));
    t.equal(s.liveBytes, s.allocBytes - s.freeBytes);
    let live = 0;
    let peak = 0;
    for (const e of spec.events) {
      live += e.op === 'alloc' ? e.size : e.op === 'free' ? -e.size : 0;
      peak = Math.max(peak, live);
    }
    t.equal(s.peakLiveBytes, peak);
    t.equal(s.events, spec.events.length + 1);
    t.ok(s.complete);
    t.same(s.problems, []);
    t.throws(() => dec.scanHpd(join(dir, 'missing.hpd')), /missing\.hpd: No such file/);
  });
}
