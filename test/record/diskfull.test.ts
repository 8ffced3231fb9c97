// The disk fills up while recording (a file size limit stands in for it: the same failed write,
// EFBIG instead of ENOSPC, no root needed). The program goes on exactly as it would have, hp-record
// says what happened and exits 1, and the profile stays readable by every reader, which say that
// it lost events: the recorder cuts the failed write's partial block off and ends the .hpd with a
// LOST event (readers used to report only a "truncated last block (recorder still running or
// crashed)").

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hpRecord, oldestAndNewest, recordingSkip, REPO, run, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'fsize.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip = recordingSkip();
if (skip) t.plan(0, skip);
const installed = oldestAndNewest(skip);
const reader = (verb: string, args: string[], cwd: string) => run(process.execPath, [join(REPO, 'bin', `hp-${verb}.js`), ...args], { cwd });

for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    const dir = scratch();
    const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', '{}', '--', SCRIPT], { cwd: dir, env });
    t.equal(r.stdout, 'done False\n', 'the program ran to its end');
    t.equal(readFileSync(join(dir, 'mine.txt'), 'utf8'), 'mine\n', "the program's own file is written");
    t.equal(r.code, 1, 'the program exited 0; the profile lost events');
    t.match(r.stderr, /heapprof: recording stopped: write run\.hp[md]: File too large\n/);
    t.match(r.stderr, /recording stopped at [\d.]+ s: write run\.hp[md]: File too large; [\d,]+ recorded events were not written/);
    t.ok(statSync(join(dir, 'run.hpd')).size <= 30000, 'nothing past the limit');

    for (const [verb, args] of [['stats', []], ['snapshot', ['--top', '1']], ['history', []], ['events', []]] as const) {
      const out = await reader(verb, ['run', '--json', ...args], dir);
      t.equal(out.code, 0, `hp-${verb} reads what was written`);
      t.match(out.stderr, /run\.hpd: the recorder lost [\d,]+ events \(the first at [\d.]+ s\): estimates undercount\n/, `hp-${verb} says events were lost`);
      t.notMatch(out.stderr, /truncated last block/, `hp-${verb}: the partial block was cut off`);
      // hp-events passes the missing end on to the next reader, which says so.
      if (verb !== 'events') t.match(out.stderr, /incomplete profile \(no end marker: the recorder is still running, crashed, or stopped early on a failed write\)/);
    }
  });
}
