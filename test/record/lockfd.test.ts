// The recorder's lock file descriptor (BASE.hpm.lock) stays out of the program's way like the
// profile's: it took descriptor 3, so the program's first file got 4, and a program that closed it
// (os.closerange) and opened its own file at 3 lost that file's buffered data at exit, when the
// recorder closed "its" lock descriptor. Nor is the lock file left behind after such a program.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hpRecord, oldestAndNewest, recordingSkip, run, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'lockfd.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip = recordingSkip();
if (skip) t.plan(0, skip);
const installed = oldestAndNewest(skip);

for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    for (const how of [[], ['closerange']]) {
      const plain = scratch();
      const expected = await run(py.exe, [SCRIPT, ...how], { cwd: plain, env });
      t.equal(expected.stdout, 'log fd 3\n', 'plain python: the first file is descriptor 3');
      const dir = scratch();
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--', SCRIPT, ...how], { cwd: dir, env });
      t.equal(r.code, 0, r.stderr);
      t.equal(r.stdout, expected.stdout, `${how.join(' ') || 'plain'}: the same descriptor under hp-record`);
      t.equal(readFileSync(join(dir, 'mylog.txt'), 'utf8'), 'important line\n', "the program's file keeps what it wrote");
      t.notMatch(r.stderr, /recording stopped/);
      // The recorder leaves a lock whose descriptor the program closed (it may be another's by then):
      // hp-record removes it once the program has ended, as FILES in hp-record(1) says.
      t.notOk(existsSync(join(dir, 'run.hpm.lock')), `${how.join(' ') || 'plain'}: no lock file left behind`);
    }
  });
}
