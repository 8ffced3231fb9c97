// Readers on a profile that is still being recorded say so: they read what was flushed, and name
// the recording process (from BASE.hpm.lock, which the recorder holds while it writes), instead of
// the generic "no end marker: still running, crashed, or stopped early"; once the program ended the
// profile is complete and they say nothing.

import { join } from 'node:path';
import t from 'tap';
import { BIN, FIXTURES, pythons, recordingSkip, REPO, run, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'live.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip = recordingSkip();
if (skip) t.plan(0, skip);
const all = skip ? [] : pythons();
const py = all[all.length - 1];
const reader = (verb: string, args: string[], cwd: string) => run(process.execPath, [join(REPO, 'bin', `hp-${verb}.js`), ...args], { cwd });

if (py) {
  t.test(`CPython ${py.version}: readers during and after the recording`, async (t) => {
    const dir = scratch();
    const during: Promise<Array<{ verb: string; code: number | null; stdout: string; stderr: string }>>[] = [];
    const recorded = await run(process.execPath, [BIN, '--python', py.exe, '-o', 'run', '--sample', '{}', '--', SCRIPT], {
      cwd: dir,
      env,
      holdStdin: true,
      onStdout: (text, child) => {
        if (text !== 'ready\n') return;
        during.push(
          (async () => {
            const out = [];
            for (const verb of ['stats', 'snapshot', 'history']) out.push({ verb, ...(await reader(verb, ['run', '--json'], dir)) });
            child.stdin!.end('go\n');
            return out;
          })(),
        );
      },
    });
    t.equal(recorded.code, 0, recorded.stderr);
    t.equal(recorded.stdout, 'ready\ndone\n');
    const results = await during[0]!;
    for (const r of results) {
      t.equal(r.code, 0, `hp-${r.verb} reads the live profile`);
      t.match(r.stderr, new RegExp(`^hp-${r.verb}: run: still being recorded \\(pid \\d+\\); used everything written so far`, 'm'), `hp-${r.verb} says it is still being recorded`);
      t.notMatch(r.stderr, /no end marker/);
      t.ok(r.stdout.length > 0);
    }
    for (const verb of ['stats', 'snapshot', 'history']) {
      const after = await reader(verb, ['run', '--json'], dir);
      t.equal(after.code, 0);
      t.notMatch(after.stderr, /still being recorded|no end marker/, `hp-${verb}: complete once the program ended`);
    }
  });
}
