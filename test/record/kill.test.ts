// hp-record killed with SIGKILL (nothing of it can run any more): the program does not run on, orphaned.
// The bootstrap's watchdog sees its parent gone, removes hp-record's private directory, flushes the
// profile and sends the program SIGTERM, then SIGKILL after a 5 s grace period.

import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'orphan.py');
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();
// Oldest and newest: the watchdog is the same native code on every version.
const chosen = installed.length > 1 ? [installed[0]!, installed[installed.length - 1]!] : installed;

/** Running (a zombie waiting for a subreaper to collect it has ended). */
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
    for (const ignore of [false, true]) {
      await t.test(ignore ? 'a program that ignores SIGTERM gets SIGKILL after the grace period' : 'the program gets SIGTERM', async (t) => {
        const dir = scratch();
        const tmp = join(dir, 'tmp');
        mkdirSync(tmp);
        let killedAt = 0;
        let programPid = 0;
        const r = await hpRecord(['--python', py.exe, '-o', join(dir, 'run'), '--', SCRIPT, ...(ignore ? ['ignore'] : [])], {
          env: { TMPDIR: tmp, PYTHONDONTWRITEBYTECODE: '1' },
          timeoutMs: 60000,
          onStdout: (text, child) => {
            if (!killedAt && text.endsWith('\n')) {
              programPid = Number(text.trim());
              t.same(readdirSync(tmp).filter((n) => n.startsWith('hp-record-')).length, 1, 'a private directory while running');
              killedAt = Date.now();
              child.kill('SIGKILL');
            }
          },
        });
        // The result comes when the program's end closed the pipes it shared with hp-record.
        const waited = (Date.now() - killedAt) / 1000;
        t.equal(r.signal, 'SIGKILL', 'hp-record was killed');
        // The pipes close in the kernel's exit path before the process turns zombie: give that a moment.
        const goneBy = Date.now() + 3000;
        while (programPid > 0 && alive(programPid) && Date.now() < goneBy) await new Promise((r) => setTimeout(r, 20));
        t.ok(programPid > 0 && !alive(programPid), 'the program is gone');
        if (ignore) t.ok(waited >= 4.5 && waited < 20, `ended by SIGKILL after the grace period (${waited.toFixed(1)} s)`);
        else t.ok(waited < 4.5, `ended by SIGTERM at once (${waited.toFixed(1)} s)`);
        t.same(readdirSync(tmp), [], 'no temporary directory left');
        const p = await readAll(join(dir, 'run'));
        t.ok(p.events.some((e) => e.op === 'alloc' && e.size >= 10000 && e.size < 10100), 'the profile reads, with the program\'s blocks');
      });
    }
  });
}
