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

t.test('several profiles read as one: marks on the merged (wall-clock) timeline', async (t) => {
  const dir = tmpDir();
  // Two processes: b started 2 s after a. a marks 'loaded' at 1 s of its own; b marks
  // 'loaded' at 0.5 s and 'done' at 3 s of its own: 2.5 s and 5 s on the merged timeline.
  const one = async (name: string, startTimeUs: number, pid: number, marks: Array<[number, string]>) =>
    writeProfile(join(dir, name), {
      header: { sampling: { kind: 'table', bounds: [], probs: [] }, startTimeUs, pid },
      traces: [trace],
      events: [
        { op: 'alloc', timeUs: 100_000, trace: 1, size: 1000 },
        ...marks.map(([timeUs, label]) => ({ op: 'mark' as const, timeUs, size: 0, label })),
        { op: 'alloc', timeUs: 6_000_000, trace: 1, size: 10 },
      ],
    });
  await one('run.1', 1_700_000_000_000_000, 1, [[1_000_000, 'loaded']]);
  await one('run.2', 1_700_000_002_000_000, 2, [[500_000, 'loaded'], [3_000_000, 'done']]);
  const hp = (cmd: string, ...args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin', `hp-${cmd}.js`), ...args], { cwd: dir, encoding: 'utf8' });

  const ev = hp('events', 'run.1', 'run.2');
  t.equal(ev.status, 0, ev.stderr);
  const marks = ev.stdout.split('\n').filter((l) => l.includes('"mark"')).map((l) => JSON.parse(l));
  t.same(marks.map((m) => [m.t, m.label]), [[1, 'loaded'], [2.5, 'loaded'], [5, 'done']], 'hp-events: every process\'s marks, shifted');

  const snap = hp('snapshot', 'run.*', '--at', 'mark:done', '--json');
  t.equal(snap.status, 0, snap.stderr);
  t.equal(JSON.parse(snap.stdout.split('\n')[0]!).at, 5, 'hp-snapshot --at mark:done: the time of b\'s mark on the merged timeline');
  const second = hp('snapshot', 'run.1', 'run.2', '--at', 'mark:loaded#2', '--json');
  t.equal(JSON.parse(second.stdout.split('\n')[0]!).at, 2.5, 'mark:LABEL#N counts over every process');

  const from = hp('events', 'run.1', 'run.2', '--from', 'mark:done');
  t.equal(from.status, 0, from.stderr);
  const times = from.stdout.split('\n').filter((l) => l.includes('"type":"event"')).map((l) => JSON.parse(l).t);
  t.same([...new Set(times)], [6, 8], 'hp-events --from mark:done keeps only what follows it, on the merged timeline');
  const window = hp('events', 'run.1', 'run.2', '--from', '1', '--to', 'mark:done');
  const inWindow = window.stdout.split('\n').filter((l) => l.includes('"op":"alloc"')).map((l) => JSON.parse(l).t);
  t.same(inWindow, [2.1], '--from 1 --to mark:done: only b\'s first allocation (2.1 s merged)');

  const hist = hp('history', 'run.1', 'run.2', '--json', '--granularity', '1');
  t.equal(hist.status, 0, hist.stderr);
  const histMarks = hist.stdout.trim().split('\n').map((l) => JSON.parse(l)).flatMap((b) => b.marks ?? []);
  t.same(histMarks.map((m: { t: number; label: string }) => [m.t, m.label]), [[1, 'loaded'], [2.5, 'loaded'], [5, 'done']], 'hp-history shows them');

  const none = hp('snapshot', 'run.1', 'run.2', '--at', 'mark:nope');
  t.equal(none.status, 2);
  t.match(none.stderr, /--at: no mark 'nope' in run\.1 run\.2 \(its marks: loaded, done\)/);
});

t.test('hp-diff of two profiles with one --at mark:LABEL reads each profile at its own mark', async (t) => {
  const dir = tmpDir();
  const profile = async (name: string, events: Parameters<typeof writeProfile>[1]['events']) =>
    writeProfile(join(dir, name), { header: { sampling: { kind: 'table', bounds: [], probs: [] } }, traces: [trace], events });
  // 'loaded' falls after the first allocation in a, after both in b: 1000 B live at a's mark, 1500 B at b's.
  await profile('a', [
    { op: 'alloc', timeUs: 10, trace: 1, size: 1000 },
    { op: 'mark', timeUs: 20, size: 0, label: 'loaded' },
    { op: 'alloc', timeUs: 30, trace: 1, size: 500 },
  ]);
  await profile('b', [
    { op: 'alloc', timeUs: 10, trace: 1, size: 1000 },
    { op: 'alloc', timeUs: 30, trace: 1, size: 500 },
    { op: 'mark', timeUs: 40, size: 0, label: 'loaded' },
  ]);
  await profile('none', [{ op: 'alloc', timeUs: 10, trace: 1, size: 1000 }]);
  const diff = (...args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin', 'hp-diff.js'), ...args, '--json', '-q'], { cwd: dir, encoding: 'utf8' });
  const one = diff('a', 'b', '--at', 'mark:loaded');
  t.equal(one.status, 0, one.stderr);
  const lines = one.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.same([lines[0].before.at, lines[0].after.at], [20e-6, 40e-6], 'each side at its own profile\'s mark');
  t.match(lines.at(-1), { type: 'total', before: 1000, after: 1500, change: 500 });
  const repeated = diff('a', 'b', '--at', 'mark:loaded', '--at', 'mark:loaded');
  t.equal(repeated.stdout, one.stdout, 'the same as repeating the option');
  const missing = diff('a', 'none', '--at', 'mark:loaded');
  t.equal(missing.status, 2);
  t.match(missing.stderr, /^hp-diff: --at: no mark 'loaded' in none \(it has no marks\)\n$/, 'a profile without the mark is an error naming it');
  const first = diff('none', 'a', '--at', 'mark:loaded');
  t.match(first.stderr, /no mark 'loaded' in none/);
});
