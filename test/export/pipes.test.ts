// Broken pipes: an exporter whose reader goes away (`| head -1`) exits 0 without a message, even
// when it still had most of its output to write; and every input path (profile, events NDJSON,
// snapshot NDJSON) gives the same numbers.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeProfile } from '../../lib/format/hpx.js';
import { bigSpec } from '../fixtures/export/big.js';
import { ROOT, run } from '../fixtures/export/support.js';

const dir = mkdtempSync(join(tmpdir(), 'hp-pipes-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const base = join(dir, 'many');
await writeProfile(base, bigSpec(4000, 12000, 11));

const pipeline = (cmd: string): { status: string; stderr: string } => {
  const r = spawnSync('bash', ['-c', `${cmd} | head -1 >/dev/null; echo "status=\${PIPESTATUS[0]}"`], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.stdout.trim(), stderr: r.stderr };
};

t.test('a closed pipe is success', (t) => {
  // Each of these writes far more than a pipe buffer (64 KiB), so the writer meets EPIPE.
  for (const cmd of [
    `node bin/hp-diff.js ${base} --at 0.3 --at end --group-by stack -q`,
    `node bin/hp-flow.js ${base} --at end --threshold 0 --no-collapse -q`,
    `node bin/hp-report.js ${base} -o - -q`,
    `node bin/hp-pprof.js ${base} --at end -q`,
  ]) {
    const r = pipeline(cmd);
    t.equal(r.status, 'status=0', cmd);
    t.equal(r.stderr, '', `${cmd}: nothing on stderr`);
  }
  t.end();
});

t.test('profile, events NDJSON and snapshot NDJSON give the same diff', async (t) => {
  const fromProfile = await run('hp-diff', [base, '--at', '0.3', '--at', 'end', '--group-by', 'line', '-q']);
  t.equal(fromProfile.code, 0, fromProfile.stderr);
  const events = await run('hp-events', [base, '-q']);
  const eventsFile = join(dir, 'events.ndjson');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(eventsFile, events.stdout);
  const fromEvents = await run('hp-diff', [eventsFile, '--at', '0.3', '--at', 'end', '--group-by', 'line', '-q']);
  const body = (s: Buffer): string => s.toString().split('\n').slice(1).join('\n'); // the meta line names the input
  t.equal(body(fromEvents.stdout), body(fromProfile.stdout), 'events NDJSON');
  const a = join(dir, 'a.ndjson');
  const b = join(dir, 'b.ndjson');
  writeFileSync(a, (await run('hp-snapshot', [base, '--at', '0.3', '-q'])).stdout);
  writeFileSync(b, (await run('hp-snapshot', [base, '--at', 'end', '-q'])).stdout);
  const fromSnapshots = await run('hp-diff', [a, b, '--group-by', 'line', '-q']);
  const rows = (s: Buffer): Array<Record<string, unknown>> => s.toString().trim().split('\n').slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
  const p = rows(fromProfile.stdout);
  const s = rows(fromSnapshots.stdout);
  t.equal(s.length, p.length, 'same sites');
  // Snapshots carry rounded values and intervals, so changes agree to a few bytes.
  let worst = 0;
  for (let i = 0; i < p.length; i++) {
    t.equal(s[i]!.site, p[i]!.site);
    worst = Math.max(worst, Math.abs((s[i]!.change as number) - (p[i]!.change as number)));
  }
  t.ok(worst <= 2 * 200, `changes agree (worst ${worst} bytes over sites of many traces)`);
});

t.test('one --at for a saved snapshot and a profile is the profile\'s moment', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const snap = join(dir, 'at-end.ndjson');
  writeFileSync(snap, (await run('hp-snapshot', [base, '--at', 'end', '-q'])).stdout);
  const both = await run('hp-diff', [base, '--at', '0.3', '--at', 'end', '--group-by', 'line', '-q']);
  t.equal(both.code, 0, both.stderr);
  const body = (s: Buffer): string[] => s.toString().trim().split('\n');
  for (const [args, before, after] of [
    [[base, snap, '--at', '0.3'], 0.3, null],
    [[snap, base, '--at', '0.3'], null, 0.3],
  ] as const) {
    const r = await run('hp-diff', [...args, '--group-by', 'line', '-q']);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    const meta = JSON.parse(body(r.stdout)[0]!) as { before: { at: number }; after: { at: number } };
    if (before !== null) t.equal(meta.before.at, before, 'the profile side is read at the --at');
    if (after !== null) t.equal(meta.after.at, after, 'the profile side is read at the --at');
    t.equal((before === null ? meta.before : meta.after).at, JSON.parse(body(both.stdout)[0]!).after.at, 'the snapshot side is its own moment');
  }
  // Reversed, the same sites with opposite changes as the profile read at both times.
  const r = await run('hp-diff', [base, snap, '--at', '0.3', '--group-by', 'line', '-q']);
  t.equal(body(r.stdout).length, body(both.stdout).length, 'the same sites as the profile at both times');
  // An --at given for the snapshot's side alone is still refused, naming it.
  const own = await run('hp-diff', [snap, base, '--at', '0.3', '--at', 'end', '-q']);
  t.equal(own.code, 1);
  t.match(own.stderr, /at-end\.ndjson: line 1: hp-snapshot output/);
});

t.test('a diff of saved snapshots is the diff of the profile, intervals included', async (t) => {
  // The fixture's sites are sampled (p < 1): each change's interval comes from the two sides'
  // intervals, which a snapshot line states and the variance read back from it does not rebuild.
  const { writeFileSync } = await import('node:fs');
  const app = join(ROOT, 'test', 'fixtures', 'export', 'app');
  const a = join(dir, 'app-4.ndjson');
  const b = join(dir, 'app-9.ndjson');
  writeFileSync(a, (await run('hp-snapshot', [app, '--at', '4', '-q'])).stdout);
  writeFileSync(b, (await run('hp-snapshot', [app, '--at', '9', '-q'])).stdout);
  const body = (s: Buffer): string => s.toString().split('\n').slice(1).join('\n'); // the meta line names the inputs
  // By file, several traces sum into one site: from the snapshots, by the variances their lines
  // give (the intervals' implied ones made util.py's change 8.3..25.9 MB instead of 10.1..24.1).
  for (const by of ['trace', 'line', 'function', 'file']) {
    const fromProfile = await run('hp-diff', [app, '--at', '4', '--at', '9', '--group-by', by, '-q']);
    const fromSnapshots = await run('hp-diff', [a, b, '--group-by', by, '-q']);
    t.equal(fromSnapshots.code, 0, fromSnapshots.stderr);
    t.match(body(fromProfile.stdout), /"change_lo"/);
    t.equal(body(fromSnapshots.stdout), body(fromProfile.stdout), `--group-by ${by}: identical site and total lines`);
  }
  // And the change is the difference of the printed sides.
  for (const line of body((await run('hp-diff', [app, '--at', '4', '--at', '9', '-q'])).stdout).trim().split('\n')) {
    const r = JSON.parse(line) as { change: number; before: number; after: number; count_change: number };
    t.equal(r.change, r.after - r.before, 'change = after - before');
  }
});

t.test('a snapshot grouped by line is compared at its grouping, and hp-flow says it has no calls', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const app = join(ROOT, 'test', 'fixtures', 'export', 'app');
  const byLine = join(dir, 'app-4-line.ndjson');
  const byTrace = join(dir, 'app-4-trace.ndjson');
  writeFileSync(byLine, (await run('hp-snapshot', [app, '--at', '4', '--group-by', 'line', '-q'])).stdout);
  writeFileSync(byTrace, (await run('hp-snapshot', [app, '--at', '4', '-q'])).stdout);
  // One heap, two groupings: by whole stacks every site would read as gone and new.
  const mixed = await run('hp-diff', [byLine, byTrace, '-q']);
  t.equal(mixed.code, 2, 'a usage error');
  t.match(mixed.stderr, /app-4-line\.ndjson: a snapshot grouped by line cannot be compared by trace with the other side: give --group-by line/);
  const byLines = await run('hp-diff', [byLine, byTrace, '--group-by', 'line', '-q']);
  t.equal(byLines.code, 0, byLines.stderr);
  const rows = byLines.stdout.toString().trim().split('\n').slice(1).map((l) => JSON.parse(l) as { change: number });
  t.ok(rows.every((r) => r.change === 0), 'the same heap: no change at any line');
  const flow = await run('hp-flow', [byLine]);
  t.equal(flow.code, 0);
  t.match(flow.stderr, /grouped by line has no stacks, so the graph has no calls/);
});

