// What hp-record's bootstrap imports into the program: only what recording needs (heapprof, the
// hook's ctypes, struct, math, _json's C accelerator), never the json package, re, enum or
// importlib, which cost a clean interpreter ~20 ms at every start and would be in the
// program's sys.modules as if it had imported them. Measured on a virtual environment of its
// own, since this machine's interpreters import json and re from a .pth file before any program.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { hookLibrary, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built (npm ci or npx node-gyp rebuild)');
if (skip) t.plan(0, skip);

const installed = skip ? [] : pythons();
// The oldest and the newest: the loader and the JSON accelerator differ most between them.
const edges = installed.length > 1 ? [installed[0]!, installed[installed.length - 1]!] : installed;
const NEVER = ['json', 're', 'enum', 'functools', 'collections', 'importlib', 'importlib.machinery', 'warnings'];

for (const py of edges) {
  t.test(`CPython ${py.version}`, async (t) => {
    const dir = scratch();
    const venv = join(dir, 'venv');
    const made = spawnSync(py.exe, ['-m', 'venv', '--without-pip', venv], { encoding: 'utf8' });
    if (made.status !== 0) {
      t.skip(`cannot make a virtual environment: ${made.stderr.trim().split('\n').pop()}`);
      return;
    }
    const python = join(venv, 'bin', 'python');
    // The program's first act: list what is already imported.
    const probe = 'import sys\nmods = sorted(sys.modules)\nsys.stdout.write("\\n".join(mods) + "\\n")\n';
    const files = scratch({ 'probe.py': probe });
    const plain = await run(python, [join(files, 'probe.py')], { env: { PYTHONPATH: undefined } });
    const recorded = await hpRecord(['-q', '--python', python, '-o', join(dir, 'p'), join(files, 'probe.py')], { env: { PYTHONPATH: undefined } });
    t.equal(plain.code, 0, plain.stderr);
    t.equal(recorded.code, 0, recorded.stderr);
    const before = new Set(plain.stdout.trim().split('\n'));
    const added = recorded.stdout.trim().split('\n').filter((m) => !before.has(m));
    t.ok(added.includes('heapprof'), `the recorder is loaded (added: ${added.join(' ')})`);
    for (const m of NEVER) {
      if (before.has(m)) continue; // this interpreter imports it at start-up anyway
      t.notOk(added.includes(m), `${m} is not imported by the bootstrap`);
    }
  });
}
