// A program that changes directory: the recorder named its lock file and its forked children's
// profiles relative to the directory it started in, so that the lock file was left behind (its
// removal looked in the new directory) and a child's profile went to the new directory, where
// hp-record did not find it ("1 forked child recorded nothing"); with --follow-children, a python
// the program started there recorded to the new directory too.

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'chdir.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const all = skip ? [] : pythons();
const installed = all.length > 1 ? [all[0]!, all[all.length - 1]!] : all;

for (const py of installed) {
  for (const [option, mode] of [['--follow-fork', []], ['--follow-children', ['spawn']]] as const) t.test(`CPython ${py.version} ${option}`, async (t) => {
    const dir = scratch();
    mkdirSync(join(dir, 'elsewhere'));
    const r = await hpRecord(['--python', py.exe, '-o', 'run', option, '--sample', '{}', '--', SCRIPT, 'elsewhere', ...mode], { cwd: dir, env });
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, 'parent done []\n', 'nothing of the profile in the directory the program went to');
    t.notOk(existsSync(join(dir, 'run.hpm.lock')), 'the lock file is removed');
    const children = readdirSync(dir).filter((f) => /^run\.\d+\.hpd$/.test(f));
    t.equal(children.length, 1, "the child's profile is next to its parent's");
    t.match(r.stderr, /hp-record: child \d+: run\.\d+\.hpm, run\.\d+\.hpd: [\d,]+ events\n/);
    t.notMatch(r.stderr, /recorded nothing/);
  });
}
