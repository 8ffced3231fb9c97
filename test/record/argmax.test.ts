// A command line python takes, hp-record takes: one environment string may hold at most 128 KiB
// (Linux's MAX_ARG_STRLEN), and hp-record's configuration, which holds the program's whole command
// line, went to python in one variable, so 30,000 short arguments (170 KB, far under ARG_MAX) failed
// with "spawn E2BIG" before the program ran. The configuration is now a file in the private directory.

import t from 'tap';
import { hpRecord, missingBuild, oldestAndNewest, run, scratch } from '../fixtures/record/harness.js';

const skip = missingBuild();

t.test('a long argument list reaches the program', { skip: skip ?? false }, async (t) => {
  const dir = scratch({ 'count.py': 'import sys\nprint(len(sys.argv), sys.argv[-1], sum(len(a) for a in sys.argv))\n' });
  const args = Array.from({ length: 30000 }, (_, i) => String(i + 1));
  for (const py of oldestAndNewest(null)) {
    const plain = await run(py.exe, ['count.py', ...args], { cwd: dir });
    t.equal(plain.code, 0, plain.stderr);
    const recorded = await hpRecord(['-q', '-o', 'p', '--force', '--python', py.exe, 'count.py', ...args], { cwd: dir });
    t.equal(recorded.stderr, '', 'nothing on stderr');
    t.equal(recorded.code, 0, 'exit status 0');
    t.equal(recorded.stdout, plain.stdout, `${py.version}: every argument, as under python`);
  }
});
