// REPEAT events (man/hpx.5, EVENTS): an ALLOC or FREE whose (trace, size) a slot of the block's
// cache holds is written as its header and dt only. The same events must come back as from the
// full encoding, from the TS and the C decoder alike; a REPEAT that names nothing is corruption;
// the .hpd header flag is what older readers refuse.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ByteSink } from '../../lib/format/bytes.js';
import { encodeBlock, encodeFileHeader, HPD_MAGIC, KIND, writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { OP_NAMES } from '../../lib/format/source.js';
import { nativeDecoder } from '../../lib/native.js';
import { blockOffsets, prng, randomSpec, readAll, tmpDir } from '../helpers/profiles.js';

type Ev = { op: string; timeUs: number; trace: number; size: number };

/** A numpy-like stream: a few traces allocating a cycle of sizes, each freed soon after, some kept. */
function arraysLike(seed: number, n: number): ProfileSpec {
  const rnd = prng(seed);
  const traces = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, frames: [{ function: `f${i}`, file: 'arrays.py', line: i + 1 }], dropped: 0 }));
  const events: ProfileSpec['events'] = [];
  const live: Array<{ trace: number; size: number }> = [];
  let time = 0;
  for (let i = 0; events.length < n; i++) {
    const size = 8000 << i % 11;
    for (const trace of [43, 44]) {
      time += Math.floor(rnd() * 3000);
      events.push({ op: 'alloc', timeUs: time, trace, size });
      live.push({ trace, size });
    }
    // Python-side noise: a random trace and size now and then.
    if (rnd() < 0.3) {
      time += 5;
      const x = { trace: 1 + Math.floor(rnd() * 60), size: Math.floor(rnd() * 600) };
      events.push({ op: 'alloc', timeUs: time, ...x });
      live.push(x);
    }
    while (live.length > (i % 50 === 0 ? 1 : 0) + 1) {
      const x = live.shift()!;
      time += Math.floor(rnd() * 200);
      events.push({ op: 'free', timeUs: time, ...x });
    }
    if (i % 97 === 0) events.push({ op: 'rss', timeUs: time, size: 1e8 + i });
  }
  return { header: { startTimeUs: 1_700_000_000_000_000, sampling: { kind: 'poisson', meanBytes: 524288 } }, traces, events, eventsPerBlock: 700 };
}

function cEvents(hpd: Buffer): Ev[] | null {
  const dec = nativeDecoder();
  if (!dec) return null;
  const r = dec.decodeHpd(hpd);
  const out: Ev[] = [];
  for (let i = 0; i < r.length; i++) out.push({ op: OP_NAMES[r.op[i]!]!, timeUs: r.timeUs[i]!, trace: r.trace[i]!, size: r.size[i]! });
  return out;
}

t.test('REPEAT and full encodings give the same events, REPEAT in fewer bytes, in both decoders', async (t) => {
  const dir = tmpDir('hp-repeat-');
  const specs: Array<[string, ProfileSpec]> = [['arrays-like', arraysLike(1, 20000)], ...[3, 8, 21].map((s): [string, ProfileSpec] => [`random ${s}`, randomSpec(s, 4000)])];
  for (const [what, spec] of specs) {
    const full = join(dir, `${what}-full`);
    const rep = join(dir, `${what}-repeat`);
    await writeProfile(full, { ...spec, repeat: false });
    await writeProfile(rep, { ...spec, repeat: true });
    const a = await readAll(full, { strict: true });
    const b = await readAll(rep, { strict: true });
    t.equal(b.events.length, a.events.length, `${what}: every event`);
    t.same(b.events, a.events, `${what}: the same events`);
    const hpdFull = readFileSync(`${full}.hpd`);
    const hpdRep = readFileSync(`${rep}.hpd`);
    t.equal(hpdFull.readUInt16LE(6), 0, `${what}: the full encoding's .hpd has no flags`);
    t.equal(hpdRep.readUInt16LE(6), 1, `${what}: the REPEAT encoding's .hpd says so (flag 1)`);
    const kinds = repeatCount(hpdRep);
    t.ok(kinds > 0, `${what}: ${kinds} REPEAT events written`);
    t.ok(hpdRep.length < hpdFull.length, `${what}: ${hpdRep.length} bytes against ${hpdFull.length}`);
    const c = cEvents(hpdRep);
    if (c) t.same(c, b.events, `${what}: the C decoder reads the same events`);
  }
  // The arrays-like stream is the case the cache is for: frees of fresh allocations, repeated sizes.
  const full = statSync(join(dir, 'arrays-like-full.hpd')).size;
  const rep = statSync(join(dir, 'arrays-like-repeat.hpd')).size;
  t.ok(rep / full < 0.8, `arrays-like: ${(rep / full).toFixed(2)} of the full encoding's bytes`);
});

