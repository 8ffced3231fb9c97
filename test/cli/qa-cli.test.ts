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
  t.equal(sh(`hp-events ${base} --from 0.5004 --to 0.5006`).stdout.split('\n').filter(Boolean).length, 3, 'hp-events: meta, the end marker and summary');
});