t.test('usage errors', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['hp-diff', [base], /two times/],
    ['hp-diff', ['-', '-'], /only one input can be stdin/],
    ['hp-diff', [base, '--at', '1', '--at', '2', '--group-by', 'nope'], /Invalid values/],
    ['hp-flow', [base, '--threshold', '2'], /--threshold/],
    ['hp-flow', ['-', '--at', '1', '--at', '2'], /stdin can be read only once/],
    ['hp-report', [base], /-o FILE is required/],
    ['hp-report', ['-', '-o', 'x.html'], /reads its input twice/],
    ['hp-pprof', [base, '--bogus'], /unknown option: --bogus/],
  ];
  for (const [cmd, args, re] of cases) {
    const r = await run(cmd, args);
    t.equal(r.code, 2, `${cmd} ${args.join(' ')}`);
    t.match(r.stderr, re);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('hp-pprof refuses to write binary to a terminal', (t) => {
  const hasScript = spawnSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' }).status === 0;
  if (!hasScript) {
    t.skip('no script(1) to give the command a pseudo-terminal');
    t.end();
    return;
  }
  // script(1) runs the command with a pseudo-terminal as its stdout; -e passes its exit status on.
  const r = spawnSync('script', ['-qec', `node bin/hp-pprof.js ${base} --at end`, '/dev/null'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stdout, /hp-pprof: refusing to write binary output to a terminal: use -o FILE or a pipe/);
  t.end();
});
