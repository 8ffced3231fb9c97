// Regressions from the independent CLI testers' report: each test failed before its fix.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';
import { sh } from '../fixtures/analysis/run.js';

t.test('hp-report builds its page from events NDJSON as from the profile it came from', async (t) => {
  const dir = tmpDir('qa-report-');
  const r = sh(`hp-events app > ${dir}/app.ndjson && hp-report ${dir}/app.ndjson -o ${dir}/n.html -q && hp-report app -o ${dir}/p.html -q`);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '');
  const data = (file: string): Record<string, unknown> => {
    const html = readFileSync(join(dir, file), 'utf8');
    const json = JSON.parse(/<script id="hp-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]!) as Record<string, unknown>;
    delete json.title;
    return json;
  };
  t.same(data('n.html'), data('p.html'), 'the same data, but for the title');
  const piped = sh(`hp-events app | hp-report - -o ${dir}/s.html`);
  t.equal(piped.status, 2);
  t.match(piped.stderr, /^hp-report: the report reads its input twice: name a profile or an NDJSON file, not stdin\n$/);
});

t.test('--height N draws N rows, and every y label is as wide as the widest, a minus sign included', async (t) => {
  const rows = (text: string): string[] => text.split('\n').filter((l) => /[┼┤]/.test(l));
  for (const n of [1, 2, 3, 15]) {
    const r = sh(`hp-chart --field a --height ${n} --width 40`, '{"a":1}\n{"a":5}\n{"a":3}\n');
    t.equal(r.status, 0, r.stderr);
    t.equal(rows(r.stdout).length, n, `hp-chart --height ${n}`);
    const h = sh(`hp-history app --chart --height ${n} --width 80 -q`);
    const charts = h.stdout.split('\n\n').filter((c) => c.trim() !== '');
    t.equal(charts.length, 2, 'live heap and RSS');
    for (const c of charts) t.equal(rows(c).length, n, `hp-history --chart --height ${n}`);
  }
  for (const input of ['{"a":1}\n{"a":-5}\n{"a":3}\n', '{"a":-0.3}\n{"a":-0.25}\n{"a":0.7}\n', '{"a":-1}\n{"a":-5}\n']) {
    const r = sh('hp-chart --field a --height 5 --width 40', input);
    t.equal(r.status, 0, r.stderr);
    const lines = rows(r.stdout);
    t.equal(lines.length, 5);
    const axis = lines.map((l) => l.search(/[┼┤]/));
    t.same(axis, axis.map(() => axis[0]), `one column for the axis: ${JSON.stringify(lines)}`);
    const labels = lines.map((l) => Number(l.slice(0, axis[0]).trim()));
    const step = labels[0]! - labels[1]!;
    t.ok(labels.every((v, i) => Math.abs(v - (labels[0]! - i * step)) < 1e-9), `even steps: ${labels.join(', ')}`);
    t.ok(labels.includes(0), 'a row for 0');
  }
});

t.test('an empty window is one usage error in every command; a window with nothing in it is written empty, with a note', async (t) => {
  const base = join(tmpDir('qa-window-'), 'w');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 }],
    events: [
      { op: 'alloc', timeUs: 100_000, trace: 1, size: 100 },
      { op: 'mark', timeUs: 500_000, size: 0, label: 'hundred' },
      { op: 'alloc', timeUs: 900_000, trace: 1, size: 50 },
    ],
  });
  const empty: Array<[string, string, string]> = [
    ['--to 0', '--to 0', '0 (the start, as no --from is given)'],
    ['--from 0 --to 0', '--to 0', '0'],
    ['--from 0.5 --to 0.5', '--to 0.5', '0.5'],
    ['--from mark:hundred --to mark:hundred', '--to mark:hundred', 'mark:hundred'],
  ];
  for (const cmd of ['hp-events', 'hp-history', 'hp-pprof -o /dev/null']) {
    for (const [window, to, from] of empty) {
      const r = sh(`${cmd} ${base} ${window}`);
      t.equal(r.status, 2, `${cmd} ${window}`);
      t.equal(r.stderr, `${cmd.split(' ')[0]}: ${to}: not after --from ${from}, so the window is empty\n`);
    }
    const before = sh(`${cmd} ${base} --from 0.6 --to 0.2`);
    t.equal(before.status, 2);
    t.equal(before.stderr, `${cmd.split(' ')[0]}: --to 0.2: before --from 0.6\n`);
  }
  const notes: Array<[string, RegExp]> = [
    ['hp-events', /^hp-events: the window --from 0.5004 --to 0.5006 holds no events\n$/],
    ['hp-history', /^hp-history: the window --from 0.5004 --to 0.5006 holds no bucket end \(buckets of [0-9.]+ s\): nothing written; widen it or choose a --granularity\nhp-history: 0 buckets/],
    ['hp-pprof -o /dev/null', /hp-pprof: the window --from 0.5004 --to 0.5006 holds no allocations\n$/],
  ];
  for (const [cmd, note] of notes) {
    const r = sh(`${cmd} ${base} --from 0.5004 --to 0.5006`);
    t.equal(r.status, 0, `${cmd}: a window of positive length is not an error`);
    t.match(r.stderr, note);
    t.equal(sh(`${cmd} ${base} --from 0.5004 --to 0.5006 -q`).stderr, '', '-q: no note');
  }
  t.equal(sh(`hp-events ${base} --from 0.5004 --to 0.5006`).stdout.split('\n').filter(Boolean).length, 2, 'hp-events: meta and summary (--to stops before the end marker)');
});

