// Unit tests for hp-record's pure option handling: the --sample table parser, --sample-bytes,
// the target grammar, executable lookup, output planning and the summary line.

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { UsageError } from '../../lib/cli.js';
import { findExecutable, formatChildren, formatSummary, parseByteCount, recordingDestination, parseSampleSpec, parseTarget, planOutput, profileLostEvents, type DiskProfile } from '../../lib/cmd/record.js';
import { scratch } from '../fixtures/record/harness.js';

const table = (spec: string): Array<[number, number]> => parseSampleSpec(spec).map((r) => [r.bound, r.p]);

t.test('--sample accepts the seed table and equivalent spellings', async (t) => {
  t.same(table('{128: 1e-4, 8192: 0.1}'), [[128, 1e-4], [8192, 0.1]]);
  t.same(table('{128:1e-4,8192:0.1}'), [[128, 1e-4], [8192, 0.1]]);
  t.same(table('  { 128 : 1E-4 ,\n\t8192 : .1 , }  '), [[128, 1e-4], [8192, 0.1]], 'spaces, newlines, trailing comma, .1');
  t.same(table('{8192: 0.1, 128: 0.0001}'), [[128, 1e-4], [8192, 0.1]], 'sorted by bound');
  t.same(table('{8_192: 1., 1.28e2: 0}'), [[128, 0], [8192, 1]], 'underscores, exponent bound, 1., 0');
  t.same(table('{+64: +0.5}'), [[64, 0.5]], 'explicit plus signs');
  t.same(table('{1: 1}'), [[1, 1]]);
  t.same(table('{}'), [], '{} records everything');
  t.same(table(' { } '), []);
  t.same(table('{9007199254740991: 0.5}'), [[9007199254740991, 0.5]], 'largest safe bound');
});

t.test('--sample rejects junk with a located one-line message', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /expected '\{', found end of input/],
    ['128: 0.1', /expected '\{', found '1' at column 1/],
    ['{128: 0.1', /expected ',' or '\}', found end of input/],
    ['{128 0.1}', /expected ':' after bound 128, found '0' at column 6/],
    ['{128: }', /expected a probability for bound 128, found '\}' at column 7/],
    ['{: 0.1}', /expected a size bound, found ':' at column 2/],
    ['{128: 0.1,,}', /expected a size bound, found ',' at column 11/],
    ['{,}', /expected a size bound, found ','/],
    ['{128: 0.1} x', /unexpected 'x' at column 12 after '\}'/],
    ['{128: 0.1}}', /unexpected '\}' at column 11/],
    ['{0x80: 0.1}', /unexpected 'x' at column 3/],
    ['{128: 1e-4e3}', /unexpected 'e' at column 11/],
    ['{128: abc}', /expected a probability for bound 128, found 'a'/],
    ['{128: nan}', /found 'n'/],
    ['{128: inf}', /found 'i'/],
    ['{128: 0.1; 256: 1}', /expected ',' or '\}', found ';'/],
    ['[128, 0.1]', /expected '\{'/],
    ['{"128": 0.1}', /found '"'/],
    ['{1__0: 0.1}', /unexpected '_' at column 3/],
    ['{_1: 0.1}', /found '_'/],
    ['{128: 1e999}', /probability 1e999 for bound 128 is outside \[0, 1\]/],
    ['{1e999: 0.5}', /bound 1e999 is not a positive whole number of bytes/],
    ['{0: 0.5}', /bound 0 is not a positive whole number of bytes/],
    ['{-128: 0.5}', /bound -128 is not a positive whole number of bytes/],
    ['{128.5: 0.5}', /bound 128.5 is not a positive whole number of bytes/],
    ['{1e20: 0.5}', /bound 1e20 is too large/],
    ['{128: 1.5}', /probability 1.5 for bound 128 is outside \[0, 1\]/],
    ['{128: -0.1}', /probability -0.1 for bound 128 is outside \[0, 1\]/],
    ['{128: 0.1, 128: 0.2}', /bound 128 appears twice \(also as 128\)/],
    ['{128: 0.1, 1.28e2: 0.2}', /bound 1.28e2 appears twice \(also as 128\)/],
  ];
  for (const [spec, message] of cases) {
    try {
      parseSampleSpec(spec);
      t.fail(`accepted ${JSON.stringify(spec)}`);
    } catch (err) {
      t.type(err, UsageError, spec);
      t.match((err as Error).message, message, spec);
      t.match((err as Error).message, /^--sample '/, `${spec}: names the option`);
      t.notMatch((err as Error).message, /\n/, `${spec}: one line`);
    }
  }
  t.throws(() => parseSampleSpec('{128:\n2}'), { message: /^--sample '\{128: 2\}': / }, 'newlines are flattened in the echo');
});

