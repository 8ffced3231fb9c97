// A program that forks gets no "This process is multi-threaded, use of fork() may lead to deadlocks"
// DeprecationWarning from CPython 3.12+ that it would not get without the recorder (pytest shows
// it; with -W error it is an error): the recorder's threads (the ticker and hp-record's watchdog) are
// out of the way when CPython looks, and the watchdog still ends the program when hp-record is
// killed after the fork.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'forkwarn.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const all = skip ? [] : pythons();
// The warning exists from 3.12 on; one older version checks the watchdog's way back there.
const warning = all.filter((py) => !/^3\.(9|10|11)\b/.test(py.version));
const chosen = [...all.filter((py) => /^3\.(9|10|11)\b/.test(py.version)).slice(0, 1), ...warning];

const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

for (const py of chosen) {
  t.test(`CPython ${py.version}`, async (t) => {
    for (const sample of ['{}', '{128: 1e-4, 8192: 0.1}']) {
      const dir = scratch();
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', sample, '--', SCRIPT], { cwd: dir, env });
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, /^\d+\n$/);
      t.notMatch(r.stderr, /multi-threaded|DeprecationWarning/, `--sample '${sample}': no fork-with-threads warning`);
    }

    await t.test('hp-record killed after the fork: the watchdog still ends the program', async (t) => {
      const dir = scratch();
      let killedAt = 0;
      let programPid = 0;
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--', SCRIPT, 'linger'], {
        cwd: dir,
        env,
        timeoutMs: 60000,
        onStdout: (text, child) => {
          if (!killedAt && text.endsWith('\n')) {
            programPid = Number(text.trim());
            killedAt = Date.now();
            // after the ticker's first tick, which brings the watchdog back on 3.12+
            setTimeout(() => child.kill('SIGKILL'), 1500);
          }
        },
      });
      const waited = (Date.now() - killedAt) / 1000 - 1.5;
      t.equal(r.signal, 'SIGKILL', 'hp-record was killed');
      t.ok(programPid > 0 && !alive(programPid), 'the program is gone');
      t.ok(waited < 4.5, `ended by the watchdog's SIGTERM (${waited.toFixed(1)} s after the kill)`);
      t.notMatch(r.stderr, /multi-threaded/);
    });
  });
}
