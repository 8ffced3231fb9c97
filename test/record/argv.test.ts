// hp-record's command line splits like python's: its own options first, then everything after
// the script, -m MODULE or -c CODE belongs to the program (sys.argv compared with plain python);
// a start line and a next step on stderr; a file that is not Python is refused unless --force.

import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import t from 'tap';
import { hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';
import { interpreterFirst, splitCommandLine } from '../../lib/cmd/record.js';
import { readRecording } from '../helpers/python.js';

t.test('splitCommandLine: hp-record options, then the program', async (t) => {
  t.same(splitCommandLine(['-o', 't', '-m', 'pytest', '-q', 'test_a.py']), { own: ['-o', 't'], target: ['-m', 'pytest', '-q', 'test_a.py'] });
  t.same(splitCommandLine(['-q', '-o', 't', 'app.py', '-o', 'x']), { own: ['-q', '-o', 't'], target: ['app.py', '-o', 'x'] });
  t.same(splitCommandLine(['-c', 'print(1)', '-x']), { own: [], target: ['-c', 'print(1)', '-x'] });
  t.same(splitCommandLine(['-mjson.tool', 'f']), { own: [], target: ['-m', 'json.tool', 'f'] });
  t.same(splitCommandLine(['--module=pytest', '-x']), { own: [], target: ['-m', 'pytest', '-x'] });
  t.same(splitCommandLine(['--force', '--', '-m', 'x']), { own: ['--force'], target: ['-m', 'x'] });
  t.same(splitCommandLine(['--sample', '{}']), { own: ['--sample', '{}'], target: null });
  t.throws(() => splitCommandLine(['-m']), /-m: needs a module name/);
});

t.test('interpreterFirst: a first word naming python is the interpreter', async (t) => {
  t.same(interpreterFirst(['python3', 'app.py', '-x']), { python: 'python3', rest: ['app.py', '-x'] });
  t.same(interpreterFirst(['/venv/bin/python', '-m', 'pytest']), { python: '/venv/bin/python', rest: ['-m', 'pytest'] });
  t.same(interpreterFirst(['python3.12', '-c', 'pass']), { python: 'python3.12', rest: ['-c', 'pass'] });
  t.same(interpreterFirst(['python']), { python: 'python', rest: [] });
  t.equal(interpreterFirst(['app.py', 'python3']), null);
  t.equal(interpreterFirst(['python3.py']), null, 'a script called python3.py');
  t.equal(interpreterFirst(['pythonista']), null);
  t.equal(interpreterFirst([]), null);
  const dir = scratch({ python3: 'print("a script named python3")\n' });
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    t.equal(interpreterFirst(['python3', 'x']), null, 'a file of that name in the current directory is the script');
    t.same(interpreterFirst(['./python3', 'x']), { python: './python3', rest: ['x'] }, 'a path is the interpreter');
  } finally {
    process.chdir(cwd);
  }
});

const skip = missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null);

t.test('the program gets exactly the arguments python would give it', { skip: skip ?? false }, async (t) => {
  const python = pythons()[pythons().length - 1]!.exe;
  const dir = scratch({
    'show.py': 'import sys, json\nprint(json.dumps(sys.argv))\n',
    'showmod.py': 'import sys, json\nprint(json.dumps(sys.argv))\n',
  });
  const code = 'import sys, json; print(json.dumps(sys.argv))';
  const cases: string[][] = [
    ['show.py', '-q', '-x', '--foo', '-o', 'out'],
    ['-m', 'showmod', '-q', '-x', 'test_a.py'],
    ['-m', 'showmod', '-o', 'x', '--', 'y'],
    ['-c', code, '-x', '--y', 'z'],
  ];
  for (const [i, program] of cases.entries()) {
    const plain = await run(python, program, { cwd: dir });
    const recorded = await hpRecord(['--python', python, '-o', `p${i}`, ...program], { cwd: dir });
    t.equal(recorded.code, 0, `${program.join(' ')}: exit 0 (${recorded.stderr.trim()})`);
    t.equal(recorded.stdout, plain.stdout, `${program.join(' ')}: sys.argv as under python: ${plain.stdout.trim()}`);
    t.ok(existsSync(join(dir, `p${i}.hpm`)), 'the profile was written');
    const lines = recorded.stderr.trim().split('\n');
    t.match(lines[0], new RegExp(`^hp-record: recording \\S+ .* \\(pid \\d+\\) to p${i}\\.hpm/\\.hpd; sampler: sizes \\{128: 1e-4, 8192: 0\\.1\\}`), 'a start line with path, pid and sampler');
    t.match(lines[lines.length - 1], new RegExp(`^hp-record: next: hp-snapshot p${i} `), 'the next command to run');
  }
  const quiet = await hpRecord(['--python', python, '-q', '-o', 'quiet', 'show.py', '-q'], { cwd: dir });
  t.equal(quiet.stderr, '', '-q before the script silences hp-record');
  t.equal(quiet.stdout, '["show.py", "-q"]\n', '-q after the script is the program\'s');
});

