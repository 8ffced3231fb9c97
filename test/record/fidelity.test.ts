// The program cannot tell it runs under hp-record: sys.argv, sys.path, __main__, stdin/stdout/stderr,
// exit status and tracebacks are compared with plain python on every CPython 3.9–3.13 installed.
// Runs against the fake recorder (test/fixtures/record/fake), so the native hook is not needed.

import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FIXTURES, fakeRecorderBin, hpRecord, mapLimit, missingBuild, pythons, run, scratch, type RunResult } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const env = { PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: undefined, PYTHONSAFEPATH: undefined, FAKE_HEAPPROF_LOG: undefined };

const skip = missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null);
if (skip) t.plan(0, skip);

interface Case {
  what: string;
  args: string[];
  cwd?: string;
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** What goes between hp-record's options and the program (default `--`). */
  separator?: string[];
  /** Extra assertions on plain python's result, proving the comparison means something. */
  check?: (t: Test, plain: RunResult) => void;
  /** Run on every CPython found; the others run on the oldest and newest only (the machine is shared). */
  everywhere?: boolean;
}

// Shown from standard input: what python - gives the program, then a traceback through <stdin>.
const STDIN_PROGRAM = [
  'import json, sys',
  'print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "name": __name__, "file": globals().get("__file__")}))',
  'data = [bytearray(1000) for _ in range(1000)]',
  'def fail():',
  '    raise ValueError("from stdin")',
  'sys.stdout.flush()',
  'fail()',
  '',
].join('\n');

const links = scratch();
symlinkSync(join(SCRIPTS, 'show.py'), join(links, 'linked.py'));
const json = (r: RunResult): Record<string, unknown> => JSON.parse(r.stdout) as Record<string, unknown>;

