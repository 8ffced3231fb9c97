// hp-record over a process's whole life, with the real native hook: pool workers stopped with
// SIGTERM keep their profiles; SIGTERM ends a recorded program exactly as it ends a plain one; a
// program that replaces itself with exec keeps what it recorded; the
// summary lists each followed child with what reached its disk, and says why a child has nothing;
// start-up failures (a full filesystem, a concurrent run on the same base) stop before the program
// runs, name their cause and leave nothing behind; a disk that fills up mid-run is reported honestly;
// os._exit and os.exec* stay builtins the program cannot tell from the originals.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { BIN, FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built (npx node-gyp rebuild)');
// Without a CPython or the hook, every test below is skipped with the reason.
const installed = skip ? [] : pythons();
const newest = installed[installed.length - 1] ?? { version: '3.x', exe: 'python3' };
const when = { skip: skip ?? false };

const allocsOfSize = (events: Array<{ op: string; size: number }>, size: number): number =>
  events.filter((e) => e.op === 'alloc' && e.size === size).length;
const countEvents = (events: Array<{ op: string }>): number => events.filter((e) => e.op === 'alloc' || e.op === 'free').length;

// pool.py's workers each get the sentinel that ends them and, from `with Pool` on its way out,
// a SIGTERM, at nearly the same moment: a worker is often writing the end of its profile
// (os._exit) when SIGTERM arrives, and the profile must still be closed, never lost.
const poolRun = async (t: Tap.Test, py: { exe: string }): Promise<void> => {
  const out = scratch();
  const base = join(out, 'pool');
  const r = await hpRecord(['--python', py.exe, '--follow-fork', '-o', base, '--', 'pool.py'], { cwd: SCRIPTS, env, timeoutMs: 60000 });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^total 4000$/m);
  const workers = /^workers (.*)$/m.exec(r.stdout)![1]!.split(' ').map(Number);
  let total = 0;
  for (const pid of workers) {
    const child = await readAll(`${base}.${pid}`);
    t.same(child.issues, [], `worker ${pid}: nothing damaged`);
    t.equal(child.complete, true, `worker ${pid}: the recorder closed its profile on SIGTERM`);
    const n = allocsOfSize(child.events, 10001);
    t.ok(n > 0, `worker ${pid}: ${n} of its 10,001-byte buffers`);
    total += n;
    const line = new RegExp(`^hp-record: child ${pid}: \\S+\\.${pid}\\.hpm, \\S+\\.${pid}\\.hpd: ([\\d,]+) events?$`, 'm').exec(r.stderr);
    t.ok(line, `the summary lists worker ${pid}`);
    t.equal(Number(line?.[1]?.replace(/,/g, '')), countEvents(child.events), `worker ${pid}: the summary's count is what is on disk`);
  }
  t.equal(total, 4000, 'every buffer the tasks allocated is in a worker profile');
};

for (const py of installed) {
  t.test(`CPython ${py.version}: with Pool(2) (workers get SIGTERM), the children's profiles hold their allocations`, (t) => poolRun(t, py));
}

// The race above lost one worker's profile in about one run in five on CPython 3.10 before
// the exiting thread was handed the signal: run it enough times to see it.
const racy = installed.find((p) => p.version === '3.10') ?? newest;
t.test(`CPython ${racy.version}: Pool(2) ten more times: no worker profile is ever lost`, when, async (t) => {
  for (let i = 0; i < 10; i++) await t.test(`run ${i + 1}`, (t) => poolRun(t, racy));
});

