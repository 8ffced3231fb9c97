// Marks without Python: the writer's MARK record and EXT MARK event, read back by the v2 reader
// (the event skipped by the TS and C decoders), mark:LABEL resolution, and hp-events' mark lines.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { readMarks, resolveMark } from '../../lib/format/marks.js';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { readAll, tmpDir } from '../helpers/profiles.js';
import { REPO } from '../helpers/python.js';

const trace = { id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 };

t.test('marks round-trip and resolve', async (t) => {
  const base = join(tmpDir(), 'm');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [trace],
    eventsPerBlock: 2,
    events: [
      { op: 'alloc', timeUs: 10, trace: 1, size: 100 },
      { op: 'mark', timeUs: 20, size: 0, label: 'loaded' },
      { op: 'alloc', timeUs: 30, trace: 1, size: 50 },
      { op: 'mark', timeUs: 40, size: 0, label: 'step' },
      { op: 'free', timeUs: 50, trace: 1, size: 100 },
      { op: 'mark', timeUs: 60, size: 0, label: 'step' },
      { op: 'mark', timeUs: 70, size: 0, label: 'ünïcode ✓' },
    ],
  });
  const marks = await readMarks(base);
  t.same(marks, [
    { id: 1, timeUs: 20, label: 'loaded' },
    { id: 2, timeUs: 40, label: 'step' },
    { id: 3, timeUs: 60, label: 'step' },
    { id: 4, timeUs: 70, label: 'ünïcode ✓' },
  ]);
  t.equal(resolveMark('mark:loaded', marks, 'at', base), 20);
  t.equal(resolveMark('mark:step', marks, 'at', base), 40, 'the first of a repeated label');
  t.equal(resolveMark('mark:step#2', marks, 'at', base), 60);
  t.throws(() => resolveMark('mark:step#3', marks, 'at', base), /--at: no mark 'step#3' in .* \(its marks: loaded, step, ünïcode ✓\)/);
  t.throws(() => resolveMark('mark:', [], 'from', base), /no mark '' in .* \(it has no marks\)/);

  // The EXT MARK events are skipped by the decoder: only the three alloc/free events come back.
  const back = await readAll(base);
  t.same(back.events.map((e) => e.op), ['alloc', 'alloc', 'free', 'end']);

  const ev = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-events.js'), base], { encoding: 'utf8' });
  t.equal(ev.status, 0, ev.stderr);
  const kinds = ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.type === 'event' || l.type === 'mark').map((l) => (l.type === 'mark' ? `mark ${String(l.label)}` : String(l.op)));
  t.same(kinds, ['alloc', 'mark loaded', 'alloc', 'mark step', 'free', 'mark step', 'mark ünïcode ✓', 'end']);
  const from = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-events.js'), base, '--from', 'mark:step#2'], { encoding: 'utf8' });
  t.same(from.stdout.split('\n').filter((l) => l.includes('"mark"')).map((l) => (JSON.parse(l) as { label: string }).label), ['step', 'ünïcode ✓']);
  const stdin = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-events.js'), '-', '--from', 'mark:step'], { encoding: 'utf8', input: ev.stdout });
  t.equal(stdin.status, 2);
  t.match(stdin.stderr, /marks are read from a profile, not from an events stream/);
  // Mark lines survive a trip through NDJSON.
  const again = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-events.js'), '-'], { encoding: 'utf8', input: ev.stdout });
  t.equal(again.stdout.split('\n').filter((l) => l.includes('"type":"mark"')).length, 4);
});
