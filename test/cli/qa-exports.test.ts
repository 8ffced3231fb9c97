// Regressions from the exports and comparison commands' QA (hp-chart, hp-diff, hp-flow, hp-pprof,
// hp-collapse, hp-report): each test failed before its fix.

import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';
import { fixtures, sh } from '../fixtures/analysis/run.js';

t.test('hp-chart of a field that is 0 throughout labels every byte row with its own value', async (t) => {
  const rows = (text: string): string[] => text.split('\n').filter((l) => /[┼┤]/.test(l));
  for (const height of [3, 15]) {
    const r = sh(`hp-chart --field live_bytes --height ${height} --width 40`, '{"live_bytes":0}\n{"live_bytes":0}\n');
    t.equal(r.status, 0, r.stderr);
    const labels = rows(r.stdout).map((l) => l.split(/[┼┤]/)[0]!.trim());
    t.equal(labels.length, height);
    t.equal(new Set(labels).size, labels.length, `no label repeated (man hp-chart: every label is exactly the value of its row): ${labels.join(', ')}`);
    t.equal(labels[labels.length - 1], '0 B', 'the bottom row is 0');
  }
});

t.test('hp-snapshot output given with --at says what it is and how it is read, in every command', async (t) => {
  for (const cmd of ['hp-diff - app --at end', 'hp-flow - --at end', 'hp-pprof - --at end', 'hp-snapshot - --at end']) {
    const r = sh(`hp-snapshot app --at peak -q | ${cmd} > /dev/null`);
    t.equal(r.status, 1, cmd);
    t.match(r.stderr, /: stdin: line 1: hp-snapshot output, not hp-events: a snapshot is one moment, read as it is \(with no --at, --from, --to or --alloc\)/, cmd);
  }
  const other = sh('hp-snapshot -', '{"a":1}\n');
  t.match(other.stderr, /no hp-events meta line \(1 lines of something else\)/, 'other foreign input as before');
});

t.test('hp-diff warns when a snapshot side was cut by --top: its missing sites read as changes', async (t) => {
  const full = join(tmpDir('qa-diff-top-'), 'full.ndjson');
  t.equal(sh(`hp-snapshot app --at end -q > ${full}`).status, 0);
  const r = sh(`hp-snapshot app --at end --top 1 -q | hp-diff ${full} - > /dev/null`);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /^hp-diff: stdin: \d+ of the snapshot's sites (is|are) left out \(hp-snapshot --top\): compared as 0 there/m);
  const whole = sh(`hp-snapshot app --at end -q | hp-diff ${full} - > /dev/null`);
  t.equal(whole.status, 0, whole.stderr);
  t.notMatch(whole.stderr, /left out/, 'no warning for a whole snapshot');
});

t.test('hp-pprof, hp-collapse and hp-flow warn when the snapshot was cut by --top: their total is not the heap\'s', async (t) => {
  const dir = tmpDir('qa-top-exports-');
  const pb = join(dir, 'top.pb.gz');
  for (const [cmd, what] of [[`hp-pprof -o ${pb}`, 'the pprof'], ['hp-collapse', 'the flame graph'], ['hp-flow', 'the graph']] as const) {
    const r = sh(`hp-snapshot app --at end --top 1 -q | ${cmd} > /dev/null`);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, new RegExp(`^hp-[a-z]+: stdin: \\d+ of the snapshot's sites (is|are) left out \\(hp-snapshot --top\\): ${what} holds only the sites given`, 'm'), cmd);
    const whole = sh(`hp-snapshot app --at end -q | ${cmd} > /dev/null`);
    t.equal(whole.status, 0, whole.stderr);
    t.notMatch(whole.stderr, /left out/, `${cmd}: no warning for a whole snapshot`);
  }
  // The pprof's comment said the kept sites' sum was the live heap.
  t.equal(sh(`hp-snapshot app --at end --top 1 -q | hp-pprof -o ${pb} -q`).status, 0);
  const text = gunzipSync(readFileSync(pb)).toString('utf8');
  t.match(text, /live heap: end \(t=[\d.]+s\): \d+ bytes[^;]* in the 1 site the snapshot kept \(\d+ more left out by hp-snapshot --top\)/);
});

