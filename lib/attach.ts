// hp-record --pid: record a running CPython process. Checks the target, has gdb load the
// native hook into it and start a thread that takes the GIL and imports heapprof
// (native/attach_gdb.py, native/attach.c, python/heapprof/_attach.py), then drives the
// recording over a Unix socket until --duration, a signal, `hp-record --pid PID --stop`, or
// the target's exit. Stopping closes the profile and leaves the process running; the
// connection's end (hp-record killed included) always stops the recording in the target.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { EXIT_DATA, HpError, UsageError, isQuiet } from './cli.js';
import { ROOT } from './where.cjs';

export const GDB_SCRIPT = join(ROOT, 'native', 'attach_gdb.py');
const PACKAGE_PARENT = join(ROOT, 'python');

const MIN_MINOR = 9;
const MAX_MINOR = 13;

/** What /proc says about the process to attach to. */
export interface TargetInfo {
  pid: number;
  exe: string;
  /** [major, minor], or null when neither the executable's nor libpython's name says. */
  version: [number, number] | null;
  uid: number;
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The Python version a process runs, from libpython3.X.so in its maps or a python3.X executable name. */
export function pythonVersionOf(exe: string, maps: string): { version: [number, number] | null; python: boolean; freeThreaded: boolean } {
  const lib = /\/libpython(\d)\.(\d+)(t?)[a-z]*\.so/.exec(maps);
  const name = /^python(\d)\.(\d+)(t?)[a-z]*$/.exec(basename(exe));
  const m = lib ?? name;
  if (m) return { version: [Number(m[1]), Number(m[2])], python: true, freeThreaded: m[3] === 't' };
  const python = /python/i.test(basename(exe)) || /\/libpython\d/.test(maps);
  return { version: null, python, freeThreaded: false };
}

/**
 * Why ptrace would be refused, from Yama's ptrace_scope (null: allowed). `privileged`: root or
 * CAP_SYS_PTRACE; `isChild`: the target is a descendant of hp-record.
 */
export function ptraceRefusal(scope: number, privileged: boolean, isChild: boolean): string | null {
  const path = '/proc/sys/kernel/yama/ptrace_scope';
  if (scope <= 0) return null;
  if (scope === 1 && (privileged || isChild)) return null;
  if (scope === 2 && privileged) return null;
  if (scope >= 3) return `ptrace is disabled: ${path} is ${scope}, which only a reboot undoes`;
  const fix = scope === 1 ? `run hp-record as root (or with CAP_SYS_PTRACE), or allow it with: sudo sysctl kernel.yama.ptrace_scope=0` : `run hp-record as root (or with CAP_SYS_PTRACE)`;
  return `ptrace not permitted: ${path} is ${scope}; ${fix}`;
}

function hasCapSysPtrace(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readProc('/proc/self/status') ?? '');
  return m ? (BigInt(`0x${m[1]}`) & (1n << 19n)) !== 0n : false;
}

