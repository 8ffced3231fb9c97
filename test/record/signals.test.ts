// hp-record never dies before the program and ends the way the program ended: a signal sent to
// hp-record reaches the program, a program killed by a signal makes hp-record die of the same signal,
// and a terminal's Ctrl-C (which reaches both) arrives only once. Runs with the fake recorder: this is
// about processes, not recording (test/record/e2e.test.ts does it with the real hook).

import { join } from 'node:path';
import t from 'tap';
import { findExecutable } from '../../lib/cmd/record.js';
import { FIXTURES, fakeRecorderBin, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
// The fake recorder has no native hook: HEAPPROF_NATIVE (a suite run with native recording) does not apply.
const env = { PYTHONDONTWRITEBYTECODE: '1', FAKE_HEAPPROF_LOG: undefined, HEAPPROF_NATIVE: undefined };
const skip = missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null);
if (skip) t.plan(0, skip);

const installed = skip ? [] : pythons();
for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    const bin = fakeRecorderBin();
    const out = scratch();
    const record = (args: string[], signal?: NodeJS.Signals) =>
      hpRecord(['--python', py.exe, '-o', join(out, `${args.join('-')}-${signal ?? ''}`), '--', 'signals.py', ...args], {
        bin,
        cwd: SCRIPTS,
        env,
        // hp-record runs in its own session (no terminal): a signal to it is forwarded.
        onStdout: (text, child) => {
          if (signal && text === 'ready\n') child.kill(signal);
        },
      });

    await t.test('a program that kills itself with SIGTERM: hp-record dies of SIGTERM', async (t) => {
      const plain = await run(py.exe, ['signals.py', 'term'], { cwd: SCRIPTS, env });
      t.equal(plain.signal, 'SIGTERM', 'plain python dies of SIGTERM');
      const r = await record(['term']);
      t.equal(r.signal, 'SIGTERM');
      t.equal(r.code, null);
      t.equal(r.stdout, 'bye\n');
      t.match(r.stderr, /^hp-record: .*\.hpm, .*\.hpd: the program was killed by SIGTERM; the profile is readable up to its last flush$/m);
    });

    await t.test('SIGINT to hp-record reaches the program as KeyboardInterrupt', async (t) => {
      const caught = await record(['catch'], 'SIGINT');
      t.equal(caught.stdout, 'ready\ninterrupted\n', 'the program handled it');
      t.equal(caught.code, 42, 'and hp-record exits with its status');
      t.match(caught.stderr, /^hp-record: .*: 12 events/m, 'the recorder was stopped at exit and reported');
      const uncaught = await record(['wait'], 'SIGINT');
      t.equal(uncaught.signal, 'SIGINT', 'an unhandled KeyboardInterrupt: python, then hp-record, die of SIGINT');
      t.match(uncaught.stderr, /Traceback \(most recent call last\):\n(.|\n)*KeyboardInterrupt\n/);
      t.notMatch(uncaught.stderr, /sitecustomize|_run\.py/, 'no bootstrap frame in the traceback');
    });

    await t.test('a program that signals its own process group: hp-record outlives what the program handles', async (t) => {
      // SIGUSR2 and SIGALRM (default action: terminate) reached hp-record too, which died of them,
      // and its death ended the program (the watchdog): plain python handles both and exits 0.
      const plain = await run(py.exe, ['signals.py', 'group'], { cwd: SCRIPTS, env });
      t.equal(plain.stdout, 'SIGALRM SIGUSR2\n');
      const r = await record(['group']);
      t.equal(r.signal, null);
      t.equal(r.code, 0);
      t.equal(r.stdout, 'SIGALRM SIGUSR2\n');
    });

    await t.test('SIGTERM and SIGHUP to hp-record are forwarded', async (t) => {
      const term = await record(['wait'], 'SIGTERM');
      t.equal(term.signal, 'SIGTERM');
      t.equal(term.stdout, 'ready\n');
      const hup = await record(['wait'], 'SIGHUP');
      t.equal(hup.signal, 'SIGHUP');
    });
  });
}

const newest = installed[installed.length - 1];
if (newest) {
  const scriptTool = findExecutable('script');
  t.test('a terminal Ctrl-C reaches the program once, and hp-record waits for it', { skip: scriptTool ? false : 'script(1) from util-linux is not installed' }, async (t) => {
    // script(1) gives hp-record a pseudo-terminal; writing ^C to it makes the terminal send SIGINT to
    // the whole foreground process group, hp-record and the program alike. Its stdin stays open until
    // it exits (script -e ends when its command does): an EOF written to the pseudo-terminal while
    // hp-record is still finishing would race with its exit. script(1) runs the command with
    // `$SHELL -c`, or /bin/sh when SHELL is unset; `exec` takes that shell out of the process group,
    // since dash, for one, exits 130 after a Ctrl-C even when its command did not die of it.
    const out = scratch();
    const command = 'exec ' + [process.execPath, fakeRecorderBin(), '-q', '--python', newest.exe, '-o', join(out, 'tty'), '--', 'signals.py', 'count']
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    let sent = false;
    const r = await run(scriptTool!, ['-qec', command, '/dev/null'], {
      cwd: SCRIPTS,
      env,
      holdStdin: true,
      onStdout: (text, child) => {
        if (!sent && text.includes('ready')) {
          sent = true;
          child.stdin!.write('\x03');
        }
      },
    });
    t.ok(sent, 'the program got going');
    t.match(r.stdout, /count=1\b/, 'exactly one SIGINT reached the program');
    t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, `hp-record survived the Ctrl-C and exited with the program's status (output: ${JSON.stringify(r.stdout)})`);
  });

  t.test('a Ctrl-C the program does not handle: hp-record dies of SIGINT after it', async (t) => {
    const out = scratch();
    const r = await hpRecord(['--python', newest.exe, '-o', join(out, 'group'), '--', 'signals.py', 'wait'], {
      bin: fakeRecorderBin(),
      cwd: SCRIPTS,
      env,
      // The whole process group, as a terminal would (without one, hp-record also forwards it; python
      // turns the pair into one KeyboardInterrupt or dies of the second, either way of SIGINT).
      onStdout: (text, child) => {
        if (text === 'ready\n') process.kill(-child.pid!, 'SIGINT');
      },
    });
    t.equal(r.signal, 'SIGINT');
    t.match(r.stderr, /KeyboardInterrupt/);
  });
}

