// The recorder's own end-of-life guarantees, through the Python API: a process killed without
// warning (SIGKILL) loses at most about half a second of events (the ticker flushes every 0.5 s);
// SIGTERM is taken over only from its default action; a second recorder on the same base is refused.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, readRecording, runPython, startPython, supportedPythons } from '../helpers/python.js';

const fixture = (name: string): string => join(NATIVE_FIXTURES, name);
const pythons = supportedPythons();
if (pythons.length === 0) t.plan(0, 'no CPython 3.9-3.13 found');
const newest = pythons[pythons.length - 1];

for (const py of pythons) {
  t.test(`CPython ${py.version}: a subinterpreter can neither start a recording nor stop the main interpreter's`, async (t) => {
    const base = join(tmpDir(), 'sub');
    const r = runPython(py, [fixture('subapi.py'), base]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stderr, '', 'nothing on stderr (no self-test run in the subinterpreter)');
    t.same(r.stdout.trim().split('\n'), [
      'sub start: heapprof records from the main interpreter only: a subinterpreter cannot start a recording (its allocations are in the main interpreter\'s, under <subinterpreter>)',
      'main recording: True',
      'main recording after its stop: False',
    ]);
    const rec = await readRecording(base);
    t.equal(rec.complete, true, "the main interpreter's profile ends with its END marker");
  });
}

if (newest) {
  t.test(`CPython ${newest.version}: SIGKILL at a random moment of a steady allocator loses at most ~0.5 s of events`, async (t) => {
    const losses: number[] = [];
    for (let round = 0; round < 6; round++) {
      const base = join(tmpDir(), `killed${round}`);
      const run = startPython(newest, [fixture('steady.py'), base], 'ready');
      await run.ready;
      const delayMs = 800 + Math.random() * 1700; // past the first flush, so that events are expected
      await new Promise((r) => setTimeout(r, delayMs));
      run.child.kill('SIGKILL');
      const res = await run.exited;
      t.equal(res.signal, 'SIGKILL');
      const rec = await readRecording(base);
      t.notOk(rec.issues.some((i) => /checksum|corrupt/i.test(i.message)), 'nothing corrupt');
      const allocs = rec.events.filter((e) => e.op === 'alloc' && e.size === 10001);
      t.ok(allocs.length > 0, `round ${round}: events before the kill are there`);
      // How far the program got (its last "t" line) against the last event on disk: what was lost.
      // Not the kill time: on a loaded machine the program may not have run at all for a while.
      const progress = [...res.stdout.matchAll(/^t (\d+)$/gm)].map((m) => Number(m[1]));
      const reachedUs = progress[progress.length - 1]!;
      const lastUs = rec.header.startTimeUs + Math.max(0, ...rec.events.map((e) => e.timeUs));
      const lossS = Math.max(0, (reachedUs - lastUs) / 1e6);
      losses.push(lossS);
      // 0.5 s between flushes, plus 0.25 s for a loaded machine's scheduling (the 1 s ticker this
      // replaced lost up to 0.99 s).
      t.ok(lossS <= 0.75, `round ${round}: killed ${(delayMs / 1000).toFixed(2)} s in, the last event on disk is ${lossS.toFixed(3)} s before the program's last progress line`);
    }
    t.comment(`SIGKILL loss: ${losses.map((x) => x.toFixed(3)).join(', ')} s (bound: 0.5 s flush period plus scheduling)`);
  });

  t.test(`CPython ${newest.version}: heapprof.start() takes SIGTERM over only from its default action`, async (t) => {
    const dir = tmpDir();
    const dflt = runPython(newest, [fixture('termapi.py'), join(dir, 'default'), 'default']);
    t.equal(dflt.signal, 'SIGTERM', 'default action: dies of SIGTERM');
    t.equal(dflt.stdout, '');
    const closed = await readRecording(join(dir, 'default'));
    t.equal(closed.complete, true, 'after closing the profile');
    t.ok(closed.events.filter((e) => e.op === 'alloc' && e.size === 10001).length >= 100);

    const ignored = runPython(newest, [fixture('termapi.py'), join(dir, 'ignore'), 'ignore']);
    t.same({ code: ignored.code, signal: ignored.signal, stdout: ignored.stdout }, { code: 0, signal: null, stdout: 'survived True\n' }, 'ignored before start: still ignored');
    const handled = runPython(newest, [fixture('termapi.py'), join(dir, 'handler'), 'handler']);
    t.same({ code: handled.code, signal: handled.signal, stdout: handled.stdout }, { code: 0, signal: null, stdout: 'handled\nsurvived True\n' }, 'a handler set before start: still the program\'s');
    t.equal((await readRecording(join(dir, 'handler'))).complete, true);
  });

  t.test(`CPython ${newest.version}: a second recorder on the same base is refused, --force or not`, async (t) => {
    const dir = tmpDir();
    const base = join(dir, 'shared');
    const flag = join(dir, 'flag');
    const holder = startPython(newest, ['-c', `import heapprof, os, sys, time\nheapprof.start(${JSON.stringify(base)})\nprint('ready', flush=True)\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.05)\nheapprof.stop()`], 'ready');
    await holder.ready;
    for (const force of ['False', 'True']) {
      const r = runPython(newest, ['-c', `import heapprof\ntry:\n    heapprof.start(${JSON.stringify(base)}, force=${force})\nexcept RuntimeError as e:\n    print(e)`]);
      t.equal(r.stdout, `${base}.hpm: another recording (pid ${holder.child.pid}) is writing this profile; wait for it or choose another name\n`, `force=${force}`);
    }
    writeFileSync(flag, '');
    const done = await holder.exited;
    t.equal(done.code, 0, done.stderr);
    const rec = await readRecording(base);
    t.equal(rec.complete, true, 'the holder\'s profile is intact');
    const again = runPython(newest, ['-c', `import heapprof\nheapprof.start(${JSON.stringify(base)}, force=True)\nheapprof.stop()\nprint('ok')`]);
    t.equal(again.stdout, 'ok\n', 'free again once the holder has stopped');
  });
}
