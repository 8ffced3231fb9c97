// The recorder never writes into the program's files: a program that closes every inherited descriptor
// (os.closerange(3, 4096)) and then opens files of its own keeps them intact, and the profile is still
// complete (the recorder reopens it by path); if the profile cannot be found again, recording stops
// with a clear message, the profile stays readable up to its last block, and hp-record exits 1.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'closefds.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();

for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    for (const sample of ['{}', '{128: 1e-4, 8192: 0.1}']) {
      await t.test(`closerange(3, 4096), then the program's own files (--sample '${sample}')`, async (t) => {
        const dir = scratch();
        const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', sample, '--', SCRIPT], { cwd: dir, env });
        t.equal(r.code, 0, r.stderr);
        t.equal(r.stdout, 'files intact 300\n');
        for (let i = 0; i < 4; i++) t.equal(readFileSync(join(dir, `mine${i}.txt`), 'latin1'), `mine ${i}\n`, `mine${i}.txt untouched`);
        t.notMatch(r.stderr, /recording stopped/);
        const p = await readAll(join(dir, 'run'), { strict: true });
        t.ok(p.complete, 'the profile ends with its END marker');
        t.same(p.issues, []);
        const big = p.events.filter((e) => e.op === 'alloc' && e.size >= 20000 && e.size < 20100);
        t.ok(big.length >= 300, `the 300 blocks allocated after closerange are recorded (${big.length})`);
      });
    }

    await t.test('the profile deleted after closerange: recording stops with a clear message', async (t) => {
      const dir = scratch();
      const r = await hpRecord(['--python', py.exe, '-o', 'run', '--sample', '{}', '--', SCRIPT, 'unlink'], { cwd: dir, env });
      t.equal(r.code, 1, 'the program ran to its end; hp-record exits 1: the profile lost events');
      t.equal(r.stdout, 'files intact 300\n');
      for (let i = 0; i < 4; i++) t.equal(readFileSync(join(dir, `mine${i}.txt`), 'latin1'), `mine ${i}\n`, `mine${i}.txt untouched`);
      t.match(r.stderr, /heapprof: recording stopped: run\.hpd: the program closed the profile's descriptor, and reopening \S+run\.hpd failed: No such file or directory\n/);
      t.match(r.stderr, /hp-record: .*recording stopped at [\d.]+ s: run\.hpd: the program closed the profile's descriptor, .*the profile is incomplete\n/);
    });
  });
}
