// hp-record --pid: attaching to a running CPython with gdb, recording, stopping, and leaving the
// process as it was (its output and exit status equal an unprofiled run), on every CPython
// 3.9-3.13 installed; attaching to processes blocked in sleep, accept and long C calls; what a
// killed target or a killed hp-record leaves behind; and the one-line errors.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { afterSeconds, gdbCallCheck, ptraceRefusal, pythonVersionOf } from '../../lib/attach.js';
import { findExecutable } from '../../lib/cmd/record.js';
import { NATIVE_LIB, REPO, readRecording, supportedPythons, unmatchedFrees, unsupportedPython, type PythonInfo } from '../helpers/python.js';

const FIXTURES = join(REPO, 'test', 'fixtures', 'attach');
const HP_RECORD = join(REPO, 'bin', 'hp-record.js');
const HP_SNAPSHOT = join(REPO, 'bin', 'hp-snapshot.js');
const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1', PYTHONDONTWRITEBYTECODE: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

/** A process with its output collected as it comes. */
interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor: (stream: 'out' | 'err', pattern: RegExp, timeoutMs?: number) => Promise<void>;
}

function start(cmd: string, args: string[], cwd = FIXTURES, env: NodeJS.ProcessEnv = childEnv): Proc {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const waitFor = async (stream: 'out' | 'err', pattern: RegExp, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(stream === 'out' ? out : err)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in ${cmd} ${args.join(' ')}: stdout ${JSON.stringify(out)} stderr ${JSON.stringify(err)}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        await sleep(100); // let the last output arrive
        if (pattern.test(stream === 'out' ? out : err)) return;
        throw new Error(`${cmd} ${args.join(' ')} exited waiting for ${pattern}: stdout ${JSON.stringify(out)} stderr ${JSON.stringify(err)}`);
      }
      await sleep(50);
    }
  };
  return { child, out: () => out, err: () => err, exited, waitFor };
}

function hpRecord(args: string[], env: NodeJS.ProcessEnv = childEnv): Proc {
  return start(process.execPath, [HP_RECORD, ...args], FIXTURES, env);
}

async function runHp(args: string[], env: NodeJS.ProcessEnv = childEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = hpRecord(args, env);
  const { code } = await p.exited;
  await sleep(20);
  return { code, stdout: p.out(), stderr: p.err() };
}

/** The fixture's output, checked line by line: `tick i 6` for i = 0.., then `done`. */
function checkServerOutput(t: Tap.Test, out: string, what: string): void {
  const lines = out.trimEnd().split('\n');
  t.equal(lines[0], 'ready', `${what}: starts with ready`);
  t.equal(lines.at(-1), 'done', `${what}: ends with done`);
  const ticks = lines.slice(1, -1);
  t.ok(ticks.length > 0, `${what}: ticked`);
  t.ok(ticks.every((l, i) => l === `tick ${i} 6`), `${what}: every tick line in order and correct`);
}

const gdb = findExecutable('gdb');
const pythons = supportedPythons();
const base = !existsSync(NATIVE_LIB) ? 'native hook not built' : !gdb ? 'gdb not installed' : pythons.length === 0 ? 'no CPython 3.9-3.13' : null;
if (base) t.plan(0, base);
// Where gdb cannot give a process back intact (some virtual CPUs), hp-record refuses to attach:
// the attaching tests then have nothing to attach with, and say why.
const broken = base === null ? await gdbCallCheck(gdb!) : null;
if (broken) t.comment(`attaching tests skipped: ${broken}`);
const skip = base ?? (broken ? `gdb here: ${broken}` : null);

t.test('pure helpers', async (t) => {
  t.same(pythonVersionOf('/usr/bin/python3.11', ''), { version: [3, 11], python: true, freeThreaded: false });
  t.same(pythonVersionOf('/usr/bin/uwsgi', '7f00-7f01 r-xp 0 0:0 0 /usr/lib/libpython3.12.so.1.0\n'), { version: [3, 12], python: true, freeThreaded: false });
  t.same(pythonVersionOf('/usr/bin/python3.13t', '').freeThreaded, true);
  t.same(pythonVersionOf('/usr/bin/sleep', '7f00 /usr/lib/libc.so.6\n').python, false);
  t.equal(ptraceRefusal(0, false, false), null);
  t.equal(ptraceRefusal(1, false, true), null, 'scope 1: a descendant may be traced');
  t.equal(ptraceRefusal(1, true, false), null, 'scope 1: root may trace anything');
  t.match(ptraceRefusal(1, false, false), /ptrace_scope is 1; .*sysctl kernel\.yama\.ptrace_scope=0/);
  t.match(ptraceRefusal(2, false, false), /ptrace_scope is 2; run hp-record as root/);
  t.equal(ptraceRefusal(2, true, false), null);
  t.match(ptraceRefusal(3, true, false), /only a reboot undoes/);
});

