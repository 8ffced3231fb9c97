// A profile taken away while it is recorded (its .hpd deleted or truncated, its directory removed,
// by the program or anyone else): the recorder stops instead of writing on into a file nobody can
// read, the program runs on exactly as it would have, and hp-record says what happened and exits 1
// (it exited 0 with a summary of events "written" to a file that was gone).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIXTURES, hpRecord, oldestAndNewest, recordingSkip, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'gone.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip = recordingSkip();
if (skip) t.plan(0, skip);
// One old and one new CPython: the check is in the hook's C code, the same for every version.
const installed = oldestAndNewest(skip);

for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    await t.test('the .hpd deleted: recording stops, no next step towards it', async (t) => {
      const dir = scratch();
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', '{}', '--', SCRIPT, 'unlink', 'run.hpd'], { cwd: dir, env });
      t.equal(r.stdout, 'done 150\n', 'the program ran to its end');
      t.equal(r.code, 1, 'the program exited 0; hp-record exits 1: the profile is lost');
      t.match(r.stderr, /heapprof: recording stopped: run\.hpd: deleted while being recorded \(by the program or another process\)\n/);
      t.match(r.stderr, /hp-record: run\.hpm, run\.hpd: .*recording stopped at [\d.]+ s: run\.hpd: deleted while being recorded.*the profile is incomplete\n/);
      t.notMatch(r.stderr, /next: hp-snapshot/);
      t.match(r.stderr, /hp-record: run\.hpm, run\.hpd: no longer there \(deleted while recording\?\): nothing to read\n/);
    });

    await t.test('the output directory removed: recording stops', async (t) => {
      const dir = scratch();
      const hpd = join(dir, 'out', 'run.hpd');
      mkdirSync(join(dir, 'out'));
      const r = await hpRecord(['--python', py.exe, '-o', join(dir, 'out', 'run'), '--sample', '{}', '--', SCRIPT, 'rmdir', hpd], { cwd: dir, env });
      t.equal(r.stdout, 'done 150\n');
      t.equal(r.code, 1);
      t.match(r.stderr, /heapprof: recording stopped: \S+run\.hp[md]: deleted while being recorded/);
      t.notOk(existsSync(join(dir, 'out')), 'the directory stays removed (nothing recreated)');
      t.notMatch(r.stderr, /next: hp-snapshot/);
    });

    await t.test('the .hpd truncated: recording stops, nothing written after the gap', async (t) => {
      const dir = scratch();
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', '{}', '--', SCRIPT, 'truncate', 'run.hpd'], { cwd: dir, env });
      t.equal(r.stdout, 'done 150\n');
      t.equal(r.code, 1);
      t.match(r.stderr, /heapprof: recording stopped: run\.hpd: truncated to 100 bytes while being recorded \(by the program or another process\), after \d+ bytes had been written\n/);
      t.match(r.stderr, /next: hp-snapshot run/, 'the files are there: what is left can be read');
    });
  });
}