t.test(`CPython ${newest.version}: SIGTERM`, when, async (t) => {
  const out = scratch();
  // Run term.py MODE, plain and recorded; send the python process SIGTERM once it is ready.
  const both = async (mode: string) => {
    const flag = join(out, `${mode}.flag`);
    const onStdout = (text: string): void => {
      const pid = /^ready (\d+)$/m.exec(text)?.[1];
      if (pid && !existsSync(flag)) {
        writeFileSync(flag, ''); // also tells the 'ignore' mode to finish
        process.kill(Number(pid), 'SIGTERM');
      }
    };
    const args = ['term.py', mode, flag];
    const plain = await run(py(), args, { cwd: SCRIPTS, env, onStdout });
    spawnSync('rm', ['-f', flag]);
    const base = join(out, mode);
    const recorded = await hpRecord(['--python', newest.exe, '-o', base, '--', ...args], { cwd: SCRIPTS, env, onStdout });
    // The pid on the "ready" line differs between the two runs.
    const samePid = (r: Awaited<ReturnType<typeof run>>) => ({ ...r, stdout: r.stdout.replace(/^ready \d+$/m, 'ready PID') });
    return { plain: samePid(plain), recorded: samePid(recorded), base };
  };
  const py = (): string => newest.exe;

  await t.test('no handler: dies of SIGTERM as without the profiler, and the profile is closed first', async (t) => {
    const { plain, recorded, base } = await both('default');
    t.equal(plain.signal, 'SIGTERM');
    t.same({ code: recorded.code, signal: recorded.signal, stdout: recorded.stdout }, { code: plain.code, signal: plain.signal, stdout: plain.stdout });
    const p = await readAll(base);
    t.same(p.issues, []);
    t.equal(p.complete, true, 'END marker written before dying');
    t.ok(allocsOfSize(p.events, 10001) >= 300, 'the allocations up to the signal are there');
    t.match(recorded.stderr, new RegExp(`: the program was killed by SIGTERM; the recorder closed the profile: ${countEvents(p.events).toLocaleString('en-US')} events$`, 'm'));
  });

  await t.test('a Python handler runs as before', async (t) => {
    const { plain, recorded, base } = await both('handler');
    t.equal(plain.code, 3);
    t.same({ code: recorded.code, signal: recorded.signal, stdout: recorded.stdout }, { code: plain.code, signal: plain.signal, stdout: plain.stdout });
    t.match(recorded.stdout, /^getsignal python-handler\nready PID\nhandled 15\n$/);
    t.equal((await readAll(base)).complete, true, 'closed at exit as usual');
  });

  await t.test('an ignored SIGTERM stays ignored', async (t) => {
    const { plain, recorded, base } = await both('ignore');
    t.equal(plain.code, 0);
    t.match(plain.stdout, /survived\n$/);
    t.same({ code: recorded.code, signal: recorded.signal, stdout: recorded.stdout }, { code: plain.code, signal: plain.signal, stdout: plain.stdout });
    t.equal((await readAll(base)).complete, true);
  });

  await t.test('the program sees SIGTERM at its default (signal.getsignal), and a self-sent SIGTERM ends it the same way', async (t) => {
    const plain = await run(newest.exe, ['term.py', 'self'], { cwd: SCRIPTS, env });
    const recorded = await hpRecord(['--python', newest.exe, '-o', join(out, 'self'), '--', 'term.py', 'self'], { cwd: SCRIPTS, env });
    t.equal(plain.signal, 'SIGTERM');
    t.same({ code: recorded.code, signal: recorded.signal, stdout: recorded.stdout }, { code: plain.code, signal: plain.signal, stdout: 'getsignal SIG_DFL\n' });
    t.equal((await readAll(join(out, 'self'))).complete, true);
  });
});

