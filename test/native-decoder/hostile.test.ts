// Hostile .hpd files (issue 20, items 1, 2, 5, 8): the C reference decoder never aborts nor sizes
// memory from an unchecked field, and it skips exactly the blocks the TypeScript reader skips;
// resynchronising over false block headers stays linear in both.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ByteSink } from '../../lib/format/bytes.js';
import { encodeBlock, encodeFileHeader, HPD_MAGIC, writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { nativeDecoder, nativeDecoderStatus } from '../../lib/native.js';
import { OP_NAMES } from '../../lib/format/source.js';
import { readAll, tmpDir } from '../helpers/profiles.js';

// The TS side is the TypeScript reader: readers use the C decoder by default when it is built.
process.env.HEAPPROF_NATIVE_READ = '0';

const dec = nativeDecoder();
const ID = Buffer.alloc(16, 7);
const spec: ProfileSpec = {
  header: { sampling: { kind: 'table', bounds: [], probs: [] } },
  traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
  events: [{ op: 'alloc', timeUs: 5, trace: 1, size: 10 }],
  complete: false,
  profileId: ID,
};

/** One ALLOC/FREE event: varint(trace<<2|kind), varint(dt), varint(size). */
function event(sink: ByteSink, kind: number, trace: number, dt: number, size: number): void {
  for (const v of [BigInt(trace) * 4n + BigInt(kind), BigInt(dt), BigInt(size)]) {
    let x = v; // through BigInt: the hostile values are past 2^53
    while (x >= 0x80n) {
      sink.u8(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    sink.u8(Number(x));
  }
}

function block(events: Array<[number, number, number, number]>, timeUs: number, count = events.length): Buffer {
  const s = new ByteSink(64);
  for (const [k, tr, dt, sz] of events) event(s, k, tr, dt, sz);
  return encodeBlock(s.take(), count, timeUs);
}

/** A .hpm from the spec and an .hpd of the given blocks (after a valid first block). */
async function profile(dir: string, name: string, blocks: Buffer[]): Promise<{ base: string; hpd: Buffer }> {
  const base = join(dir, name);
  await writeProfile(base, spec);
  const head = encodeFileHeader(HPD_MAGIC, ID, Buffer.alloc(0));
  const hpd = Buffer.concat([head, block([[0, 1, 5, 10]], 0), ...blocks, block([[0, 1, 1, 20]], 100)]);
  writeFileSync(`${base}.hpd`, hpd);
  return { base, hpd };
}

async function tsView(base: string): Promise<{ events: string[]; skipped: number }> {
  const r = await readAll(base);
  return {
    events: r.events.map((e) => `${e.op} ${e.timeUs} ${e.trace} ${e.size}`),
    skipped: r.issues.filter((i) => i.file.endsWith('.hpd') && !/undefined trace|truncated|time goes back|lost|after the block holding END/.test(i.message)).length,
  };
}

if (!dec) {
  t.plan(0, nativeDecoderStatus());
} else {
  const cView = (hpd: Buffer): { events: string[]; skipped: number } => {
    const r = dec.decodeHpd(hpd);
    const events: string[] = [];
    for (let i = 0; i < r.length; i++) events.push(`${OP_NAMES[r.op[i]!]} ${r.timeUs[i]} ${r.trace[i]} ${r.size[i]}`);
    return { events, skipped: r.problems.filter((p) => p.kind !== 'truncated').length };
  };

  t.test('trace id 2^32-1 and a count of 0xFFFFFFFF: no abort, one block skipped, the rest read', async (t) => {
    const dir = tmpDir('hp-hostile-');
    const { base, hpd } = await profile(dir, 'ids', [block([[0, 0xffffffff, 1, 8]], 10), block([[0, 1, 1, 8]], 20, 0xffffffff)]);
    const scan = dec.scanHpd(`${base}.hpd`);
    t.equal(scan.events, 3, 'scanHpd counts the good events (the big trace id is legal)');
    const c = cView(hpd);
    const ts = await tsView(base);
    t.same(c.events, ts.events, 'C and TS agree');
    t.equal(c.skipped, 1, 'the block claiming 0xFFFFFFFF events is skipped, not the file');
    t.equal(ts.skipped, 1);
    t.ok(c.events.includes('alloc 11 4294967295 8'));
  });

  t.test('block time 2^63 µs, an event time past 2^53, a size past 2^53: those blocks skipped by both', async (t) => {
    const dir = tmpDir('hp-hostile-');
    const huge = block([[0, 1, 1, 8]], 0);
    huge.writeBigUInt64LE(1n << 63n, 12);
    // The block CRC covers bytes 4..20: recompute it.
    const { crc32 } = await import('node:zlib');
    huge.writeUInt32LE(crc32(huge.subarray(24), crc32(huge.subarray(4, 20))), 20);
    const late = block([[0, 1, 2 ** 53 - 1, 8]], 50);
    const big = block([[0, 1, 1, 2 ** 53 + 2]], 60);
    const { base, hpd } = await profile(dir, 'times', [huge, late, big]);
    const c = cView(hpd);
    const ts = await tsView(base);
    t.same(c.events, ts.events);
    t.equal(ts.skipped, 3);
    t.equal(c.skipped, 3);
    t.same(ts.events, ['alloc 5 1 10', 'alloc 101 1 20']);
  });

  t.test('false block headers that each claim to end at EOF: resync is linear in both readers', async (t) => {
    const dir = tmpDir('hp-hostile-');
    const size = 4 << 20;
    const junk = Buffer.alloc(size);
    for (let at = 0; at + 24 <= size; at += 24) {
      junk.write('HBLK', at, 'latin1');
      junk.writeUInt32LE(size - at - 24, at + 4);
    }
    const { base, hpd } = await profile(dir, 'fake', [junk]);
    let start = Date.now();
    const ts = await tsView(base);
    const tsMs = Date.now() - start;
    start = Date.now();
    const c = cView(hpd);
    const cMs = Date.now() - start;
    t.ok(tsMs < 20000, `TS reader took ${tsMs} ms`);
    t.ok(cMs < 20000, `C reader took ${cMs} ms`);
    t.same(c.events, ts.events, 'same events');
    t.same(ts.events.slice(0, 1), ['alloc 5 1 10'], 'the block before the damage is read');
  });
}
