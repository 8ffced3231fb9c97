// A followed fork killed by SIGTERM while its profile is being created (a pool terminating a
// worker that has just started) leaves either no files or a whole, readable pair: never a .hpm
// without its .hpd, which made every reader of the run's profiles fail.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, REPO, hookLibrary, hpRecord, missingBuild, oldestAndNewest, run } from '../fixtures/record/harness.js';
import { scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'termcreate.py');
const skip = missingBuild() ?? (hookLibrary() ? null : 'the native hook is not built');
const chosen = oldestAndNewest(skip);
if (skip || chosen.length === 0) t.plan(0, skip ?? 'no CPython 3.9-3.13 under ~/.pyenv');

for (const py of chosen) {
  t.test(`CPython ${py.version}: SIGTERM while a child creates its profile`, async (t) => {
    const dir = scratch();
    const base = join(dir, 'run');
    const r = await hpRecord(['--follow-fork', '--python', py.exe, '-o', base, '--', SCRIPT], {
      env: { PYTHONPATH: join(REPO, 'python'), PYTHONDONTWRITEBYTECODE: '1' },
      timeoutMs: 60000,
    });
    t.equal(r.code, 0, r.stderr);
    const m = /^child (\d+) signal (\S+) exit (\S+)$/m.exec(r.stdout);
    t.ok(m, `the script reports its child (${r.stdout.trim()})`);
    if (!m) return;
    t.equal(m[2], '15', 'the child died of SIGTERM, as without the recorder');
    const child = `${base}.${m[1]}`;
    t.ok(existsSync(`${child}.hpm`) && existsSync(`${child}.hpd`), "the child's profile is a whole pair");
    t.notMatch(r.stderr, /unreadable/, 'the summary reads it');
    t.match(r.stderr, new RegExp(`child ${m[1]}: [^\n]*: 1 event$`, 'm'), 'the summary names the child and its one event: the ticker closed its profile on SIGTERM');
    // Every profile of the run reads together.
    const read = await run(process.execPath, [join(REPO, 'bin', 'hp-snapshot.js'), `${base}*`, '--json'], {});
    t.equal(read.code, 0, `hp-snapshot '${base}*' reads them all (${read.stderr.trim()})`);
  });
}

t.test('readers given several profiles leave out one that has only its .hpm', async (t) => {
  if (skip || chosen.length === 0) return t.skip(skip ?? 'no CPython');
  const py = chosen[0]!;
  const dir = scratch();
  const base = join(dir, 'run');
  const rec = await hpRecord(['-q', '--python', py.exe, '-o', base, '--', '-c', 'x = [bytearray(20000) for _ in range(50)]'], { timeoutMs: 60000 });
  t.equal(rec.code, 0, rec.stderr);
  const { copyFileSync } = await import('node:fs');
  copyFileSync(`${base}.hpm`, `${base}.4242.hpm`); // a child killed between its two files
  const glob = await run(process.execPath, [join(REPO, 'bin', 'hp-snapshot.js'), `${base}*`, '--json'], {});
  t.equal(glob.code, 0, 'the glob reads');
  t.match(glob.stderr, /run\.4242\.hpm: left out: it has no \.hpd/, 'and says what it left out');
  const alone = await run(process.execPath, [join(REPO, 'bin', 'hp-snapshot.js'), `${base}.4242`], {});
  t.equal(alone.code, 1, 'alone, it is an error');
  t.match(alone.stderr, /run\.4242\.hpd: no such file/);
});