/** REPEAT events in an .hpd written by HpxWriter (walks every block's events). */
function repeatCount(hpd: Buffer): number {
  let n = 0;
  for (const off of blockOffsets(hpd)) {
    const len = hpd.readUInt32LE(off + 4);
    const count = hpd.readUInt32LE(off + 8);
    let p = off + 24;
    const varint = (): number => {
      let v = 0;
      let s = 1;
      for (;;) {
        const c = hpd[p++]!;
        v += (c & 0x7f) * s;
        if (c < 0x80) return v;
        s *= 128;
      }
    };
    for (let i = 0; i < count; i++) {
      const h = varint();
      varint();
      if (h % 4 === KIND.REPEAT) n++;
      else if (h % 4 === KIND.EXT) {
        const body = varint();
        p += body;
      }
      else varint();
    }
    if (p !== off + 24 + len) throw new Error('walked off the block');
  }
  return n;
}

/** An .hpd of one block holding `events` (raw varint lists), with the REPEAT flag. */
function hpdWith(events: number[][], count = events.length): Buffer {
  const s = new ByteSink(64);
  for (const e of events) for (const v of e) s.varint(v);
  return Buffer.concat([encodeFileHeader(HPD_MAGIC, Buffer.alloc(16, 7), Buffer.alloc(0), 1), encodeBlock(s.view(), count, 1000)]);
}

t.test('a REPEAT that names no pair of its block is corruption, in both decoders', async (t) => {
  const dir = tmpDir('hp-repeat-');
  const base = join(dir, 'r');
  await writeProfile(base, { header: { sampling: { kind: 'table', bounds: [], probs: [] } }, traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }], events: [{ op: 'alloc', timeUs: 1, trace: 1, size: 10 }] });
  const id = readFileSync(`${base}.hpd`).subarray(8, 24);
  const alloc = [1 * 4 + KIND.ALLOC, 3, 100];
  const cases: Array<[string, number[][], string | null]> = [
    ['alloc then a REPEAT FREE of slot 0', [alloc, [(0 * 2 + 1) * 4 + KIND.REPEAT, 5]], null],
    ['a REPEAT first in its block (slot 0 empty)', [[(0 * 2 + 1) * 4 + KIND.REPEAT, 5], alloc], 'REPEAT of an empty slot'],
    ['a REPEAT of slot 1 with one slot filled', [alloc, [(1 * 2 + 0) * 4 + KIND.REPEAT, 5]], 'REPEAT of an empty slot'],
    ['a REPEAT of slot 16', [alloc, [(16 * 2 + 0) * 4 + KIND.REPEAT, 5]], 'REPEAT slot out of range'],
    ['a REPEAT cut after its header', [alloc, [(0 * 2 + 0) * 4 + KIND.REPEAT]], 'event runs past the end of its block'],
  ];
  for (const [what, events, error] of cases) {
    const hpd = hpdWith(events);
    id.copy(hpd, 8);
    hpd.writeUInt32LE(headerCrc(hpd), 28);
    writeFileSync(`${base}.hpd`, hpd);
    const r = await readAll(base);
    const messages = r.issues.map((i) => i.message).join('; ');
    if (error === null) {
      t.same(r.issues, [], `${what}: read`);
      t.same(
        r.events.map((e) => [e.op, e.trace, e.size]),
        [
          ['alloc', 1, 100],
          ['free', 1, 100],
        ],
        `${what}: the FREE repeats the ALLOC`,
      );
    } else {
      t.match(messages, error, `${what}: the block is rejected (${messages})`);
      t.same(r.events, [], `${what}: no event of the block is kept`);
    }
    const c = cEvents(hpd);
    if (c) t.same(c, r.events, `${what}: the C decoder agrees`);
  }
});

/** The .hpd file header CRC (bytes 0..27, no body). */
function headerCrc(hpd: Buffer): number {
  const { crc32 } = process.getBuiltinModule('node:zlib') as typeof import('node:zlib');
  return crc32(hpd.subarray(0, 28));
}

