// heapprof 1.0.x compatibility: the committed fixture (written by test/fixtures/format/
// generate.mjs following the documented layout) decodes to the known events and traces.

import { copyFileSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readAll, tmpDir } from '../helpers/profiles.js';

const fixture = fileURLToPath(new URL('../fixtures/format/v1', import.meta.url));

t.test('decodes times, trace ids, signed sizes, leaf-first traces and the sampling table', async (t) => {
  const back = await readAll(fixture, { v1Weights: 'stored' });
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
  // hpx(5): 1.0.x files have no end marker, so a reader cannot say the recording finished.
  t.equal(back.complete, false);
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

t.test('weights: every allocation was recorded, detected from the events per size range', async (t) => {
  const { everyAllocationRecorded } = await import('../../lib/format/v1.js');
  const table = { kind: 'table' as const, bounds: [128, 8192], probs: [1e-4, 0.1] };
  // Recorded everything: about as many small events as medium ones (CPython: many more).
  t.equal(everyAllocationRecorded([900, 90, 10], table), true);
  t.equal(everyAllocationRecorded([2, 1, 1], table), true, 'the fixture: 2 small, 1 medium, 1 large');
  // Sampled by the table: small events are rare next to medium ones.
  t.equal(everyAllocationRecorded([5, 900, 10], table), false);
  t.equal(everyAllocationRecorded([0, 300, 4], table), false);
  t.equal(everyAllocationRecorded([1, 0, 0], table), false, 'one event is no evidence');
  t.equal(everyAllocationRecorded([0, 5000, 2], table), false, 'medium against large buffers is no evidence');

  const auto = await readAll(fixture);
  t.same(auto.header.sampling, { kind: 'table', bounds: [], probs: [] }, 'read with weight 1');
  t.equal(auto.issues.length, 1, 'said once');
  t.match(auto.issues[0]!.message, /every allocation was recorded.*weighs 1.*--v1-weights stored/);
  t.match(auto.header.notes.join('\n'), /stored sampling table \{128: 0\.0001, 8192: 0\.1\}/);
  const forced = await readAll(fixture, { v1Weights: 'recorded' });
  t.same(forced.header.sampling, { kind: 'table', bounds: [], probs: [] });
});

t.test('weights: a 1.0.x file whose events fit its table keeps the stored weights', async (t) => {
  const { encodeV1 } = await import('../../lib/format/v1.js');
  const { writeFileSync } = await import('node:fs');
  const dir = tmpDir();
  const events = Array.from({ length: 400 }, (_, i) => ({ free: false, timeUs: i * 1000, trace: 1, size: i % 100 === 0 ? 64 : 1000 + i }));
  const v1 = encodeV1({ startSec: 1, startNsec: 0, sampling: [[128, 1e-4], [8192, 0.1]], traces: [[{ file: 'a.py', line: 1 }]], events });
  writeFileSync(join(dir, 's.hpm'), v1.hpm);
  writeFileSync(join(dir, 's.hpd'), v1.hpd);
  const back = await readAll(join(dir, 's'));
  t.equal(back.header.sampling.kind === 'table' && back.header.sampling.bounds.length, 2, 'stored table kept');
  t.same(back.issues, []);
});

t.test('commands: weight-1 totals that match the events, said once on stderr, complete: false', async (t) => {
  const { run } = await import('../fixtures/export/support.js');
  const snap = await run('hp-snapshot', [fixture, '--at', 'end']);
  t.equal(snap.code, 0, snap.stderr);
  const head = JSON.parse(snap.stdout.toString().split('\n')[0]!);
  // Live at the end: 10000 + 4096 (trace 2) + 50 (no trace); the 100-byte block was freed.
  t.equal(head.bytes, 14146);
  t.equal(head.count, 3);
  t.notOk('bytes_hi' in head, 'exact: every allocation is in the file');
  t.equal(head.complete, false);
  t.equal(snap.stderr.match(/every allocation was recorded/g)?.length, 1);
  const stored = await run('hp-snapshot', [fixture, '--at', 'end', '--v1-weights', 'stored']);
  t.equal(JSON.parse(stored.stdout.toString().split('\n')[0]!).bytes, 10000 + 4096 * 10 + 50 * 1e4, 'the option restores 1/p weights');
  t.notMatch(stored.stderr, /every allocation was recorded/);
  const events = await run('hp-events', [fixture]);
  const lines = events.stdout.toString().trim().split('\n');
  t.match(JSON.parse(lines.at(-1)!), { type: 'summary', complete: false });
  const bad = await run('hp-stats', [fixture, '--v1-weights', 'maybe']);
  t.equal(bad.code, 2, 'a bad value is a usage error');
});
