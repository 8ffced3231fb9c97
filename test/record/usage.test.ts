// Bad usage is caught before the program starts: exit 2 (1 when the recorder itself cannot start),
// one line on stderr naming the problem, no program run, no profile file created.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FIXTURES, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const MARKER = join(FIXTURES, 'scripts/marker.py');
const skip = missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null);
if (skip) t.plan(0, skip);
const python = skip ? '' : pythons()[pythons().length - 1]!.exe;

/** Run hp-record in a fresh directory with `args` (MARKER stands for the marker script); check it refused. */
async function refuses(t: Test, args: string[], status: number, message: RegExp, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const dir = scratch();
  const withMarker = args.includes('MARKER') ? [...args.map((a) => (a === 'MARKER' ? MARKER : a)), 'started'] : args;
  const r = await hpRecord(withMarker, { cwd: dir, env });
  const what = args.join(' ');
  t.equal(r.code, status, `${what}: exit ${status}`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  t.match(r.stderr, /^hp-record: [^\n]+\n$/, `${what}: one line on stderr`);
  t.match(r.stderr, message, `${what}: says what is wrong`);
  t.notOk(existsSync(join(dir, 'started')), `${what}: the program did not start`);
  t.same(readdirSync(dir), [], `${what}: no file created`);
}

t.test('bad options', async (t) => {
  const py = ['--python', python];
  await refuses(t, [...py, '--sample', '{128: 2}', 'MARKER'], 2, /--sample '\{128: 2\}': probability 2 for bound 128 is outside \[0, 1\]/);
  await refuses(t, [...py, '--sample', 'eval("1")', 'MARKER'], 2, /--sample 'eval\("1"\)': expected '\{', found 'e' at column 1/);
  await refuses(t, [...py, '--sample', '{}', '--sample-bytes', '1M', 'MARKER'], 2, /Arguments sample and sample-bytes are mutually exclusive/);
  await refuses(t, [...py, '--sample-bytes', '1X', 'MARKER'], 2, /--sample-bytes '1X': expected a byte count/);
  await refuses(t, [...py, '--mode', 'stats', '--sample', '{}', 'MARKER'], 2, /--mode stats counts every allocation/);
  await refuses(t, [...py, '--mode', 'stats', '--follow-fork', 'MARKER'], 2, /--mode stats does not follow forks/);
  await refuses(t, [...py, '--mode', 'stats', '--follow-children', 'MARKER'], 2, /--mode stats does not follow forks: drop --follow-children/);
  await refuses(t, ['--pid', String(process.pid), '--follow-children'], 2, /--follow-children does not apply with --pid/);
  await refuses(t, [...py, '--mode', 'heap', 'MARKER'], 2, /Invalid values:.*mode/);
  await refuses(t, [...py, '--bogus', 'MARKER'], 2, /Unknown argument: bogus \(see hp-record --help\)/);
  await refuses(t, [...py, '-o'], 2, /Not enough arguments following: o/);
});

t.test('nothing to run', async (t) => {
  const dir = scratch();
  const none = await hpRecord(['--python', python], { cwd: dir });
  t.equal(none.code, 2);
  t.equal(none.stderr, 'hp-record: no program to run: hp-record [options] -- script.py [args...]\n');
  await refuses(t, ['--python', python, '--', 'nonexistent.py'], 2, /^hp-record: nonexistent\.py: no such file\n$/);
  // A directory runs through its __main__.py (python3 DIR); one without it cannot run at all.
  const app = scratch({ 'empty/README': 'no __main__ here\n' });
  await refuses(t, ['--python', python, '--', join(app, 'empty')], 2, /^hp-record: \S+\/empty: a directory without __main__\.py\n$/);
  await refuses(t, ['--python', python, '--', '-X', 'dev', 'MARKER'], 2, /-X: hp-record runs a script, -m module, -c code or - \(the program from standard input\), not python options/);
  await refuses(t, ['--python', python, '-m', 'no_such_module_hp'], 2, /^hp-record: no module named no_such_module_hp\n$/);
  await refuses(t, ['--python', python, '--', '-m', 'no_such_pkg_hp.sub'], 2, /no module named no_such_pkg_hp\n$/);
});

t.test('the output must be writable and new', async (t) => {
  await refuses(t, ['--python', python, '-o', '/nonexistent-hp-dir/run', 'MARKER'], 2, /^hp-record: -o \/nonexistent-hp-dir\/run: directory \/nonexistent-hp-dir: no such file\n$/);
  await refuses(t, ['--python', python, '-o', '/proc/run', 'MARKER'], 2, /^hp-record: -o \/proc\/run: cannot create files in \/proc: /);

  const dir = scratch({ 'old.hpm': 'precious', 'old.hpd': 'precious' });
  const refused = await hpRecord(['--python', python, '-o', 'old', MARKER, 'started'], { cwd: dir });
  t.equal(refused.code, 2);
  t.equal(refused.stderr, 'hp-record: -o old: old.hpm already exists (use --force to overwrite)\n');
  t.notOk(existsSync(join(dir, 'started')), 'the program did not start');
  t.equal(readFileSync(join(dir, 'old.hpm'), 'utf8'), 'precious', 'the old profile is untouched');
  const forced = await hpRecord(['-q', '--python', python, '-o', 'old.hpm', '--force', MARKER, 'started'], { cwd: dir });
  if (forced.code === 0) {
    t.ok(existsSync(join(dir, 'started')), '--force: the program ran');
    t.not(readFileSync(join(dir, 'old.hpm'), 'latin1'), 'precious', '--force: the profile was replaced');
    t.equal(readFileSync(join(dir, 'old.hpm'), 'latin1').slice(0, 4), 'HPXM');
  } else {
    t.match(forced.stderr, /native hook not built/, 'without the native hook, the recorder says so');
    t.equal(forced.code, 1);
  }
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'out/run.hpd'), '');
  await refuses(t, ['--python', python, '-o', join(dir, 'out/run'), 'MARKER'], 2, /run\.hpd already exists/);
});

