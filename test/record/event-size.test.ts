// The recorder's event encoding on a real CPython (man/hpx.5, EVENTS: REPEAT events): a pure-Python
// churn and, where numpy is installed, a numpy loop like bench/workloads/arrays.py. The profile's
// events, read by the TS and the C decoder, are the same; written again in the full encoding
// (every event with its trace and size, as recorders before REPEAT did) they read back the same,
// and take more bytes per event than the recorder's file.

import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ByteSink, Cursor } from '../../lib/format/bytes.js';
import { encodeBlock, writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { OP_NAMES } from '../../lib/format/source.js';
import { nativeDecoder } from '../../lib/native.js';
import { readAll } from '../helpers/profiles.js';
import { hookLibrary, hpRecord, missingBuild, pythons, REPO, scratch } from '../fixtures/record/harness.js';

const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built (npm ci or npx node-gyp rebuild)');
if (skip) t.plan(0, skip);

const CHURN = `
ring = [None] * 512
for i in range(8000):
    key = "k%d" % (i & 1023)
    obj = {"id": i, "key": key, "vals": [i, i + 1, i + 2], "pair": (key, i)}
    if i % 7 == 0:
        obj["blob"] = b"x" * (64 + (i & 255))
    ring[i & 511] = obj
`;

const ARRAYS = `
import numpy
keep = []
for i in range(600):
    n = 1000 << (i % 11)
    a = numpy.ones(n)
    b = a * 2.0 + 1.0
    if i % 50 == 0:
        keep.append(b[: n // 8].copy())
    del a, b
`;

type Ev = { op: string; timeUs: number; trace: number; size: number };

/** The .hpd with each REPEAT written as the full ALLOC or FREE it stands for, blocks otherwise as they were. */
function withoutRepeats(hpd: Buffer): Buffer {
  const out: Buffer[] = [Buffer.from(hpd.subarray(0, 32))];
  out[0]!.writeUInt16LE(0, 6);
  out[0]!.writeUInt32LE(crc32(out[0]!.subarray(0, 28)), 28);
  let o = 32;
  while (o + 24 <= hpd.length) {
    const len = hpd.readUInt32LE(o + 4);
    const count = hpd.readUInt32LE(o + 8);
    const payload = hpd.subarray(o + 24, o + 24 + len);
    const c = new Cursor(payload);
    const s = new ByteSink(len * 3);
    const slots: Array<[number, number]> = [];
    let full = 0;
    for (let i = 0; i < count; i++) {
      const h = c.varint();
      const dt = c.varint();
      if (h % 4 === 2) {
        const [trace, size] = slots[h >> 3]!;
        s.varint(trace * 4 + ((h >> 2) & 1));
        s.varint(dt);
        s.varint(size);
        continue;
      }
      const v = c.varint();
      s.varint(h);
      s.varint(dt);
      s.varint(v);
      if (h % 4 === 3) s.bytes(payload.subarray(c.pos, (c.pos += v)));
      else slots[full++ % 16] = [Math.floor(h / 4), v];
    }
    out.push(encodeBlock(s.view(), count, Number(hpd.readBigUInt64LE(o + 12))));
    o += 24 + len;
  }
  return Buffer.concat(out);
}

/** Where two event lists first differ, or null (tap's deep comparison is slow on 10^5 events). */
function firstDifference(a: Ev[], b: Ev[]): string | null {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.op !== y.op || x.timeUs !== y.timeUs || x.trace !== y.trace || x.size !== y.size) return `event ${i}: ${JSON.stringify(x)} against ${JSON.stringify(y)}`;
  }
  return null;
}

