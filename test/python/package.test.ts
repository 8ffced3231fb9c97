// The Python package as a user meets it: the API on every CPython here, marks through the readers,
// pip install from a fresh clone into a fresh venv (offline), the pytest plugin (pass, fail by
// limit, fail by leak, exact mode, xdist, pytest 8 and 9) and the %%heapprof magic. Steps whose
// prerequisites are missing are skipped with the reason printed.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { REPO, runPython, supportedPythons, type PythonInfo } from '../helpers/python.js';

const FIXTURES = join(REPO, 'test', 'fixtures', 'python');
const WHEELS = '/opt/pypi/files';

function hp(cmd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', `hp-${cmd}.js`), ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  // An output past maxBuffer kills the command and leaves a cut line: say so, not a JSON error.
  if (r.error) throw new Error(`hp-${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Runs a command with the given env (PYTHONPATH removed unless given). */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', ...opts.env };
  if (!opts.env?.PYTHONPATH) delete env.PYTHONPATH;
  delete env.HEAPPROF_NATIVE_LIB;
  const r = spawnSync(cmd, args, { env, cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeoutMs ?? 300_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

const pythons = supportedPythons();

t.test('the API and marks on every CPython 3.9-3.13 here', async (t) => {
  if (pythons.length === 0) return t.skip('no supported CPython found');
  for (const py of pythons) {
    await t.test(`CPython ${py.version}`, async (t) => {
      const dir = tmpDir();
      const base = join(dir, 'api');
      const r = runPython(py, [join(FIXTURES, 'api.py'), base]);
      t.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as Record<string, unknown>;
      t.same(out, {
        profiling: true,
        mark1: 1,
        mark2: 2,
        after: 0,
        stopped: true,
        aliases: true,
        both: 'give either sampling_rate or sample_bytes, not both',
        bad_bytes: "expected a byte count such as 524288 or 512k, got 'lots'",
      });
      const ev = lines(hp('events', [base]).stdout);
      t.same(ev.filter((l) => l.type === 'mark').map((l) => [l.label, l.id]), [['loaded', 1], ['freed', 2]]);
      // Marks sit in time order among the events.
      const times = ev.filter((l) => l.type === 'mark' || l.type === 'event').map((l) => l.t as number);
      t.same(times, [...times].sort((a, b) => a - b));
      const at = (spec: string): number => lines(hp('snapshot', [base, '--at', spec, '-q']).stdout)[0]!.bytes as number;
      t.ok(at('mark:loaded') >= 10_000_000, 'the 10 MB are live at the mark "loaded"');
      t.ok(at('mark:freed') < 1_000_000, 'and gone at "freed"');
      const missing = hp('snapshot', [base, '--at', 'mark:nope']);
      t.equal(missing.code, 2);
      t.match(missing.stderr, /^hp-snapshot: --at: no mark 'nope' in .*api \(its marks: loaded, freed\)\n$/);
      // From the first mark to the end: a window between the two marks can fall inside one bucket
      // (they are often under 1 ms apart), and hp-history reports only buckets that end inside it.
      const hist = lines(hp('history', [base, '--from', 'mark:loaded', '--granularity', '0.001', '--top', '0', '-q']).stdout);
      t.ok(hist.length >= 1 && hist.some((b) => Array.isArray(b.marks)), 'hp-history lists the marks of its buckets');
    });
  }
});

t.test('hp-record --mark-signal writes a mark per signal', async (t) => {
  const py = pythons.find((p) => p.minor === 11) ?? pythons[0];
  if (!py) return t.skip('no supported CPython found');
  const dir = tmpDir();
  const script = join(dir, 'sig.py');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(script, 'import os, signal, time\nfor i in range(3):\n    os.kill(os.getpid(), signal.SIGUSR2)\n    time.sleep(0.02)\n');
  const r = run(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '-q', '--python', py.exe, '-o', join(dir, 'rec'), '--mark-signal', 'USR2', '--', script]);
  t.equal(r.code, 0, r.stderr);
  t.same(lines(hp('events', [join(dir, 'rec')]).stdout).filter((l) => l.type === 'mark').map((l) => l.label), ['signal-1', 'signal-2', 'signal-3']);
  const bad = run(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '--mark-signal', 'TERM', '--', script]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--mark-signal TERM: expected USR1 or USR2/);
});

/** A venv with the package pip-installed from a fresh clone of this checkout (offline). */
function freshVenv(t: Test, py: PythonInfo, extra: string[], first: string[] = []): string | null {
  const dir = tmpDir('hp-venv-');
  const clone = join(dir, 'clone');
  const c = run('git', ['clone', '-q', REPO, clone]);
  if (c.code !== 0) {
    t.comment(`skipped: git clone failed: ${c.stderr}`);
    return null;
  }
  const venv = join(dir, 'venv');
  const v = run(py.exe, ['-m', 'venv', venv]);
  if (v.code !== 0) {
    t.comment(`skipped: python -m venv failed: ${v.stderr}`);
    return null;
  }
  const pip = join(venv, 'bin', 'pip');
  if (first.length > 0) {
    const f = run(pip, ['install', '-q', '--no-index', '--find-links', WHEELS, ...first]);
    t.equal(f.code, 0, `pip install ${first.join(' ')}: ${f.stderr}`);
  }
  const i = run(pip, ['install', '-q', '--no-index', '--find-links', WHEELS, join(clone, 'python'), ...extra]);
  t.equal(i.code, 0, `pip install ./python: ${i.stderr}`);
  return i.code === 0 ? venv : null;
}

t.test('pip install from a fresh clone on the oldest and newest CPython, then the API without PYTHONPATH', async (t) => {
  if (!existsSync(WHEELS)) return t.skip(`${WHEELS} not found (offline wheels for setuptools)`);
  for (const minor of [9, 13]) {
    const py = pythons.find((p) => p.minor === minor);
    if (!py) {
      t.comment(`skipped CPython 3.${minor}: not found`);
      continue;
    }
    await t.test(`CPython 3.${minor}`, async (t) => {
      // setuptools 84 (the wheel here) needs 3.10: on 3.9 the venv's own setuptools 58 builds, with wheel.
      const venv = freshVenv(t, py, minor === 9 ? ['--no-build-isolation'] : [], minor === 9 ? ['wheel'] : []);
      if (!venv) return;
      const dir = tmpDir();
      const r = run(join(venv, 'bin', 'python'), [join(FIXTURES, 'api.py'), join(dir, 'api')], { cwd: dir });
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, /"mark1": 1, "mark2": 2/);
      const where = run(join(venv, 'bin', 'python'), ['-c', 'import heapprof._native as n; print(n.load().path)'], { cwd: dir });
      t.equal(where.stdout.trim(), join(venv, 'lib', `python3.${minor}`, 'site-packages', 'heapprof', 'heapprof_hook.so'));
    });
  }
});

t.test('pip install from a fresh clone, then pytest --heapprof', async (t) => {
  const py = pythons.find((p) => p.minor === 11);
  if (!py) return t.skip('CPython 3.11 not found');
  if (!existsSync(WHEELS)) return t.skip(`${WHEELS} not found (offline wheels for setuptools and pytest)`);
  const wheels = readdirSync(WHEELS);
  const hasXdist = wheels.some((w) => w.startsWith('pytest_xdist-'));
  const venv = freshVenv(t, py, ['pytest', ...(hasXdist ? ['pytest-xdist'] : [])]);
  if (!venv) return;
  const vpy = join(venv, 'bin', 'python');
  const where = run(vpy, ['-c', 'import heapprof, heapprof._native as n; print(n.load().path)'], { cwd: tmpDir() });
  t.equal(where.code, 0, where.stderr);
  t.match(where.stdout.trim(), new RegExp(`^${venv}/lib/python3\\.11/site-packages/heapprof/heapprof_hook\\.so$`), 'the hook pip built, inside the package');

  const pytestRun = (args: string[]) => {
    const cwd = tmpDir();
    // --rootdir: else pytest takes the common ancestor of cwd (a temporary directory) and the
    // fixture, /tmp itself for a checkout under /tmp, and its work there (recorded with every
    // allocation at '{}') depends on what else /tmp holds: 20 times the events seen elsewhere.
    const r = run(vpy, ['-m', 'pytest', '-p', 'no:cacheprovider', '--rootdir', FIXTURES, '-q', ...args, join(FIXTURES, 'test_plugin_cases.py')], { cwd });
    return { ...r, cwd };
  };
  const outcomes = (stdout: string): string[] => [...stdout.matchAll(/^(FAILED|PASSED) \S+::(\w+)/gm)].map((m) => `${m[2]} ${m[1]}`).sort();

  const versions = ['9', '8'];
  for (const major of versions) {
    await t.test(`pytest ${major}`, async (t) => {
      if (major === '8') {
        const pin = wheels.find((w) => /^pytest-8\./.test(w));
        if (!pin) return t.skip('no pytest 8 wheel');
        const d = run(join(venv, 'bin', 'pip'), ['install', '-q', '--no-index', '--find-links', WHEELS, `pytest==${pin.split('-')[1]}`]);
        t.equal(d.code, 0, d.stderr);
      }
      const v = run(vpy, ['-m', 'pytest', '--version']);
      t.match(v.stdout + v.stderr, new RegExp(`pytest ${major}\\.`));

      for (const sample of ['64K', '{}']) {
        const r = pytestRun(['-rA', '--heapprof=prof', '--heapprof-sample', sample]);
        t.equal(r.code, 1, `one run with failures (sampling ${sample})`);
        t.same(outcomes(r.stdout), ['test_leaks FAILED', 'test_over_limit FAILED', 'test_plain PASSED', 'test_within_limits PASSED'], r.stdout);
        t.match(r.stdout, /heapprof: peak memory [\d.]+ MiB.* exceeds limit_memory 1\.0 MiB; top site: <listcomp> \(.*test_plugin_cases\.py:13\)|heapprof: peak memory [\d.]+ MiB.* exceeds limit_memory 1\.0 MiB; top site: \S+ \(.*test_plugin_cases\.py:13\)/);
        t.match(r.stdout, /allocated and still live at the end [\d.]+ MiB.* exceeds limit_leaks 1\.0 MiB; top site: .*test_plugin_cases\.py:19\)/);
        t.match(r.stdout, /=+ heapprof =+\nprofile: prof \(4 tests\)\ncounted: Python's allocator only; C extensions' malloc and mmap \(numpy, pandas\.\.\.\) too with: hp-record --native -m pytest --heapprof\nlargest peak/);
        if (sample === '{}') t.notMatch(r.stdout, /95%/, 'exact mode has no intervals');
        else t.match(r.stdout, /95%: /);
        const ev = lines(hp('events', [join(r.cwd, 'prof')]).stdout);
        const marks = ev.filter((l) => l.type === 'mark').map((l) => l.label as string);
        t.equal(marks.length, 8);
        t.match(marks[0], /^start:.*test_plugin_cases\.py::test_plain$/);
        t.match(marks[1], /^end:.*test_plugin_cases\.py::test_plain$/);
      }

      // C memory: not seen by the plugin alone (it says so), seen under hp-record --native, whose
      // profile the plugin then marks and reads; the site is the test's line and the C caller.
      const native = (args: string[], recorder: string[] = []) => {
        const cwd = tmpDir();
        const pytestArgs = ['-m', 'pytest', '-p', 'no:cacheprovider', '--rootdir', FIXTURES, '-q', '-rA', '--heapprof=prof', ...args, join(FIXTURES, 'test_native_case.py')];
        const r = recorder.length > 0 ? run(process.execPath, [join(REPO, 'bin', 'hp-record.js'), ...recorder, '-o', 'rec', '--python', vpy, '--', ...pytestArgs], { cwd }) : run(vpy, pytestArgs, { cwd });
        return { ...r, cwd };
      };
      const alone = native([]);
      t.equal(alone.code, 0, 'alone, the C buffer is not counted');
      t.match(alone.stdout, /counted: Python's allocator only/);
      // Every allocation recorded ('{}'): the peak is then the buffer itself, not an estimate
      // whose sampled Python part can move it off 8.0 MiB (8.6 MiB in one CI run).
      const under = native([], ['-q', '--native', '--sample', '{}']);
      t.equal(under.code, 1, `under hp-record --native the limit fails: ${under.stdout}${under.stderr}`);
      t.match(under.stdout, /heapprof: peak memory 8\.0 MiB( \(95%: [^)]*\))? exceeds limit_memory 4\.0 MiB; top site: test_c_buffer \(\S*test_native_case\.py:15\) \[native: \S+ \(\S+\)\], 8\.0 MiB \(profile rec\)/);
      t.notMatch(under.stdout, /counted: Python's allocator only/);
      t.notMatch(under.stdout + under.stderr, /PytestAssertRewriteWarning|warnings summary/, 'no warning that heapprof was imported before pytest');
      t.ok(existsSync(join(under.cwd, 'rec.hpm')) && !existsSync(join(under.cwd, 'prof.hpm')), "the plugin marks hp-record's profile, starts none");
      if (hasXdist && major === '9') {
        // pytest-xdist's workers are python processes the controller starts: --follow-children.
        const workers = native(['-n', '2'], ['-q', '--native', '--follow-children']);
        t.equal(workers.code, 1, `xdist workers under --native --follow-children: the limit fails: ${workers.stdout}${workers.stderr}`);
        t.match(workers.stdout, /exceeds limit_memory 4\.0 MiB; top site: test_c_buffer \(\S*test_native_case\.py:15\) \[native: \S+ \(\S+\)\], 8\.0 MiB \(profile rec\.\d+\)/);
        t.ok(readdirSync(workers.cwd).some((f) => /^rec\.\d+\.hpm$/.test(f)), 'a profile per worker, BASE.PID');
      }

      const plain = pytestRun(['-rA']);
      t.equal(plain.code, 0, 'without --heapprof the limits are not checked');
      t.match(plain.stdout, /heapprof: limit_memory\/limit_leaks not checked in 3 tests \(run with --heapprof\)/);
      // Only the tests that run count: -k leaves one of the three marked ones.
      const picked = pytestRun(['-k', 'plain or over_limit']);
      t.equal(picked.code, 0, picked.stdout + picked.stderr);
      t.match(picked.stdout, /heapprof: limit_memory\/limit_leaks not checked in 1 test \(run with --heapprof\)/);

      if (!hasXdist) {
        t.comment('skipped xdist: no pytest-xdist wheel in /opt/pypi/files');
      } else {
        const x = pytestRun(['-rA', '-n', '2', '--heapprof=prof']);
        t.equal(x.code, 1, x.stdout + x.stderr);
        t.same(outcomes(x.stdout), ['test_leaks FAILED', 'test_over_limit FAILED', 'test_plain PASSED', 'test_within_limits PASSED'], x.stdout);
        t.ok(existsSync(join(x.cwd, 'prof.gw0.hpm')) && existsSync(join(x.cwd, 'prof.gw1.hpm')), 'one profile per worker');
        t.notOk(existsSync(join(x.cwd, 'prof.hpm')), 'the controller records nothing');
        t.match(x.stdout, /profiles: prof\.gw0, prof\.gw1 \(4 tests\)/);
      }
    });
  }
});

t.test('%%heapprof through IPython InteractiveShell', async (t) => {
  const py = pythons.find((p) => p.minor === 11);
  if (!py) return t.skip('CPython 3.11 not found');
  const probe = runPython(py, ['-c', 'import IPython']);
  if (probe.code !== 0) return t.skip('IPython is not installed for CPython 3.11');
  const base = join(tmpDir(), 'cell');
  const script = [
    'from IPython.core.interactiveshell import InteractiveShell',
    'sh = InteractiveShell.instance()',
    "sh.run_line_magic('load_ext', 'heapprof')",
    `r = sh.run_cell_magic('heapprof', "--sample '{}' -o ${base}", 'x = [bytearray(100000) for _ in range(100)]\\nn = len(x)\\ndel x\\n')`,
    'print(repr(r))',
    "print('NS', sh.user_ns['n'])",
    "print('HTML', r._repr_html_().startswith(\"<div class='heapprof'>\"), '<svg' in r._repr_html_(), '<table>' in r._repr_html_())",
    "print('BAD', sh.run_cell_magic('heapprof', '--nope', 'pass'))",
  ].join('\n');
  const r = runPython(py, ['-c', script]);
  t.equal(r.code, 0, r.stderr);
  const m = /heapprof: peak ([\d.]+) MiB at/.exec(r.stdout);
  t.ok(m && Number(m[1]) >= 9.5 && Number(m[1]) < 11, `peak of the 10 MB cell: ${r.stdout}`);
  t.match(r.stdout, /live heap: \|.*█.*\|/);
  // The cell's site, named as IPython names the cell (its compiled name), line 1.
  t.match(r.stdout, /top sites at the peak:\n +[\d.]+ MiB +<?\w+>? \((<ipython-input-[^>]+>|Cell In\[\d+\]|\S+\.py):1\)/);
  t.match(r.stdout, /NS 100\n/);
  t.match(r.stdout, /HTML True True True\n/);
  t.match(r.stdout, /%%heapprof: unrecognized arguments: --nope\nBAD None\n/);
  t.ok(existsSync(`${base}.hpm`) && readFileSync(`${base}.hpd`).length > 32, 'the cell profile is on disk for the hp-* commands');
});

t.test('hp-history --follow picks up marks written after it started reading', async (t) => {
  const py = pythons.find((p) => p.minor === 11) ?? pythons[0];
  if (!py) return t.skip('no supported CPython found');
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const dir = tmpDir();
  const flag = join(dir, 'go');
  const script = join(dir, 'late.py');
  writeFileSync(
    script,
    'import heapprof, os, sys, time\nkeep = [bytearray(10000) for _ in range(50)]\nheapprof.mark("early")\nprint("ready", flush=True)\n' +
      'while not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)\nheapprof.mark("late")\nkeep += [bytearray(10000) for _ in range(50)]\ntime.sleep(0.8)\n',
  );
  const base = join(dir, 'rec');
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  const rec = spawn(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '-q', '--python', py.exe, '-o', base, '--', script, flag], { env });
  const recDone = new Promise<number | null>((resolve) => rec.on('close', resolve));
  await new Promise<void>((resolve) => rec.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
  await new Promise((r) => setTimeout(r, 800)); // the recorder's first flush (every 0.5 s)
  const follow = spawn(process.execPath, [join(REPO, 'bin', 'hp-history.js'), base, '--follow', '--json', '--granularity', '0.25', '-q'], { env });
  let out = '';
  follow.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const followDone = new Promise<number | null>((resolve) => follow.on('close', resolve));
  await new Promise((r) => setTimeout(r, 1000)); // hp-history has opened the profile and read its marks
  writeFileSync(flag, '');
  t.equal(await recDone, 0, 'the recording ends normally');
  t.equal(await followDone, 0, 'hp-history --follow ends at the end marker');
  const marks = lines(out).flatMap((b) => (Array.isArray(b.marks) ? (b.marks as Array<{ label: string }>) : [])).map((m) => m.label);
  t.same(marks, ['early', 'late'], 'both marks, the second written after hp-history started');
});
