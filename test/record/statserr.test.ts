// --mode stats prints the size table at exit through sys.stderr. A program that set sys.stderr to
// None, closed it or made it fail must still get the table (on descriptor 2), and no
// "Error in atexit" line that python alone would not print.

import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hpRecord, oldestAndNewest, recordingSkip } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const skip = recordingSkip();

for (const py of oldestAndNewest(skip)) {
  for (const how of ['none', 'close', 'bad']) {
    t.test(`CPython ${py.version}: --mode stats after sys.stderr ${how}`, async (t) => {
      const r = await hpRecord(['-q', '--mode', 'stats', '--python', py.exe, '--', 'statserr.py', how], { cwd: SCRIPTS, env: { PYTHONDONTWRITEBYTECODE: '1' } });
      t.equal(r.code, 0, r.stderr);
      t.equal(r.stdout, 'start\n');
      t.match(r.stderr, /^-+\nHEAP USAGE SUMMARY\n +Size range +Count +Bytes\n/m, 'the table is printed');
      t.notMatch(r.stderr, /Error|Traceback|Exception/, r.stderr);
    });
  }
}