t.test('--duration longer than a 32-bit timer (24.8 days) waits, not stops at once', async (t) => {
  // setTimeout takes at most 2^31-1 ms and fires after 1 ms beyond that (with a
  // TimeoutOverflowWarning on stderr): --duration 2200000 stopped the recording at once.
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  let fired = false;
  const cancel = afterSeconds(2_200_000, () => (fired = true));
  await sleep(300);
  cancel();
  process.removeListener('warning', onWarning);
  t.notOk(fired, 'a 25-day duration has not ended after 0.3 s');
  t.same(warnings, [], 'and no TimeoutOverflowWarning');
  // In chunks: still fires when due, once, and not before.
  let at = 0;
  let count = 0;
  const t0 = Date.now();
  afterSeconds(0.12, () => ((at = Date.now() - t0), count++), 50);
  await sleep(400);
  t.equal(count, 1, 'fires once');
  t.ok(at >= 115, `not before its time (${at} ms)`);
  let cancelledFired = false;
  const stop = afterSeconds(0.12, () => (cancelledFired = true), 50);
  await sleep(70);
  stop();
  await sleep(150);
  t.notOk(cancelledFired, 'cancelled between chunks: never fires');
});

for (const py of skip ? [] : pythons) {
  t.test(`CPython ${py.version}: attach, stop, attach again with another sampler; the server runs as if never touched`, async (t) => {
    const dir = t.testdir();
    const plainStop = join(dir, 'plain.stop');
    const plain = start(py.exe, ['server.py', plainStop]);
    await plain.waitFor('out', /tick 20 /);
    writeFileSync(plainStop, '');
    const plainEnd = await plain.exited;
    t.equal(plainEnd.code, 3, 'unprofiled: exit status 3');
    checkServerOutput(t, plain.out(), 'unprofiled');

    const stopFile = join(dir, 'server.stop');
    const server = start(py.exe, ['server.py', stopFile]);
    await server.waitFor('out', /tick 2 /);
    const pid = String(server.child.pid);

    // First: the default table sampler, 2 s.
    const first = await runHp(['--pid', pid, '-o', join(dir, 'first'), '--duration', '2']);
    t.equal(first.code, 0, `first attach: ${first.stderr}`);
    t.match(first.stderr, /recording process \d+ for 2 s to .*first\.hpm/);
    t.match(first.stderr, /events.*process \d+ left running \(attach [\d.]+ s, detach [\d.]+ s\)/);

    // Second: byte-Poisson, stopped from another hp-record with --stop.
    const second = hpRecord(['--pid', pid, '-o', join(dir, 'second'), '--sample-bytes', '64K']);
    await second.waitFor('err', /recording process/);
    await sleep(1000);
    const stopper = await runHp(['--pid', pid, '--stop']);
    t.equal(stopper.code, 0, `--stop: ${stopper.stderr}`);
    t.match(stopper.stderr, /stopped recording process \d+/);
    const secondEnd = await second.exited;
    t.equal(secondEnd.code, 0, 'the second hp-record exits 0');
    t.match(second.err(), /left running/);

    t.equal(server.child.exitCode, null, 'the server still runs');
    writeFileSync(stopFile, '');
    const end = await server.exited;
    t.equal(end.code, plainEnd.code, 'same exit status as unprofiled');
    checkServerOutput(t, server.out(), 'attached twice');
    t.equal(server.err(), plain.err(), 'same stderr as unprofiled (nothing)');

    for (const [name, kind] of [['first', 'table'], ['second', 'poisson']] as const) {
      const rec = await readRecording(join(dir, name));
      t.equal(rec.header.sampling.kind, kind, `${name}: sampler`);
      t.ok(rec.complete, `${name}: complete profile`);
      t.match(rec.header.notes.join('\n'), /attached by hp-record after the process had run [\d.]+ s; the heap before that is unknown/);
      // Every allocation at the ALLOC line: 100001 bytes, under work() called by the pool.
      const allocs = rec.events.filter((e) => e.op === 'alloc' && e.size === 100001);
      t.ok(allocs.length > 5, `${name}: the pool's allocations after attaching are there (${allocs.length})`);
      const trace = rec.traces.get(allocs[0]!.trace);
      t.equal(trace?.frames[0]?.function, 'work');
      t.match(trace?.frames[0]?.file, /server\.py$/);
      t.equal(trace?.frames[0]?.line, 14, 'the ALLOC line');
      t.ok(trace?.frames.some((f) => f.function === '_worker'), 'called from the thread pool');
      // Blocks allocated before attaching and freed after (the pool pops the oldest) are ignored.
      t.equal(unmatchedFrees(rec.events), 0, `${name}: no free of a block allocated before attaching`);
    }
    const snap = spawnSync(process.execPath, [HP_SNAPSHOT, join(dir, 'first'), '-q'], { env: childEnv, encoding: 'utf8' });
    t.equal(snap.status, 0);
    t.ok(JSON.parse(snap.stdout.split('\n')[0]!).bytes >= 0, 'never negative: the heap before attaching is not subtracted');
  });
}

