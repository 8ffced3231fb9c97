// Property tests: random profiles encode → decode exactly (events, traces, header), across
// block boundaries, with sizes above 4 GiB, deep stacks and non-ASCII names.

import { join } from 'node:path';
import t from 'tap';
import { ByteSink, Cursor, varintLength } from '../../lib/format/bytes.js';
import { writeProfile } from '../../lib/format/hpx.js';
import { openProfile } from '../../lib/format/profile.js';
import { prng, randomSpec, readAll, tmpDir } from '../helpers/profiles.js';

t.test('varints round-trip up to 2^53 and report their length', async (t) => {
  const rnd = prng(7);
  const values = [0, 1, 127, 128, 16383, 16384, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 17, Number.MAX_SAFE_INTEGER];
  for (let i = 0; i < 2000; i++) values.push(Math.floor(rnd() * 2 ** Math.floor(rnd() * 53)));
  const s = new ByteSink(16);
  for (const v of values) s.varint(v);
  const c = new Cursor(s.view());
  for (const v of values) {
    const before = c.pos;
    t.equal(c.varint(), v);
    if (c.pos - before !== varintLength(v)) t.fail(`length of ${v}`);
  }
  t.equal(c.remaining, 0);
});

t.test('varints that overflow or run on are rejected', async (t) => {
  t.throws(() => new Cursor(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).varint(), /longer than 10 bytes/);
  t.throws(() => new Cursor(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).varint(), /too large/);
  t.throws(() => new Cursor(Buffer.from([0x80, 0x80])).varint(), /past the end/);
});

t.test('random profiles round-trip exactly', async (t) => {
  const dir = tmpDir();
  for (let seed = 1; seed <= 40; seed++) {
    const spec = randomSpec(seed, seed === 1 ? 0 : 50 + seed * 97);
    const base = join(dir, `p${seed}`);
    await writeProfile(base, spec);
    const back = await readAll(base);
    t.same(back.issues, [], `seed ${seed}: no issues`);
    t.equal(back.complete, true, `seed ${seed}: complete`);
    const expected = spec.events.map((e) => ({ op: e.op, timeUs: e.timeUs, trace: e.trace ?? 0, size: e.size }));
    const got = back.events.filter((e) => e.op !== 'end');
    t.equal(got.length, expected.length, `seed ${seed}: event count`);
    let mismatch = -1;
    for (let i = 0; i < expected.length; i++) {
      const a = got[i]!;
      const b = expected[i]!;
      if (a.op !== b.op || a.timeUs !== b.timeUs || a.trace !== b.trace || a.size !== b.size) {
        mismatch = i;
        break;
      }
    }
    t.equal(mismatch, -1, `seed ${seed}: events identical`);
    t.equal(back.events[back.events.length - 1]?.op, 'end', `seed ${seed}: END is last`);
    const used = new Set(spec.events.filter((e) => e.op === 'alloc' || e.op === 'free').map((e) => e.trace ?? 0));
    for (const tr of spec.traces) {
      if (!used.has(tr.id)) continue;
      t.same(back.traces.get(tr.id), tr, `seed ${seed}: trace ${tr.id}`);
    }
    t.equal(back.header.pid, spec.header.pid);
    t.same(back.header.argv, spec.header.argv);
    t.same(back.header.sampling, spec.header.sampling);
    t.equal(back.header.startTimeUs, spec.header.startTimeUs);
    t.equal(back.header.pythonVersion, spec.header.pythonVersion);
  }
});

t.test('frame indexes: the same frames as the trace objects, the same indexes in every opening', async (t) => {
  const dir = tmpDir();
  for (let seed = 1; seed <= 10; seed++) {
    const spec = randomSpec(seed, 200);
    const base = join(dir, `f${seed}`);
    await writeProfile(base, spec);
    const first = await openProfile(base);
    const second = await openProfile(base);
    const used = new Set(spec.events.map((e) => e.trace ?? 0));
    try {
      for (const tr of spec.traces) {
        if (!used.has(tr.id)) continue;
        const a = first.traceFrameIndexes!(tr.id);
        const b = second.traceFrameIndexes!(tr.id);
        if (!a || !b) {
          t.fail(`seed ${seed}: trace ${tr.id} has no frame indexes`);
          continue;
        }
        t.equal(a.dropped, tr.dropped);
        t.same(Array.from(a.frames), Array.from(b.frames), `seed ${seed}: trace ${tr.id}: same indexes in both openings`);
        t.same(Array.from(a.frames, (i) => first.frameAt!(i)), tr.frames, `seed ${seed}: trace ${tr.id}: frames`);
      }
      t.equal(first.traceFrameIndexes!(0), undefined, 'trace 0 (no Python stack) is not indexed');
      t.equal(first.traceFrameIndexes!(1_000_000), undefined, 'nor an undefined trace');
    } finally {
      await first.close();
      await second.close();
    }
  }
});

t.test('time windows select events without changing them', async (t) => {
  const dir = tmpDir();
  const spec = randomSpec(99, 5000);
  const base = join(dir, 'w');
  await writeProfile(base, spec);
  const all = (await readAll(base)).events.filter((e) => e.op !== 'end');
  const from = all[1000]!.timeUs;
  const to = all[3000]!.timeUs;
  const win = (await readAll(base, { fromUs: from, toUs: to })).events.filter((e) => e.op !== 'end');
  t.same(win, all.filter((e) => e.timeUs >= from && e.timeUs < to));
});

t.test('events per file stay small', async (t) => {
  // A realistic stream: 200 traces, small sizes, ~10 µs apart.
  const rnd = prng(3);
  const traces = Array.from({ length: 200 }, (_, i) => ({ id: i + 1, frames: [{ function: `f${i}`, file: 'app.py', line: i }], dropped: 0 }));
  const events: Array<{ op: 'alloc' | 'free'; timeUs: number; trace: number; size: number }> = [];
  let time = 0;
  for (let i = 0; i < 100000; i++) {
    time += Math.floor(rnd() * 20);
    events.push({ op: rnd() < 0.5 ? 'alloc' : 'free', timeUs: time, trace: 1 + Math.floor(rnd() * 200), size: Math.floor(rnd() * 10000) });
  }
  const dir = tmpDir();
  await writeProfile(join(dir, 's'), { header: { sampling: { kind: 'table', bounds: [], probs: [] } }, traces, events, eventsPerBlock: 10000 });
  const { statSync } = await import('node:fs');
  const bytes = statSync(join(dir, 's.hpd')).size + statSync(join(dir, 's.hpm')).size;
  t.ok(bytes / events.length <= 6, `${(bytes / events.length).toFixed(2)} bytes per event`);
});
