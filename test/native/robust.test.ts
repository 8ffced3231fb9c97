// The recorder under stress and at the edges, on every CPython 3.9-3.13 found: GC finalizers,
// weakref callbacks, threads, exceptions, generators and asyncio (recording everything and at the
// default rates); SIGKILL (readable up to the last flush) and SIGINT (clean end); a failing write
// (one warning, the program goes on); stats mode; the Python API's errors; refusing 3.8.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import {
  NATIVE_FIXTURES,
  readRecording,
  runPython,
  startPython,
  supportedPythons,
  unmatchedFrees,
  unsupportedPython,
} from '../helpers/python.js';

const fixture = (name: string): string => join(NATIVE_FIXTURES, name);

for (const py of supportedPythons()) {
  t.test(`CPython ${py.version}`, async (t) => {
    for (const spec of ['{}', '{128: 1e-4, 8192: 0.1}']) {
      t.test(`stress, sampling ${spec}`, async (t) => {
        const base = join(tmpDir(), 'stress');
        const r = runPython(py, [fixture('stress.py'), base, spec]);
        t.equal(r.code, 0, r.stderr);
        t.equal(r.stdout, 'ok 12 True True True\n', 'finalizers and weakref callbacks ran');
        t.equal(r.stderr, '');
        const rec = await readRecording(base);
        t.same(rec.issues, []);
        t.equal(rec.complete, true);
        t.ok(rec.events.some((e) => e.op === 'alloc'));
        t.ok(rec.events.some((e) => e.op === 'free'));
        t.equal(unmatchedFrees(rec.events), 0, 'every free repeats a live allocation');
        const undefinedTraces = rec.events.filter((e) => e.trace !== 0 && !rec.traces.has(e.trace));
        t.equal(undefinedTraces.length, 0, 'every trace used is defined');
      });
    }

    t.test('recording everything, then a sampled table, in one process: each logs its own frees', async (t) => {
      const dir = tmpDir();
      const [a, b] = [join(dir, 'all'), join(dir, 'big')];
      const r = runPython(py, [fixture('restart.py'), a, b]);
      t.equal(r.code, 0, r.stderr);
      t.equal(r.stdout, 'ok\n');
      const all = await readRecording(a);
      t.same(all.issues, []);
      // bytearray(n) keeps its n bytes in a buffer of n + 1.
      const buffers = (op: string): number => all.events.filter((e) => e.op === op && e.size > 3000 && e.size <= 3200).length;
      t.equal(buffers('alloc'), 200, 'everything: the 200 buffers allocated');
      t.equal(buffers('free'), 200, 'everything: and their 200 frees');
      t.equal(unmatchedFrees(all.events), 0, 'everything: every free repeats a live allocation');
      const big = await readRecording(b);
      t.same(big.issues, []);
      const allocs = big.events.filter((e) => e.op === 'alloc' && e.size >= 300000);
      const frees = big.events.filter((e) => e.op === 'free' && e.size >= 300000);
      t.equal(allocs.length, 40, 'sampled table: the 40 big blocks allocated');
      t.equal(frees.length, 40, 'sampled table: and their 40 frees');
      t.notOk(big.events.some((e) => e.size === 200001), 'blocks from before the recording are not in it');
      t.equal(unmatchedFrees(big.events), 0, 'sampled table: every free repeats a live allocation');
    });

    t.test('8 threads allocating without the GIL while the main thread churns, recording everything', async (t) => {
      const base = join(tmpDir(), 'raw');
      const r = runPython(py, [fixture('rawthreads.py'), base]);
      t.equal(r.code, 0, r.stderr);
      const { sizes, per_thread: perThread } = JSON.parse(r.stdout) as { sizes: number[]; per_thread: number };
      const rec = await readRecording(base);
      t.same(rec.issues, []);
      t.equal(rec.complete, true);
      t.equal(unmatchedFrees(rec.events), 0, 'every free repeats a live allocation');
      for (const size of sizes) {
        const ev = rec.events.filter((e) => e.size === size);
        const allocs = ev.filter((e) => e.op === 'alloc');
        t.equal(allocs.length, perThread, `${size}: every allocation logged`);
        t.equal(ev.filter((e) => e.op === 'free').length, perThread, `${size}: every free logged`);
        t.ok(allocs.every((e) => e.trace === 0), `${size}: all under trace 0 (no GIL)`);
      }
      const times = rec.events.map((e) => e.timeUs);
      t.ok(times.every((x, i) => i === 0 || x >= times[i - 1]!), 'event times never decrease');
    });

    t.test('SIGKILL leaves a profile readable up to its last flush', async (t) => {
      const base = join(tmpDir(), 'killed');
      const run = startPython(py, [fixture('loop.py'), base], 'ready');
      await run.ready;
      await new Promise((r) => setTimeout(r, 1200)); // past the next once-a-second flush
      run.child.kill('SIGKILL');
      const res = await run.exited;
      t.equal(res.signal, 'SIGKILL');
      const rec = await readRecording(base);
      t.equal(rec.complete, false, 'no END marker');
      t.notOk(rec.issues.some((i) => /checksum|corrupt/i.test(i.message)), 'nothing corrupt, at most a truncated tail');
      t.ok(rec.events.filter((e) => e.op === 'alloc').length > 100, 'events up to the last flush are there');
      t.ok(rec.events.some((e) => e.op === 'rss'), 'RSS recorded about once a second');
    });

    t.test('SIGINT: KeyboardInterrupt as usual, and the profile ends cleanly', async (t) => {
      const base = join(tmpDir(), 'interrupted');
      const run = startPython(py, [fixture('loop.py'), base], 'ready');
      await run.ready;
      run.child.kill('SIGINT');
      const res = await run.exited;
      t.equal(res.signal, 'SIGINT', 'dies of SIGINT like plain python');
      t.match(res.stderr, /KeyboardInterrupt/);
      t.notMatch(res.stderr, /heapprof/);
      const rec = await readRecording(base);
      t.same(rec.issues, []);
      t.equal(rec.complete, true, 'atexit closed the profile');
    });

    t.test('a failing write stops recording with one warning; the program goes on', async (t) => {
      const base = join(tmpDir(), 'full');
      const r = runPython(py, [fixture('diskfull.py'), base]);
      t.equal(r.code, 0);
      t.equal(r.stdout, 'still running False 50000\n');
      t.match(r.stderr, /^heapprof: recording stopped: write .*full\.hp[md]: File too large\n$/, 'exactly one warning line');
      const rec = await readRecording(base);
      t.equal(rec.complete, false);
      t.notOk(rec.issues.some((i) => /checksum/i.test(i.message)), 'what was written is valid');
    });

    t.test('stats mode: histogram only, HEAP USAGE SUMMARY at exit', async (t) => {
      const base = join(tmpDir(), 'stats');
      const r = runPython(py, [fixture('stats.py'), base]);
      t.equal(r.code, 0, r.stderr);
      t.equal(r.stdout, 'done 1000\n');
      t.match(r.stderr, /^-+\nHEAP USAGE SUMMARY\n +Size range +Count +Bytes\n/);
      const row = /^ *4096 - 8191 +(\d+) +(\d+)$/m.exec(r.stderr);
      t.ok(row && Number(row[1]) >= 1000, 'the 1000 5001-byte buffers are counted');
      const rec = await readRecording(base);
      t.same(rec.issues, []);
      t.equal(rec.header.mode, 'stats');
      t.equal(rec.complete, true);
      t.equal(rec.events.filter((e) => e.op === 'alloc').length, 0, 'no events');
      const hist = rec.histogram!;
      t.equal(hist[12]!.count, Number(row?.[1]), 'the saved histogram is what was printed');
      t.equal(hist.reduce((n, b) => n + b.sampled, 0), 0);

      const noFiles = runPython(py, [fixture('stats.py')]);
      t.equal(noFiles.code, 0, noFiles.stderr);
      t.match(noFiles.stderr, /HEAP USAGE SUMMARY/, 'gatherStats() without a name only prints');
    });

    for (const allocator of ['pymalloc', 'debug', 'malloc']) {
      t.test(`PYTHONMALLOC=${allocator}: an allocation is counted once, nested in the allocator below or not`, async (t) => {
        const base = join(tmpDir(), 'counts');
        const r = runPython(py, [fixture('counts.py'), base], { env: { PYTHONMALLOC: allocator } });
        t.equal(r.code, 0, r.code === 0 ? 'exit status 0' : r.stderr);
        const { n } = JSON.parse(r.stdout) as { n: number };
        const hist = (await readRecording(base)).histogram!;
        // Buckets 7, 8 and 11 hold the 201-, 501- and 3001-byte buffers, beside the
        // interpreter's own few allocations of those sizes. A buffer counted twice, once more
        // as the allocator's nested RAW call (with the debug hooks' bytes added, in the next
        // bucket up), shows as n too many somewhere in buckets 7 to 12.
        for (const bucket of [7, 8, 11]) {
          const count = hist[bucket]?.count ?? 0;
          t.ok(count >= n && count < n * 1.2, `bucket ${bucket}: ${count} for ${n} buffers`);
        }
        const around = hist.slice(7, 13).reduce((sum, b) => sum + b.count, 0);
        t.ok(around < 3.2 * n, `buckets 7-12: ${around} for ${3 * n} buffers`);
      });
    }

    t.test('a failed stack self-test records without stacks, says so once, and notes why', async (t) => {
      const dir = tmpDir();
      const script = `
import heapprof, heapprof._selftest as selftest, sys

class WrongWalk:
    def hp_debug_walk(self, buf, cap):
        buf.value = b"_native_and_python\\t/nowhere.py\\t1\\n"
        return 1

print(selftest.run(WrongWalk()))
heapprof._state["selftest"] = "forced by the test"
heapprof.start(sys.argv[1])
data = [bytearray(10000) for _ in range(10)]
heapprof.stop()
`;
      const r = runPython(py, ['-c', script, join(dir, 'nostacks')]);
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, /^frame 0: native \/nowhere\.py:1 in _native_and_python, interpreter .*_selftest\.py:\d+ in _native_and_python\n$/);
      t.equal(r.stderr, 'heapprof: stack capture disabled: self-test failed: forced by the test\n');
      const rec = await readRecording(join(dir, 'nostacks'));
      t.equal(rec.header.stackCapture, false);
      t.same(rec.header.notes, ['stack capture disabled: self-test failed: forced by the test']);
      const allocs = rec.events.filter((e) => e.op === 'alloc');
      t.ok(allocs.length >= 10);
      t.ok(allocs.every((e) => e.trace === 0), 'every event under trace 0');
    });

    t.test('Python API: files 0600, no clobbering, one recording at a time', async (t) => {
      const dir = tmpDir();
      const script = `
import heapprof, sys
base = sys.argv[1]
assert not heapprof.isProfiling()
heapprof.start(base)
assert heapprof.isProfiling()
for call in (lambda: heapprof.start(base + "2"), lambda: heapprof.start(base, {128: 2})):
    try:
        call()
    except (RuntimeError, ValueError) as err:
        print(type(err).__name__, err)
heapprof.stop()
assert not heapprof.isProfiling()
heapprof.stop()
try:
    heapprof.start(base)
except RuntimeError as err:
    print("RuntimeError", err)
heapprof.start(base, force=True, sample_bytes=4096)
heapprof.stop()
`;
      const r = runPython(py, ['-c', script, join(dir, 'api')]);
      t.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      t.match(lines[0], /^RuntimeError already recording to /);
      t.match(lines[1], /^SamplingError probability 2 for size 128 is not in \[0, 1\]/);
      t.match(lines[2], /^RuntimeError .*api\.hpm: File exists/);
      for (const ext of ['hpm', 'hpd']) t.equal(statSync(join(dir, `api.${ext}`)).mode & 0o777, 0o600, `.${ext} is 0600`);
      const rec = await readRecording(join(dir, 'api'));
      t.same(rec.header.sampling, { kind: 'poisson', meanBytes: 4096 }, 'the forced restart replaced the profile');
      t.equal(rec.complete, true);
    });

    t.test('Python API: a profile name the C side would cut or hide is refused', async (t) => {
      const dir = tmpDir();
      const script = `
import heapprof, os, sys
d = sys.argv[1]
for base in (os.path.join(d, "a\\0b"), os.fsencode(os.path.join(d, "c\\0d")), d + "/", os.path.join(d, "..")):
    try:
        heapprof.start(base, force=True)
        heapprof.stop()
        print("started", repr(base))
    except ValueError as err:
        print("ValueError", err)
print(sorted(os.listdir(d)))
`;
      const r = runPython(py, ['-c', script, dir]);
      t.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      t.match(lines[0], /^ValueError embedded null byte in the profile name '.*a\\x00b'$/, 'NUL in a str name');
      t.match(lines[1], /^ValueError embedded null byte/, 'NUL in a bytes name');
      t.match(lines[2], /^ValueError '.*\/' names a directory, not a profile base/, 'a directory');
      t.match(lines[3], /^ValueError '.*\/\.\.' names a directory/, '..');
      t.equal(lines[4], '[]', 'nothing written (not a.hpm, not the hidden .hpm)');
    });

    t.test('Python API: a HEAPPROF_NATIVE_LIB that is missing or not the hook is an error naming it', async (t) => {
      const script = 'import heapprof\ntry:\n    heapprof.start("/nonexistent/x")\nexcept RuntimeError as err:\n    print(err)';
      const missing = runPython(py, ['-c', script], { env: { HEAPPROF_NATIVE_LIB: '/nonexistent/hook.so' } });
      t.equal(missing.stdout.trim(), 'HEAPPROF_NATIVE_LIB=/nonexistent/hook.so: no such file', missing.stderr);
      const foreign = runPython(py, ['-c', script], { env: { HEAPPROF_NATIVE_LIB: '/etc/passwd' } });
      t.match(foreign.stdout.trim(), /^\/etc\/passwd: cannot load heapprof's native hook: /, foreign.stderr);
    });
  });
}

const old = unsupportedPython();
t.test('CPython 3.8 is refused with a clear message', { skip: old ? false : 'no CPython 3.8 installed' }, async (t) => {
  const r = runPython(old!, ['-c', 'import heapprof; heapprof.start("x")']);
  t.equal(r.code, 1);
  t.match(r.stderr, /RuntimeError: CPython 3\.8 is not supported \(heapprof records 3\.9 to 3\.13\)/);
});