async function check(t: Test, dir: string, name: string, py: string, code: string, args: string[], maxRatio: number): Promise<void> {
  const script = join(dir, `${name}.py`);
  writeFileSync(script, code);
  const base = join(dir, name);
  const r = await hpRecord(['--python', py, '-o', base, ...args, '--', script], { cwd: dir });
  t.equal(r.code, 0, `${name}: recorded (${r.stderr.trim().split('\n').at(-2) ?? ''})`);
  const rec = await readAll(base, { strict: true });
  t.ok(rec.complete, `${name}: complete`);
  const hpd = readFileSync(`${base}.hpd`);
  t.equal(hpd.readUInt16LE(6), 1, `${name}: the .hpd says its events may be REPEATs`);
  const dec = nativeDecoder();
  if (dec) {
    const c = dec.decodeHpd(hpd);
    const cEvents: Ev[] = [];
    for (let i = 0; i < c.length; i++) cEvents.push({ op: OP_NAMES[c.op[i]!]!, timeUs: c.timeUs[i]!, trace: c.trace[i]!, size: c.size[i]! });
    const diff = firstDifference(cEvents, rec.events);
    t.equal(diff, null, `${name}: the C decoder reads the same ${rec.events.length} events${diff ? ` (${diff})` : ''}`);
  }
  // The same events and traces in the full encoding.
  const spec: ProfileSpec = {
    header: rec.header,
    traces: [...rec.traces.values()],
    events: rec.events.filter((e) => e.op !== 'end').map((e) => ({ op: e.op as 'alloc' | 'free' | 'rss' | 'lost', timeUs: e.timeUs, trace: e.trace, size: e.size })),
    repeat: false,
    eventsPerBlock: 20000,
  };
  const full = join(dir, `${name}-full`);
  await writeProfile(full, spec);
  const back = await readAll(full, { strict: true });
  // END aside: the writer puts it at the last event's time, the recorder at its stop.
  const noEnd = (evs: Ev[]): Ev[] => evs.filter((e) => e.op !== 'end');
  const diff = firstDifference(noEnd(back.events), noEnd(rec.events));
  t.equal(diff, null, `${name}: the full encoding reads back the same events${diff ? ` (${diff})` : ''}`);
  t.ok(back.complete, `${name}: and ends with END`);
  // hp-events on the recorder's profile and on the same .hpd with every REPEAT written out in
  // full (same blocks, times and .hpm): the same output, line for line.
  const same = join(dir, `${name}-same`);
  copyFileSync(`${base}.hpm`, `${same}.hpm`);
  const expanded = withoutRepeats(hpd);
  writeFileSync(`${same}.hpd`, expanded);
  t.ok(expanded.length > hpd.length * 1.3, `${name}: ${expanded.length} bytes with every event in full, ${hpd.length} as recorded`);
  const events = (b: string): string => execFileSync(process.execPath, [join(REPO, 'bin', 'hp-events.js'), b], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const a = events(base);
  const c = events(same);
  t.ok(a.length > 1000, `${name}: hp-events wrote ${a.length} bytes`);
  t.ok(a === c, `${name}: hp-events writes the same ${a.split('\n').length} lines for both encodings`);
  const n = rec.events.filter((e) => e.op === 'alloc' || e.op === 'free').length;
  t.ok(n > 1000, `${name}: ${n} allocation events`);
  const now = statSync(`${base}.hpd`).size / n;
  const before = statSync(`${full}.hpd`).size / n;
  t.ok(now < before * maxRatio, `${name}: ${now.toFixed(2)} .hpd bytes per event against ${before.toFixed(2)} in the full encoding (at most ${maxRatio}x)`);
}

if (!skip) {
  const all = pythons();
  const py = all[all.length - 1]!;
  t.test(`pure Python churn, everything recorded, CPython ${py.version}`, async (t) => {
    await check(t, scratch(), 'churn', py.exe, CHURN, ['--sample', '{}'], 0.7);
  });
  const withNumpy = all.find((p) => spawnSync(p.exe, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0);
  t.test('numpy arrays, --native, byte-Poisson 512 KiB', { skip: withNumpy ? false : 'no CPython here has numpy' }, async (t) => {
    await check(t, scratch(), 'arrays', withNumpy!.exe, ARRAYS, ['--native', '--sample-bytes', '512K'], 0.6);
  });
}
