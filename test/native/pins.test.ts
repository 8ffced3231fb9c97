// End to end, on every CPython 3.9-3.13 found: a program that keeps making code (functions
// generated with exec, each called once and dropped) must not keep every code object alive
// through the recorder's pins (100k such functions held ~250 MB), and the traces must stay
// right when a freed code object's address comes back for another one.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, NATIVE_LIB, frameTuples, readRecording, runPython, supportedPythons, unmatchedFrees } from '../helpers/python.js';

const pythons = supportedPythons();

t.ok(existsSync(NATIVE_LIB), `native hook built at ${NATIVE_LIB} (npm ci builds it)`);
t.ok(pythons.length > 0, 'at least one CPython 3.9-3.13 installed');

for (const py of pythons) {
  t.test(`CPython ${py.version}: pins of dead code objects are released, traces stay right`, async (t) => {
    const dir = tmpDir();
    const base = join(dir, 'pins');
    const expectPath = join(dir, 'expected.json');
    const r = runPython(py, [join(NATIVE_FIXTURES, 'pins.py'), base, expectPath]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stderr, '', 'nothing on stderr');
    const expected = JSON.parse(readFileSync(expectPath, 'utf8')) as {
      base_size: number;
      made: number[];
      released_main: number;
      released_thread: number;
      kept_alive: number;
      kept: number[];
    };
    t.equal(expected.released_main, 50, 'dropped functions of the main thread: their code objects freed');
    t.equal(expected.released_thread, 50, 'dropped functions of another thread: their code objects freed');
    t.equal(expected.kept_alive, 100, 'functions still in use keep their code');

    const rec = await readRecording(base);
    t.same(rec.issues, [], 'the profile reads without issues');
    t.equal(rec.complete, true, 'END marker present');
    t.equal(unmatchedFrees(rec.events), 0, 'every free repeats a live allocation');
    // bytearray(n) allocates n + 1 bytes; f<i> allocates BASE_SIZE + i.
    const leafBySize = new Map<number, Set<string>>();
    const allocsBySize = new Map<number, number>();
    for (const e of rec.events) {
      if (e.op !== 'alloc' || e.size <= expected.base_size) continue;
      allocsBySize.set(e.size, (allocsBySize.get(e.size) ?? 0) + 1);
      const leaf = frameTuples(rec.traces.get(e.trace))[0];
      if (!leaf) continue;
      const set = leafBySize.get(e.size) ?? new Set<string>();
      set.add(JSON.stringify(leaf));
      leafBySize.set(e.size, set);
    }
    const wrong = expected.made.filter((i) => !leafBySize.get(expected.base_size + i + 1)?.has(JSON.stringify([`f${i}`, '<gen>', 3])));
    t.same(wrong.slice(0, 5), [], `each of ${expected.made.length} functions' buffer is recorded under its own function and line`);
    const again = expected.kept.filter((i) => (allocsBySize.get(expected.base_size + i + 1) ?? 0) < 2);
    t.same(again, [], 'the kept functions, called again after the sweeps, recorded again');
  });
}
