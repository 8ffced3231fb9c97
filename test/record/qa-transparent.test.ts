// The program behaves under hp-record exactly as under plain python, in corners the other record
// tests do not reach: each case runs a program both ways, with the real recorder, and compares
// standard output, standard error and the exit status.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { BIN, REPO, hpRecord, oldestAndNewest, pythons, recordingSkip, run, scratch, type PythonInstall } from '../fixtures/record/harness.js';

const skip = recordingSkip();
if (skip) t.plan(0, skip);

const env = { PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: undefined, HEAPPROF_NATIVE: undefined };

/** Plain python and hp-record -q on the same program; both results for further checks. */
async function sideBySide(t: Test, py: PythonInstall, args: string[], extraEnv: NodeJS.ProcessEnv, cwd: string) {
  const base = join(scratch(), 'run');
  const [plain, recorded] = await Promise.all([
    run(py.exe, args, { cwd, env: { ...env, ...extraEnv } }),
    hpRecord(['-q', '--python', py.exe, '-o', base, '--', ...args], { cwd, env: { ...env, ...extraEnv } }),
  ]);
  t.equal(recorded.stdout, plain.stdout, 'stdout');
  t.equal(recorded.stderr, plain.stderr, 'stderr');
  t.equal(recorded.code, plain.code, 'exit code');
  t.equal(recorded.signal, plain.signal, 'signal');
  return { plain, recorded, base };
}

// PYTHONWARNDEFAULTENCODING (3.10+) makes every text open() without an encoding warn; the bootstrap
// wrote its status file that way, so the program's stderr had an EncodingWarning from _run.py, and
// with PYTHONWARNINGS=error the bootstrap failed and nothing was recorded.
const from310 = skip ? [] : pythons().filter((p) => p.version !== '3.9');
for (const py of from310.length > 1 ? [from310[0]!, from310[from310.length - 1]!] : from310) {
  t.test(`CPython ${py.version}: PYTHONWARNDEFAULTENCODING`, async (t) => {
    const dir = scratch({ 'enc.py': "import sys\nx = [bytearray(10000) for _ in range(100)]\nprint('ok', sys.flags.warn_default_encoding)\n" });
    for (const warnings of [undefined, 'error']) {
      await t.test(`PYTHONWARNINGS=${warnings ?? ''}`, async (t) => {
        const { plain, base } = await sideBySide(t, py, ['enc.py'], { PYTHONWARNDEFAULTENCODING: '1', PYTHONWARNINGS: warnings }, dir);
        t.equal(plain.stdout, 'ok 1\n');
        t.ok(existsSync(`${base}.hpd`), 'the program was recorded');
      });
    }
  });
}

// The shell that runs hp-record's first line (dash) set PWD when it was unset, replaced it when it did
// not name the working directory, dropped variables whose names are not shell identifiers, and
// reordered the environment: the program's os.environ differed.
// Run as users run it (the executable, through its shell line), which the harness's hpRecord does not.
for (const py of oldestAndNewest(skip)) {
  t.test(`CPython ${py.version}: the environment as given, PWD and order included`, async (t) => {
    const dir = scratch({ 'env.py': [
      'import os',
      'for k, v in os.environ.items():',
      "    if k != 'NODE_OPTIONS' and not k.startswith('_TAPJS'):  # tap's, changed in every Node process it starts",
      '        print(k, repr(v))',
      '',
    ].join('\n') });
    for (const pwd of [undefined, '/nonexistent', dir]) {
      await t.test(`PWD=${pwd ?? '(unset)'}`, async (t) => {
        // And names that are not shell identifiers, which dash dropped.
        const given = { ...env, ZZ_FIRST: 'z', 'my.dotted-name': 'a\\b\nc', PWD: pwd, '1X': '1', 'CAFÉ': 'é', AA_LAST: 'a' };
        const base = join(scratch(), 'run');
        const [plain, recorded] = await Promise.all([
          run(py.exe, ['env.py'], { cwd: dir, env: given }),
          run(BIN, ['-q', '--python', py.exe, '-o', base, '--', 'env.py'], { cwd: dir, env: given }),
        ]);
        t.equal(recorded.stdout, plain.stdout, 'os.environ, in order');
        t.equal(recorded.stderr, plain.stderr, 'stderr');
        t.equal(recorded.code, plain.code, 'exit code');
        t.equal(/^PWD /m.test(plain.stdout), pwd !== undefined, 'plain python has PWD only when given');
        t.match(plain.stdout, /^my\.dotted-name 'a\\\\b\\nc'$/m, 'plain python has the dotted name');
      });
    }
  });
}

