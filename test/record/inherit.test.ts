// What the program inherits is what python would have been given: descriptors above 2 at their
// numbers (a `3<file` redirection, a socket from a service manager), signals ignored (nohup, a
// shell's background job) and blocked. Node marks 3..16 close-on-exec and resets every signal
// while starting, so bin/hp-record.js notes them as a shell first. And SIGUSR1 sent to hp-record
// reaches the program, where Node would have opened its inspector. Found by an audit: fd 3 read
// the recorder's lock file, `nohup` stopped protecting the program, and SIGUSR1 opened port 9229.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BIN, FIXTURES, REPO, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', HP_DEBUG: undefined };
const skip = missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null);
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();

for (const py of installed) {
  t.test(`CPython ${py.version}: descriptors, ignored and blocked signals as python would inherit them`, async (t) => {
    const dir = scratch();
    const data = join(SCRIPTS, 'inherits.py'); // any readable file: its first 100 bytes are read twice
    const launch = (command: string[]) =>
      spawnSync(py.exe, [join(SCRIPTS, 'launch.py'), data, ...command, join(SCRIPTS, 'inherits.py'), '3', '20'], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
    const plain = launch([py.exe]);
    t.equal(plain.status, 0, plain.stderr);
    t.match(plain.stdout, /^SIGHUP: ignored$/m, 'the launcher ignores SIGHUP');
    t.match(plain.stdout, /^blocked: \[10, 15\]$/m, 'and blocks SIGUSR1 and SIGTERM');
    t.match(plain.stdout, /^fd 3: b'# What/m, 'and passes fd 3');
    // bin/hp-record.js executed, as a user runs it (its shell line is what notes the descriptors).
    const recorded = launch([BIN, '-q', '--mode', 'stats', '--python', py.exe, '--']);
    t.equal(recorded.status, 0, recorded.stderr);
    t.equal(recorded.stdout, plain.stdout, 'the same descriptors, dispositions and blocked set');
    t.equal(recorded.stdout.includes('HEAPPROF'), false);
  });
}

const newest = installed[installed.length - 1];
t.test('a closed standard input stays closed for the program (Node reopens it on /dev/null)', { skip: newest ? false : skip ?? 'no CPython' }, async (t) => {
  const dir = scratch({
    'stdin.py': "import os, sys\nfd = os.open('/dev/null', os.O_RDONLY)\nkept = [bytearray(5000) for _ in range(2000)]\nprint(sys.stdin is None, sys.__stdin__ is None, fd)\n",
  });
  const oldest = installed[0]!;
  for (const py of new Set([oldest, newest!])) {
    for (const redirect of ['<&-', '</dev/null']) {
      const sh = (command: string[]) => spawnSync('/bin/sh', ['-c', `exec "$@" ${redirect}`, 'sh', ...command], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
      const plain = sh([py.exe, 'stdin.py']);
      t.equal(plain.stdout, redirect === '<&-' ? 'True True 0\n' : 'False False 3\n', `CPython ${py.version} ${redirect}: what python gives the program`);
      const base = join(dir, `run-${py.version}-${redirect === '<&-' ? 'closed' : 'null'}`);
      const recorded = sh([BIN, '-q', '--python', py.exe, '-o', base, '--', 'stdin.py']);
      t.equal(recorded.status, 0, recorded.stderr);
      t.equal(recorded.stdout, plain.stdout, `CPython ${py.version} ${redirect}: the same under hp-record`);
      const read = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-stats.js'), base, '--json'], { encoding: 'utf8' });
      t.equal(read.status, 0, `the profile reads: ${read.stderr}`);
    }
  }
});

t.test('a closed standard output or error stays closed for the program, and the recorder never writes to a file that takes its number', { skip: newest ? false : skip ?? 'no CPython' }, async (t) => {
  // The program opens a file, which takes the lowest closed descriptor, and reports what python
  // gave it in that file. Before, Node's /dev/null stayed at 1 and 2 for the program.
  const dir = scratch({
    'stdio.py': [
      'import os, sys',
      "fd = os.open('log', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)",
      'kept = [bytearray(5000) for _ in range(2000)]',
      "with open('seen', 'w') as f:",
      "    f.write('%s %s %s %d\\n' % (sys.stdin is None, sys.stdout is None, sys.stderr is None, fd))",
      "print('to stdout')",
      "raise SystemExit('to stderr, status 1')",
      '',
    ].join('\n'),
  });
  const oldest = installed[0]!;
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  for (const py of new Set([oldest, newest!])) {
    for (const redirect of ['>&-', '2>&-', '>&- 2>&-', '<&- >&- 2>&-']) {
      for (const mode of ['profile', 'stats']) {
        const sh = (command: string[]) => spawnSync('/bin/sh', ['-c', `exec "$@" ${redirect}`, 'sh', ...command], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
        const plain = sh([py.exe, 'stdio.py']);
        const plainSeen = read('seen');
        const plainLog = read('log');
        const base = join(dir, `run-${py.version}`);
        const recorded = sh([BIN, '-q', '--force', '--mode', mode, '--python', py.exe, ...(mode === 'profile' ? ['-o', base] : []), '--', 'stdio.py']);
        const what = `CPython ${py.version} ${redirect} --mode ${mode}`;
        t.equal(recorded.status, plain.status, `${what}: the same status`);
        t.equal(read('seen'), plainSeen, `${what}: the same stdio objects and descriptor (${plainSeen.trim()})`);
        t.equal(read('log'), plainLog, `${what}: nothing written to the file at the closed number (no stats table, no warning)`);
        t.equal(recorded.stdout, plain.stdout, `${what}: the same output`);
        if (!redirect.includes('2>&-')) t.match(recorded.stderr, /to stderr, status 1/, `${what}: the program's error`);
      }
    }
  }
});

t.test('SIGUSR1 sent to hp-record reaches the program; Node opens no inspector', { skip: newest ? false : skip ?? 'no CPython' }, async (t) => {
  const dir = scratch();
  const token = `usr1-${process.pid}-${Date.now()}`;
  const child = run(process.execPath, [BIN, '-q', '--mode', 'stats', '--python', newest!.exe, '--', '-c', `import time; time.sleep(20)  # ${token}`], { cwd: dir, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  await new Promise((r) => setTimeout(r, 1500));
  // hp-record is the process with the token on its command line that is Node, not python.
  const pids = spawnSync('pgrep', ['-f', token], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
  const pid = pids.find((p) => p > 0 && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node') ?? 0;
  t.ok(pid > 0, `hp-record's pid ${pid}`);
  process.kill(pid, 'SIGUSR1');
  const r = await child;
  t.equal(r.signal, 'SIGUSR1', 'the program died of SIGUSR1, and hp-record of the same, as python alone would');
  t.notMatch(r.stderr, /Debugger listening|inspector/i, 'no inspector');
});