t.test(`CPython ${newest.version}: the summary lists each child, and says why one has nothing`, when, async (t) => {
  const base = join(scratch(), 'kids');
  // Only blocks of 8 KiB and more are sampled, so that the idle child samples nothing.
  const r = await hpRecord(['--python', newest.exe, '--follow-fork', '--sample', '{8192: 0}', '-o', base, '--', 'children.py'], { cwd: SCRIPTS, env });
  t.equal(r.code, 0, r.stderr);
  const pids = Object.fromEntries(r.stdout.trim().split(' ').map((kv) => kv.split('=') as [string, string]));
  const line = (pid: string): string => new RegExp(`^hp-record: child ${pid}: .*$`, 'm').exec(r.stderr)?.[0] ?? '';
  t.match(line(pids.killed!), /: no events: it ended before its first flush without closing its profile/, 'killed before its first flush');
  t.match(line(pids.idle!), /: no events: no allocation was sampled before it ended$/, 'closed with nothing sampled');
  const busy = await readAll(`${base}.${pids.busy}`);
  t.match(line(pids.busy!), new RegExp(`: ${countEvents(busy.events)} events$`), 'the busy child and its count');
  t.equal(line(pids.execs!), '', 'the child that exec\'d has no profile to list');
  t.match(r.stderr, /^hp-record: 1 forked child recorded nothing and wrote no files \(no allocation sampled before it exec'd or exited\)$/m);
  t.notOk(existsSync(`${base}.${pids.execs}.hpm`));
});

t.test(`CPython ${newest.version}: a program that stops hp-record's recording and starts its own: the summary is still hp-record's`, when, async (t) => {
  // The summary was read at exit from the counters of the last recording, the program's own:
  // it gave that one's figures (here 0 events) under hp-record's file names.
  const dir = scratch();
  const base = join(dir, 'outer');
  const code = [
    'import heapprof',
    'x = [bytearray(10000) for _ in range(200)]',
    'heapprof.stop()',
    `heapprof.start(${JSON.stringify(join(dir, 'own'))}, sampling_rate={1 << 30: 0})`,
    'y = [bytearray(10000) for _ in range(10)]',
    'print("own", heapprof.isProfiling())',
  ].join('\n');
  const r = await hpRecord(['--python', newest.exe, '--sample', '{}', '-o', base, '-c', code], { cwd: dir, env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^own True$/m);
  const outer = await readAll(base);
  const n = countEvents(outer.events);
  t.ok(n >= 200, `hp-record's profile has the program's first buffers (${n} events)`);
  const line = /^hp-record: \S*outer\.hpm, \S*outer\.hpd: ([\d,]+) events?, .*$/m.exec(r.stderr);
  t.ok(line, r.stderr);
  t.equal(Number(line?.[1]?.replace(/,/g, '')), n, "the summary's count is what hp-record's profile holds");
});

t.test(`CPython ${newest.version}: a program that replaces itself with exec keeps what it recorded before`, when, async (t) => {
  const base = join(scratch(), 'execs');
  const plain = await run(newest.exe, ['execs.py'], { cwd: SCRIPTS, env });
  const r = await hpRecord(['--python', newest.exe, '-o', base, '--', 'execs.py'], { cwd: SCRIPTS, env });
  t.equal(r.code, plain.code);
  t.equal(r.stdout, plain.stdout, 'the same output as without the recorder');
  t.match(r.stdout, /^execvp failed: FileNotFoundError\nafter exec\n$/);
  const p = await readAll(base);
  t.same(p.issues, [], 'nothing damaged');
  t.equal(allocsOfSize(p.events, 10001), 80, 'the 50 buffers (10,001 bytes with their NUL) before the failed execvp and the 30 after it, all flushed before the exec');
  t.equal(p.complete, false, 'no end marker: the process was replaced, not stopped');
  t.match(r.stderr, /execs\.hpd: the program exited \(or replaced itself with exec\) without running atexit handlers; the profile is readable up to its last flush: [\d,]+ events$/m);
  t.notOk(existsSync(`${base}.hpm.lock`), 'no lock file left behind (its recorder was replaced)');
});

// heapprof replaces os._exit, os.execv and os.execve (atexit sees neither): with builtins like
// the originals, so that a program that looks at them (inspect, pickle, type, their errors) sees
// what it sees without the recorder; os._exit still closes the profile.
for (const py of installed) {
  t.test(`CPython ${py.version}: os._exit and os.exec* look and behave as without the recorder`, when, async (t) => {
    const base = join(scratch(), 'exitfns');
    const plain = await run(py.exe, ['exitfns.py'], { cwd: SCRIPTS, env });
    t.equal(plain.code, 7);
    t.match(plain.stdout, /^_exit builtin_function_or_method True True _exit _exit posix True <built-in function _exit> \(status\) True True False$/m);
    const r = await hpRecord(['--python', py.exe, '-o', base, '--', 'exitfns.py'], { cwd: SCRIPTS, env });
    t.equal(r.code, 7, r.stderr);
    t.equal(r.stdout, plain.stdout, 'the same output as without the recorder');
    const p = await readAll(base);
    t.same(p.issues, [], 'nothing damaged');
    t.equal(p.complete, true, 'os._exit closed the profile');
  });
}

for (const py of [installed[0], newest].filter((p, i, all) => p !== undefined && all.indexOf(p) === i)) {
  t.test(`CPython ${py!.version}: --follow-children records the processes the program starts (spawn, forkserver, subprocess)`, when, async (t) => {
    const out = scratch();
    const base = join(out, 'kids');
    const r = await hpRecord(['--python', py!.exe, '--follow-children', '-o', base, '--', 'spawnkids.py'], { cwd: SCRIPTS, env, timeoutMs: 120000 });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^total 1600$/m);
    t.match(r.stdout, /^shell shell ok$/m, 'a shell started by the program runs as before');
    const files = readdirSync(out).filter((f) => f.endsWith('.hpm') && f !== 'kids.hpm').map((f) => f.slice(0, -4));
    const byPid = new Map(files.map((f) => [f.split('.').pop()!, join(out, f)]));
    let total = 0;
    for (const pid of /^workers (.*)$/m.exec(r.stdout)![1]!.split(' ')) {
      const child = byPid.get(pid);
      t.ok(child, `worker ${pid} has a profile (${files.join(' ')})`);
      if (!child) continue;
      const p = await readAll(child);
      t.same(p.issues, [], `worker ${pid}: nothing damaged`);
      total += allocsOfSize(p.events, 10001);
      t.match(r.stderr, new RegExp(`^hp-record: child ${pid}: \\S+\\.${pid}\\.hpm, \\S+\\.${pid}\\.hpd: [\\d,]+ events?$`, 'm'), `the summary lists worker ${pid}`);
    }
    t.equal(total, 1600, "every buffer the pools' tasks allocated is in a worker's profile");
    const sub = /^subprocess (\d+) 100$/m.exec(r.stdout)![1]!;
    const subProfile = byPid.get(sub);
    t.ok(subProfile, 'the python -c subprocess has a profile');
    if (subProfile) t.equal(allocsOfSize((await readAll(subProfile)).events, 20001), 100, "its 100 buffers of 20,001 bytes");

    // Without it, none of them is recorded (none is a fork of the program).
    const base2 = join(out, 'forks');
    const r2 = await hpRecord(['--python', py!.exe, '--follow-fork', '-o', base2, '--', 'spawnkids.py'], { cwd: SCRIPTS, env, timeoutMs: 120000 });
    t.equal(r2.code, 0, r2.stderr);
    t.same(readdirSync(out).filter((f) => f.startsWith('forks.')).sort(), ['forks.hpd', 'forks.hpm'], '--follow-fork alone: no child profile');
  });
}

t.test(`CPython ${newest.version}: --follow-children leaves pythons it cannot record as they were`, when, async (t) => {
  const versions = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions');
  const old = existsSync(versions)
    ? readdirSync(versions).filter((v) => /^(2\.7|3\.[0-8])\.\d+$/.test(v)).map((v) => join(versions, v, 'bin', `python${v.split('.').slice(0, 2).join('.')}`)).filter((exe) => existsSync(exe))
    : [];
  if (old.length === 0) return t.skip('no CPython 2.7 or 3.0-3.8 under pyenv');
  const out = scratch();
  const plain = await run(newest.exe, ['oldkids.py', ...old], { cwd: SCRIPTS, env });
  const r = await hpRecord(['--python', newest.exe, '-q', '--follow-children', '-o', join(out, 'old'), '--', 'oldkids.py', ...old], { cwd: SCRIPTS, env });
  t.equal(r.code, plain.code);
  t.equal(r.stdout, plain.stdout, `the same output (${old.length} interpreters: ${old.map((e) => e.split('/').pop()).join(', ')})`);
  t.match(r.stdout, /^0 hello from /m);
  t.same(readdirSync(out).sort(), ['old.hpd', 'old.hpm'], 'no profile for them');
});

t.test(`CPython ${newest.version}: two runs on one base at once`, when, async (t) => {
  // hold.py NAME FLAG: records a little, says "ready", waits for FLAG to exist.
  const dir = scratch({
    'hold.py': 'import os, sys, time\nx = [bytearray(10000) for _ in range(100)]\nprint("ready", flush=True)\nend = time.time() + 60\nwhile not os.path.exists(sys.argv[2]) and time.time() < end:\n    time.sleep(0.05)\nprint("done", sys.argv[1], flush=True)\n',
  });
  for (const force of [false, true]) {
    await t.test(force ? 'with --force' : 'without --force', async (t) => {
      const base = join(dir, force ? 'forced' : 'plain');
      const flag = `${base}.flag`;
      const opts = force ? ['--force'] : [];
      let ready!: () => void;
      const isReady = new Promise<void>((resolve) => (ready = resolve));
      const firstRun = hpRecord(['--python', newest.exe, ...opts, '-o', base, '--', 'hold.py', 'first', flag], {
        cwd: dir,
        env,
        timeoutMs: 90000,
        onStdout: (text) => text.includes('ready') && ready(),
      });
      await isReady;
      const loser = await hpRecord(['--python', newest.exe, ...opts, '-o', base, '--', 'hold.py', 'second', flag], { cwd: dir, env });
      writeFileSync(flag, '');
      const first = await firstRun;
      t.equal(first.code, 0, first.stderr);
      t.equal(first.stdout, 'ready\ndone first\n');
      t.equal(loser.code, 1, 'the loser fails');
      t.equal(loser.stdout, '', 'its program never ran');
      t.match(loser.stderr, new RegExp(`^hp-record: ${base}\\.hpm: another recording \\(pid \\d+\\) is writing this profile; wait for it or choose another name\\n$`));
      const p = await readAll(base);
      t.equal(p.complete, true);
      t.same(p.header.argv.slice(-2), ['first', flag], 'the profile is the first run\'s, intact');
      t.same(readdirSync(dir).filter((f) => f.endsWith('.lock')), [], 'no lock file left');
    });
  }
});

// A private mount namespace with a small tmpfs (root, or unprivileged user namespaces), else skip.
const tmpfsSkip = ((): string | false => {
  const dir = scratch();
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs '${dir}'`], { encoding: 'utf8' });
  return r.status === 0 ? false : `cannot mount a private tmpfs (unshare -rm: ${(r.stderr || r.error?.message || '').trim()})`;
})();

/** Run hp-record with a tmpfs of `sizeK` KiB on `dir`, optionally filled first; copies what is left into `keep`. */
function inTmpfs(dir: string, keep: string, sizeK: number, fill: boolean, args: string[], tmpdirThere = false) {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = [
    `mount -t tmpfs -o size=${sizeK}k tmpfs '${dir}' || exit 99`,
    fill ? `dd if=/dev/zero of='${dir}/fill' bs=4k 2>/dev/null` : ':',
    `${tmpdirThere ? `TMPDIR='${dir}' ` : ''}${quoted}; rc=$?`,
    `ls -A '${dir}' > '${keep}/listing'`,
    `for f in '${dir}'/*.hp?; do [ -e "$f" ] && cp "$f" '${keep}/'; done`,
    'exit $rc',
  ].join('\n');
  return run('unshare', ['-rm', 'sh', '-c', script], { cwd: SCRIPTS, env, timeoutMs: 60000 });
}

t.test(`CPython ${newest.version}: a full filesystem`, { skip: skip ?? tmpfsSkip }, async (t) => {
  await t.test('at start-up: the real cause, exit 1 before the program runs, no partial file', async (t) => {
    const dir = scratch();
    const keep = scratch();
    for (const attempt of [1, 2]) {
      const r = await inTmpfs(dir, keep, 64, true, ['--python', newest.exe, '-o', join(dir, 'run'), '--', 'known.py']);
      t.equal(r.code, 1, `run ${attempt}: exit 1`);
      t.equal(r.stdout, '', `run ${attempt}: the program did not run`);
      t.match(r.stderr, new RegExp(`^hp-record: ${dir}/run\\.hpm: No space left on device\\n$`), `run ${attempt}: the cause, not "already exists"`);
      t.equal(readFileSync(join(keep, 'listing'), 'utf8'), 'fill\n', `run ${attempt}: nothing left behind`);
    }
  });

  await t.test('a full temporary directory: hp-record says so before the program runs', async (t) => {
    const dir = scratch();
    const keep = scratch();
    const out = scratch();
    const r = await inTmpfs(dir, keep, 64, true, ['--python', newest.exe, '-o', join(out, 'run'), '--', 'known.py'], true);
    t.equal(r.code, 1);
    t.equal(r.stdout, '', 'the program did not run');
    t.match(r.stderr, new RegExp(`^hp-record: ${dir}/hp-record-\\w+: cannot prepare hp-record's private directory: no space left on device\\n$`));
    t.same(readdirSync(out), [], 'no profile');
    t.equal(readFileSync(join(keep, 'listing'), 'utf8'), 'fill\n', 'no private directory left behind');
  });

  await t.test('mid-run: the summary counts only what reached the disk, and the exit status says the profile is incomplete', async (t) => {
    const dir = scratch();
    const program = scratch({ 'churn.py': 'x = []\nfor i in range(300000):\n    x.append(bytearray(100))\n    if len(x) > 1000: del x[0]\nprint("done", flush=True)\n' });
    const keep = scratch();
    // 1 MiB: a few blocks fit, then a write fails.
    const r = await inTmpfs(dir, keep, 1024, false, ['--python', newest.exe, '--sample', '{}', '-o', join(dir, 'run'), '--', join(program, 'churn.py')]);
    t.equal(r.stdout, 'done\n', 'the program ran to the end');
    t.equal(r.code, 1, 'exit 1: the program succeeded but its profile lost events');
    t.match(r.stderr, /^heapprof: recording stopped: write .*run\.hp[md]: No space left on device$/m);
    const m = /^hp-record: \S+run\.hpm, \S+run\.hpd: ([\d,]+) events, .*recording stopped at [\d.]+ s: write \S+: No space left on device; ([\d,]+) recorded events were not written and later allocations were not recorded: the profile is incomplete$/m.exec(r.stderr);
    t.ok(m, `the summary says so:\n${r.stderr}`);
    const p = await readAll(join(keep, 'run'));
    t.equal(p.complete, false);
    const onDisk = countEvents(p.events);
    t.ok(onDisk > 0, `${onDisk} events reached the disk`);
    t.equal(Number(m?.[1]?.replace(/,/g, '')), onDisk, 'the summary\'s count is exactly what is on disk');
  });
});

// A program may run the atexit handlers itself (atexit._run_exitfuncs()); the recorder's own
// handler then runs from Python code, not at exit: it must not stop recording there.
for (const py of [...new Set([installed[0], installed[installed.length - 1]])].filter((p) => p !== undefined)) {
  t.test(`CPython ${py.version}: atexit._run_exitfuncs() called by the program does not stop the recording`, when, async (t) => {
    const base = join(scratch(), 'runexit');
    const plain = await run(py.exe, ['runexit.py'], { cwd: SCRIPTS, env });
    const r = await hpRecord(['-q', '--python', py.exe, '-o', base, '--', 'runexit.py'], { cwd: SCRIPTS, env });
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, plain.stdout, 'the same output, the late handler included');
    t.equal(r.stdout, 'handler\nafter\nlate handler 1000003\n');
    const back = await readAll(base);
    t.same(back.issues, []);
    t.equal(back.complete, true, 'stopped at the real exit, with its end marker');
    t.equal(allocsOfSize(back.events, 1_000_004), 1, 'the buffer allocated after the handlers ran is recorded');
  });
}