const cases: Case[] = [
  {
    what: 'script, relative path, odd arguments',
    everywhere: true,
    args: ['show.py', 'a', '-b', '--c', '--', ''],
    check: (t, plain) => {
      const shown = json(plain);
      t.equal((shown.path as string[])[0], SCRIPTS, 'sys.path[0] is the script directory');
      t.same(shown.argv, ['show.py', 'a', '-b', '--c', '--', '']);
      t.equal(shown.config_in_environ, false);
    },
  },
  { what: 'script, absolute path, another cwd', args: [join(SCRIPTS, 'show.py'), 'x'], cwd: links },
  { what: 'script, ./ and .. in the path (kept in __file__)', args: ['./../scripts/show.py'], cwd: join(FIXTURES, 'fake') },
  {
    what: 'symlinked script',
    args: ['linked.py', 'y'],
    cwd: links,
    check: (t, plain) => t.equal((json(plain).path as string[])[0], SCRIPTS, 'sys.path[0] is the real directory of a symlinked script'),
  },
  {
    what: 'PYTHONPATH and a user sitecustomize are honoured, and restored for subprocesses',
    args: ['show.py'],
    env: { PYTHONPATH: `${join(FIXTURES, 'usersite')}:${join(FIXTURES, 'nonexistent')}` },
    everywhere: true,
    check: (t, plain) => {
      t.equal(json(plain).sitecustomize, true, 'the user sitecustomize ran');
      t.equal(json(plain).pythonpath_env, `${join(FIXTURES, 'usersite')}:${join(FIXTURES, 'nonexistent')}`);
    },
  },
  { what: 'an empty PYTHONPATH stays set and empty', args: ['show.py'], env: { PYTHONPATH: '' }, check: (t, plain) => t.equal(json(plain).pythonpath_env, '') },
  { what: 'script without --', args: ['show.py', 'no', 'dashdash'], separator: [] },
  {
    what: '-m fixpkg.tool',
    everywhere: true,
    args: ['-m', 'fixpkg.tool', 'x', '-m', 'y'],
    check: (t, plain) => {
      const shown = json(plain);
      t.equal((shown.argv as string[])[0], join(SCRIPTS, 'fixpkg/tool.py'), 'argv[0] is the module file');
      t.equal(shown.spec_name, 'fixpkg.tool');
      t.equal((shown.path as string[])[0], SCRIPTS, 'sys.path[0] is the working directory');
    },
  },
  { what: 'hp-record -m (no --)', args: ['-m', 'fixpkg.tool', 'z'], separator: [] },
  { what: '-m package with __main__', args: ['-m', 'fixpkg'] },
  { what: 'directory with __main__.py', args: ['appdir', 'q'] },
  { what: 'exception in a -m module (runpy frames kept, bootstrap frames gone)', args: ['-m', 'fixpkg.tool', 'fail'], everywhere: true, check: (t, p) => t.equal(p.code, 1) },
  { what: '-m json.tool reading stdin', args: ['-m', 'json.tool'], input: '{"b": [1, 2], "a": null}' },
  { what: 'stdin to stdout, stderr interleaved', args: ['stdio.py'], input: 'hello\nworld\n', everywhere: true, check: (t, p) => t.match(p.stdout, /^HELLO\nWORLD\ndone\n$/) },
  { what: 'empty stdin', args: ['stdio.py'], input: '' },
  {
    what: 'the program from standard input (-), with arguments',
    args: ['-', 'a', '-x'],
    everywhere: true,
    input: STDIN_PROGRAM,
    check: (t, plain) => {
      const [shown] = plain.stdout.split('\n');
      t.same(JSON.parse(shown!), { argv: ['-', 'a', '-x'], path0: '', name: '__main__', file: '<stdin>' }, 'python -: argv[0] is -, sys.path[0] empty, __file__ <stdin>');
      t.match(plain.stderr, /File "<stdin>", line 7, in <module>\n.*\nValueError: from stdin/s, 'the traceback names <stdin>');
      t.equal(plain.code, 1);
    },
  },
  { what: '- without --', args: ['-'], separator: [], input: 'import sys; print(sys.argv)\n' },
  { what: 'an empty program from standard input', args: ['-'], input: '' },
  { what: 'syntax error', args: ['badsyntax.py'], everywhere: true, check: (t, p) => t.match(p.stderr, /SyntaxError/) },
  { what: 'syntax error at end of file', args: ['badeof.py'], check: (t, p) => t.match(p.stderr, /SyntaxError/) },
];
const exits: Record<string, number | NodeJS.Signals> = { ok: 0, code: 3, none: 0, msg: 1, raise: 1, hook: 1, atexit: 5, lastexc: 1, kbd: 'SIGINT' };
for (const [mode, status] of Object.entries(exits)) {
  cases.push({
    what: `exits.py ${mode}`,
    args: ['exits.py', mode],
    everywhere: ['msg', 'raise', 'kbd'].includes(mode),
    check: (t, plain) => {
      if (typeof status === 'number') t.equal(plain.code, status, `${mode}: the fixture exits ${status}`);
      else t.equal(plain.signal, status, `${mode}: python dies of ${status}`);
    },
  });
}

const installed = skip ? [] : pythons();
for (const [i, py] of installed.entries()) {
  const edge = i === 0 || i === installed.length - 1;
  t.test(`CPython ${py.version}`, async (t) => {
    const bin = fakeRecorderBin();
    const out = scratch();
    let runs = 0;
    await mapLimit(edge ? cases : cases.filter((c) => c.everywhere), 3, async (c) => {
      const cwd = c.cwd ?? SCRIPTS;
      const base = join(out, `r${runs++}`);
      const [plain, recorded] = await Promise.all([
        run(py.exe, c.args, { cwd, env: { ...env, ...c.env }, input: c.input }),
        hpRecord(['-q', '--python', py.exe, '-o', base, ...(c.separator ?? ['--']), ...c.args], { bin, cwd, env: { ...env, ...c.env }, input: c.input }),
      ]);
      t.equal(recorded.stdout, plain.stdout, `${c.what}: stdout`);
      t.equal(recorded.stderr, plain.stderr, `${c.what}: stderr`);
      t.equal(recorded.code, plain.code, `${c.what}: exit code`);
      t.equal(recorded.signal, plain.signal, `${c.what}: signal`);
      c.check?.(t, plain);
    });
  });
}