const py311 = pythons.find((p) => p.minor === 11) ?? pythons[0];

async function attachToBlocked(t: Tap.Test, py: PythonInfo, kind: string, seconds: string): Promise<void> {
  const dir = t.testdir();
  const target = start(py.exe, ['blocked.py', kind, seconds]);
  try {
    await target.waitFor('out', /blocking/);
    const t0 = Date.now();
    const rec = hpRecord(['--pid', String(target.child.pid), '-o', join(dir, kind)]);
    await rec.waitFor('err', /recording process/, 120_000);
    const attachedAfter = (Date.now() - t0) / 1e3;
    const returnedBefore = /returned/.test(target.out());
    if (kind === 'sleep' || kind === 'accept') {
      t.notOk(returnedBefore, `attached while still blocked (${attachedAfter.toFixed(1)} s)`);
    } else if (kind === 'regex') {
      t.ok(returnedBefore, `the GIL is held: attached once the call returned (${attachedAfter.toFixed(1)} s)`);
    } else {
      // The GIL is released: attached at the call's first malloc (OpenSSL allocates), or after it.
      t.pass(`attached ${returnedBefore ? 'after' : 'during'} the call (${attachedAfter.toFixed(1)} s)`);
    }
    if (kind === 'pbkdf2' || kind === 'regex') await target.waitFor('out', /returned/);
    await sleep(1500);
    rec.child.kill('SIGINT');
    const end = await rec.exited;
    t.equal(end.code, 0, `hp-record exits 0: ${rec.err()}`);
    t.equal(target.child.exitCode, null, 'the target still runs');
    if (kind === 'pbkdf2' || kind === 'regex') {
      const recording = await readRecording(join(dir, kind));
      const allocs = recording.events.filter((e) => e.op === 'alloc' && e.size === 50001);
      t.ok(allocs.length > 3, `allocations after the call are recorded (${allocs.length})`);
      const frame = recording.traces.get(allocs[0]?.trace ?? -1)?.frames[0];
      t.equal(frame?.line, 69, 'at the AFTER line');
      t.equal(frame?.function, '<module>');
    }
  } finally {
    target.child.kill('SIGKILL');
    await target.exited;
  }
}

t.test('attach to blocked processes', { skip: skip ?? false }, async (t) => {
  await t.test('time.sleep(600): immediately', (t) => attachToBlocked(t, py311!, 'sleep', '0'));
  await t.test('socket.accept(): immediately', (t) => attachToBlocked(t, py311!, 'accept', '0'));
  await t.test('a long C call that releases the GIL (pbkdf2): when it returns', (t) => attachToBlocked(t, py311!, 'pbkdf2', '8'));
  await t.test('a long C call that holds the GIL (re): when it returns', (t) => attachToBlocked(t, py311!, 'regex', '8'));
});

