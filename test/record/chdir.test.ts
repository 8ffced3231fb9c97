// A program that changes its working directory (daemons chdir to /, tools to their work
// directory) keeps its profile where -o said, relative to where hp-record started: a forked
// child's files are created there (the hook's base), a started Python's too (the
// bootstrap's configuration), and the lock file is removed from there at the end.

import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'chdirfork.py');
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();
// Oldest and newest: the paths are the hook's, the same code on every version.
const chosen = installed.length > 1 ? [installed[0]!, installed[installed.length - 1]!] : installed;

for (const py of chosen) {
  for (const [how, option] of [['fork', '--follow-fork'], ['subprocess', '--follow-children']] as const) {
    t.test(`CPython ${py.version}: -o run, then the program changes directory and starts a child (${how}, ${option})`, async (t) => {
      const dir = scratch();
      const elsewhere = join(dir, 'elsewhere');
      mkdirSync(elsewhere);
      const r = await hpRecord([option, '--python', py.exe, '-o', 'run', '--', SCRIPT, elsewhere, how], {
        cwd: dir,
        env: { PYTHONDONTWRITEBYTECODE: '1' },
        timeoutMs: 60000,
      });
      t.equal(r.code, 0, 'the program exits 0');
      const child = /^child (\d+)$/m.exec(r.stdout)?.[1];
      t.ok(child, 'the child ran');
      t.same(readdirSync(elsewhere), [], 'nothing written in the directory the program moved to');
      t.same(
        readdirSync(dir).filter((n) => n.startsWith('run.')).sort(),
        [`run.${child}.hpd`, `run.${child}.hpm`, 'run.hpd', 'run.hpm'],
        "the child's profile next to the parent's, and no lock file left",
      );
      t.match(r.stderr, new RegExp(`child ${child}: run\\.${child}\\.hpm, run\\.${child}\\.hpd: [\\d,]+ events?`), 'the summary lists the child');
    });
  }
}
