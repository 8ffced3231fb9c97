// The real built commands in pipelines: the NDJSON pipe gives the numbers the profile
// gives (also for heapprof 1.0.x), bad NDJSON is reported by line, foreign lines are counted
// once, a closed pipe ends hp-events quietly, usage errors exit 2.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { sh } from '../fixtures/analysis/run.js';

t.test('the NDJSON pipe gives the numbers the files give', async (t) => {
  // Each pipeline costs two node starts: a representative set, every command at least once.
  const runs: Array<[string, string]> = [
    ['app', 'hp-snapshot %s --at peak'],
    ['app', 'hp-snapshot %s --at 5.5 --group-by line'],
    ['app', 'hp-history %s --granularity 0.5 --sites app.py:20'],
    ['app', 'hp-stats %s --json --suggest'],
    ['app', 'hp-collapse %s'],
    ['poisson', 'hp-history %s'],
    ['../format/v1', 'hp-snapshot %s --at peak'],
  ];
  for (const [profile, c] of runs) {
    const direct = sh(c.replace('%s', profile));
    const piped = sh(`hp-events ${profile} | ${c.replace('%s', '-')}`);
    t.equal(direct.status, 0, `${c} ${profile}: ${direct.stderr}`);
    t.ok(direct.stdout.length > 0);
    t.equal(piped.stdout, direct.stdout, `${c.replace('%s', profile)} vs the pipe`);
  }
  // And through a file of events, windowed at the end (--to keeps everything before it).
  const file = join(t.testdir(), 'events.ndjson');
  const all = sh(`hp-events app > ${file} && hp-snapshot ${file} --at 7 -q`);
  t.equal(all.stdout, sh('hp-snapshot app --at 7 -q').stdout);
  const windowed = sh('hp-events app --to 7.000001 | hp-snapshot - --at 7 -q');
  t.equal(windowed.stdout.split('\n').slice(1).join('\n'), sh('hp-snapshot app --at 7 -q').stdout.split('\n').slice(1).join('\n'), 'sites identical');
});

t.test('a reader of the pipe that stops before the summary line bounds its totals as the profile does', async (t) => {
  // More events than one batch of the stream reader (4096), so that --at stops in the first
  // batch, before the summary line: the histogram (the unseen allowance) comes from the meta line.
  const dir = mkdtempSync(join(tmpdir(), 'piped-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'many');
  const events = Array.from({ length: 6000 }, (_, i) => ({ op: 'alloc' as const, timeUs: 1000 + i, trace: 1, size: i % 2 === 0 ? 64 : 300 }));
  const histogram = Array.from({ length: 10 }, (_, i) => ({ count: i === 6 ? 300000 : i === 8 ? 3000 : 0, bytes: i === 6 ? 19200000 : i === 8 ? 900000 : 0, sampled: i === 6 ? 3000 : i === 8 ? 3000 : 0 }));
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [128, 8192], probs: [0.01, 0.5] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events,
    histogram,
  });
  const direct = sh(`hp-snapshot ${base} --at 0.003 --json`);
  t.equal(direct.status, 0, direct.stderr);
  t.match(JSON.parse(direct.stdout.split('\n')[0]!), { unseen: { bytes: { weight: Number } } }, 'the profile\'s snapshot has an allowance');
  const piped = sh(`hp-events ${base} | hp-snapshot - --at 0.003 --json`);
  t.equal(piped.stdout, direct.stdout, 'the pipe gives the same snapshot, header included');
  t.equal(piped.stderr, direct.stderr);
  const meta = JSON.parse(sh(`hp-events ${base} | head -1`).stdout) as { histogram?: unknown };
  t.same(meta.histogram, histogram, 'the meta line carries the histogram');
});

t.test('a stream cut by hp-events --from/--to is not taken for a crash', async (t) => {
  for (const window of ['--from 4 --to 4.2', '--from 5', '--from 1 --to 7']) {
    const r = sh(`hp-events app ${window} | hp-snapshot - --json`);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /^hp-snapshot: peak at [^\n]*\n$/, `${window}: only the summary line on stderr (no end marker, no unmatched frees)`);
  }
  t.same(JSON.parse(sh('hp-events app --from 4 --to 4.2 | head -1').stdout).window, { from: 4, to: 4.2 }, 'the meta line names the window');
  t.same(JSON.parse(sh('hp-events app --from 4 --to 4.2 | hp-events - --from 4.1 | head -1').stdout).window, { from: 4.1, to: 4.2 }, 'a window of a window');
  // A stream whose end is missing without a window (its recorder died) is still reported.
  const cut = sh('hp-events app | head -n 2000 | hp-snapshot - --json');
  t.match(cut.stderr, /hp-snapshot: stdin: incomplete profile \(no end marker/);
});