t.test('--sample-bytes', async (t) => {
  t.equal(parseByteCount('4096'), 4096);
  t.equal(parseByteCount('512K'), 512 * 1024);
  t.equal(parseByteCount('512k'), 512 * 1024);
  t.equal(parseByteCount('1M'), 1024 * 1024);
  t.equal(parseByteCount('1MiB'), 1024 * 1024);
  t.equal(parseByteCount('64KB'), 64 * 1024);
  t.equal(parseByteCount('2G'), 2 * 1024 ** 3);
  t.equal(parseByteCount('1.5M'), 1.5 * 1024 * 1024);
  t.equal(parseByteCount('100B'), 100);
  t.equal(parseByteCount('1e6'), 1e6);
  t.equal(parseByteCount(' 12 '), 12);
  for (const bad of ['', 'K', '-1', '0', '0.5', '1T', '1 M B', 'abc', '1MM', '0x10', 'inf', '1e400']) {
    t.throws(() => parseByteCount(bad), UsageError, JSON.stringify(bad));
  }
  t.throws(() => parseByteCount('0'), { message: "--sample-bytes '0': must be at least 1 byte" });
  t.throws(() => parseByteCount('x'), { message: "--sample-bytes 'x': expected a byte count such as 4096, 512K or 1M" });
});

t.test('target grammar', async (t) => {
  t.same(parseTarget(['app.py', '-v', '--', 'x'], undefined), ['app.py', '-v', '--', 'x']);
  t.same(parseTarget(['-m', 'http.server', '8000'], undefined), ['-m', 'http.server', '8000']);
  t.same(parseTarget(['8000'], 'http.server'), ['-m', 'http.server', '8000']);
  t.throws(() => parseTarget([], undefined), { message: /^no program to run/ });
  t.throws(() => parseTarget(['-m'], undefined), { message: '-m: needs a module name' });
  t.throws(() => parseTarget([], ''), { message: '-m: needs a module name' });
  t.same(parseTarget(['-c', 'print(1)', '-x'], undefined), ['-c', 'print(1)', '-x'], '-c CODE runs like python -c');
  t.throws(() => parseTarget(['-c'], undefined), { message: '-c: needs the code to run' });
  t.throws(() => parseTarget(['-X', 'dev', 'app.py'], undefined), { message: /-X: hp-record runs a script, -m module, -c code or - \(the program from standard input\), not python options/ });
  t.same(parseTarget(['-', 'a'], undefined), ['-', 'a'], "- reads the program from standard input, as python's -");
});

t.test('findExecutable follows PATH like execvp', async (t) => {
  const dir = scratch({ 'bin/tool': '#!/bin/sh\n', 'bin/plain': 'not executable', 'other/tool': '#!/bin/sh\n' });
  chmodSync(join(dir, 'bin/tool'), 0o755);
  chmodSync(join(dir, 'other/tool'), 0o755);
  mkdirSync(join(dir, 'bin/adir'));
  t.equal(findExecutable('tool', `${join(dir, 'nowhere')}:${join(dir, 'bin')}:${join(dir, 'other')}`), join(dir, 'bin/tool'));
  t.equal(findExecutable('plain', join(dir, 'bin')), null, 'not executable');
  t.equal(findExecutable('adir', join(dir, 'bin')), null, 'a directory');
  t.equal(findExecutable('missing', join(dir, 'bin')), null);
  t.equal(findExecutable(join(dir, 'other/tool'), ''), join(dir, 'other/tool'), 'a path is not searched');
  t.equal(findExecutable(join(dir, 'bin/plain'), ''), null);
  t.equal(findExecutable('', join(dir, 'bin')), null);
});

