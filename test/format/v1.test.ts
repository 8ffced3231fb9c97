// heapprof 1.0.x compatibility: the committed fixture (written by test/fixtures/format/
// generate.mjs following the documented layout) decodes to the known events and traces.

import { copyFileSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readAll, tmpDir } from '../helpers/profiles.js';

const fixture = fileURLToPath(new URL('../fixtures/format/v1', import.meta.url));

t.test('decodes times, trace ids, signed sizes, leaf-first traces and the sampling table', async (t) => {
  const back = await readAll(fixture);
  t.equal(back.header.formatVersion, 1);
  t.equal(back.header.startTimeUs, 1571000000 * 1e6 + 123456);
  t.equal(back.header.sampling.kind, 'table');
  if (back.header.sampling.kind === 'table') {
    t.same(back.header.sampling.bounds, [128, 8192]);
    // Stored as fixed32 fractions of 2^32-1: exact to ~1e-10.
    t.ok(Math.abs(back.header.sampling.probs[0]! - 1e-4) < 1e-9);
    t.ok(Math.abs(back.header.sampling.probs[1]! - 0.1) < 1e-9);
  }
  t.same(back.events, [
    { op: 'alloc', timeUs: 1500, trace: 1, size: 100 },
    { op: 'alloc', timeUs: 2_000_250, trace: 2, size: 10000 },
    { op: 'alloc', timeUs: 2_000_100, trace: 2, size: 4096 }, // negative delta
    { op: 'free', timeUs: 3_500_000, trace: 1, size: 100 },
    { op: 'alloc', timeUs: 3_600_000, trace: 0, size: 50 },
  ]);
  t.same(back.traces.get(1)?.frames, [
    { function: null, file: '/app/worker.py', line: 41 },
    { function: null, file: '/app/main.py', line: 7 },
  ]);
  t.same(back.traces.get(2)?.frames.map((f) => `${f.file}:${f.line}`), ['/app/cache.py:120', '/app/worker.py:55', '/app/main.py:7']);
  t.same(back.traces.get(0)?.frames, []);
  t.same(back.issues, []);
  t.equal(back.complete, true);
});

t.test('a truncated 1.0 log keeps every whole event and names the offset', async (t) => {
  const dir = tmpDir();
  copyFileSync(`${fixture}.hpm`, join(dir, 'p.hpm'));
  copyFileSync(`${fixture}.hpd`, join(dir, 'p.hpd'));
  const size = statSync(join(dir, 'p.hpd')).size;
  truncateSync(join(dir, 'p.hpd'), size - 2);
  const back = await readAll(join(dir, 'p'));
  t.equal(back.events.length, 4);
  t.equal(back.complete, false);
  const whole = readFileSync(`${fixture}.hpd`).length; // the last event is 9 bytes: word, 0 s, 100000 µs, 50
  t.equal(back.issues.length, 1);
  t.match(back.issues[0]!.message, new RegExp(`^truncated event at byte ${whole - 9} \\(7 bytes\\); read everything before it$`));
});