t.test('hp-events | head -1 exits 0 with nothing on stderr', async (t) => {
  const r = sh('hp-events app | head -1');
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, /^\{"type":"meta","schema":1,/);
  t.equal(r.stdout.split('\n').length, 2);
});

t.test('malformed NDJSON names the line; foreign lines are counted once', async (t) => {
  const meta = sh('hp-events app | head -1').stdout;
  const bad = sh('hp-snapshot -', `${meta}{"type":"event","t":1,"op":"alloc","trace":0,"size":5}\n{"type":"event", oops\n`);
  t.equal(bad.status, 1);
  t.equal(bad.stderr, 'hp-snapshot: stdin: line 3: not valid JSON\n');
  const foreign = sh('hp-history - --granularity 1 -q', `{"hello":1}\n${meta}{"x":2}\n{"type":"event","t":0.5,"op":"alloc","trace":0,"size":50000}\n`);
  t.equal(foreign.status, 0);
  t.match(foreign.stdout, /"live_bytes":50000/);
  const loud = sh('hp-history - --granularity 1', `{"hello":1}\n${meta}{"x":2}\n[3]\n{"type":"event","t":0.5,"op":"alloc","trace":0,"size":50000}\n`);
  t.match(loud.stderr, /hp-history: stdin: ignored 3 foreign lines/);
  t.equal(loud.stderr.match(/foreign/g)?.length, 1, 'reported once');
  const collapse = sh('hp-collapse', '{"type":"site","frames":[{"function":"f","file":"a.py","line":1}],"bytes":10}\n{"x":1}\nnope\n');
  t.equal(collapse.status, 1);
  t.equal(collapse.stderr, 'hp-collapse: stdin: line 3: not valid JSON\n');
  const notOurs = sh('hp-snapshot -', '{"a":1}\n');
  t.equal(notOurs.status, 1);
  t.match(notOurs.stderr, /no hp-events meta line/);
});

t.test('empty input is an error for every NDJSON reader, not an empty result', async (t) => {
  for (const c of ['hp-collapse -', 'hp-collapse', 'hp-flow -', 'hp-pprof - -o /dev/null', 'hp-snapshot -', 'hp-chart']) {
    const r = sh(c, '');
    t.equal(r.status, 1, `${c}: exit 1`);
    t.match(r.stderr, /^hp-[a-z]+: stdin: (empty input|no line has)/, `${c}: says so`);
    t.equal(r.stdout, '', `${c}: no output`);
  }
});

t.test('one profile named several ways is read once, by every reader', async (t) => {
  const once = sh('hp-snapshot app --at end --json');
  t.equal(once.status, 0, once.stderr);
  const bytes = JSON.parse(once.stdout.split('\n')[0]!).bytes as number;
  // What a shell expands app.* to, a quoted glob the command expands, and two paths of one file.
  for (const names of ['app.hpm app.hpd', "'app.*'", 'app ./app', 'app.hpm ./app.hpd app']) {
    const r = sh(`hp-snapshot ${names} --at end --json`);
    t.equal(r.status, 0, `hp-snapshot ${names}: ${r.stderr}`);
    t.equal(JSON.parse(r.stdout.split('\n')[0]!).bytes, bytes, `hp-snapshot ${names}: counted once`);
  }
  for (const c of ['hp-history', 'hp-events', 'hp-stats', 'hp-collapse', 'hp-flow', 'hp-report -o /dev/null']) {
    for (const names of ['app.hpm app.hpd', "'app.*'"]) {
      const r = sh(`${c} ${names} > /dev/null`);
      t.equal(r.status, 0, `${c} ${names}: ${r.stderr}`);
    }
  }
  // hp-pprof writes one set of samples per profile: one summary line, not one per name.
  for (const names of ['app.hpm app.hpd', "'app.*'", 'app ./app']) {
    const r = sh(`hp-pprof ${names} --at end -o /dev/null`);
    t.equal(r.status, 0, `hp-pprof ${names}: ${r.stderr}`);
    t.equal(r.stderr.trim().split('\n').length, 1, `hp-pprof ${names}: one profile`);
  }
  const diff = sh("hp-diff 'app.*' --at 1 --at end > /dev/null");
  t.equal(diff.status, 0, `hp-diff 'app.*': ${diff.stderr}`);
});

