// hp-record's own lines on stderr must not change the program's standard streams. The program
// inherits hp-record's stdout and stderr as the same open files, and O_NONBLOCK belongs to the open
// file: Node's process.stderr on a pipe set it, so that a program writing into a full pipe while
// hp-record printed its start line (`hp-record app.py 2>&1 | less`) got EAGAIN, and Python's print
// lost output silently (exit status 0, lines missing).

import t from 'tap';
import { BIN, missingBuild, oldestAndNewest, run, scratch } from '../fixtures/record/harness.js';

const skip = missingBuild();

t.test('stdout and stderr stay blocking, and no output is lost into a slow pipe', { skip: skip ?? false }, async (t) => {
  const dir = scratch({
    'flood.py': [
      'import os, sys, time',
      // Long enough for hp-record to print its start line (it polls the bootstrap every 25 ms).
      'seen = set()',
      'end = time.time() + 1.5',
      'while time.time() < end:',
      '    seen.add((os.get_blocking(1), os.get_blocking(2)))',
      '    time.sleep(0.01)',
      'line = "x" * 1023 + "\\n"',
      'for i in range(3000):',
      '    sys.stdout.write(line)',
      'sys.stdout.flush()',
      'sys.stderr.write("blocking: %s\\n" % sorted(seen))',
    ].join('\n') + '\n',
  });
  // Both streams into one pipe whose reader starts late, so that the pipe fills up.
  const shell = '"$@" 2>&1 | { sleep 1; grep -v "^hp-record: "; } | sort | uniq -c';
  // Started from python with a clean environment: run straight from this test (its Node, tap's
  // variables), hp-record's stderr stayed blocking and the test passed without the fix.
  const launcher = 'import subprocess, sys; sys.stdout.write(subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, universal_newlines=True).stdout)';
  const clean = (py: string, args: string[]): string[] => ['-c', launcher, '/usr/bin/env', '-i', `PATH=${process.env.PATH}`, `HOME=${process.env.HOME}`, '/bin/sh', '-c', shell, 'sh', ...args];
  for (const py of oldestAndNewest(null)) {
    const plain = await run(py.exe, clean(py.exe, [py.exe, 'flood.py']), { cwd: dir });
    t.match(plain.stdout, /3000 x{1023}\n/, 'plain python: every line');
    t.match(plain.stdout, /blocking: \[\(True, True\)\]/, 'plain python: blocking streams');
    const recorded = await run(py.exe, clean(py.exe, [BIN, '-o', 'p', '--force', '--python', py.exe, 'flood.py']), { cwd: dir });
    t.equal(recorded.stdout, plain.stdout, `${py.version}: the same lines, and the program's streams were blocking all along`);
  }
});
