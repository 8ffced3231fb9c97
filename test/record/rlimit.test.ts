// The program's resource limits are its own under hp-record. A program run under an address-space
// limit (ulimit -v): Node, which hp-record runs on, reserves
// some 750 MiB of address space as it starts and died at once under a smaller limit (V8's "Fatal
// process OOM", SIGTRAP), so the program never ran. Now bin/hp-record.js raises a soft limit to the
// hard one for Node and the bootstrap sets it back for the program, which sees the limit it would
// have had; a hard limit too small for Node is a one-line error. So is a hard descriptor limit
// too small for Node (which crashed under it).

import { readFileSync } from 'node:fs';
import t from 'tap';
import { BIN, pythons, recordingSkip, run, scratch } from '../fixtures/record/harness.js';

const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip = recordingSkip();
if (skip) t.plan(0, skip);
const all = skip ? [] : pythons();
const py = all[all.length - 1];
const CODE = 'import resource\nprint(resource.getrlimit(resource.RLIMIT_AS))\ntry:\n    b = bytearray(600 * 2**20)\nexcept MemoryError:\n    print("MemoryError")\n';
// The limit is set by a shell, as a user does, and bin/hp-record.js is run as a program (its shell line).
const limited = (ulimit: string, command: string, args: string[], cwd: string) =>
  run('/bin/sh', ['-c', `ulimit ${ulimit} || exit 99; exec "$0" "$@"`, command, ...args], { cwd, env });

if (py) {
  t.test(`CPython ${py.version}`, async (t) => {
    const dir = scratch();
    const plain = await limited('-S -v 400000', py.exe, ['-c', CODE], dir);
    t.equal(plain.code, 0, plain.stderr);
    t.match(plain.stdout, /^\(409600000, -?\d+\)\nMemoryError\n$/, 'plain python: the limit, and a MemoryError');
    const r = await limited('-S -v 400000', BIN, ['--python', py.exe, '-o', 'run', '-c', CODE], dir);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, plain.stdout, 'the program sees the same limit and fails the same way');
    t.notMatch(r.stderr, /Fatal process OOM/);
    t.match(r.stderr, /hp-record: run\.hpm, run\.hpd: [\d,]+ events/);

    const hard = await limited('-v 400000', BIN, ['--python', py.exe, '-o', 'hard', '-c', CODE], dir);
    t.equal(hard.code, 1, 'a hard limit too small for Node: exit 1');
    t.equal(hard.stdout, '');
    t.equal(
      hard.stderr,
      'hp-record: the address-space limit (ulimit -v 400000) is too small for Node.js, which hp-record runs on (it needs about 750 MiB): set only the soft limit (ulimit -S -v 400000), which hp-record sets back for the program\n',
    );
  });

  // Node raises the soft descriptor limit to the hard one as it starts (and crashes with fewer
  // than about 20): the program got the hard limit (select() and EMFILE behave differently), or
  // never ran.
  const FDS = 'import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))\n';
  const hard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 0);
  for (const soft of [16, 256]) {
    t.test(`CPython ${py.version}: ulimit -S -n ${soft}`, { skip: hard > soft ? false : `the hard descriptor limit (${hard}) is not above ${soft}` }, async (t) => {
      const dir = scratch();
      const plain = await limited(`-S -n ${soft}`, py.exe, ['-c', FDS], dir);
      t.equal(plain.stdout, `(${soft}, ${hard})\n`);
      const r = await limited(`-S -n ${soft}`, BIN, ['--python', py.exe, '-o', 'run', '-c', FDS], dir);
      t.equal(r.code, 0, r.stderr);
      t.equal(r.stdout, plain.stdout, 'the program has the limits it would have had');
    });
  }

  // A hard descriptor limit Node cannot start under (it crashed: SIGSEGV or an assertion, under
  // about 18) is refused in one line, before Node starts, naming what it needs here.
  t.test(`CPython ${py.version}: ulimit -n 16 (hard) is refused in one line`, { skip: hard > 16 ? false : `the hard descriptor limit (${hard}) is not above 16` }, async (t) => {
    const dir = scratch();
    const plain = await limited('-n 16', py.exe, ['-c', FDS], dir);
    t.equal(plain.stdout, '(16, 16)\n', 'python itself runs under it');
    const r = await limited('-n 16', BIN, ['--python', py.exe, '-o', 'run', '-c', FDS], dir);
    t.equal(r.code, 1);
    t.equal(r.stdout, '', 'the program did not run');
    t.match(r.stderr, /^hp-record: the open-files limit \(ulimit -n 16\) is too small for Node\.js, which hp-record runs on: it needs (\d+) here \(16 more than the \d+ descriptors open\); raise the hard limit \(ulimit -H -n\)\n$/);
  });
}