/** Check everything /proc can tell before touching the process. Throws UsageError (2) or HpError (1). */
export function inspectTarget(pid: number): TargetInfo {
  const where = `--pid ${pid}`;
  if (pid === process.pid) throw new UsageError(`${where}: that is hp-record itself`);
  let st;
  try {
    st = statSync(`/proc/${pid}`);
  } catch {
    throw new UsageError(`${where}: no such process`);
  }
  const status = readProc(`/proc/${pid}/status`) ?? '';
  if (/^State:\s*Z/m.test(status)) throw new UsageError(`${where}: the process has exited (a zombie)`);
  let exe: string;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${where}: no such process`);
    const owner = Number(/^Uid:\s*(\d+)/m.exec(status)?.[1] ?? st.uid);
    if (code === 'EACCES' && owner === (process.getuid?.() ?? 0)) {
      // Same user, yet refused: the kernel's ptrace access check, which gdb would meet too.
      throw new HpError(`${where}: cannot inspect the process (permission denied, though it runs as this user): it is not dumpable (prctl PR_SET_DUMPABLE, a setuid or setcap program) or lives in another user namespace; run hp-record as root`);
    }
    throw new HpError(`${where}: cannot inspect the process (${code === 'EACCES' ? 'permission denied' : code}): it belongs to another user (uid ${owner}); run hp-record as that user or as root`);
  }
  const maps = readProc(`/proc/${pid}/maps`) ?? '';
  const found = pythonVersionOf(exe.replace(/ \(deleted\)$/, ''), maps);
  if (!found.python) throw new UsageError(`${where}: not a Python process (it runs ${exe})`);
  if (found.version) {
    const [major, minor] = found.version;
    if (major !== 3 || minor < MIN_MINOR || minor > MAX_MINOR) {
      throw new UsageError(`${where}: Python ${major}.${minor} is not supported (heapprof records CPython 3.${MIN_MINOR} to 3.${MAX_MINOR})`);
    }
    if (found.freeThreaded) throw new UsageError(`${where}: free-threaded CPython is not supported`);
  }
  const tracer = Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1] ?? 0);
  if (tracer !== 0) throw new HpError(`${where}: the process is already being traced by process ${tracer} (a debugger?)`);
  const uid = Number(/^Uid:\s*(\d+)/m.exec(status)?.[1] ?? st.uid);
  const myUid = process.getuid?.() ?? 0;
  const privileged = myUid === 0 || hasCapSysPtrace();
  if (!privileged && uid !== myUid) throw new HpError(`${where}: the process belongs to uid ${uid}; run hp-record as that user or as root`);
  const scope = Number((readProc('/proc/sys/kernel/yama/ptrace_scope') ?? '0').trim());
  const refusal = ptraceRefusal(scope, privileged, isDescendant(pid));
  if (refusal) throw new HpError(`${where}: ${refusal}`);
  return { pid, exe, version: found.version, uid };
}

/** True once the process has ended (gone, or a zombie its parent has not reaped). */
/** The fields of /proc/PID/stat after the command name (state, ppid, ...), or null when /proc does not say. */
function statFields(pid: number): string[] | null {
  const stat = readProc(`/proc/${pid}/stat`);
  // The command name (in parentheses) may hold spaces and parentheses: the fields follow the last ')'.
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** A process's state letter (R, S, D, T, t, Z, ...), or null when /proc does not say. */
function procState(pid: number): string | null {
  return statFields(pid)?.[0] ?? null;
}

function hasExited(pid: number): boolean {
  const state = procState(pid);
  return state === null || state === 'Z';
}

function isDescendant(pid: number): boolean {
  let p = pid;
  for (let i = 0; i < 64 && p > 1; i++) {
    const fields = statFields(p);
    if (!fields) return false;
    p = Number(fields[1]);
    if (p === process.pid) return true;
  }
  return false;
}

/** Where hp-record sessions register (one file per recorded pid), private to the user. */
function sessionDir(): string {
  const dir = join(process.env.HEAPPROF_RUNTIME_DIR || tmpdir(), `heapprof-attach-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

interface Session {
  recorder: number;
  target: number;
  base: string;
}

/** Whether a process runs: a zombie (ended, not yet reaped by its parent) does not. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return procState(pid) !== 'Z';
}

function readSession(pid: number): { path: string; session: Session | null } {
  const path = join(sessionDir(), `${pid}.json`);
  try {
    const session = JSON.parse(readFileSync(path, 'utf8')) as Session;
    if (typeof session.recorder === 'number' && alive(session.recorder)) return { path, session };
  } catch {
    // none, or unreadable: treated as none
  }
  return { path, session: null };
}

/** Register this hp-record as the one recording `pid`; throws if another is. Returns the release function. */
function claimSession(pid: number, base: string): () => void {
  const { path, session } = readSession(pid);
  if (session) {
    throw new HpError(`--pid ${pid}: already being recorded by hp-record (pid ${session.recorder}, to ${session.base}); stop it with: hp-record --pid ${pid} --stop`);
  }
  try {
    unlinkSync(path); // a stale session: its hp-record is gone
  } catch {
    // none
  }
  try {
    writeFileSync(path, JSON.stringify({ recorder: process.pid, target: pid, base }), { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HpError(`--pid ${pid}: already being recorded by another hp-record`);
    throw e;
  }
  return () => {
    try {
      const now = JSON.parse(readFileSync(path, 'utf8')) as Session;
      if (now.recorder === process.pid) unlinkSync(path);
    } catch {
      // gone already
    }
  };
}

/**
 * Whether every thread of pid is blocked in futex (x86-64's system call 202): a lock or a condition
 * wait (threading.Event().wait()), where native/attach_gdb.py does not load the hook. False when
 * /proc does not say (another architecture, or no access).
 */
function everyThreadOnALock(pid: number): boolean {
  if (process.arch !== 'x64') return false;
  try {
    const tasks = readdirSync(`/proc/${pid}/task`);
    return tasks.length > 0 && tasks.every((tid) => readProc(`/proc/${pid}/task/${tid}/syscall`)?.split(' ')[0] === '202');
  } catch {
    return false;
  }
}

/** `hp-record --pid PID --stop`: ask the hp-record recording PID to stop, and wait until it has. */
export async function stopSession(pid: number, say: (line: string) => void): Promise<void> {
  const { session } = readSession(pid);
  if (!session) throw new HpError(`--pid ${pid}: not being recorded by hp-record`);
  process.kill(session.recorder, 'SIGINT');
  const deadline = Date.now() + 30_000;
  while (alive(session.recorder)) {
    // Suspended (Ctrl-Z, SIGSTOP) or held by a debugger: the request waits in it until it runs again.
    const state = procState(session.recorder);
    if (state === 'T' || state === 't') {
      throw new HpError(`--pid ${pid}: hp-record (pid ${session.recorder}) is suspended; it stops recording once resumed (kill -CONT ${session.recorder})`);
    }
    if (Date.now() > deadline) throw new HpError(`--pid ${pid}: hp-record (pid ${session.recorder}) did not stop within 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  say(`stopped recording process ${pid} (profile ${session.base})`);
}

/** The native hook, where python/heapprof/_native.py would load it from. */
export function nativeLibrary(): string {
  const candidates = [process.env.HEAPPROF_NATIVE_LIB, join(ROOT, 'build', 'Release', 'heapprof_hook.so'), join(ROOT, 'build', 'Debug', 'heapprof_hook.so')];
  for (const c of candidates) if (c && existsSync(c)) return resolve(c);
  throw new HpError(`native hook not built: none of ${candidates.filter(Boolean).join(', ')} exists (run npx node-gyp rebuild)`);
}

/** The Python run by the thread native/attach.c starts: import our package, hand over to _attach. */
export function injectedCode(packageParent: string, ctlPath: string, token: string): string {
  const q = JSON.stringify; // a JSON string is a valid Python string literal
  const body = [
    'import sys',
    `_p = ${q(packageParent)}`,
    'try:',
    '    sys.path.insert(0, _p)',
    '    try:',
    '        import heapprof._attach as _a',
    '    finally:',
    '        if _p in sys.path: sys.path.remove(_p)',
    `    _a.attach(${q(ctlPath)}, ${q(token)})`,
    'except BaseException as _e:',
    '    try:',
    '        import socket, json',
    '        _s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
    `        _s.connect(${q(ctlPath)})`,
    `        _s.sendall((json.dumps({"state": "error", "token": ${q(token)}, "message": "cannot load heapprof in the process: %s" % (_e,)}) + "\\n").encode())`,
    '        _s.close()',
    '    except BaseException:',
    '        pass',
  ].join('\n');
  // exec with its own globals: nothing is bound in the target's __main__.
  return `exec(${q(body)}, {"__name__": "__heapprof_attach__"})`;
}

export interface AttachOptions {
  pid: number;
  /** Absolute profile base. */
  base: string;
  sampling: Array<[number, number]> | null;
  sampleBytes: number | null;
  followFork: boolean;
  force: boolean;
  /** Seconds, or null for "until stopped". */
  durationS: number | null;
  gdb: string;
}

type Message = { state: string; [key: string]: unknown };

/** Lines of JSON from a socket, as an async queue. */
class LineReader {
  private buffered = '';
  private readonly lines: Message[] = [];
  private waiters: Array<(m: Message | null) => void> = [];
  ended = false;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const text = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        try {
          const m = JSON.parse(text) as Message;
          if (m && typeof m.state === 'string') this.push(m);
        } catch {
          // not ours: ignored
        }
      }
    });
    const end = (): void => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  private push(m: Message): void {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.lines.push(m);
  }

  next(): Promise<Message | null> {
    const m = this.lines.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(null);
    return new Promise((r) => this.waiters.push(r));
  }
}

/** The longest delay setTimeout takes (2^31-1 ms, 24.8 days): beyond it, it fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls fn once, after `seconds` (any finite length: --duration 3000000 is 35 days), in chunks
 * setTimeout can hold. Returns a function that cancels it.
 */
export function afterSeconds(seconds: number, fn: () => void, maxChunkMs = MAX_TIMER_MS): () => void {
  const due = Date.now() + seconds * 1000;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = due - Date.now();
    if (left <= 0) {
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(left, maxChunkMs));
  };
  arm();
  return () => clearTimeout(timer);
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface AttachResult {
  files: string[];
  summary: Record<string, unknown> | null;
  /** How the recording ended. */
  ended: 'stopped' | 'duration' | 'target-exited';
  attachSeconds: number;
  detachSeconds: number | null;
}

/**
 * Attach, record until stopped, detach. `say` prints a status line on stderr. Resolves with
 * what happened; throws HpError when the recording could not start (the target untouched,
 * apart from what gdb's visit costs it: a pause of a second or two).
 */
export async function recordAttached(target: TargetInfo, opts: AttachOptions, say: (line: string) => void): Promise<AttachResult> {
  const release = claimSession(opts.pid, opts.base);
  const privateDir = mkdtempSync(join(tmpdir(), 'hp-record-'));
  let server: Server | undefined;
  let gdbChild: ReturnType<typeof spawn> | undefined;
  let stopRequested: 'stopped' | 'duration' | null = null;
  let wake: () => void = () => {};
  // Where gdb (native/attach_gdb.py) is told to give up waiting for a point to attach at.
  const giveUpPath = join(privateDir, 'give-up');
  const onSignal = (): void => {
    stopRequested ??= 'stopped';
    if (gdbChild && gdbChild.exitCode === null && !existsSync(giveUpPath)) {
      // Not by killing gdb: breakpoints it had set would stay in the target, which then died of
      // SIGTRAP at its next allocation. The file tells it to stop; SIGURG (ignored by default)
      // ends its wait, and it takes the breakpoints out and detaches (see the finally below).
      try {
        writeFileSync(giveUpPath, '');
        process.kill(opts.pid, 'SIGURG');
      } catch {
        // the target is gone: gdb ends by itself
      }
    }
    wake();
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  try {
    if (target.uid !== (process.getuid?.() ?? 0)) chownSync(privateDir, target.uid, -1);
    const broken = await gdbCallCheck(opts.gdb);
    if (broken) throw new HpError(`--pid ${opts.pid}: ${broken}`);
    const ctlPath = join(privateDir, 'ctl');
    const token = randomBytes(8).toString('hex');
    const t0 = Date.now();

    // The connection from the target: the first one that says hello with our token.
    let accept: (s: LineReader) => void = () => {};
    const connected = new Promise<LineReader>((r) => (accept = r));
    // The injected code says {"state": "error", "message": ...} instead of hello when it cannot
    // load heapprof in the process (a module of its own named heapprof, say).
    let helloError: string | null = null;
    server = createServer((socket) => {
      const reader = new LineReader(socket);
      void reader.next().then((hello) => {
        if (hello && hello.token === token && hello.state === 'error') helloError = String(hello.message);
        if (hello && hello.token === token) accept(reader);
        else socket.destroy();
      });
    });
    await new Promise<void>((ok, fail) => {
      server!.once('error', fail);
      server!.listen(ctlPath, () => ok());
    });
    if (target.uid !== (process.getuid?.() ?? 0)) chownSync(ctlPath, target.uid, -1);

    // gdb in its own process group: a Ctrl-C meant for hp-record must not reach it.
    const gdbOut: string[] = [];
    gdbChild = spawn(opts.gdb, ['-p', String(opts.pid), '-batch', '-nx', '-iex', 'set debuginfod enabled off', '-iex', 'set auto-load off', '-iex', 'set auto-solib-add off', '-x', GDB_SCRIPT], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, HP_ATTACH_LIB: nativeLibrary(), HP_ATTACH_CODE: injectedCode(PACKAGE_PARENT, ctlPath, token), HP_ATTACH_GIVE_UP: giveUpPath },
    });
    gdbChild.stdout!.setEncoding('utf8').on('data', (d: string) => gdbOut.push(d));
    gdbChild.stderr!.setEncoding('utf8').on('data', (d: string) => gdbOut.push(d));
    const gdbDone = new Promise<number | null>((r) => {
      gdbChild!.once('error', () => r(-1));
      gdbChild!.once('exit', (code) => r(code));
    });
    const slowNotice = setTimeout(() => {
      if (isQuiet()) return;
      const why = everyThreadOnALock(opts.pid)
        ? 'every thread of it waits on a lock, where the hook cannot be loaded; it is attached when one runs again'
        : 'it may be inside a long call that holds the GIL, or every thread of it may wait on a lock';
      say(`waiting for process ${opts.pid} to reach a point where it can be attached (${why}; Ctrl-C gives up)`);
    }, 5000);
    const stopWaiting = new Promise<'signal'>((r) => (wake = () => r('signal')));
    // A process that exits before its injected thread connects (inside a long C call that
    // holds the GIL up to its exit, say) never connects: without this, hp-record waited forever.
    let exitPoll: NodeJS.Timeout | undefined;
    const targetGone = new Promise<null>((r) => {
      exitPoll = setInterval(() => {
        if (hasExited(opts.pid)) r(null);
      }, 200);
    });
    let reader: LineReader | null = null;
    try {
      const first = await Promise.race([connected.then((c) => ({ kind: 'connected' as const, c })), gdbDone.then((code) => ({ kind: 'gdb' as const, code })), stopWaiting.then(() => ({ kind: 'signal' as const }))]);
      if (first.kind === 'signal') throw new HpError(`--pid ${opts.pid}: interrupted before attaching; nothing was recorded`);
      if (first.kind === 'connected') {
        reader = first.c;
        await gdbDone; // gdb detaches right after its call returns
      } else {
        const text = gdbOut.join('');
        const ok = /HP-ATTACH: ok/.test(text);
        if (!ok && hasExited(opts.pid)) throw new HpError(`--pid ${opts.pid}: the process ended before recording could start (while gdb was attaching); nothing was recorded`);
        if (!ok) throw new HpError(`--pid ${opts.pid}: ${gdbFailure(text, first.code, opts.gdb)}`);
        // Injected: the thread waits for the GIL, then connects.
        const next = await Promise.race([connected, stopWaiting.then(() => 'signal' as const), targetGone.then(() => 'gone' as const)]);
        if (next === 'signal') throw new HpError(`--pid ${opts.pid}: interrupted before the process took the GIL; nothing was recorded`);
        if (next === 'gone') throw new HpError(`--pid ${opts.pid}: the process ended before recording could start (before its recorder thread ran); nothing was recorded`);
        reader = next;
      }
    } finally {
      clearTimeout(slowNotice);
      clearInterval(exitPoll);
    }
    if (helloError !== null) throw new HpError(`--pid ${opts.pid}: ${helloError}`);
    const attachSeconds = (Date.now() - t0) / 1e3;

    reader.socket.write(`${JSON.stringify({ base: opts.base, sampling: opts.sampling, sample_bytes: opts.sampleBytes, follow_fork: opts.followFork, force: opts.force })}\n`);
    const answer = await reader.next();
    if (!answer) {
      // The process ended while its recorder started (its main thread returned, say): the
      // connection closes before the socket's peer is gone from /proc, so give it a moment.
      // If the recorder got as far as its files, they say what was recorded.
      for (let i = 0; i < 20 && !hasExited(opts.pid); i++) await new Promise((r) => setTimeout(r, 50));
      const began = (() => {
        try {
          return statSync(`${opts.base}.hpm`).mtimeMs >= t0 - 1000;
        } catch {
          return false;
        }
      })();
      if (began) return { files: [`${opts.base}.hpm`, `${opts.base}.hpd`], summary: null, ended: 'target-exited', attachSeconds, detachSeconds: null };
      if (hasExited(opts.pid)) throw new HpError(`--pid ${opts.pid}: the process ended before recording could start (as its recorder was starting); nothing was recorded`);
      throw new HpError(`--pid ${opts.pid}: the process closed the connection before recording started`);
    }
    if (answer.state === 'error') throw new HpError(`--pid ${opts.pid}: ${String(answer.message)}`);
    const files = Array.isArray(answer.files) ? answer.files.map(String) : [`${opts.base}.hpm`, `${opts.base}.hpd`];
    const until = opts.durationS !== null ? ` for ${opts.durationS} s` : '';
    if (!isQuiet()) say(`recording process ${opts.pid}${until} to ${files.join(', ')} (attached in ${attachSeconds.toFixed(2)} s; stop with Ctrl-C or hp-record --pid ${opts.pid} --stop)`);

    // Record until a stop request, the duration, or the target's exit.
    const finishedOrEnd = reader.next();
    let cancelTimer: (() => void) | undefined;
    if (opts.durationS !== null) {
      cancelTimer = afterSeconds(opts.durationS, () => {
        stopRequested ??= 'duration';
        wake();
      });
    }
    const stopAsked = new Promise<void>((r) => {
      if (stopRequested) r();
      wake = () => r();
    });
    const first = await Promise.race([finishedOrEnd.then((m) => ({ kind: 'end' as const, m })), stopAsked.then(() => ({ kind: 'stop' as const }))]);
    cancelTimer?.();
    if (first.kind === 'end') {
      reader.socket.destroy();
      return { files, summary: first.m?.state === 'finished' ? ((first.m.summary as Record<string, unknown>) ?? {}) : null, ended: 'target-exited', attachSeconds, detachSeconds: null };
    }
    const t1 = Date.now();
    reader.socket.write('stop\n');
    let confirmTimer: NodeJS.Timeout | undefined;
    const done = await Promise.race([finishedOrEnd, new Promise<null>((r) => (confirmTimer = setTimeout(() => r(null), 30_000)))]);
    clearTimeout(confirmTimer);
    reader.socket.destroy();
    const detachSeconds = (Date.now() - t1) / 1e3;
    if (done === null && !reader.ended) throw new HpError(`--pid ${opts.pid}: the process did not confirm the stop within 30 s (the recording stops when hp-record exits)`);
    return {
      files,
      summary: done?.state === 'finished' ? ((done.summary as Record<string, unknown>) ?? {}) : null,
      ended: done === null ? 'target-exited' : stopRequested ?? 'stopped',
      attachSeconds,
      detachSeconds,
    };
  } finally {
    for (const sig of STOP_SIGNALS) process.removeListener(sig, onSignal);
    if (gdbChild && gdbChild.exitCode === null && gdbChild.signalCode === null) {
      // Told to give up (above), gdb takes its breakpoints out and detaches; one that does not
      // within 10 s (stuck in a call into the target) gets SIGTERM. Never SIGKILL: its
      // breakpoints would stay in the target.
      const exited = new Promise((r) => gdbChild!.once('exit', r));
      const late = setTimeout(() => gdbChild!.kill('SIGTERM'), existsSync(giveUpPath) ? 10_000 : 0);
      await exited;
      clearTimeout(late);
    }
    server?.close();
    rmSync(privateDir, { recursive: true, force: true });
    release();
  }
}

/**
 * Whether gdb can call a function in a process here and give it back intact, tried on a
 * process of our own (sleep, blocked in a system call like most targets): null when it can,
 * else why not. On some machines (virtual CPUs whose extended register state gdb cannot
 * write back: "Couldn't write extended state status: Bad address") the process resumes with
 * damaged registers; a Python blocked in time.sleep then dies with OSError errno 514. The
 * target must never pay for that, so hp-record --pid checks first (about a third of a second).
 */
export async function gdbCallCheck(gdb: string): Promise<string | null> {
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  const spawned = await new Promise<boolean>((r) => {
    sleeper.once('spawn', () => r(true));
    sleeper.once('error', () => r(false));
  });
  if (!spawned) return null; // no sleep(1) to try on: not checked
  let died = false;
  sleeper.once('exit', () => (died = true));
  try {
    await new Promise((r) => setTimeout(r, 50)); // into its nanosleep
    const out: string[] = [];
    const child = spawn(gdb, ['-p', String(sleeper.pid), '-batch', '-nx', '-iex', 'set debuginfod enabled off', '-iex', 'set auto-load off', '-ex', 'call (int)getpid()'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    const code = await new Promise<number | null>((r) => {
      child.once('error', () => r(-1));
      child.once('exit', (c) => r(c));
    });
    if (code === -1) return null; // gdb cannot run: the attach itself says so
    await new Promise((r) => setTimeout(r, 50));
    const text = out.join('');
    const bad = /Couldn't write [^\n]*/.exec(text);
    if (bad || died) {
      return `gdb cannot give a process back intact on this machine (${bad ? `it said: ${bad[0].trim()}` : 'a test process it called a function in died'}); attaching would damage the process, so hp-record does not attach`;
    }
    return null;
  } finally {
    sleeper.kill('SIGKILL');
  }
}

/** gdb's output when it did not attach, as one line. */
export function gdbFailure(text: string, code: number | null, gdb: string): string {
  const mine = /HP-ATTACH: error: (.*)/.exec(text);
  if (mine) return mine[1]!;
  if (code === -1) return `cannot run ${gdb}`;
  if (/ptrace: Operation not permitted/.test(text)) {
    return 'ptrace not permitted (a container without CAP_SYS_PTRACE, a seccomp policy, or /proc/sys/kernel/yama/ptrace_scope): run as root, or with --cap-add=SYS_PTRACE in a container';
  }
  if (/ptrace: No such process/.test(text)) return 'no such process (it exited)';
  if (/Python scripting is not supported/.test(text)) return `${gdb} was built without Python support, which hp-record --pid needs`;
  const last = text.trim().split('\n').filter((l) => l.trim() && !/^\[|^Using host|^warning:/.test(l)).pop();
  return `gdb could not attach${last ? `: ${last.trim()}` : ` (exit status ${code})`}`;
}

/** Absolute profile base for an attach: -o BASE, -o DIR/, or ./heapprof.PID; refuses to overwrite without force. */
export function attachBase(plan: { base?: string; dir?: string }, pid: number, force: boolean): string {
  const base = plan.base ? resolve(plan.base) : resolve(plan.dir ?? '.', `heapprof.${pid}`);
  if (!force) {
    for (const f of [`${base}.hpm`, `${base}.hpd`]) {
      let exists = false;
      try {
        lstatSync(f);
        exists = true;
      } catch {
        exists = false;
      }
      if (exists) throw new UsageError(`${f} already exists (use --force to overwrite)`);
    }
  }
  return base;
}

export const EXIT_ATTACH = EXIT_DATA;
