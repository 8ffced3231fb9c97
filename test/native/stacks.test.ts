// End to end, on every CPython 3.9-3.13 found: 8 threads allocate at once through known call
// chains, and every recorded trace must equal what traceback reports for that line (function,
// file, line per frame); an allocation made without the GIL lands under trace 0.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, NATIVE_LIB, frameTuples, readRecording, runPython, supportedPythons, unmatchedFrees } from '../helpers/python.js';

const pythons = supportedPythons();

t.ok(existsSync(NATIVE_LIB), `native hook built at ${NATIVE_LIB} (npm ci builds it)`);
t.ok(pythons.length > 0, 'at least one CPython 3.9-3.13 installed');

for (const py of pythons) {
  t.test(`CPython ${py.version}: traces equal traceback across 8 threads`, async (t) => {
    const dir = tmpDir();
    const base = join(dir, 'stacks');
    const expectPath = join(dir, 'expected.json');
    const r = runPython(py, [join(NATIVE_FIXTURES, 'stacks.py'), base, expectPath]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stderr, '', 'nothing on stderr (self-test passed, no warnings)');
    const expected = JSON.parse(readFileSync(expectPath, 'utf8')) as {
      threads: Record<string, Array<[string, string, number]>>;
      base_size: number;
      no_gil_size: number;
      deep_size: number;
      deep: Array<[string, string, number]>;
      deeper_size: number;
      deeper_frames: number;
    };
    const rec = await readRecording(base);
    t.same(rec.issues, [], 'the profile reads without issues');
    t.equal(rec.complete, true, 'END marker present');
    t.equal(rec.header.stackCapture, true);
    t.match(rec.header.pythonVersion, new RegExp(`^${py.version.replace('.', '\\.')}\\.`));
    t.equal(unmatchedFrees(rec.events), 0, 'every free repeats a live allocation');

    t.equal(Object.keys(expected.threads).length, 8);
    for (const [i, stack] of Object.entries(expected.threads)) {
      // bytearray(n) allocates an n+1 byte buffer.
      const size = expected.base_size + 1000 * Number(i) + 1;
      const allocs = rec.events.filter((e) => e.op === 'alloc' && e.size === size);
      t.equal(allocs.length, 20, `thread ${i}: 20 buffers recorded`);
      const wrong = allocs.filter((e) => JSON.stringify(frameTuples(rec.traces.get(e.trace))) !== JSON.stringify(stack));
      t.equal(wrong.length, 0, `thread ${i}: every trace equals traceback`);
      if (wrong.length > 0) t.same(frameTuples(rec.traces.get(wrong[0]!.trace)), stack);
      t.match(stack[0], ['alloc_here', /stacks\.py$/, Number], 'leaf is the allocating function');
    }

    const deep = rec.events.filter((e) => e.op === 'alloc' && e.size === expected.deep_size + 1);
    t.equal(deep.length, 1, 'the deep allocation is recorded');
    const deepTrace = rec.traces.get(deep[0]?.trace ?? -1);
    t.ok(expected.deep.length > 300, `traceback sees ${expected.deep.length} frames`);
    t.same(frameTuples(deepTrace), expected.deep.slice(0, 128), 'the innermost 128 frames are kept');
    t.equal(deepTrace?.dropped, expected.deep.length - 128, 'the outer frames are counted as dropped');
    // Counting every outer frame cost O(depth) per sampled allocation: a recursion 10^6 deep
    // under hp-record ran for minutes where python took seconds. The count stops at 1,000.
    const deeper = rec.events.filter((e) => e.op === 'alloc' && e.size === expected.deeper_size + 1);
    t.equal(deeper.length, 1, 'the deeper allocation is recorded');
    const deeperTrace = rec.traces.get(deeper[0]?.trace ?? -1);
    t.ok(expected.deeper_frames > 128 + 1000, `traceback sees ${expected.deeper_frames} frames`);
    t.equal(deeperTrace?.frames.length, 128, 'the innermost 128 frames are kept');
    t.equal(deeperTrace?.dropped, 1000, 'the outer frames are counted up to 1,000');

    const noGil = rec.events.filter((e) => e.size === expected.no_gil_size);
    t.same(
      noGil.map((e) => [e.op, e.trace]),
      [
        ['alloc', 0],
        ['free', 0],
      ],
      'allocation without the GIL: counted, under trace 0',
    );
  });
}