t.test('usage errors exit 2 with one line', async (t) => {
  for (const c of ['hp-snapshot app --at soon', 'hp-history app --granularity 0', 'hp-stats app --budget 5%', 'hp-history app --sites app.py', 'hp-events app -', 'hp-chart --height 0']) {
    const r = sh(c);
    t.equal(r.status, 2, c);
    t.notMatch(r.stderr, /at .*\.js:\d+/, `${c}: no stack trace`);
  }
  const missing = sh('hp-snapshot nosuch');
  t.equal(missing.status, 1);
  t.match(missing.stderr, /^hp-snapshot: nosuch\.hpm: no such file/);
});

t.test('piped snapshots keep the unseen allowance: hp-diff bounds their totals as the profile does', async (t) => {
  // Not t.testdir(): its name holds this test's title, and sh() rewrites every "hp-..." in a command.
  const dir = mkdtempSync(join(tmpdir(), 'unseen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = join(dir, 'a.ndjson');
  const b = join(dir, 'b.ndjson');
  t.equal(sh(`hp-snapshot app --at peak --json --top 1000000 > ${a} && hp-snapshot app --at end --json --top 1000000 > ${b}`).status, 0);
  const head = JSON.parse(sh(`head -1 ${a}`).stdout) as { unseen?: { bytes: { weight: number } } };
  t.ok(head.unseen && head.unseen.bytes.weight > 0, 'the snapshot line carries the allowance');
  const total = (cmd: string) => JSON.parse(sh(cmd).stdout.split('\n').find((l) => l.includes('"type":"total"'))!) as Record<string, number>;
  const direct = total('hp-diff app --at peak --at end --json');
  const piped = total(`hp-diff ${a} ${b} --json`);
  t.equal(piped.before, direct.before);
  // By trace (the default) each site is one line of each snapshot: its before and after are
  // the figures and intervals the snapshots state, which are the profile's own, not rebuilt.
  const rows = (cmd: string) => sh(cmd).stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
  const sides = (r: Record<string, unknown> | undefined) => ['before', 'before_lo', 'before_hi', 'after', 'after_lo', 'after_hi'].map((k) => r?.[k] ?? null);
  const key = (r: Record<string, unknown>) => JSON.stringify([r.type, r.site, r.frames]);
  const fromProfile = new Map(rows('hp-diff app --at peak --at end --json').map((r) => [key(r), sides(r)]));
  const fromSnapshots = rows(`hp-diff ${a} ${b} --json`);
  t.equal(fromSnapshots.length, fromProfile.size, 'the same sites');
  t.same(fromSnapshots.filter((r) => JSON.stringify(sides(r)) !== JSON.stringify(fromProfile.get(key(r)))).map((r) => r.site), [], 'no site (nor the total) with other before/after figures');
  const line = (f: string, site: string) => JSON.parse(sh(`grep -F '"site":"${site}"' ${f} | head -1`).stdout) as Record<string, unknown>;
  const first = fromSnapshots.find((r) => r.before_lo !== undefined && r.type === 'site')!;
  const input = line(a, String(first.site));
  t.same([first.before_lo, first.before_hi], [input.bytes_lo, input.bytes_hi], `${String(first.site)}: the interval of the snapshot's line`);
  t.ok(piped.before_hi! >= direct.before_hi!, `piped upper limit ${piped.before_hi} >= the profile's ${direct.before_hi}`);
  t.ok(piped.after_hi! >= direct.after_hi!, `piped upper limit ${piped.after_hi} >= the profile's ${direct.after_hi}`);
  // Without the field (an older snapshot), each side keeps the interval it states, and the
  // change's interval, derived from the two sides' stated intervals, is the same: the stated
  // interval already holds the allowance. Both are the profile's own.
  const strip = (f: string) => `sed 's/"unseen":{[^}]*},"count":{[^}]*}},//' ${f} > ${f}.old`;
  t.equal(sh(`${strip(a)} && ${strip(b)}`).status, 0);
  const old = total(`hp-diff ${a}.old ${b}.old --json`);
  t.equal(old.before_hi, piped.before_hi, 'the side\'s interval as the snapshot states it');
  t.same([old.change_lo, old.change_hi], [piped.change_lo, piped.change_hi], 'an old snapshot (no allowance field) gives the same interval of the change');
  t.same([piped.change_lo, piped.change_hi], [direct.change_lo, direct.change_hi], "and it is the profile's");
});
