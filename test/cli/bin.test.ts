// bin/: every command is a shell line and a Node module in one file. Run as a program, the shell
// line starts Node without NODE_EXTRA_CA_CERTS (Node 20 builds its whole root certificate store
// at start-up when it is set) and keeps the value in HEAPPROF_NODE_EXTRA_CA_CERTS; runMain puts
// it back, so that what a command starts (hp-record's python) sees the environment as it was.

import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { REPO, fakeRecorderBin, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const BIN = join(REPO, 'bin');
// The package's commands (bin/hp-demo.js, which `npm run demo` runs with node, is not one).
const commands = Object.values((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin).map((f) => f.replace(/^bin\//, ''));
const skip = missingBuild();

t.test('every command starts with the same shell line, and is executable', async (t) => {
  t.ok(commands.length >= 11, `${commands.length} commands`);
  const first = readFileSync(join(BIN, 'hp-stats.js'), 'utf8').split('\n').slice(0, 2);
  t.equal(first[0], '#!/bin/sh');
  // --no-concurrent-recompilation: no TurboFan job on a worker thread, which can deadlock Node 20 as it exits (doc/internals.md).
  t.match(first[1], /^':' \/\/; .*exec node --no-concurrent-recompilation "\$0" "\$@"$/);
  // hp-record's line does the same and also notes the signal state and descriptors (test/record/inherit.test.ts).
  const caPart = /if \[ -n "\$\{NODE_EXTRA_CA_CERTS\+set\}" \]; then .*?; fi;/.exec(first[1]!)![0];
  for (const c of commands) {
    const lines = readFileSync(join(BIN, c), 'utf8').split('\n').slice(0, 2);
    if (c === 'hp-record.js') {
      t.equal(lines[0], first[0], `${c}: the same first line`);
      t.ok(lines[1]!.includes(caPart) && lines[1]!.endsWith('exec node --no-concurrent-recompilation "$0" "$@"'), `${c}: the same start of Node`);
      continue;
    }
    t.same(lines, first, `${c}: the same two first lines`);
    t.doesNotThrow(() => accessSync(join(BIN, c), constants.X_OK), `${c}: executable`);
  }
});

t.test('run as a program, Node starts without the extra certificates', { skip: skip ?? false }, async (t) => {
  // Node 20 warns on stderr when it cannot load them: the warning tells whether it tried.
  const env = { NODE_EXTRA_CA_CERTS: '/nonexistent/heapprof-test.pem' };
  const direct = await run(join(BIN, 'hp-stats.js'), ['--version'], { env });
  t.equal(direct.code, 0);
  t.notMatch(direct.stderr, /extra certs/, 'no attempt to load them');
  t.match(direct.stdout, /^\d+\.\d+\.\d+/);
  // The control: the same file run by node itself (the shell line is a comment there) does try.
  const viaNode = await run(process.execPath, [join(BIN, 'hp-stats.js'), '--version'], { env });
  t.equal(viaNode.code, 0);
  t.match(viaNode.stderr, /Ignoring extra certs from `\/nonexistent\/heapprof-test.pem`/, 'node bin/x.js loads them');
});

const installed = skip ? [] : pythons();
t.test('the program hp-record runs sees NODE_EXTRA_CA_CERTS as it was', { skip: skip ?? (installed.length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : false) }, async (t) => {
  const py = installed[installed.length - 1]!;
  const dir = scratch({ 'env.py': "import json, os\nprint(json.dumps([os.environ.get(k) for k in ('NODE_EXTRA_CA_CERTS', 'HEAPPROF_NODE_EXTRA_CA_CERTS')]))\n" });
  const bin = fakeRecorderBin();
  const cases: Array<[string, string | undefined, Array<string | null>]> = [
    ['set', '/etc/hp-test/ca.pem', ['/etc/hp-test/ca.pem', null]],
    ['set and empty', '', ['', null]],
    ['unset', undefined, [null, null]],
  ];
  for (const [what, value, expected] of cases) {
    const r = await run(bin, ['-q', '--python', py.exe, '-o', join(dir, what.replace(/ /g, '-')), 'env.py'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: value, HEAPPROF_NATIVE: undefined } });
    t.equal(r.code, 0, `${what}: ${r.stderr.trim()}`);
    t.same(JSON.parse(r.stdout), expected, `${what}: the program's view`);
    t.notMatch(r.stderr, /extra certs/, `${what}: Node did not load them`);
  }
});

t.test('node bin/hp-X.js runs itself again with the flag: its status, its signals, its end with the first process', { skip: skip ?? false }, async (t) => {
  const { spawn, spawnSync } = await import('node:child_process');
  const { execFileSync } = await import('node:child_process');
  // The status and output of the second process are the first's.
  const r = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), join(scratch(), 'nosuch')], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /^hp-snapshot: .*nosuch\.hpm: no such file/);
  t.equal(r.stderr.split('\n').length, 2, 'one line, once');
  // A reader waiting on a FIFO: SIGTERM to the first process ends both, by SIGTERM.
  const fifo = join(scratch(), 'events.ndjson');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', `exec sleep 30 > '${fifo}'`]);
  const reader = spawn(process.execPath, [join(BIN, 'hp-history.js'), fifo, '--json'], { stdio: 'ignore' });
  let second = '';
  for (let i = 0; i < 100 && !second; i++) {
    await new Promise((r) => setTimeout(r, 100));
    second = spawnSync('pgrep', ['-P', String(reader.pid)], { encoding: 'utf8' }).stdout.trim();
  }
  t.match(second, /^\d+$/, 'the second process runs under the first');
  const ended = new Promise<NodeJS.Signals | null>((resolve) => reader.on('exit', (_code, signal) => resolve(signal)));
  reader.kill('SIGTERM');
  t.equal(await ended, 'SIGTERM', 'the first process ends by the signal');
  await new Promise((r) => setTimeout(r, 300));
  t.throws(() => process.kill(Number(second), 0), 'the second process got it too');
  writer.kill();

  // A reader blocked opening a FIFO no one writes (a synchronous call: no timer of its own can
  // run): SIGKILL, which the first process cannot pass on, ends the second too (the kernel does).
  const lonely = join(scratch(), 'lonely.ndjson');
  execFileSync('mkfifo', [lonely]);
  const blocked = spawn(process.execPath, [join(BIN, 'hp-events.js'), lonely], { stdio: 'ignore' });
  let orphan = '';
  for (let i = 0; i < 100 && !orphan; i++) {
    await new Promise((r) => setTimeout(r, 100));
    orphan = spawnSync('pgrep', ['-P', String(blocked.pid)], { encoding: 'utf8' }).stdout.trim();
  }
  t.match(orphan, /^\d+$/, 'the second process runs under the first');
  await new Promise((r) => setTimeout(r, 500)); // into its blocking open
  blocked.kill('SIGKILL');
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(Number(orphan), 0);
    } catch {
      alive = false;
    }
  }
  if (alive) process.kill(Number(orphan), 'SIGKILL');
  t.notOk(alive, 'the second process ended with the first, though blocked');
});