t.test('planOutput checks the directory and existing files before anything runs', async (t) => {
  const dir = scratch({ 'old.hpd': '' });
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'afile'), '');
  t.same(planOutput(join(dir, 'run'), 'profile', false), { base: join(dir, 'run') });
  t.same(planOutput(join(dir, 'run.hpm'), 'profile', false), { base: join(dir, 'run') }, '.hpm suffix names the base');
  t.same(planOutput(join(dir, 'run.hpd'), 'stats', false), { base: join(dir, 'run') });
  t.same(planOutput(join(dir, 'sub'), 'profile', false), { dir: join(dir, 'sub') }, 'a directory: heapprof.PID inside it');
  t.same(planOutput(`${join(dir, 'sub')}/`, 'profile', false), { dir: join(dir, 'sub') });
  t.same(planOutput(undefined, 'stats', false), {}, 'stats without -o writes no files');
  t.throws(() => planOutput(join(dir, 'old'), 'profile', false), { message: `-o ${join(dir, 'old')}: ${join(dir, 'old.hpd')} already exists (use --force to overwrite)` });
  t.same(planOutput(join(dir, 'old'), 'profile', true), { base: join(dir, 'old') }, '--force');
  t.throws(() => planOutput(join(dir, 'nodir/run'), 'profile', false), { message: `-o ${join(dir, 'nodir/run')}: directory ${join(dir, 'nodir')}: no such file` });
  t.throws(() => planOutput(join(dir, 'afile/run'), 'profile', false), { message: /afile is not a directory|not a directory/ });
  t.throws(() => planOutput('', 'profile', false), { message: /^-o: needs a base name/ });
  t.throws(() => planOutput('/proc/hp-record-test/run', 'profile', false), UsageError, 'no such directory under /proc');
  t.throws(() => planOutput('/proc/run', 'profile', false), { message: /^-o \/proc\/run: cannot create files in \/proc: / }, 'probing catches what access(2) would not, even as root');
  if (process.getuid?.() !== 0) {
    const ro = join(dir, 'ro');
    mkdirSync(ro, 0o555);
    t.throws(() => planOutput(join(ro, 'run'), 'profile', false), { message: /cannot create files in .*: permission denied/ });
  }
});

t.test('the start line names the files --mode stats writes with -o', async (t) => {
  t.equal(recordingDestination('stats', { base: '/tmp/ms' }, 7), '/tmp/ms.hpm/.hpd (--mode stats: the size table, no events)');
  t.equal(recordingDestination('stats', { dir: 'out' }, 7), 'out/heapprof.7.hpm/.hpd (--mode stats: the size table, no events)');
  t.equal(recordingDestination('stats', {}, 7), 'no profile (--mode stats: the size table at exit)', 'without -o, none');
  t.equal(recordingDestination('profile', { dir: '.' }, 7), 'heapprof.7.hpm/.hpd');
});

