// The figures the Python package prints itself (the pytest plugin's summary and limit failures,
// the %%heapprof magic), checked against the truth and against what the hp-* commands print.

import { join } from 'node:path';
import t from 'tap';
import { formatBytes } from '../../lib/cli.js';
import { tmpDir } from '../helpers/profiles.js';
import { PYTHON_DIR, runPython, supportedPythons } from '../helpers/python.js';

const pythons = supportedPythons();

t.test("the package's byte units are the hp-* commands': rounded, and 1023.99 KiB is 1.0 MiB", async (t) => {
  if (pythons.length === 0) return t.skip('no supported CPython found');
  // 1,048,565 bytes is 1023.99 KiB: printed "1024.0 KiB" before; 1023.6 and 511.7 bytes were cut
  // ("1023 B", "511 B"), and 1280 bytes (1.25 KiB exactly) went to the even "1.2 KiB".
  const values = [0, 0.4, 511.7, 1023.4, 1023.6, 1024, 1280, 1536, 1048565, 1048576 * 1023.96, -1023.7, 3 * 2 ** 40, 5 * 2 ** 50];
  const code = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)})`,
    'from heapprof import _reader',
    `print(json.dumps([_reader.format_bytes(v) for v in ${JSON.stringify(values)}]))`,
  ].join('\n');
  for (const py of [pythons[0]!, pythons.at(-1)!]) {
    const r = runPython(py, ['-c', code], { cwd: tmpDir() });
    t.equal(r.code, 0, `CPython ${py.version}: ${r.stderr}`);
    t.same(JSON.parse(r.stdout), values.map(formatBytes), `CPython ${py.version}`);
  }
  t.same(values.slice(2, 5).map(formatBytes), ['512 B', '1023 B', '1.0 KiB'], 'the reference rounds whole bytes');
});

t.test('%%heapprof: the run lasts to the recording\'s end, and the chart shows the heap after a spike is freed', async (t) => {
  if (pythons.length === 0) return t.skip('no supported CPython found');
  // A cell that allocates 10 MB, frees it and then sleeps: the output said "of 0.04 s" (the time
  // of its last allocation or free) and drew the 10 MB over every point after the spike's, each
  // point without events taking the highest level of the one before instead of what it left.
  const code = [
    'import json, sys, time',
    `sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)})`,
    'import heapprof',
    'from heapprof import ipython, _reader',
    'base = sys.argv[1]',
    "heapprof.start(base, {}, force=True)",
    'x = bytearray(10_000_000)',
    'del x',
    'time.sleep(0.5)',
    'heapprof.stop()',
    'c = ipython.CellProfile(base)',
    'events = ipython._Collect()',
    '_reader.Profile(base).poll(events)',
    'spike = [t for kind, t, trace, size in events.events if size == 10_000_001]',
    "print(json.dumps({'duration': c.duration, 'history': c.history, 'spike_s': (spike[1] - spike[0]) / 1e6, 'peak': c.peak}))",
  ].join('\n');
  const py = pythons.at(-1)!;
  const r = runPython(py, ['-c', code, join(tmpDir(), 'cell')]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { duration: number; history: number[]; spike_s: number; peak: number };
  t.ok(out.duration >= 0.5, `the run lasts past the sleep: ${out.duration} s`);
  t.ok(out.peak >= 10_000_001, `the exact peak: ${out.peak}`);
  t.ok(out.history[out.history.length - 1]! < 1e6, 'nothing of the spike is live at the end');
  // Points are a 48th of the run (at least the 0.5 s sleep): the spike can cover its own share of
  // them and the two it straddles.
  const high = out.history.filter((v) => v >= 5e6).length;
  const most = Math.ceil((out.spike_s / 0.5) * (out.history.length - 1)) + 2;
  t.ok(high >= 1 && high <= most, `the spike shows on ${high} of ${out.history.length} points (at most ${most})`);
});

t.test('pytest plugin: a limit the lower bound passes by less than the printed digits shows both exactly', async (t) => {
  if (pythons.length === 0) return t.skip('no supported CPython found');
  // The peak's lower bound 2,000,100 B over a limit of 2,000,000 B printed "exceeds limit_memory
  // 1.9 MiB" beside a bound of 1.9 MiB: now the bytes of both are written out.
  const code = [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)})`,
    'import pytest',
    'from heapprof import pytest_plugin',
    'class Me: base = "rec"',
    'r = {"peak": 2_000_100.0, "peak_var": 0.0, "peak_site": "f (a.py:1)", "peak_site_bytes": 2_000_100.0,',
    '     "leaked": 0.0, "leaked_var": 0.0, "leak_site": "", "leak_site_bytes": 0.0}',
    'for limit in (2_000_000, 1_000_000):',
    '    try:',
    '        pytest_plugin._Recorder._check(Me(), r, limit, None)',
    '    except pytest.fail.Exception as e:',
    '        print(e)',
  ].join('\n');
  const py = pythons.find((p) => runPython(p, ['-c', 'import pytest']).code === 0);
  if (!py) return t.skip('pytest is not installed for any CPython found');
  const r = runPython(py, ['-c', code], { cwd: tmpDir() });
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), [
    'heapprof: peak memory 1.9 MiB exceeds limit_memory 1.9 MiB (2,000,000 bytes; the lower bound is 2,000,100); top site: f (a.py:1), 1.9 MiB (profile rec)',
    'heapprof: peak memory 1.9 MiB exceeds limit_memory 976.6 KiB; top site: f (a.py:1), 1.9 MiB (profile rec)',
  ]);
});
