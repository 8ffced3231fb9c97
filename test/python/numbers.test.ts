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