t.test('snapshots appended in one input are an error naming the second, not one summed heap', async (t) => {
  const full = join(tmpDir('qa-appended-'), 'full.ndjson');
  t.equal(sh(`hp-snapshot app --at end -q > ${full}`).status, 0);
  for (const cmd of [`hp-diff - ${full}`, 'hp-pprof -', 'hp-flow -', 'hp-collapse -']) {
    const r = sh(`(hp-snapshot app --at peak -q; hp-snapshot app --at end -q) | ${cmd} > /dev/null`);
    t.equal(r.status, 1, cmd);
    t.match(r.stderr, /: stdin: line \d+: a second snapshot line \(the first is line 1\): an input holds one hp-snapshot output, not several appended\n$/, cmd);
  }
});

t.test('a time past the end of one of several profiles names that profile', async (t) => {
  const short = join(tmpDir('qa-span-'), 'short');
  await writeProfile(short, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 100_000, trace: 1, size: 100 }],
  });
  for (const [cmd, option] of [
    [`hp-diff app ${short} --at 5`, '--at 5'],
    [`hp-pprof app ${short} --at 5 -o /dev/null`, '--at 5'],
    [`hp-pprof app ${short} --from 5 -o /dev/null`, '--from 5'],
  ] as const) {
    const r = sh(cmd);
    t.equal(r.status, 2, cmd);
    t.equal(r.stderr, `${cmd.split(' ')[0]}: ${option}: after the end of ${short}, which spans 0 .. 0.1 s\n`, cmd);
  }
  const one = sh('hp-diff app --at 1 --at 99');
  t.match(one.stderr, /--at 99: after the end of the profile, which spans 0 \.\. 11\.999997 s/, 'one profile: as before');
});