t.test('a target killed while attached leaves a readable profile; a killed hp-record leaves the target running', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  const stopFile = join(dir, 'stop');
  const server = start(py311!.exe, ['server.py', stopFile]);
  await server.waitFor('out', /tick 2 /);
  const rec = hpRecord(['--pid', String(server.child.pid), '-o', join(dir, 'killed-target')]);
  await rec.waitFor('err', /recording process/);
  await sleep(2500); // past the recorder's once-a-second flush
  server.child.kill('SIGKILL');
  const end = await rec.exited;
  t.equal(end.code, 0, 'hp-record exits 0');
  t.match(rec.err(), /the process ended without closing the profile \(killed by SIGKILL\?\); it is readable up to its last flush: [1-9][\d,]* events/);
  const snap = spawnSync(process.execPath, [HP_SNAPSHOT, join(dir, 'killed-target')], { env: childEnv, encoding: 'utf8' });
  t.equal(snap.status, 0, 'hp-snapshot reads it');
  t.match(snap.stderr, /incomplete profile/);
  t.match(snap.stdout, /server\.py","line":14/, 'with the allocations flushed before the kill');

  const stopFile2 = join(dir, 'stop2');
  const server2 = start(py311!.exe, ['server.py', stopFile2]);
  await server2.waitFor('out', /tick 2 /);
  const rec2 = hpRecord(['--pid', String(server2.child.pid), '-o', join(dir, 'killed-recorder')]);
  await rec2.waitFor('err', /recording process/);
  await sleep(1000);
  rec2.child.kill('SIGKILL');
  await rec2.exited;
  await sleep(1500);
  t.equal(server2.child.exitCode, null, 'the target still runs after hp-record was killed');
  const rec2b = await readRecording(join(dir, 'killed-recorder'));
  t.ok(rec2b.complete, 'and it stopped recording (the profile has its end marker)');
  writeFileSync(stopFile2, '');
  const end2 = await server2.exited;
  t.equal(end2.code, 3);
  checkServerOutput(t, server2.out(), 'after hp-record was killed');
  t.equal(server2.err(), '');

  // A target that exits by itself closes its profile at exit: hp-record says so (it used to say
  // "exited or was killed ... readable up to its last flush" of a complete profile).
  const stopFile3 = join(dir, 'stop3');
  const server3 = start(py311!.exe, ['server.py', stopFile3]);
  await server3.waitFor('out', /tick 2 /);
  const rec3 = hpRecord(['--pid', String(server3.child.pid), '-o', join(dir, 'exited-target')]);
  await rec3.waitFor('err', /recording process/);
  await sleep(500);
  writeFileSync(stopFile3, '');
  t.equal((await server3.exited).code, 3, 'the target exits with its own status');
  t.equal((await rec3.exited).code, 0);
  t.match(rec3.err(), /exited-target\.hpd: the process ended and the recorder closed the profile: [1-9][\d,]* events \(attach [\d.]+ s\)\n$/);
  t.ok((await readRecording(join(dir, 'exited-target'))).complete, 'the profile is complete');
  checkServerOutput(t, server3.out(), 'a target that exited while recorded');
});