t.test('the program from standard input (hp-record -- - < app.py), as python - reads it', { skip: skip ?? false }, async (t) => {
  const python = pythons()[pythons().length - 1]!.exe;
  const dir = scratch();
  const program = 'import sys, json\ndef grow():\n    return [bytearray(4096) for _ in range(4000)]\nkept = grow()\nprint(json.dumps(sys.argv))\n';
  const plain = await run(python, ['-', '-x', 'y'], { cwd: dir, input: program });
  for (const [i, line] of [['--', '-'], ['-']].entries()) {
    const recorded = await hpRecord(['--python', python, '-o', `s${i}`, ...line, '-x', 'y'], { cwd: dir, input: program });
    t.equal(recorded.code, 0, recorded.stderr);
    t.equal(recorded.stdout, plain.stdout, `${line.join(' ')}: sys.argv as python - gives it: ${plain.stdout.trim()}`);
    t.match(recorded.stderr, /^hp-record: recording \S+ - \(the program from standard input\) \(pid \d+\) to s\d\.hpm/, 'the start line says where the program came from');
    const rec = await readRecording(join(dir, `s${i}`));
    const files = new Set([...rec.traces.values()].flatMap((tr) => tr.frames.map((f) => f.file)));
    t.ok(files.has('<stdin>'), 'the recorded stacks name <stdin>, as its tracebacks do');
    const grow = [...rec.traces.values()].find((tr) => tr.frames.some((f) => f.function === 'grow' && f.file === '<stdin>'));
    t.ok(grow && rec.events.some((e) => e.op === 'alloc' && e.trace === grow.id), "the program's allocations in grow() were recorded");
  }
});

t.test('the interpreter may come first (hp-record -- python3 app.py), as with --python', { skip: skip ?? false }, async (t) => {
  const python = pythons()[pythons().length - 1]!.exe;
  const dir = scratch({ 'show.py': 'import sys, json\nprint(json.dumps(sys.argv))\n', 'showmod.py': 'import sys, json\nprint(json.dumps(sys.argv))\n' });
  const byPath = await hpRecord(['-o', 'i0', '--', python, 'show.py', '-x', '-o', 'y'], { cwd: dir });
  t.equal(byPath.code, 0, byPath.stderr);
  t.equal(byPath.stdout, '["show.py", "-x", "-o", "y"]\n', 'the script and its arguments, as python gives them');
  t.match(byPath.stderr, new RegExp(`^hp-record: recording ${python.replace(/[.]/g, '\\.')} show\\.py \\(pid \\d+\\) to i0\\.hpm`), 'the start line names that interpreter');
  t.ok(existsSync(join(dir, 'i0.hpd')), 'the profile was written');
  // By name on PATH, without --, with -m.
  const byName = await hpRecord(['-q', '-o', 'i1', basename(python), '-m', 'showmod', 'a'], { cwd: dir, env: { PATH: `${dirname(python)}:${process.env.PATH}`, HEAPPROF_PYTHON: '/nonexistent/python' } });
  t.equal(byName.code, 0, byName.stderr);
  t.equal(byName.stdout, `["${join(dir, 'showmod.py')}", "a"]\n`, 'python -m: sys.argv[0] is the module file');
  t.ok(existsSync(join(dir, 'i1.hpd')));
  const twice = await hpRecord(['--python', python, '-o', 'i2', python, 'show.py'], { cwd: dir });
  t.equal(twice.code, 2);
  t.match(twice.stderr, /the interpreter is given twice/);
  const options = await hpRecord(['-o', 'i3', python, '-u', 'show.py'], { cwd: dir });
  t.equal(options.code, 2);
  t.match(options.stderr, /-u: hp-record runs a script, -m module, -c code or - \(the program from standard input\), not python options/);
  const missing = await hpRecord(['-o', 'i4', '/nonexistent/python3', 'show.py'], { cwd: dir });
  t.equal(missing.code, 2);
  t.match(missing.stderr, /\/nonexistent\/python3: not an executable file/);
  t.notOk(existsSync(join(dir, 'i2.hpm')) || existsSync(join(dir, 'i3.hpm')) || existsSync(join(dir, 'i4.hpm')), 'no profile for a refused command line');
});

t.test('a file that is not Python is refused unless --force', { skip: skip ?? false }, async (t) => {
  const python = pythons()[pythons().length - 1]!.exe;
  const dir = scratch({ 'job.sh': '#!/bin/sh\necho hi\n', 'blob.bin': 'ELF\u0000\u0001\u0002', 'ok.py': '#!/usr/bin/env python3\nprint("ok")\n' });
  const sh = await hpRecord(['--python', python, 'job.sh'], { cwd: dir });
  t.equal(sh.code, 2);
  t.equal(sh.stderr, `hp-record: job.sh: a script for /bin/sh, not Python (hp-record runs Python programs; --force runs it with ${python} anyway)\n`);
  const bin = await hpRecord(['--python', python, 'blob.bin'], { cwd: dir });
  t.equal(bin.code, 2);
  t.match(bin.stderr, /blob\.bin: a binary file, not a Python script/);
  t.same(readdirSync(dir).sort(), ['blob.bin', 'job.sh', 'ok.py'], 'no profile left behind');
  const ok = await hpRecord(['--python', python, '-q', '-o', 'ok', 'ok.py'], { cwd: dir });
  t.equal(ok.stdout, 'ok\n', 'a python shebang runs');
  const forced = await hpRecord(['--python', python, '-q', '--force', '-o', 'forced', 'job.sh'], { cwd: dir });
  t.not(forced.code, 2, '--force runs it anyway (python then fails on the shell syntax)');
  t.match(forced.stderr, /SyntaxError/);
});