t.test('an option that takes one value, given twice, is named as given twice, in every command', async (t) => {
  const cases: Array<[string, string]> = [
    ['hp-snapshot app --at 0.1 --at 0.2', "hp-snapshot: --at given twice ('0.1', then '0.2'): it takes one value"],
    ['hp-snapshot app --top 1 --top=2', "hp-snapshot: --top given twice ('1', then '2'): it takes one value"],
    ['hp-events app --from 1 --from 2 --to 3', "hp-events: --from given twice ('1', then '2'): it takes one value"],
    ['hp-history app --to 1 --to 2 --to 3', "hp-history: --to given 3 times ('1', then '2', then '3'): it takes one value"],
    ['hp-report app -o a.html --output b.html', "hp-report: --output given twice ('a.html', then 'b.html'): it takes one value"],
    ['hp-chart --field a --field b', "hp-chart: --field given twice ('a', then 'b'): it takes one value"],
    ['hp-stats app --v1-weights auto --v1-weights stored', "hp-stats: --v1-weights given twice ('auto', then 'stored'): it takes one value"],
  ];
  for (const [cmd, message] of cases) {
    const r = sh(cmd, '');
    t.equal(r.status, 2, cmd);
    t.equal(r.stderr.split('\n')[0], message);
  }
  // Options that take several, and flags, are not refused.
  t.equal(sh('hp-diff app --at 1 --at 2 -q > /dev/null').status, 0, 'hp-diff --at is repeatable');
  t.equal(sh('hp-snapshot app --json --json -q > /dev/null').status, 0, 'a flag given twice is the flag');
});

t.test('an NDJSON size too large to sum exactly names the limit', async (t) => {
  const meta = sh('hp-events app | head -1').stdout;
  for (const size of ['1e300', '123456789012345678901234567890', '1e999']) {
    const r = sh('hp-stats - -q', `${meta}{"type":"event","t":1,"op":"alloc","trace":0,"size":${size}}\n`);
    t.equal(r.status, 1);
    t.match(r.stderr, /^hp-stats: stdin: line 2: event: 'size' \S+ is past the 9007199254740991-byte limit \(2\^53 - 1\)\n$/, size);
  }
  const r = sh('hp-stats - -q', `${meta}{"type":"event","t":1,"op":"alloc","trace":0,"size":-1}\n`);
  t.equal(r.stderr, "hp-stats: stdin: line 2: event: 'size' must be a number >= 0\n");
});

t.test('hp-record refuses, before starting, a -o base whose longest file name would not fit NAME_MAX', async (t) => {
  const { planOutput } = await import('../../lib/cmd/record.js');
  const dir = tmpDir('qa-name-');
  const long = join(dir, 'a'.repeat(300));
  const r = sh(`hp-record -o ${long} -c 'print("ran")'`);
  t.equal(r.status, 2, r.stderr);
  t.equal(r.stdout, '', 'the program never ran');
  t.equal(r.stderr, `hp-record: -o ${long}: BASE.hpm.lock would be a 309-byte file name, over the 255 bytes one can have (NAME_MAX): use a base name of at most 246 bytes\n`);
  t.same(planOutput(join(dir, 'a'.repeat(246)), 'profile', false), { base: join(dir, 'a'.repeat(246)) }, 'BASE.hpm.lock of 255 bytes fits');
  t.throws(() => planOutput(join(dir, 'a'.repeat(247)), 'profile', false), /BASE\.hpm\.lock would be a 256-byte file name/);
  t.throws(() => planOutput(join(dir, `${'é'.repeat(124)}`), 'profile', false), /BASE\.hpm\.lock would be a 257-byte file name/, 'bytes, not characters');
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1'));
  const room = 255 - String(pidMax - 1).length - 5;
  t.same(planOutput(join(dir, 'b'.repeat(room)), 'profile', false, true), { base: join(dir, 'b'.repeat(room)) }, 'BASE.PID.hpm fits for the largest pid');
  t.throws(() => planOutput(join(dir, 'b'.repeat(room + 1)), 'profile', false, true), /BASE\.PID\.hpm \(a followed child's profile\) would be a 256-byte file name/);
  const follow = sh(`hp-record --follow-fork -o ${join(dir, 'b'.repeat(room + 1))} -c pass`);
  t.equal(follow.status, 2);
  t.match(follow.stderr, /^hp-record: -o .*: BASE\.PID\.hpm \(a followed child's profile\) would be a 256-byte file name/);
});
