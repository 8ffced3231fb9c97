// How commands take their input argument, end to end through bin/: a directory is named in
// the error, a truncated .hpm shows in hp-events' summary, NDJSON events must be in time order,
// and NDJSON on a pipe path (`<(...)`) is read as a stream, not as a profile base.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { blockOffsets } from '../helpers/profiles.js';
import { ROOT, run } from '../fixtures/export/support.js';

const dir = mkdtempSync(join(tmpdir(), 'hp-inputs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const spec: ProfileSpec = {
  header: { sampling: { kind: 'table', bounds: [], probs: [] } },
  traces: [1, 2].map((id) => ({ id, frames: [{ function: `f${id}`, file: 'app.py', line: id }], dropped: 0 })),
  events: Array.from({ length: 40 }, (_, i) => ({ op: 'alloc' as const, timeUs: i * 1000, trace: 1 + (i % 2), size: 1000 + i })),
  eventsPerBlock: 10,
  histogram: [{ count: 40, bytes: 40780, sampled: 40 }],
};
const base = join(dir, 'p');
await writeProfile(base, spec);

t.test('a directory where a profile or file is expected is named in the error', async (t) => {
  mkdirSync(join(dir, 'd1.hpm'));
  copyFileSync(`${base}.hpd`, join(dir, 'd1.hpd'));
  mkdirSync(join(dir, 'adir'));
  const cases: [string, string[], string][] = [
    ['hp-snapshot', [join(dir, 'd1')], `hp-snapshot: ${join(dir, 'd1.hpm')}: is a directory (a profile is BASE.hpm + BASE.hpd)\n`],
    ['hp-snapshot', [join(dir, 'adir')], `hp-snapshot: ${join(dir, 'adir')}: is a directory (name a profile by its base: BASE for BASE.hpm + BASE.hpd)\n`],
    ['hp-events', [join(dir, 'd1.hpm')], `hp-events: ${join(dir, 'd1.hpm')}: is a directory (a profile is BASE.hpm + BASE.hpd)\n`],
    ['hp-chart', [join(dir, 'adir')], `hp-chart: ${join(dir, 'adir')}: is a directory\n`],
  ];
  for (const [cmd, args, stderr] of cases) {
    const r = await run(cmd, [...args, '-q']);
    t.equal(r.stderr, stderr, `${cmd} ${args.join(' ')}`);
    t.equal(r.code, 1);
  }
});

t.test('a truncated last .hpm block: warned with its offset, summary not complete, --strict exits 1', async (t) => {
  const cut = join(dir, 'cut');
  copyFileSync(`${base}.hpm`, `${cut}.hpm`);
  copyFileSync(`${base}.hpd`, `${cut}.hpd`);
  const offsets = blockOffsets(readFileSync(`${cut}.hpm`));
  const last = offsets[offsets.length - 1]!;
  truncateSync(`${cut}.hpm`, last + 20);
  const r = await run('hp-events', [cut]);
  t.equal(r.code, 0);
  t.match(r.stderr, `hp-events: ${cut}.hpm: byte ${last}: truncated last block`);
  const summary = JSON.parse(r.stdout.toString().trim().split('\n').pop()!);
  t.equal(summary.complete, false);
  for (const cmd of ['hp-stats', 'hp-snapshot']) {
    const s = await run(cmd, [cut, '--strict']);
    t.equal(s.code, 1, `${cmd} --strict`);
    t.equal(s.stderr, `${cmd}: ${cut}.hpm at byte ${last}: truncated last block (recorder still running or crashed); read everything before it\n`);
  }
});

const meta = '{"type":"meta","schema":1,"sampling":{"kind":"table","bounds":[],"probs":[]}}';
const trace = '{"type":"trace","id":1,"frames":[{"function":"f","file":"a.py","line":1}]}';
const ev = (t: number, size: number): string => `{"type":"event","t":${t},"op":"alloc","trace":1,"size":${size},"w":1}`;

t.test('NDJSON events out of time order are an error naming the line; equal times are fine', async (t) => {
  const bad = [meta, ev(0.5, 100000), ev(0.1, 200000)].map((l) => l.replace('"trace":1', '"trace":0')).join('\n') + '\n';
  const r = await run('hp-snapshot', ['-', '--at', '0.3'], bad);
  t.equal(r.code, 1);
  t.equal(r.stderr, "hp-snapshot: stdin: line 3: t 0.1 is before the previous event's 0.5: events must be in time order\n");
  // A heapprof 1.0.x stream (format_version 1) timed by the wall clock may step back: read in stream order.
  const v1 = [meta.replace('"schema":1', '"schema":1,"format_version":1'), ev(0.5, 100000), ev(0.1, 200000)].map((l) => l.replace('"trace":1', '"trace":0')).join('\n') + '\n';
  const fromV1 = await run('hp-snapshot', ['-', '--at', 'end', '-q'], v1);
  t.equal(fromV1.code, 0, fromV1.stderr);
  t.match(fromV1.stdout.toString(), '"bytes":300000');
  const ok = [meta, trace, ev(0.1, 100000), ev(0.1, 200000), ev(0.5, 5)].join('\n') + '\n';
  const s = await run('hp-snapshot', ['-', '--at', '0.3', '-q'], ok);
  t.equal(s.code, 0, s.stderr);
  t.match(s.stdout.toString(), '"bytes":300000');
});

t.test("hp-events' merged stream of several profiles reads back in order", async (t) => {
  const later = join(dir, 'later');
  // Started 15 ms after p: its events interleave with p's on the merged timeline.
  await writeProfile(later, { ...spec, header: { ...spec.header, startTimeUs: 15_000 } });
  await writeProfile(base, { ...spec, header: { ...spec.header, startTimeUs: 0 } });
  const merged = await run('hp-events', [base, later, '-q']);
  t.equal(merged.code, 0, merged.stderr);
  const r = await run('hp-snapshot', ['-', '--at', 'end', '-q'], merged.stdout);
  t.equal(r.code, 0, r.stderr);
});

t.test('NDJSON on a pipe path (<(...)) is read as a stream, as - is', (t) => {
  const bash = (cmd: string) => spawnSync('bash', ['-c', cmd], { cwd: ROOT, encoding: 'utf8' });
  const diff = bash(`node bin/hp-diff.js <(node bin/hp-snapshot.js ${base} --at 0.01 -q) <(node bin/hp-snapshot.js ${base} --at end -q) -q`);
  t.equal(diff.stderr, '');
  t.equal(diff.status, 0);
  t.match(diff.stdout, '"type"');
  const collapse = bash(`node bin/hp-collapse.js <(node bin/hp-snapshot.js ${base} --at end -q)`);
  t.equal(collapse.stderr, '');
  t.equal(collapse.status, 0);
  t.equal(collapse.stdout, 'f1 (app.py:1) 20380\nf2 (app.py:2) 20400\n', 'folded stacks');
  // Like stdin, a pipe cannot be read twice: two times of one piped input is a usage error.
  const twice = bash(`node bin/hp-diff.js <(node bin/hp-events.js ${base} -q) --at 0.01 --at end`);
  t.equal(twice.status, 2);
  t.match(twice.stderr, /^hp-diff: \/dev\/fd\/\d+ can be read only once: save the profile or events to a file to compare two times\n$/);
  const report = bash(`node bin/hp-report.js <(node bin/hp-events.js ${base} -q) -o /dev/null`);
  t.equal(report.status, 2);
  t.match(report.stderr, /^hp-report: \/dev\/fd\/\d+: the report reads its input twice: name a profile or an NDJSON file, not a pipe\n$/);
  // A base with BASE.hpm beside it stays a profile, however it is named.
  const events = bash(`node bin/hp-events.js ${base} -q | head -1`);
  t.match(events.stdout, '"type":"meta"');
  t.end();
});
