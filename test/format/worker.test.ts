// Large .hpd files are decoded on a worker thread (lib/format/hpd-worker.ts) beside the
// analysis. That path must give exactly what the inline decoder gives: the same events, the
// same problems with the same offsets, the same end state, for whole, damaged and partly read
// files. HEAPPROF_READ_WORKER forces either path; this file compares them and then runs the
// decoder's whole error suite (errors.test.ts) again with the worker forced on.

import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { HpError } from '../../lib/cli.js';
import { writeProfile } from '../../lib/format/hpx.js';
import { encodeBlock } from '../../lib/format/hpx-writer.js';
import { openProfile } from '../../lib/format/profile.js';
import type { ReadOptions } from '../../lib/format/source.js';
import { blockOffsets, prng, randomSpec, readAll, tmpDir, type ReadBack } from '../helpers/profiles.js';

async function both(base: string, opts: ReadOptions = {}): Promise<{ inline: ReadBack | string; worker: ReadBack | string }> {
  const read = async (mode: '0' | '1'): Promise<ReadBack | string> => {
    process.env.HEAPPROF_READ_WORKER = mode;
    try {
      return await readAll(base, opts);
    } catch (e) {
      if (e instanceof HpError) return `error: ${e.message}`;
      throw e;
    } finally {
      delete process.env.HEAPPROF_READ_WORKER;
    }
  };
  return { inline: await read('0'), worker: await read('1') };
}

t.test('whole, damaged and ranged reads: the worker gives what the inline decoder gives', async (t) => {
  const dir = tmpDir();
  for (let seed = 1; seed <= 3; seed++) {
    const base = join(dir, `p${seed}`);
    const spec = randomSpec(seed, 3000 + seed * 500);
    spec.eventsPerBlock = 97;
    await writeProfile(base, spec);
    const whole = await both(base);
    t.same(whole.worker, whole.inline, `seed ${seed}: whole file`);
    t.ok(typeof whole.inline !== 'string' && whole.inline.events.length > 3000, `seed ${seed}: events were read`);

    const lastUs = spec.events[spec.events.length - 1]!.timeUs;
    const ranged = await both(base, { fromUs: lastUs * 0.3, toUs: lastUs * 0.6 });
    t.same(ranged.worker, ranged.inline, `seed ${seed}: --from/--to range`);

    // Damage: a flipped payload byte in a few blocks, a destroyed header, a cut tail.
    const rand = prng(seed * 7919);
    const hpd = Buffer.from(readFileSync(`${base}.hpd`));
    const offsets = blockOffsets(hpd);
    for (let k = 0; k < 3; k++) {
      const victim = offsets[1 + Math.floor(rand() * (offsets.length - 2))]!;
      hpd[victim + 24 + Math.floor(rand() * 20)] ^= 0x5a;
    }
    hpd.fill(0xee, offsets[2]!, offsets[2]! + 8);
    writeFileSync(`${base}.hpd`, hpd);
    truncateSync(`${base}.hpd`, hpd.length - 17);
    const damaged = await both(base);
    t.same(damaged.worker, damaged.inline, `seed ${seed}: damaged file`);
    t.ok(typeof damaged.inline !== 'string' && damaged.inline.issues.length >= 2, `seed ${seed}: the damage was reported`);
    const strict = await both(base, { strict: true });
    t.same(strict.worker, strict.inline, `seed ${seed}: damaged file, strict`);
    t.match(strict.inline, /^error: /, `seed ${seed}: strict read fails`);
  }
});

t.test('blocks handed to the main thread undecoded: events, problems and their offsets as inline', async (t) => {
  // With the addon's kernels the decoding thread hands a block over undecoded whenever the main
  // thread has fewer than three waiting: always the first three blocks. Blocks 1 and 2 here
  // carry a valid checksum over events that do not decode (a REPEAT of an empty slot, a count
  // past the events), so the main thread must find and word those problems itself.
  const dir = tmpDir();
  const base = join(dir, 'handed');
  const spec = randomSpec(7, 4000);
  spec.eventsPerBlock = 150;
  await writeProfile(base, spec);
  const hpd = readFileSync(`${base}.hpd`);
  const offsets = blockOffsets(hpd);
  const blockAt = (k: number): Buffer => hpd.subarray(offsets[k]!, k + 1 < offsets.length ? offsets[k + 1]! : hpd.length);
  const timeOf = (k: number): number => Number(hpd.readBigUInt64LE(offsets[k]! + 12));
  const bad1 = encodeBlock(Buffer.from([(3 << 3) | 2, 1]), 1, timeOf(1)); // REPEAT of slot 3 in an empty cache
  const payload2 = blockAt(2).subarray(24);
  const bad2 = encodeBlock(payload2, hpd.readUInt32LE(offsets[2]! + 8) + 1, timeOf(2)); // one event more than it holds
  writeFileSync(`${base}.hpd`, Buffer.concat([hpd.subarray(0, offsets[1]!), bad1, bad2, hpd.subarray(offsets[3]!)]));
  const r = await both(base);
  t.same(r.worker, r.inline, 'same events and problems');
  t.ok(typeof r.inline !== 'string' && r.inline.issues.filter((i) => /\(in the block at byte \d+\)$/.test(i.message)).length === 2, 'both bad blocks reported');
});

t.test('a reader that stops early stops the worker (no hang, no leak)', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'early');
  const spec = randomSpec(42, 20000);
  spec.eventsPerBlock = 100;
  await writeProfile(base, spec);
  process.env.HEAPPROF_READ_WORKER = '1';
  try {
    for (let round = 0; round < 2; round++) {
      const p = await openProfile(base);
      let batches = 0;
      for await (const b of p.batches()) {
        t.ok(b.length > 0);
        if (++batches === 3) break;
      }
      await p.close();
      t.equal(batches, 3, `round ${round}: stopped after 3 batches`);
    }
  } finally {
    delete process.env.HEAPPROF_READ_WORKER;
  }
});

t.test('the decoder error suite, again with the worker forced on', async () => {
  process.env.HEAPPROF_READ_WORKER = '1';
  t.teardown(() => {
    delete process.env.HEAPPROF_READ_WORKER;
  });
  await import('./errors.test.js');
});