t.test('the interpreter must exist and be supported', async (t) => {
  await refuses(t, ['--python', 'no-such-python-hp', 'MARKER'], 2, /^hp-record: no-such-python-hp: not found on PATH\n$/);
  await refuses(t, ['--python', '/nonexistent/python3', 'MARKER'], 2, /^hp-record: \/nonexistent\/python3: not an executable file\n$/);
  await refuses(t, ['MARKER'], 2, /^hp-record: no-such-python-hp2: not found on PATH\n$/, { HEAPPROF_PYTHON: 'no-such-python-hp2' });
  await refuses(t, ['MARKER'], 2, /^hp-record: python3: not found on PATH \(use --python EXE or HEAPPROF_PYTHON\)\n$/, { PATH: '/nonexistent', HEAPPROF_PYTHON: '' });
  for (const old of ['3.8', '2.7']) {
    const root = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions');
    const found = existsSync(root) ? readdirSync(root).find((v) => v.startsWith(`${old}.`)) : undefined;
    if (!found) {
      t.comment(`no CPython ${old} installed: not checked`);
      continue;
    }
    await refuses(t, ['--python', join(root, found, 'bin/python'), 'MARKER'], 1, new RegExp(`^hp-record: Python ${old.replace('.', '\\.')} is not supported \\(heapprof records CPython 3\\.9 and later\\)\\n$`));
  }
});

t.test('--help is the usage text, on stdout, status 0', async (t) => {
  const r = await hpRecord(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^Usage: hp-record \[options\] \[--\] script\.py \[args\.\.\.\]\n {7}hp-record \[options\] -m module \[args\.\.\.\]/);
  for (const option of ['--output', '--sample', '--sample-bytes', '--mode', '--python', '--follow-fork', '--force', '--quiet']) {
    t.match(r.stdout, option, `documents ${option}`);
  }
});
