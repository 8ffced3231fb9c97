// The recorder's threads are stopped over a fork, and must come back: the ticker is the one
// that closes the profile on SIGTERM.
//
// CPython 3.12 and later warn (DeprecationWarning: "This process is multi-threaded, use of
// fork() may lead to deadlocks in the child") when a process with more than one OS thread
// forks, counting the threads after the fork. The recorder's threads (the ticker and
// hp-record's watchdog) must not be there then, or a program that forks prints a warning
// (and pytest lists one per forking test) under hp-record alone.

import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, run, scratch, withoutSummary } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'forkwarn.py');
const TERM_SCRIPT = join(FIXTURES, 'scripts', 'forkterm.py');
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();
// The warning exists from 3.12 on; the oldest shows that nothing changes where it does not.
const chosen = installed.filter((py, i) => i === 0 || Number(py.version.split('.')[1]) >= 12);

const threadLine = /^threads (\d+) (\d+)$/m;

for (const py of chosen) {
  t.test(`CPython ${py.version}: a fork warns as under plain python`, async (t) => {
    // Every warning shown, also those of multiprocessing's code (by default only __main__'s).
    const env = { PYTHONWARNINGS: 'default', PYTHONDONTWRITEBYTECODE: '1' };
    const plain = await run(py.exe, [SCRIPT], { env, timeoutMs: 60000 });
    t.equal(plain.code, 0, 'plain python runs it');
    const dir = scratch();
    // --native: CPython's own reading of /proc/self/stat to count the threads allocates
    // through malloc, and may be sampled, right before the count.
    for (const follow of [[], ['--follow-fork'], ['--native', '--follow-fork']]) {
      const r = await hpRecord(['-q', ...follow, '--python', py.exe, '-o', join(dir, `run${follow.length}`), '--', SCRIPT], {
        env,
        timeoutMs: 60000,
      });
      const name = follow.length ? `with ${follow.join(' ')}` : 'without --follow-fork';
      t.equal(r.code, plain.code, `${name}: same exit status`);
      t.equal(r.stdout, plain.stdout, `${name}: same output`);
      t.equal(
        withoutSummary(r.stderr).replace(threadLine, 'threads'),
        plain.stderr.replace(threadLine, 'threads'),
        `${name}: no warning on stderr`,
      );
      const m = threadLine.exec(r.stderr);
      t.ok(m && m[1] === m[2], `${name}: the recorder's threads are back after the forks (${m ? `${m[1]}, ${m[2]}` : 'no count'})`);
    }
  });
}

// A parent left waiting between the fork and 3.13's count (here: an after_in_parent callback that
// sleeps 20 ms before it allocates, as the scheduler does to a parent on a loaded machine) has
// passed the 10 ms after which an allocation brings the threads back: that alone is not enough.
for (const py of chosen.filter((p) => Number(p.version.split('.')[1]) >= 12)) {
  t.test(`CPython ${py.version}: a parent that waits between the fork and the count does not warn`, async (t) => {
    const env = { PYTHONWARNINGS: 'default', PYTHONDONTWRITEBYTECODE: '1' };
    const plain = await run(py.exe, [SCRIPT, 'slow'], { env, timeoutMs: 60000 });
    t.equal(plain.code, 0, 'plain python runs it');
    const dir = scratch();
    for (const follow of [[], ['--native', '--follow-fork']]) {
      const r = await hpRecord(['-q', ...follow, '--python', py.exe, '-o', join(dir, `slow${follow.length}`), '--', SCRIPT, 'slow'], { env, timeoutMs: 60000 });
      const name = follow.length ? `with ${follow.join(' ')}` : 'without --follow-fork';
      t.equal(r.code, plain.code, `${name}: same exit status`);
      t.equal(withoutSummary(r.stderr).replace(threadLine, 'threads'), plain.stderr.replace(threadLine, 'threads'), `${name}: no warning on stderr`);
      const m = threadLine.exec(r.stderr);
      t.ok(m && m[1] === m[2], `${name}: the recorder's threads are back after the forks (${m ? `${m[1]}, ${m[2]}` : 'no count'})`);
    }
  });
}

// 3.13 counts the threads after the after_in_parent callbacks, and a parent that waits
// right after the fork, allocating nothing, never gives the recorder a moment after that
// count (man/hp-record.1); another thread's allocations do.
for (const py of installed) {
  for (const busy of py.version === '3.13' ? [true] : [false, true]) {
    const how = busy ? ' while another thread allocates' : '';
    t.test(`CPython ${py.version}: SIGTERM after a fork${how} closes the profile`, async (t) => {
      const dir = scratch();
      let sent = false;
      const r = await hpRecord(['-q', '--python', py.exe, '-o', join(dir, 'run'), '--', TERM_SCRIPT, ...(busy ? ['busy'] : [])], {
        env: { PYTHONDONTWRITEBYTECODE: '1' },
        timeoutMs: 60000,
        onStdout: (text, child) => {
          if (!sent && text.includes('ready')) {
            sent = true;
            setTimeout(() => child.kill('SIGTERM'), 300);
          }
        },
      });
      t.equal(r.signal, 'SIGTERM', 'hp-record dies of SIGTERM, as the program did');
      const p = await readAll(join(dir, 'run'));
      t.ok(p.complete, 'the profile has its end');
    });
  }
}