t.test('the cache is per block: a block decodes alone, and a seek or time window gives the same events', async (t) => {
  const dir = tmpDir('hp-repeat-');
  const base = join(dir, 'w');
  const spec = arraysLike(5, 9000);
  await writeProfile(base, { ...spec, eventsPerBlock: 333 });
  const all = (await readAll(base)).events.filter((e) => e.op !== 'end');
  const from = all[4000]!.timeUs;
  const to = all[7000]!.timeUs;
  const win = (await readAll(base, { fromUs: from, toUs: to })).events.filter((e) => e.op !== 'end');
  t.same(win, all.filter((e) => e.timeUs >= from && e.timeUs < to), 'a time window');
  // Every block from its own offset: the events of the blocks from there on.
  const hpd = readFileSync(`${base}.hpd`);
  const offsets = blockOffsets(hpd);
  const counts = offsets.map((o) => hpd.readUInt32LE(o + 8));
  for (const k of [1, 7, offsets.length - 2]) {
    const rest = (await readAll(base, { startOffset: offsets[k]! })).events;
    const skipped = counts.slice(0, k).reduce((a, b) => a + b, 0);
    t.same(rest.filter((e) => e.op !== 'end'), all.slice(skipped), `reading from block ${k}`);
  }
});

t.test('header flags: the .hpd may say REPEAT, nothing else; the .hpm deflate (hpm-deflate.test.ts), nothing else', async (t) => {
  const dir = tmpDir('hp-repeat-');
  const base = join(dir, 'f');
  await writeProfile(base, randomSpec(4, 100));
  const set = async (file: 'hpm' | 'hpd', flags: number): Promise<string | null> => {
    const path = `${base}.${file}`;
    const buf = readFileSync(path);
    const body = buf.readUInt32LE(24);
    buf.writeUInt16LE(flags, 6);
    const { crc32 } = process.getBuiltinModule('node:zlib') as typeof import('node:zlib');
    buf.writeUInt32LE(crc32(buf.subarray(32, 32 + body), crc32(buf.subarray(0, 28))), 28);
    writeFileSync(path, buf);
    try {
      await readAll(base);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };
  t.equal(await set('hpd', 1), null, '.hpd flag 1 (REPEAT) is read');
  t.equal(await set('hpd', 0), null, '.hpd without flags is read (every older profile)');
  t.match(await set('hpd', 3), /unknown header flags 0x3 at byte 6/, '.hpd flag 2 is refused');
  t.match(await set('hpm', 2), /unknown header flags 0x2 at byte 6/, '.hpm flag 2 is refused');
});

t.test("the Python package's reader (python/heapprof/_reader.py) reads REPEATs as the TS reader does", async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const pkg = fileURLToPath(new URL('../../python', import.meta.url));
  if (spawnSync('python3', ['-c', ''], { stdio: 'ignore' }).status !== 0) {
    t.skip('no python3 on PATH');
    return;
  }
  const dir = tmpDir('hp-repeat-');
  const base = join(dir, 'py');
  // With a deflated .hpm too, as the recorder writes it.
  await writeProfile(base, { ...arraysLike(9, 6000), eventsPerBlock: 500, deflateHpm: true });
  const code = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(pkg)})`,
    'from heapprof import _reader',
    'class C:',
    '    def __init__(self): self.ev = []',
    '    def event(self, kind, t, trace, v):',
    '        if kind <= 1: self.ev.append([kind, t, trace, v])',
    '    def mark(self, t, label): pass',
    'c = C()',
    `p = _reader.Profile(${JSON.stringify(base)})`,
    'p.poll(c)',
    'json.dump({"ev": c.ev, "traces": sorted(k for k in p.traces if k)}, sys.stdout)',
  ].join('\n');
  const r = spawnSync('python3', ['-c', code], { encoding: 'utf8', maxBuffer: 1 << 28 });
  t.equal(r.status, 0, r.stderr);
  const ts = (await readAll(base)).events.filter((e) => e.op === 'alloc' || e.op === 'free').map((e) => [e.op === 'alloc' ? 0 : 1, e.timeUs, e.trace, e.size]);
  t.ok(repeatCount(readFileSync(`${base}.hpd`)) > 1000, 'the profile has REPEATs');
  const py = JSON.parse(r.stdout) as { ev: unknown; traces: number[] };
  t.same(py.ev, ts, `the same ${ts.length} allocations and frees`);
  const tsTraces = await readAll(base);
  t.same(py.traces, [...tsTraces.traces.keys()].filter((id) => id !== 0).sort((a, b) => a - b), 'the same traces from the deflated .hpm');
  // A REPEAT of an empty slot stops the Python reader with a located error, not a wrong event.
  const hpd = hpdWith([[(3 * 2 + 1) * 4 + KIND.REPEAT, 5]]);
  readFileSync(`${base}.hpd`).copy(hpd, 8, 8, 24);
  hpd.writeUInt32LE(headerCrc(hpd), 28);
  writeFileSync(`${base}.hpd`, hpd);
  const bad = spawnSync('python3', ['-c', code], { encoding: 'utf8' });
  t.not(bad.status, 0, 'a REPEAT of an empty slot is an error');
  t.match(bad.stderr, /REPEAT of an empty slot/);
});