t.test('formatSummary', async (t) => {
  const files = ['run.hpm', 'run.hpd'];
  t.equal(
    formatSummary({ state: 'finished', files, summary: { events: 123456, traces: 789, bytes_written: 3 * 1024 * 1024, sampled_fraction: 0.0031 } }, 'profile', null),
    'run.hpm, run.hpd: 123,456 events, 789 traces, 3.0 MiB written, 0.31% of allocations sampled',
  );
  t.equal(
    formatSummary({ state: 'finished', files, summary: { events: 5, traces: 1, bytes_written: 10, sampled_fraction: 1 } }, 'profile', null),
    'run.hpm, run.hpd: 5 events, 1 traces, 10 B written, 100% of allocations sampled',
  );
  // --sample '{8: 0.5}' on a program with 3 of its 7,313 allocations under 8 bytes left undrawn:
  // 99.96% is not all of them, which "100%" said.
  const share = (fraction: number): string =>
    formatSummary({ state: 'finished', files, summary: { events: 5, traces: 1, bytes_written: 10, sampled_fraction: fraction } }, 'profile', null).replace(/^.*written, /, '');
  t.equal(share(7310 / 7313), '99.96% of allocations sampled');
  t.equal(share(0.9995), '99.95% of allocations sampled');
  t.equal(share(1 - 1e-9), '99.9999999% of allocations sampled');
  t.equal(share(0.9994), '99.9% of allocations sampled');
  t.equal(share(0.5), '50.0% of allocations sampled');
  t.equal(share(0), '0% of allocations sampled');
  t.equal(formatSummary({ state: 'finished', files: [], summary: { allocations_seen: 4000, bytes_written: 0 } }, 'stats', null), 'no files: 4,000 allocations seen');
  t.equal(
    formatSummary({ state: 'finished', files, summary: { allocations_seen: 4000, bytes_written: 900, events: 0, sampled_fraction: 0 } }, 'stats', null),
    'run.hpm, run.hpd: 4,000 allocations seen, 900 B written',
    'stats mode: no events or sampled fraction',
  );
  t.equal(
    formatSummary({ state: 'finished', files, summary: { events: 7, traces: 2, lost_events: 3 } }, 'profile', null),
    'run.hpm, run.hpd: 7 events, 2 traces, 3 events lost (out of memory)',
  );
  const stopped = { state: 'finished' as const, files, summary: { events: 70, traces: 2, write_error: 'write run.hpd: No space left on device', write_failed_s: 2.04, events_unwritten: 12 } };
  t.equal(
    formatSummary(stopped, 'profile', null),
    'run.hpm, run.hpd: 70 events, 2 traces, recording stopped at 2.0 s: write run.hpd: No space left on device; 12 recorded events were not written and later allocations were not recorded: the profile is incomplete',
  );
  t.equal(profileLostEvents(stopped), true, 'a failed write: the profile lost events');
  t.equal(profileLostEvents({ state: 'finished', files, summary: { lost_events: 1 } }), true);
  t.equal(profileLostEvents({ state: 'finished', files, summary: { events: 5, lost_events: 0 } }), false);
  const disk = (over: Partial<DiskProfile>): DiskProfile => ({ base: 'run', pid: 1, ppid: 0, startTimeUs: 0, events: 0, complete: true, issues: 0, ...over });
  t.equal(
    formatSummary({ state: 'started', files }, 'profile', 'SIGTERM', disk({ events: 1234, complete: true })),
    'run.hpm, run.hpd: the program was killed by SIGTERM; the recorder closed the profile: 1,234 events',
  );
  t.equal(
    formatSummary({ state: 'started', files }, 'profile', 'SIGKILL', disk({ events: 5, complete: false })),
    'run.hpm, run.hpd: the program was killed by SIGKILL; the profile is readable up to its last flush: 5 events',
  );
  t.equal(
    formatSummary({ state: 'started', files }, 'profile', 'SIGKILL'),
    'run.hpm, run.hpd: the program was killed by SIGKILL; the profile is readable up to its last flush',
  );
  t.equal(
    formatSummary({ state: 'started', files }, 'profile', null),
    'run.hpm, run.hpd: the program exited (or replaced itself with exec) without running atexit handlers; the profile is readable up to its last flush',
  );
  t.equal(formatSummary({ state: 'finished', files, summary: { stop_error: 'disk full' } }, 'profile', null), 'run.hpm, run.hpd: recorder error: disk full');
});

t.test('formatChildren', async (t) => {
  const child = (pid: number, over: Partial<DiskProfile>): DiskProfile => ({ base: `run.${pid}`, pid, ppid: 10, startTimeUs: pid, events: 0, complete: true, issues: 0, ...over });
  t.same(
    formatChildren([child(11, { events: 4028 }), child(12, {}), child(13, { complete: false }), child(14, { events: 7, complete: false, issues: 1 }), child(15, { error: 'hp-x: run.15.hpd: no such file' })], 10, 6),
    [
      'child 11: run.11.hpm, run.11.hpd: 4,028 events',
      'child 12: run.12.hpm, run.12.hpd: no events: no allocation was sampled before it ended',
      'child 13: run.13.hpm, run.13.hpd: no events: it ended before its first flush without closing its profile (killed by SIGKILL or by a signal the recorder does not handle?)',
      'child 14: run.14.hpm, run.14.hpd: 7 events, up to its last flush: it ended without closing its profile (killed?); 1 damaged or truncated block',
      'child 15: run.15.hpm, run.15.hpd: unreadable: run.15.hpd: no such file',
      "1 forked child recorded nothing and wrote no files (no allocation sampled before it exec'd or exited)",
    ],
  );
  // A child killed between its two files (header unread: no ppid) is a direct child by its
  // name, BASE.PID, and not counted again among those that wrote nothing.
  t.same(
    formatChildren([child(11, { events: 1 }), child(16, { ppid: null, level: 1, unborn: true, complete: false, error: 'hp-x: run.16.hpd: no such file' })], 10, 2),
    [
      'child 11: run.11.hpm, run.11.hpd: 1 event',
      'child 16: run.16.hpm, run.16.hpd: no events: killed while creating its profile (only the .hpm was written; readers given several profiles leave it out)',
    ],
  );
  const many = Array.from({ length: 23 }, (_, i) => child(100 + i, { events: 2, ppid: 99 }));
  const lines = formatChildren(many, 10, 0);
  t.equal(lines.length, 21, 'at most 20 children, then a total');
  t.equal(lines[20], 'and 3 more child profiles with 6 events');
});