// Noting a huge variable that dash drops would pass the 128 KiB one environment string may hold, and
// Node would not start at all: then the environment is left as the shell passed it.
t.test('a huge variable whose name is not an identifier does not keep hp-record from starting', { skip: skip ?? undefined }, async (t) => {
  const py = pythons()[pythons().length - 1]!;
  const dir = scratch();
  const r = await run(BIN, ['-q', '--python', py.exe, '-o', join(dir, 'run'), '-c', 'print("ran")'], { cwd: dir, env: { ...env, 'big.name': 'x'.repeat(100000) } });
  t.equal(r.stdout, 'ran\n');
  t.equal(r.code, 0);
});

// `-m PACKAGE` where PACKAGE is found by a finder on sys.meta_path (setuptools' editable installs put
// one there from a .pth file; here a sitecustomize does): hp-record looked along sys.path only and
// refused it ("no module named", exit status 2) where python ran it.
for (const py of oldestAndNewest(skip)) {
  t.test(`CPython ${py.version}: -m a package found by a meta path finder`, async (t) => {
    const dir = scratch({
      'site/sitecustomize.py': [
        'import sys',
        'from importlib.machinery import PathFinder',
        'class EditableFinder:',
        '    @classmethod',
        '    def find_spec(cls, fullname, path=None, target=None):',
        "        if fullname.split('.')[0] == 'edpkg':",
        "            return PathFinder.find_spec(fullname, path or [sys.modules[__name__].SRC])",
        '        return None',
        'sys.meta_path.append(EditableFinder)',
        '',
      ].join('\n'),
      'src/edpkg/__init__.py': '',
      'src/edpkg/__main__.py': 'import sys\nprint("edpkg", __name__, sys.argv[1:])\n',
      'work/.keep': '',
    });
    const site = join(dir, 'site');
    const extra = { PYTHONPATH: site };
    // The finder's source directory, kept out of sys.path.
    writeFileSync(join(site, 'sitecustomize.py'), `SRC = ${JSON.stringify(join(dir, 'src'))}\n` + readFileSync(join(site, 'sitecustomize.py'), 'utf8'));
    const { plain } = await sideBySide(t, py, ['-m', 'edpkg', 'x'], extra, join(dir, 'work'));
    t.equal(plain.stdout, "edpkg __main__ ['x']\n");
  });
}

// The bootstrap takes its private directory and the package's parent off sys.path again; their finders
// stayed cached in sys.path_importer_cache (the private directory's after the directory was removed).
for (const py of oldestAndNewest(skip)) {
  t.test(`CPython ${py.version}: no finder of hp-record's directories left in sys.path_importer_cache`, async (t) => {
    const dir = scratch({ 'cache.py': 'import sys\nfor k in sys.path_importer_cache:\n    print(k)\n' });
    for (const follow of [[], ['--follow-children']]) {
      const r = await run(BIN, ['-q', ...follow, '--python', py.exe, '-o', join(dir, 'run'), '--force', '--', 'cache.py'], { cwd: dir, env });
      t.equal(r.code, 0);
      const keys = r.stdout.split('\n');
      t.notOk(keys.some((k) => /\/hp-record-[A-Za-z0-9]{6}$/.test(k)), `${follow.join(' ')}: no private directory`);
      t.notOk(keys.includes(join(REPO, 'python')), `${follow.join(' ')}: no package parent`);
      t.ok(keys.some((k) => k.endsWith('lib-dynload')), 'the standard library is there (the listing means something)');
    }
  });
}