t.test('-o naming a file the command reads is a usage error, and the input is left as it was', async (t) => {
  const dir = tmpDir('qa-o-input-');
  for (const ext of ['hpm', 'hpd']) copyFileSync(join(fixtures, `app.${ext}`), join(dir, `app.${ext}`));
  const before = readFileSync(join(dir, 'app.hpd'));
  t.equal(sh(`hp-snapshot ${dir}/app --at end -q > ${dir}/s.ndjson`).status, 0);
  for (const cmd of [
    `hp-pprof ${dir}/app -o ${dir}/app.hpd`,
    `hp-pprof ${dir}/./app.hpm --at end -o ${dir}/app.hpm`,
    `hp-report ${dir}/app -o ${dir}/app.hpd`,
    `hp-flow ${dir}/app -o ${dir}/app.hpd`,
    `hp-flow ${dir}/s.ndjson -o ${dir}/./s.ndjson`,
  ]) {
    const r = sh(cmd);
    t.equal(r.status, 2, cmd);
    t.match(r.stderr, /: -o \S+: is .*: writing it would replace what is read; name another file\n$/, cmd);
  }
  t.same(readFileSync(join(dir, 'app.hpd')), before, 'the profile is intact');
  t.match(readFileSync(join(dir, 's.ndjson'), 'utf8'), /^\{"type":"snapshot"/, 'the snapshot is intact');
  t.equal(sh(`hp-pprof ${dir}/app -o ${dir}/heap.pb.gz -q`).status, 0, 'another file is written');
});

t.test('a bad --at names every form the commands take, mark:LABEL included', async (t) => {
  for (const cmd of ['hp-snapshot app --at soon', 'hp-diff app --at 1 --at soon', 'hp-pprof app --at soon -o /dev/null', 'hp-flow app --at soon', 'hp-report app --at soon -o /dev/null']) {
    const r = sh(cmd);
    t.equal(r.status, 2, cmd);
    t.match(r.stderr, /--at 'soon': expected seconds since start, 'peak', 'end' or mark:LABEL\n$/, cmd);
  }
  // --from/--to, read by one function in every command that takes them, the same way.
  for (const cmd of ['hp-events app --from soon', 'hp-history app --to soon', 'hp-pprof app --from soon -o /dev/null']) {
    const r = sh(cmd);
    t.equal(r.status, 2, cmd);
    t.match(r.stderr, /--(from|to) 'soon': expected seconds since start or mark:LABEL\n$/, cmd);
  }
  // And a --to past the end of the profile, the same usage error in each.
  for (const cmd of ['hp-events app --to 1000', 'hp-pprof app --to 1000 -o /dev/null']) {
    const r = sh(cmd);
    t.equal(r.status, 2, cmd);
    t.match(r.stderr, /--to 1000: after the end of the profile, which spans 0 \.\. [\d.]+ s\n$/, cmd);
  }
});

t.test("-o '' is a usage error before anything is read, not a failure to write after", async (t) => {
  for (const cmd of ['hp-pprof app', 'hp-flow app', 'hp-report app']) {
    const r = sh(`${cmd} -o ''`);
    t.equal(r.status, 2, cmd);
    t.equal(r.stderr, `${cmd.split(' ')[0]}: -o '': expected a file name (or - for standard output)\n`, cmd);
  }
});

t.test('hp-diff --table --json is a usage error, not the table', async (t) => {
  const r = sh('hp-diff app --at 1 --at end --table --json');
  t.equal(r.status, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^hp-diff: --table and --json ask for two outputs/);
  const table = sh('hp-diff app --at 1 --at end --table -q');
  t.equal(table.status, 0, table.stderr);
  t.match(table.stdout, /^t=1s -> end/, '--table alone is the table');
});

t.test('hp-chart of plain numbers labels every row exactly with its value, past a million too', async (t) => {
  // Rows of 25,000 up to 1,225,000 were labelled 1.23e+6, 1.18e+6, 1.13e+6...: three digits, so
  // that every other label was 5,000 off its row and the steps read unequal.
  const ramp = Array.from({ length: 41 }, (_, i) => JSON.stringify({ t: i, live_count: Math.round((1100000 * i) / 40) })).join('\n');
  for (const height of [10, 50]) {
    const r = sh(`hp-chart --field live_count --height ${height} --width 60`, `${ramp}\n`);
    t.equal(r.status, 0, r.stderr);
    const values = r.stdout
      .split('\n')
      .filter((l) => /[┼┤]/.test(l))
      .map((l) => Number(l.split(/[┼┤]/)[0]!.trim()));
    t.equal(values.length, height);
    t.equal(values[values.length - 1], 0, 'the bottom row is 0');
    const step = values[values.length - 2]!;
    t.ok(values.every((v, i) => v === step * (values.length - 1 - i)), `height ${height}: each label is its row's multiple of the step ${step}: ${values.join(', ')}`);
    t.ok(values[0]! >= 1100000, 'the top is at or above the data');
  }
});

t.test('hp-chart\'s x caption keeps every digit of a long run\'s times, and the decimals its spacing needs', async (t) => {
  // A three-hour run's last bucket, t 10837, was captioned "t 10840": four significant digits.
  const cases: Array<[number[], string, string]> = [
    [[0, 60, 10837], 't 0', 't 10837'],
    [[0.01, 0.03, 0.71], 't 0.01', 't 0.71'],
    [[0.00012, 0.00013], 't 0.00012', 't 0.00013'],
  ];
  for (const [ts, first, last] of cases) {
    const r = sh('hp-chart --field v --height 3 --width 40', `${ts.map((x, i) => JSON.stringify({ t: x, v: i + 1 })).join('\n')}\n`);
    t.equal(r.status, 0, r.stderr);
    const caption = r.stdout.trimEnd().split('\n').pop()!.trim().split(/ {2,}/);
    t.same(caption, [first, last], ts.join(', '));
  }
});

t.test('hp-stats --suggest: its percentages and rate in plain numbers, never in exponent form or rounded to all', async (t) => {
  // toPrecision(2) wrote 100% of the allocations as '1.0e+2%' (also 99.8% of them, which is not
  // all), a 95% error of 246% as '±2.5e+2%', and a plan of 0.05 events a second as '0/s'.
  const line = (budget: string): string => {
    const r = sh(`hp-stats app --suggest --budget ${budget} --no-json -q`);
    t.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').find((l) => l.startsWith('  expected '))!;
  };
  t.match(line('100%'), /^ {2}expected 63,080 events \(100% of 63,080 allocations, 5,257\/s\); total bytes ±0\.0% \(95%\)$/);
  t.match(line('99.9%'), /^ {2}expected 63,018 events \(99\.9% of 63,080 allocations, [\d,]+\/s\); total bytes ±0\.0019% \(95%\)$/);
  t.match(line('0.001%'), /^ {2}expected 1 events \(0\.0010% of 63,080 allocations, 0\.053\/s\); total bytes ±246% \(95%\)$/);
  t.match(line('50/s'), /^ {2}expected 596 events \(0\.94% of 63,080 allocations, 50\/s\); total bytes ±4\.9% \(95%\)$/, 'as before below 100');
});