t.test('a gdb that cannot give a process back intact: refused before the target is touched', { skip: base ?? false }, async (t) => {
  // A stand-in gdb that fails the check the way gdb does on such machines, and would say so if
  // it were ever run for the attach itself.
  const dir = t.testdir();
  const fake = join(dir, 'gdb');
  writeFileSync(fake, `#!/bin/sh\ncase "$*" in *getpid*) echo "Couldn't write extended state status: Bad address."; exit 0;; esac\necho "fake gdb: run for the attach" >&2\nexit 1\n`);
  chmodSync(fake, 0o755);
  const stopFile = join(dir, 'stop');
  const server = start(pythons[0]!.exe, ['server.py', stopFile]);
  await server.waitFor('out', /tick 1 /);
  const r = await runHp(['--pid', String(server.child.pid), '-o', join(dir, 'p')], { ...childEnv, HEAPPROF_GDB: fake });
  t.equal(r.code, 1);
  t.match(r.stderr, /^hp-record: --pid \d+: gdb cannot give a process back intact on this machine \(it said: Couldn't write extended state status: Bad address\.\); attaching would damage the process, so hp-record does not attach\n$/);
  t.notOk(existsSync(join(dir, 'p.hpm')), 'nothing written');
  writeFileSync(stopFile, '');
  t.equal((await server.exited).code, 3, 'the target ends normally');
  checkServerOutput(t, server.out(), 'after the refused attach');
  t.equal(server.err(), '');
});

t.test('errors: one line, documented status, target untouched', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  const noSuch = await runHp(['--pid', '999999999']);
  t.equal(noSuch.code, 2);
  t.equal(noSuch.stderr, 'hp-record: --pid 999999999: no such process\n');

  const sleeper = start('sleep', ['60']);
  await sleep(100);
  const notPython = await runHp(['--pid', String(sleeper.child.pid)]);
  t.equal(notPython.code, 2);
  t.match(notPython.stderr, /^hp-record: --pid \d+: not a Python process \(it runs .*sleep\)\n$/);
  sleeper.child.kill();

  const old = unsupportedPython();
  if (old) {
    const oldProc = start(old.exe, ['-c', 'import time; print("up", flush=True); time.sleep(60)']);
    await oldProc.waitFor('out', /up/);
    const r = await runHp(['--pid', String(oldProc.child.pid)]);
    t.equal(r.code, 2);
    t.match(r.stderr, new RegExp(`^hp-record: --pid \\d+: Python ${old.version.replace('.', '\\.')} is not supported \\(heapprof records CPython 3\\.9 to 3\\.13\\)\\n$`));
    oldProc.child.kill();
  }

  const stopFile = join(dir, 'stop');
  const server = start(py311!.exe, ['server.py', stopFile]);
  await server.waitFor('out', /tick 1 /);
  const pid = String(server.child.pid);
  const noGdb = await runHp(['--pid', pid], { ...childEnv, HEAPPROF_GDB: '/nonexistent/gdb' });
  t.equal(noGdb.code, 1);
  t.match(noGdb.stderr, /^hp-record: --pid \d+: \/nonexistent\/gdb not found: attaching needs gdb/);
  const notRecorded = await runHp(['--pid', pid, '--stop']);
  t.equal(notRecorded.code, 1);
  t.equal(notRecorded.stderr, `hp-record: --pid ${pid}: not being recorded by hp-record\n`);
  const usage = await runHp(['--pid', pid, '--mode', 'stats']);
  t.equal(usage.code, 2);
  const withProgram = await runHp(['--pid', pid, '--', 'x.py']);
  t.equal(withProgram.code, 2);

  const first = hpRecord(['--pid', pid, '-o', join(dir, 'one')]);
  await first.waitFor('err', /recording process/);
  const again = await runHp(['--pid', pid, '-o', join(dir, 'two')]);
  t.equal(again.code, 1);
  t.match(again.stderr, /^hp-record: --pid \d+: already being recorded by hp-record \(pid \d+, to .*one\); stop it with: hp-record --pid \d+ --stop\n$/);
  // --stop against a suspended hp-record says so at once (it waited 30 s), and the request
  // waits in it: resumed, it stops.
  first.child.kill('SIGSTOP');
  const suspended = await runHp(['--pid', pid, '--stop']);
  t.equal(suspended.code, 1);
  t.equal(suspended.stderr, `hp-record: --pid ${pid}: hp-record (pid ${first.child.pid}) is suspended; it stops recording once resumed (kill -CONT ${first.child.pid})\n`);
  first.child.kill('SIGCONT');
  t.equal((await first.exited).code, 0, 'resumed, it took the stop request');
  t.match(first.err(), /one\.hpm/, 'and reported its profile');
  t.notOk(existsSync(join(dir, 'two.hpm')), 'the refused attach wrote nothing');
  writeFileSync(stopFile, '');
  t.equal((await server.exited).code, 3, 'the target ends normally');
  checkServerOutput(t, server.out(), 'after the refused attaches');
  t.equal(server.err(), '');

  // A process heapprof is already recording from inside (here: started by hp-record).
  const stopInner = join(dir, 'stop-inner');
  const inner = hpRecord(['--python', py311!.exe, '-o', join(dir, 'inner'), '--', 'server.py', stopInner]);
  await inner.waitFor('out', /tick 1 /);
  const childPid = readFileSync(`/proc/${inner.child.pid}/task/${inner.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]!;
  const busy = await runHp(['--pid', childPid, '-o', join(dir, 'three')]);
  t.equal(busy.code, 1);
  t.equal(busy.stderr, `hp-record: --pid ${childPid}: the process is already being recorded (heapprof is running inside it)\n`);
  writeFileSync(stopInner, '');
  t.equal((await inner.exited).code, 3, 'the recorded process ends normally');
  t.match(inner.err(), /inner\.hpm, .*inner\.hpd: [\d,]+ events/, 'and its own recording was not disturbed');
});

t.test('a target that ends before its recorder thread gets the GIL: hp-record says so, and does not wait forever', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  // A long C call that holds the GIL (sum over a range allocates ints, where gdb injects), then exit.
  writeFileSync(join(dir, 'exiter.py'), 'import sys, time\nprint("ready", flush=True)\ntime.sleep(0.3)\nsum(range(15 * 10**7))\nsys.exit(6)\n');
  const target = start(py311!.exe, [join(dir, 'exiter.py')]);
  await target.waitFor('out', /ready/);
  const began = Date.now();
  const rec = hpRecord(['--pid', String(target.child.pid), '-o', join(dir, 'gone')]);
  const exited = await target.exited;
  t.equal(exited.code, 6, 'the target ends with its own status');
  const timeout = setTimeout(() => rec.child.kill('SIGKILL'), 60_000);
  const end = await rec.exited;
  clearTimeout(timeout);
  t.ok(end.signal === null, `hp-record ended by itself, ${((Date.now() - began) / 1000).toFixed(1)} s after it started (it waited forever)`);
  if (/recording process/.test(rec.err())) {
    t.comment('the thread got the GIL before the end this time: the race was not reproduced');
    t.equal(end.code, 0);
  } else {
    t.equal(end.code, 1);
    t.match(rec.err(), /hp-record: --pid \d+: the process ended before recording could start \((before its recorder thread ran|while gdb was attaching)\); nothing was recorded\n$/);
  }
});

t.test('a target whose every thread waits on a lock: the wait names the lock, and Ctrl-C leaves the target as it was', { skip: skip ?? false }, async (t) => {
  // hp-record said "it may be inside a long call that holds the GIL" of a process that held none.
  const dir = t.testdir();
  writeFileSync(join(dir, 'waiter.py'), 'import signal, sys, threading\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\nprint("ready", flush=True)\nthreading.Event().wait()\n');
  const target = start(py311!.exe, [join(dir, 'waiter.py')]);
  await target.waitFor('out', /ready/);
  const pid = target.child.pid!;
  const rec = hpRecord(['--pid', String(pid), '-o', join(dir, 'locked')]);
  await rec.waitFor('err', /waiting for process/, 30_000);
  if (process.arch === 'x64') {
    t.match(rec.err(), new RegExp(`^hp-record: waiting for process ${pid} to reach a point where it can be attached \\(every thread of it waits on a lock, where the hook cannot be loaded; it is attached when one runs again; Ctrl-C gives up\\)\\n$`));
  }
  rec.child.kill('SIGINT');
  const end = await rec.exited;
  t.equal(end.code, 1, rec.err());
  t.match(rec.err(), new RegExp(`hp-record: --pid ${pid}: interrupted before attaching; nothing was recorded\\n$`));
  t.notOk(existsSync(join(dir, 'locked.hpm')), 'nothing written');
  target.child.kill('SIGTERM');
  t.equal((await target.exited).code, 5, 'the target still runs, and handles its signals as before');
});

t.test('os.fork() in an attached process prints no "multi-threaded" warning (CPython 3.12+), and the recording stays controllable', { skip: skip ?? false }, async (t) => {
  const recent = pythons.filter((p) => p.minor >= 12);
  if (recent.length === 0) return t.skip('no CPython 3.12 or later');
  for (const py of recent) {
    await t.test(`CPython ${py.version}`, async (t) => {
      const dir = t.testdir();
      const go = join(dir, 'go');
      const stop = join(dir, 'stop');
      const target = start(py.exe, [join(FIXTURES, 'forker.py'), go, stop]);
      await target.waitFor('out', /ready/);
      const rec = hpRecord(['--pid', String(target.child.pid), '-o', join(dir, 'fork')]);
      await rec.waitFor('err', /recording process/);
      writeFileSync(go, '');
      await target.waitFor('out', /forked/);
      const stopped = await runHp(['--pid', String(target.child.pid), '--stop']);
      t.equal(stopped.code, 0, `--stop after the fork: ${JSON.stringify(stopped.stderr)}`);
      t.equal((await rec.exited).code, 0);
      t.match(rec.err(), /events.*; process \d+ left running/, 'the control thread came back after the fork');
      writeFileSync(stop, '');
      t.equal((await target.exited).code, 3);
      t.equal(target.err(), '', 'no DeprecationWarning: the control thread left for the fork');
      t.equal(target.out(), 'ready\nforked\ndone\n');
    });
  }
});

t.test('--follow-fork: the summary lists the children forked while attached', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  const go = join(dir, 'go');
  const stop = join(dir, 'stop');
  const target = start(py311!.exe, [join(FIXTURES, 'forker.py'), go, stop, 'alloc']);
  await target.waitFor('out', /ready/);
  const pid = target.child.pid!;
  const rec = hpRecord(['--pid', String(pid), '--follow-fork', '-o', join(dir, 'fork')]);
  await rec.waitFor('err', /recording process/);
  writeFileSync(go, '');
  await target.waitFor('out', /forked/);
  const stopped = await runHp(['--pid', String(pid), '--stop']);
  t.equal(stopped.code, 0, stopped.stderr);
  t.equal((await rec.exited).code, 0, rec.err());
  const child = readdirSync(dir).filter((n) => /^fork\.\d+\.hpm$/.test(n));
  t.equal(child.length, 1, `one child profile: ${readdirSync(dir).join(' ')}`);
  t.match(rec.err(), new RegExp(`hp-record: child \\d+: \\S*${child[0]!.replace(/\./g, '\\.')}, `), 'the summary names the child\'s profile');
  t.notMatch(rec.err(), /did not write a profile/, 'every fork is accounted for');
  writeFileSync(stop, '');
  t.equal((await target.exited).code, 3);
});

t.test("--stop stops hp-record's recording, not one the program started after stopping it", { skip: skip ?? false }, async (t) => {
  // --stop used to stop whatever was recording (the program's own profile) and report its counters.
  const dir = t.testdir();
  const go = join(dir, 'go');
  const end = join(dir, 'end');
  const code = [
    'import os, sys, time',
    'def wait(path):',
    '    while not os.path.exists(path): time.sleep(0.02)',
    "print('ready', flush=True)",
    `wait(${JSON.stringify(go)})`,
    'x = [bytearray(10000) for _ in range(100)]',
    "heapprof = sys.modules['heapprof']",
    'heapprof.stop()',
    `heapprof.start(${JSON.stringify(join(dir, 'own'))})`,
    "print('own', flush=True)",
    `wait(${JSON.stringify(end)})`,
    "print('still', heapprof.isProfiling(), flush=True)",
  ].join('\n');
  const target = start(py311!.exe, ['-c', code]);
  await target.waitFor('out', /ready/);
  const base = join(dir, 'att');
  const rec = hpRecord(['--pid', String(target.child.pid), '--sample', '{}', '-o', base]);
  await rec.waitFor('err', /recording process/);
  writeFileSync(go, '');
  await target.waitFor('out', /own/);
  const stopped = await runHp(['--pid', String(target.child.pid), '--stop']);
  t.equal(stopped.code, 0, stopped.stderr);
  t.equal((await rec.exited).code, 0, rec.err());
  writeFileSync(end, '');
  t.equal((await target.exited).code, 0, target.err());
  t.equal(target.out(), 'ready\nown\nstill True\n', "the program's own recording went on");
  const recording = await readRecording(base);
  const n = recording.events.filter((e) => e.op === 'alloc' || e.op === 'free').length;
  t.ok(n >= 100, `hp-record's profile holds the program's buffers (${n} events)`);
  const line = /: ([\d,]+) events, /.exec(rec.err());
  t.equal(Number(line?.[1]?.replace(/,/g, '')), n, "the summary counts hp-record's profile, not the program's");
});

t.test('a target with more than 1024 open descriptors (a busy server) stays recorded until stopped', { skip: skip ?? false }, async (t) => {
  // The control thread waited in select.select, which refuses a descriptor from 1024 on: the
  // recording stopped as soon as it started.
  const dir = t.testdir();
  const code = [
    'import os, resource, time',
    'soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)',
    'resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))',
    "keep = [os.open('/dev/null', os.O_RDONLY) for _ in range(1500)]",
    "print('ready', flush=True)",
    'for i in range(600):',
    '    x = [bytearray(3000) for _ in range(100)]',
    '    time.sleep(0.01)',
    "print('done', flush=True)",
  ].join('\n');
  const target = start(py311!.exe, ['-c', code]);
  await target.waitFor('out', /ready/);
  const base = join(dir, 'fds');
  const rec = hpRecord(['--pid', String(target.child.pid), '--duration', '2', '-o', base]);
  t.equal((await rec.exited).code, 0, rec.err());
  t.match(rec.err(), /events, .*; process \d+ left running/, `recorded for its duration, then detached: ${rec.err()}`);
  t.equal(target.child.exitCode, null, 'the target runs on');
  const recording = await readRecording(base);
  const allocs = recording.events.filter((e) => e.op === 'alloc' && e.size >= 3000).length;
  t.ok(allocs > 1000, `its buffers over the 2 s (${allocs})`);
  t.equal((await target.exited).code, 0);
  t.equal(target.out(), 'ready\ndone\n');
});

t.test('a target with a module of its own named heapprof: the reason, not "closed the connection"', { skip: skip ?? false }, async (t) => {
  // The injected code reports a failed import in place of its hello, and hp-record dropped it.
  const dir = t.testdir({ 'heapprof.py': 'NAME = "mine"\n' });
  const code = ['import sys, time', `sys.path.insert(0, ${JSON.stringify(dir)})`, 'import heapprof', "print('ready', flush=True)", 'time.sleep(600)'].join('\n');
  const target = start(py311!.exe, ['-c', code]);
  await target.waitFor('out', /ready/);
  const r = await runHp(['--pid', String(target.child.pid), '-o', join(dir, 'x')]);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, /^hp-record: --pid \d+: cannot load heapprof in the process: No module named 'heapprof\._attach'; 'heapprof' is not a package\n$/);
  t.equal(target.child.exitCode, null, 'the target runs on');
  target.child.kill('SIGKILL');
  await target.exited;
});

t.test('a target that ends while gdb attaches: one line that says so, not a bare "gdb could not attach"', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  // How long hp-record takes to reach gdb depends on the machine: several lifetimes, so that one
  // of them ends while gdb attaches. Each ends one way: before the check (no such process, 2),
  // during the attach (1), or after the recording started (0).
  writeFileSync(join(dir, 'quick.py'), 'import sys, time\nprint("ready", flush=True)\ntime.sleep(float(sys.argv[1]))\n');
  const seen: string[] = [];
  for (const [i, life] of ['0.6', '0.9', '1.2', '1.6'].entries()) {
    const target = start(py311!.exe, [join(dir, 'quick.py'), life]);
    await target.waitFor('out', /ready/);
    const r = await runHp(['--pid', String(target.child.pid), '-o', join(dir, `q${i}`)]);
    await target.exited;
    seen.push(r.stderr);
    if (r.code === 0) continue;
    t.match(r.stderr, /^hp-record: --pid \d+: (the process ended before recording could start \((while gdb was attaching|before its recorder thread ran|as its recorder was starting)\); nothing was recorded|no such process)\n$/, `a ${life} s life`);
    t.equal(r.code, /no such process/.test(r.stderr) ? 2 : 1, `a ${life} s life: the documented status`);
  }
  t.notOk(seen.some((e) => /gdb could not attach\n/.test(e)), `never a bare "gdb could not attach": ${JSON.stringify(seen)}`);
});

t.test('a target that ends while its recorder starts: one line that says so, or the profile it left', { skip: skip ?? false }, async (t) => {
  // Deterministic: the target has imported heapprof._attach itself and replaced its _start, so
  // that it ends right after hp-record's configuration arrives: before recording starts
  // (nothing recorded, exit 1), or once recording has started (the profile is there, exit 0).
  // It happened on its own in CI with a process whose main thread returned at that moment.
  const dir = t.testdir();
  const script = (body: string): string =>
    ['import os, sys, time', `sys.path.insert(0, ${JSON.stringify(join(REPO, 'python'))})`, 'import heapprof._attach as a', 'sys.path.pop(0)', 'real = a._start', body, 'print("ready", flush=True)', 'time.sleep(60)', ''].join('\n');
  writeFileSync(join(dir, 'before.py'), script('a._start = lambda config: os._exit(0)'));
  writeFileSync(join(dir, 'after.py'), script('def started(config):\n    real(config)\n    os._exit(0)\na._start = started'));
  for (const kind of ['before', 'after']) {
    const target = start(py311!.exe, [join(dir, `${kind}.py`)]);
    await target.waitFor('out', /ready/);
    const r = await runHp(['--pid', String(target.child.pid), '-o', join(dir, kind)]);
    t.equal((await target.exited).code, 0, `${kind}: the target's own exit`);
    if (kind === 'before') {
      t.equal(r.code, 1, 'before: exit status 1');
      t.match(r.stderr, /^hp-record: --pid \d+: the process ended before recording could start \(as its recorder was starting\); nothing was recorded\n$/);
      t.notOk(existsSync(join(dir, 'before.hpm')), 'before: no profile');
    } else {
      t.equal(r.code, 0, `after: exit status 0: ${r.stderr}`);
      t.match(r.stderr, /after\.hpm, .*after\.hpd: the process ended and the recorder closed the profile: \d+ events/);
      const rec = await readRecording(join(dir, 'after'));
      t.ok(rec.complete, 'after: the profile was closed by os._exit');
      t.same(rec.issues, [], 'after: the profile reads without issues');
    }
  }
});

t.test('a process of this user that is not dumpable: the refusal says why, not "another user"', { skip: base ?? false }, async (t) => {
  // Root reads every /proc entry: run both sides as nobody there (with a CPython nobody can
  // run: pyenv's live under a private home), as this user otherwise.
  const root = process.getuid?.() === 0;
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  const python = root ? [11, 12, 13, 10, 9].map((m) => `/usr/bin/python3.${m}`).find((p) => existsSync(p)) : pythons[0]!.exe;
  if (root && (!setpriv || !python)) return t.skip('as root, this needs setpriv and a CPython outside /root');
  const as = (cmd: string[]): string[] => (root ? [setpriv!, '--reuid=65534', '--regid=65534', '--clear-groups', ...cmd] : cmd);
  const dir = t.testdir();
  chmodSync(dir, 0o777);
  const script = join(dir, 'undumpable.py');
  writeFileSync(script, 'import ctypes, time\nctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0\nprint("ready", flush=True)\ntime.sleep(60)\n');
  chmodSync(script, 0o644);
  const [cmd, ...args] = as([python!, script]);
  const target = start(cmd!, args, dir);
  await target.waitFor('out', /ready/);
  const pid = String(target.child.pid);
  // Without NODE_OPTIONS, which the test runner sets on every child to instrument node (its
  // exit handler would fail to write under the checkout as nobody).
  const [rcmd, ...rargs] = ['/usr/bin/env', '-u', 'NODE_OPTIONS', ...as([process.execPath, HP_RECORD, '--pid', pid, '-o', join(dir, 'u')])];
  const r = start(rcmd!, rargs, dir, { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TZ: 'UTC' });
  const end = await r.exited;
  await sleep(20);
  target.child.kill();
  t.equal(end.code, 1);
  t.equal(r.err(), `hp-record: --pid ${pid}: cannot inspect the process (permission denied, though it runs as this user): it is not dumpable (prctl PR_SET_DUMPABLE, a setuid or setcap program) or lives in another user namespace; run hp-record as root\n`);
});
