// hp-record: run a Python program under the heapprof recorder. Validates everything it can before
// starting Python, then starts `python script.py args` itself with the bootstrap (python/heapprof/_run.py)
// as a private sitecustomize that starts the recorder, and behaves like the program: same stdio, same
// exit status, same death by signal.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, writeSync, constants as fsConstants, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { EXIT_DATA, HpError, UsageError, formatBytes, isQuiet, parser, runMain, setQuiet, systemErrorMessage } from '../cli.js';
import { ROOT } from '../where.cjs';
import { fromNonUtf8Argument, isUtf8, splitNul } from '../raw-args.js';

const NAME = 'hp-record';

/** Bytes reserved for the bootstrap's status file (its JSON is a few hundred bytes). */
const STATUS_RESERVE_BYTES = 64 * 1024;

/** The environment variable carrying the JSON configuration to the bootstrap, which removes it at once. */
export const CONFIG_VAR = 'HEAPPROF_RECORD_CONFIG';

/** Where the bootstrap lives in the package (lib/where.cjs says where its root is, from source or built). */
export const BOOTSTRAP_PATH = join(ROOT, 'python', 'heapprof', '_run.py');

/**
 * The private sitecustomize.py: it runs the bootstrap's code in its own module, as a symlink to
 * the bootstrap would, but from the bytecode Python caches next to the bootstrap
 * (heapprof/__pycache__), not compiled again in every run's new private directory. A Python
 * without that loader compiles the file itself (an old one, which the bootstrap then refuses).
 */
export function bootstrapLoader(bootstrap: string): string {
  // A JSON string is a Python string literal (the path comes from Node: valid Unicode).
  return [
    "# hp-record's bootstrap loader (see heapprof/_run.py)",
    `_hp_path = ${JSON.stringify(bootstrap)}`,
    'try:',
    // importlib.machinery's loader is this one, which Python loaded while starting; importing
    // importlib itself would add importlib and warnings to every program's start-up.
    '    from _frozen_importlib_external import SourceFileLoader as _hp_loader',
    '    _hp_code = _hp_loader(__name__, _hp_path).get_code(__name__)',
    'except Exception:',
    "    _hp_code = compile(open(_hp_path).read(), _hp_path, 'exec')",
    'exec(_hp_code)',
    '',
  ].join('\n');
}
/**
 * hp-record's own lines on standard error, written with write(2) on descriptor 2. The program shares
 * that open file (inherited), and Node's process.stderr on a pipe or socket puts it in non-blocking
 * mode (O_NONBLOCK is a flag of the open file, not of the descriptor): a program writing to a full
 * pipe meanwhile (`hp-record app.py 2>&1 | less`) would get EAGAIN, which Python's print turns
 * into lost output. So while the program may run, hp-record never creates process.stderr.
 */
export function writeStderr(text: string): void {
  const data = Buffer.from(text);
  let done = 0;
  let waits = 0;
  while (done < data.length) {
    try {
      done += writeSync(2, data, done, data.length - done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Someone else made it non-blocking and the reader is slow: wait for it, as python would.
      if (code === 'EAGAIN' && waits++ < 6000) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      return; // EPIPE (no reader), a closed descriptor...: these lines are not worth dying for
    }
  }
}

/** The directory that holds the heapprof Python package. */
const PACKAGE_PARENT = dirname(dirname(BOOTSTRAP_PATH));

// ---- --native (issue 13): the hook preloaded into the Python process only.

/** The allocator hook that --native preloads: $HEAPPROF_NATIVE_LIB, else the checkout's build. */
export function hookLibraryPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HEAPPROF_NATIVE_LIB) return env.HEAPPROF_NATIVE_LIB;
  return join(dirname(PACKAGE_PARENT), 'build', 'Release', 'heapprof_hook.so');
}

/** The environment for --native: the hook first in LD_PRELOAD (ahead of any preloaded malloc, which it
 * then wraps), and the same file for the Python package to load, so that both are one library. */
export function nativeEnvironment(lib: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = (env.LD_PRELOAD ?? '').split(/[: ]+/).filter((p) => p !== '' && p !== lib);
  return { LD_PRELOAD: [lib, ...rest].join(':'), HEAPPROF_NATIVE_LIB: lib };
}

/** $HEAPPROF_NATIVE: '1' turns native recording on by default, '0' or unset leaves it off. */
export function nativeFromEnvironment(env: NodeJS.ProcessEnv): boolean {
  const value = env.HEAPPROF_NATIVE;
  if (value === undefined || value === '' || value === '0') return false;
  if (value === '1') return true;
  throw new UsageError(`HEAPPROF_NATIVE='${value}': expected 1 (record C allocations by default) or 0`);
}

/** The hint for a run without --native whose RSS went far past the recorded heap, or null. */
export function nativeHint(summary: Record<string, unknown>): string | null {
  const rss = summary.peak_rss, heap = summary.peak_heap_estimate;
  if (summary.native === true || typeof rss !== 'number' || typeof heap !== 'number') return null;
  const MiB = 1024 * 1024;
  if (rss < 2 * heap + 64 * MiB) return null;
  return `peak RSS ${formatBytes(rss)} is far above the ${formatBytes(heap)} Python heap recorded: memory that C extensions allocate with malloc is not recorded; --native records it`;
}

const USAGE = `Usage: $0 [options] [--] script.py [args...]
       $0 [options] -m module [args...]
       $0 [options] -c code [args...]
       $0 [options] [--] - [args...] < script.py
       $0 [options] [--] python3.X script.py|-m module|-c code|- [args...]
       $0 --pid PID [-o BASE] [--duration SECONDS] [sampling options]
       $0 --pid PID --stop

Run a Python program under the heapprof recorder, exactly as \`python3 script.py args...\` (or
\`python3 -m module args...\`, \`python3 -c code args...\`) would run it: same sys.argv, sys.path[0],
__main__, stdin/stdout/stderr, exit status and signals. hp-record's options come first: everything
after the script, -m MODULE, -c CODE or - (the program from standard input) belongs to the
program. The program may start with the interpreter (python, python3.12, /venv/bin/python...), as
with --python. The profile goes to BASE.hpm and
BASE.hpd, created mode 0600; the default BASE is heapprof.PID in the current directory (PID = the
Python process id). A line on stderr says where it records; a summary (with one line per followed child's
profile) and the next command to run follow at the end. A script that is not Python (a shebang
naming another interpreter, or a binary file) is refused unless --force. Exit status: the program's
own; 2 when hp-record's arguments are bad; 1 when the recorder could not start (the program did not
run), or when the program exited 0 but its profile lost events (a failed write stopped the recording).

--pid attaches to a running CPython 3.9-3.13 through gdb and records it from then on, until
--duration, Ctrl-C, or \`hp-record --pid PID --stop\` from elsewhere; the process keeps running.
Exit status 0 once recorded; 2 for no such process, not Python, an unsupported version; 1 when
attaching failed (gdb missing, ptrace refused, already recorded). See hp-record(1).`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 -o run app.py --input data.csv', 'record app.py with its own arguments into run.hpm and run.hpd'],
  ['$0 -o tests -m pytest -x -q tests/', 'record a test run: -x and -q go to pytest'],
  ["$0 -c 'import json; json.loads(open(\"big.json\").read())'", 'record a one-liner'],
];

/** hp-record's own options that take a value (everything else it knows is a flag). */
const VALUE_OPTIONS = new Set(['-o', '--output', '--sample', '--sample-bytes', '--mode', '--python', '--pid', '--duration', '--mark-signal']);

/**
 * Split hp-record's command line the way python splits its own: hp-record's options, then the
 * program: `script args...`, `-m module args...`, `-c code args...` or `-- ...`. Nothing after
 * the program's start is read as an option of hp-record (`-m pytest -q` gives -q to pytest).
 */
export function splitCommandLine(argv: string[]): { own: string[]; target: string[] | null } {
  const own: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { own, target: argv.slice(i + 1) };
    if (a === '-m' || a === '--module' || a === '-c') {
      if (i + 1 >= argv.length || argv[i + 1] === '') throw new UsageError(`${a}: needs ${a === '-c' ? 'the code to run' : 'a module name'}`);
      return { own, target: [a === '-c' ? '-c' : '-m', ...argv.slice(i + 1)] };
    }
    if (a.startsWith('--module=')) return { own, target: ['-m', a.slice('--module='.length), ...argv.slice(i + 1)] };
    if (/^-[mc]./.test(a)) return { own, target: [a.slice(0, 2), a.slice(2), ...argv.slice(i + 1)] };
    if (a.startsWith('-') && a !== '-') {
      own.push(a);
      if (VALUE_OPTIONS.has(a) && i + 1 < argv.length) own.push(argv[++i]!);
      continue;
    }
    return { own, target: argv.slice(i) };
  }
  return { own, target: null };
}

/**
 * Why `script` is not something python can run, or null: a shebang naming another interpreter
 * (a shell script), or binary content that is not a .pyc or zip application.
 */
export function notPythonReason(script: string): string | null {
  let head: Buffer;
  try {
    const fd = openSync(script, 'r');
    try {
      head = Buffer.alloc(4096);
      head = head.subarray(0, readSync(fd, head, 0, 4096, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return null; // unreadable: python will say why
  }
  if (head.subarray(0, 2).toString('latin1') === '#!') {
    const line = head.toString('latin1').split('\n')[0]!;
    if (!/python/i.test(line)) return `a script for ${line.slice(2).trim().split(/\s+/).slice(0, 2).join(' ')}, not Python`;
    return null;
  }
  if (/\.(pyc|pyz|zip)$/i.test(script) || head.subarray(0, 4).toString('latin1') === 'PK\x03\x04') return null;
  if (head.includes(0)) return 'a binary file, not a Python script';
  return null;
}

/** The sampler as the start line shows it. */
function samplerText(sampling: SamplingRange[] | null, sampleBytes: number | null): string {
  if (sampleBytes !== null) return `byte-Poisson, one sample per ${formatBytes(sampleBytes)} on average`;
  if (sampling === null) return 'sizes {128: 1e-4, 8192: 0.1} (the default)';
  return sampling.length === 0 ? 'every allocation' : `sizes {${sampling.map((r) => `${r.bound}: ${r.p}`).join(', ')}}`;
}

/** One row of the size-range sampling table: sizes below `bound` (and above the previous bound) are sampled with `p`. */
export interface SamplingRange {
  bound: number;
  p: number;
}

/**
 * Parse the seed's sampling table, a Python dict literal such as `{128: 1e-4, 8192: 0.1}`, strictly and
 * without eval: decimal numbers (ints, floats, exponents, digit underscores), optional spaces and one
 * trailing comma. Bounds are positive whole byte counts, unique; probabilities are in [0, 1]. `{}` is
 * valid and records everything. Returns the ranges sorted by bound. Throws UsageError naming the column.
 */
export function parseSampleSpec(spec: string): SamplingRange[] {
  const fail = (message: string): never => {
    throw new UsageError(`--sample ${quoteSpec(spec)}: ${message}`);
  };
  let pos = 0;
  const skipSpace = (): void => {
    while (pos < spec.length && /\s/.test(spec[pos]!)) pos++;
  };
  const describeHere = (): string => (pos >= spec.length ? 'end of input' : `'${spec[pos]}' at column ${pos + 1}`);
  const expect = (ch: string, what: string): void => {
    skipSpace();
    if (spec[pos] !== ch) fail(`expected ${what}, found ${describeHere()}`);
    pos++;
  };
  const number = (what: string): { value: number; text: string } => {
    skipSpace();
    const match = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?/.exec(spec.slice(pos));
    if (!match) fail(`expected ${what}, found ${describeHere()}`);
    const text = match![0];
    pos += text.length;
    // A number glued to letters or more digits-ish junk ("12abc", "1e5e3", "0x80") is junk, not a number.
    if (pos < spec.length && /[\w.]/.test(spec[pos]!)) fail(`unexpected '${spec[pos]}' at column ${pos + 1}`);
    return { value: Number(text.replace(/_/g, '')), text }; // 1e999 is Infinity: out of range below
  };

  expect('{', "'{'");
  const ranges: SamplingRange[] = [];
  const seen = new Map<number, string>();
  skipSpace();
  if (spec[pos] !== '}') {
    for (;;) {
      const bound = number('a size bound');
      if (!Number.isInteger(bound.value) || bound.value <= 0) fail(`bound ${bound.text} is not a positive whole number of bytes`);
      if (bound.value > Number.MAX_SAFE_INTEGER) fail(`bound ${bound.text} is too large`);
      if (seen.has(bound.value)) fail(`bound ${bound.text} appears twice (also as ${seen.get(bound.value)})`);
      seen.set(bound.value, bound.text);
      expect(':', `':' after bound ${bound.text}`);
      const p = number(`a probability for bound ${bound.text}`);
      if (!(p.value >= 0 && p.value <= 1)) fail(`probability ${p.text} for bound ${bound.text} is outside [0, 1]`);
      ranges.push({ bound: bound.value, p: p.value === 0 ? 0 : p.value }); // -0 becomes 0
      skipSpace();
      if (spec[pos] === ',') {
        pos++;
        skipSpace();
        if (spec[pos] === '}') break; // one trailing comma, as in Python
        continue;
      }
      if (spec[pos] === '}') break;
      fail(`expected ',' or '}', found ${describeHere()}`);
    }
  }
  expect('}', "'}'");
  skipSpace();
  if (pos < spec.length) fail(`unexpected ${describeHere()} after '}'`);
  return ranges.sort((a, b) => a.bound - b.bound);
}

function quoteSpec(spec: string): string {
  const shown = spec.length > 60 ? `${spec.slice(0, 57)}...` : spec;
  return `'${shown.replace(/[\r\n]/g, ' ')}'`;
}

const SIZE_SUFFIX: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Parse a byte count for --sample-bytes: a positive number with an optional binary suffix
 * (512K, 1M, 1.5MiB, 4096, 64KB; K/M/G are powers of 1024). Throws UsageError.
 */
export function parseByteCount(text: string, option = '--sample-bytes'): number {
  const match = /^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:([kKmMgG])(?:i?[bB])?|([bB]))?\s*$/.exec(text);
  if (!match) throw new UsageError(`${option} '${text}': expected a byte count such as 4096, 512K or 1M`);
  const unit = (match[2] ?? match[3] ?? '').toLowerCase();
  const value = Number(match[1]) * SIZE_SUFFIX[unit]!;
  if (!Number.isFinite(value) || value < 1) throw new UsageError(`${option} '${text}': must be at least 1 byte`);
  if (value > Number.MAX_SAFE_INTEGER) throw new UsageError(`${option} '${text}': too large`);
  return value;
}

/** Resolve an executable the way execvp would: a name with a slash as a path, anything else along PATH. */
export function findExecutable(name: string, pathEnv: string | undefined = process.env.PATH): string | null {
  const usable = (candidate: string): boolean => {
    try {
      if (!statSync(candidate).isFile()) return false;
      accessSync(candidate, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name === '') return null;
  if (name.includes('/')) return usable(name) ? name : null;
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    const candidate = join(dir === '' ? '.' : dir, name);
    if (usable(candidate)) return candidate;
  }
  return null;
}

/** Where the profile goes: an explicit base, or a directory in which the bootstrap names it heapprof.PID. */
export interface OutputPlan {
  base?: string;
  dir?: string;
}

/**
 * Where the start line says the recording goes: the profile's files, which in stats mode (with
 * -o) hold the size table and no events, or no profile (stats mode without -o).
 */
export function recordingDestination(mode: 'profile' | 'stats', output: OutputPlan, pid: number): string {
  const files = `${output.base ?? join(output.dir ?? '.', `heapprof.${pid}`)}.hpm/.hpd`;
  if (mode === 'profile') return files;
  return output.base !== undefined || output.dir !== undefined ? `${files} (--mode stats: the size table, no events)` : 'no profile (--mode stats: the size table at exit)';
}

/**
 * Turn -o into an output plan and check it before anything runs: the directory exists and is
 * writable (probed by creating a file, which also catches read-only mounts and root), and the
 * profile files do not exist unless `force`. `-o run.hpm` means base `run`; an existing directory
 * (or a name ending in /) means "heapprof.PID in there". The longest file name the recorder will
 * create from the base must fit a directory entry (checkNameLength). Throws UsageError.
 */
export function planOutput(output: string | undefined, mode: 'profile' | 'stats', force: boolean, followsChildren = false): OutputPlan {
  // Node decodes its arguments as UTF-8: a Latin-1 name would be written with U+FFFD in place of
  // its bytes, another file than the one asked for (and one no hp-* reader could be given).
  if (output !== undefined && fromNonUtf8Argument(output)) {
    throw new UsageError(`-o ${output}: the name is not valid UTF-8, and hp-record cannot keep its bytes (Node decodes its arguments as UTF-8); use a UTF-8 name`);
  }
  if (output === undefined) {
    if (mode === 'stats') return {};
    checkWritableDirectory('.', '.');
    return { dir: '.' };
  }
  if (output === '') throw new UsageError('-o: needs a base name, e.g. -o run');
  let isDirectory = output.endsWith('/');
  if (!isDirectory) {
    try {
      isDirectory = statSync(output).isDirectory();
    } catch {
      isDirectory = false;
    }
  }
  if (isDirectory) {
    checkWritableDirectory(output, output);
    return { dir: output.length > 1 ? output.replace(/\/+$/, '') : output };
  }
  const base = output.replace(/\.hp[md]$/, '');
  checkWritableDirectory(dirname(base), output);
  checkNameLength(base, output, followsChildren);
  for (const file of [`${base}.hpm`, `${base}.hpd`]) {
    let exists = false;
    let isDir = false;
    try {
      const st = lstatSync(file);
      exists = true;
      isDir = st.isDirectory();
    } catch {
      exists = false;
    }
    if (isDir) throw new UsageError(`-o ${output}: ${file} is a directory`);
    if (exists && !force) {
      // Still being written by another run? Then --force would not help (the recorder's lock decides).
      const holder = lockHolder(base);
      if (holder !== null) throw new HpError(`${base}.hpm: another recording (pid ${holder}) is writing this profile; wait for it or choose another name`, EXIT_DATA);
      throw new UsageError(`-o ${output}: ${file} already exists (use --force to overwrite)`);
    }
  }
  return { base };
}

/**
 * The pid in BASE.hpm.lock (written by the recorder that holds it) if that process is alive. Only a
 * hint for a better message: the recorder's flock() on the file is what serialises runs.
 */
function lockHolder(base: string): number | null {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(`${base}.hpm.lock`, 'utf8'), 10);
  } catch {
    return null;
  }
  if (!(pid > 0)) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/**
 * Remove BASE.hpm.lock when the recorder that wrote it (pid) is gone without removing it (its
 * program replaced itself with exec, or was killed, or closed the lock's descriptor, after which the
 * recorder leaves the file alone as it may be another's by then): hp-record(1) FILES says it exists only while
 * a recorder writes. Left alone when another recorder's pid is in it.
 */
function removeStaleLock(base: string, pid: number | undefined): void {
  try {
    if (pid !== undefined && Number.parseInt(readFileSync(`${base}.hpm.lock`, 'utf8'), 10) === pid && lockHolder(base) === null) unlinkSync(`${base}.hpm.lock`);
  } catch {
    // Already gone, or unreadable: nothing of ours to remove.
  }
}

/** The most bytes in one file name (NAME_MAX on Linux); a longer one fails with ENAMETOOLONG. */
export const NAME_MAX = 255;

/** Digits of the largest pid this system hands out (/proc/sys/kernel/pid_max), else of Linux's limit, 2^22. */
function pidDigits(): number {
  try {
    const max = Number.parseInt(readFileSync('/proc/sys/kernel/pid_max', 'latin1'), 10);
    if (max > 0) return String(max - 1).length;
  } catch {
    // not Linux, or no /proc: the kernel's own limit
  }
  return String(2 ** 22).length;
}

/**
 * The names the recorder makes from BASE: BASE.hpm, BASE.hpd, BASE.hpm.lock (native/hook.c) and,
 * following children, BASE.PID.hpm and BASE.PID.hpd for each. Caught here, before anything
 * runs, the longest not fitting NAME_MAX is a usage error naming it, not a failure after start.
 */
function checkNameLength(base: string, output: string, followsChildren: boolean): void {
  const name = basename(base);
  const longest = followsChildren ? `${name}.${'9'.repeat(pidDigits())}.hpm` : `${name}.hpm.lock`;
  const bytes = Buffer.byteLength(longest);
  if (bytes <= NAME_MAX) return;
  const what = followsChildren ? "BASE.PID.hpm (a followed child's profile)" : 'BASE.hpm.lock';
  throw new UsageError(`-o ${output}: ${what} would be a ${bytes}-byte file name, over the ${NAME_MAX} bytes one can have (NAME_MAX): use a base name of at most ${NAME_MAX - (bytes - Buffer.byteLength(name))} bytes`);
}

/** An errno failure as a few words without the path: "no such file", "permission denied". */
function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return systemErrorMessage({ name: 'Error', code: e?.code, message: String(e?.message ?? err) });
}

function checkWritableDirectory(dir: string, output: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    throw new UsageError(`-o ${output}: directory ${dir}: ${errnoText(err)}`);
  }
  if (!st.isDirectory()) throw new UsageError(`-o ${output}: ${dir} is not a directory`);
  // Created exclusively ('wx'), so the name need only be unlikely to exist: no crypto module to load.
  const probe = join(dir, `.hp-record-probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
    unlinkSync(probe);
  } catch (err) {
    throw new UsageError(`-o ${output}: cannot create files in ${dir}: ${errnoText(err)}`);
  }
}

/**
 * Remove hp-record's private directory (its two files, and the __pycache__ python may write
 * there), gone already or not. A walk of its own: rmSync's recursive mode first loads Node's
 * rimraf module and stats every entry, ~5% of hp-record's whole cost on an empty script.
 */
function removePrivateDir(dir: string): void {
  const remove = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.isDirectory()) remove(join(d, entry.name));
      else unlinkSync(join(d, entry.name));
    }
    rmdirSync(d);
  };
  try {
    remove(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') rmSync(dir, { recursive: true, force: true });
  }
}

/** The program to run, as python's arguments: [script, args...], ['-m', module, args...], ['-c', code, args...] or ['-', args...] (standard input). */
export function parseTarget(rest: string[], moduleOption: string | undefined): string[] {
  if (moduleOption !== undefined) {
    if (moduleOption === '') throw new UsageError('-m: needs a module name');
    return ['-m', moduleOption, ...rest];
  }
  const [first, ...args] = rest;
  if (first === undefined) throw new UsageError('no program to run: hp-record [options] -- script.py [args...]');
  if (first === '-m' || first === '-c') {
    if (args.length === 0 || args[0] === '') throw new UsageError(first === '-m' ? '-m: needs a module name' : '-c: needs the code to run');
    return [first, ...args];
  }
  if (first.startsWith('-') && first.length > 1) {
    throw new UsageError(`${first}: hp-record runs a script, -m module, -c code or - (the program from standard input), not python options`);
  }
  return [first, ...args];
}

/**
 * `hp-record -- python3 app.py` (as py-spy and austin take it): a first word that names a Python
 * interpreter (python, python3, python3.12... or a path ending in one) and is not a file in the
 * current directory (a script of that name) is the interpreter to run, and what follows is the
 * program. Returns the interpreter and the rest, or null for a script.
 */
export function interpreterFirst(rest: string[]): { python: string; rest: string[] } | null {
  const [first, ...after] = rest;
  if (first === undefined || !/^python(\d+(\.\d+)*)?$/.test(basename(first))) return null;
  if (!first.includes('/') && statSync(first, { throwIfNoEntry: false })?.isFile()) return null;
  return { python: first, rest: after };
}

/** Bytes Node could not keep: the program's arguments and environment entries that are not valid UTF-8. */
export interface RawBytes {
  /** [index in the target (script/-m/-c and arguments), the argument's bytes in hex, the text Node made of them]. */
  args: [number, string, string][];
  /** [the name's bytes in hex, the value's bytes in hex, the name and the value as Node made them (null: Node left it out)]. */
  env: [string, string, string, string | null][];
}


/**
 * Node decodes its command line and environment as UTF-8, turning every byte sequence that is not
 * (a Latin-1 file name, a value from another locale) into U+FFFD, and spawn encodes the strings back
 * as UTF-8: python would be given other bytes than the user gave, which sys.argv, os.environb and
 * every subprocess would show. Linux keeps the originals in /proc/self/cmdline and /proc/self/environ:
 * the program's arguments (after the script, -m module or -c code) and the environment entries that
 * Node changed go to the bootstrap, which puts the original bytes back before the program runs. Null
 * when there are none (or no /proc).
 */
export function rawBytes(target: string[], env: NodeJS.ProcessEnv, proc = '/proc/self'): RawBytes | null {
  const found: RawBytes = { args: [], env: [] };
  try {
    // Node's own arguments come first (node, its flags, the script): the target is the command line's tail.
    const raw = splitNul(readFileSync(join(proc, 'cmdline')));
    const first = target[0] === '-m' || target[0] === '-c' ? 2 : 1;
    for (let k = 1; k <= Math.min(raw.length, target.length - first); k++) {
      const bytes = raw[raw.length - k]!;
      const text = target[target.length - k]!;
      if (bytes.toString('utf8') !== text) break; // not this argument after all: leave the rest as they are
      if (!isUtf8(bytes)) found.args.push([target.length - k, bytes.toString('hex'), text]);
    }
  } catch {
    // no /proc: nothing to compare with
  }
  try {
    for (const entry of splitNul(readFileSync(join(proc, 'environ')))) {
      if (isUtf8(entry)) continue;
      const eq = entry.indexOf(0x3d, 1); // '=' is one byte in UTF-8 and never inside another character
      if (eq < 0) continue;
      const name = entry.subarray(0, eq);
      const value = entry.subarray(eq + 1);
      const nameText = name.toString('utf8');
      // Only what the program is given as Node decoded it (not a variable hp-record set or removed),
      // or a variable Node left out (it drops a name that is not UTF-8): [..., null] then.
      const now = env[nameText];
      if (now === undefined ? isUtf8(name) : now !== value.toString('utf8')) continue;
      found.env.push([name.toString('hex'), value.toString('hex'), nameText, now ?? null]);
    }
  } catch {
    // no /proc
  }
  return found.args.length + found.env.length > 0 ? found : null;
}

/** Signals hp-record passes on to the program. */
// SIGUSR1 too: Node would otherwise open its inspector on it (a debugger port, and the program
// never got the signal it was sent). The rest: every other signal that ends a process by default,
// is sent by other processes (not by the kernel for what Node itself did: SIGXFSZ, SIGXCPU, SIGSYS,
// SIGTRAP stay out) and Node can watch (not the real-time ones). Unwatched, one sent to the whole
// process group (a program's os.killpg(0, SIGUSR2) with a handler) killed hp-record, and the program.
const FORWARDED_SIGNALS: NodeJS.Signals[] = [
  'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1',
  'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGIO', 'SIGPWR', 'SIGSTKFLT',
];

/** Where bin/hp-record.js's shell line lists the descriptors above 2 it was started with. */
const SAVED_FDS = 'HEAPPROF_FDS';

/**
 * The file descriptors above 2 hp-record was started with, which the program must get at the
 * same numbers (a socket passed by a service manager, a `3<file` redirection). Node marks 3..16
 * close-on-exec while starting, so bin/hp-record.js lists them first (as a shell, from /proc:
 * those without the flag); run as `node bin/hp-record.js`, only those above 16 can be told from
 * Node's own (which it opens close-on-exec). Taken out of the environment.
 */
export function inheritedFds(env: NodeJS.ProcessEnv = process.env): number[] {
  const saved = env[SAVED_FDS];
  delete env[SAVED_FDS];
  // The shell's list is complete (it saw every descriptor before Node opened any): /proc is
  // read again only without it.
  if (saved === undefined) return uncloexecFds();
  const listed = new Set(saved.split(' ').filter((x) => /^\d+$/.test(x)).map(Number).filter((fd) => fd > 2));
  return [...listed].sort((a, b) => a - b);
}

/** Descriptors above 2 open without close-on-exec now (Linux's /proc; none elsewhere). */
function uncloexecFds(): number[] {
  const O_CLOEXEC = 0o2000000;
  const fds: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return fds;
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
      if (flags && (parseInt(flags[1]!, 8) & O_CLOEXEC) === 0) fds.push(fd);
    } catch {
      // gone meanwhile (the descriptor of the directory listing itself)
    }
  }
  return fds;
}

/**
 * Which of descriptors 0-2 hp-record was started with closed (`<&-`, `>&-`, some service
 * managers), as bin/hp-record.js's shell line saw them: Node opens /dev/null on a closed
 * descriptor 0-2 while starting, where python would have run with sys.stdin (stdout, stderr)
 * None and its first open() at the lowest of them. Taken out of the environment. Run as
 * `node bin/hp-record.js`, it cannot be told: none.
 */
export function takeClosedStdio(env: NodeJS.ProcessEnv = process.env): number[] {
  const saved = env.HEAPPROF_STDIO_CLOSED;
  delete env.HEAPPROF_STDIO_CLOSED;
  return [0, 1, 2].filter((fd) => saved?.includes(String(fd)));
}

/** stdio for spawn: ours at 0-2 and every inherited descriptor at its own number. */
export function childStdio(fds: number[]): Array<'inherit' | 'ignore' | number> {
  const stdio: Array<'inherit' | 'ignore' | number> = ['inherit', 'inherit', 'inherit'];
  for (const fd of fds) {
    while (stdio.length < fd) stdio.push('ignore'); // above 2, 'ignore' leaves the number closed
    stdio.push(fd);
  }
  return stdio;
}

/**
 * Resource limits bin/hp-record.js's shell line noted before Node started, for the bootstrap to set
 * back for the program, as [soft, hard] (bytes or descriptors; -1 for unlimited):
 * - HEAPPROF_RLIMIT_AS, when a soft address-space limit was set: Node reserves several hundred MiB
 *   of address space as it starts and dies at once under a smaller one, so the shell line raised
 *   the soft limit to the hard one for Node (ulimit -S -v then limits the program as without
 *   hp-record);
 * - HEAPPROF_RLIMIT_NOFILE, when the soft descriptor limit was below the hard one: Node raises it
 *   as it starts, and the program would inherit more descriptors than it would have had (select()
 *   and EMFILE behaving differently).
 */
const SAVED_LIMITS = { as: 'HEAPPROF_RLIMIT_AS', nofile: 'HEAPPROF_RLIMIT_NOFILE' } as const;

/** One limit the shell line noted (see SAVED_LIMITS), or null. Taken out of the environment. */
export function takeStartLimit(which: keyof typeof SAVED_LIMITS, env: NodeJS.ProcessEnv = process.env): [number, number] | null {
  const saved = env[SAVED_LIMITS[which]];
  delete env[SAVED_LIMITS[which]];
  const m = /^(\d+) (\d+|unlimited)$/.exec(saved ?? '');
  if (!m) return null;
  return [Number(m[1]), m[2] === 'unlimited' ? -1 : Number(m[2])];
}

/** Where bin/hp-record.js's shell line leaves the signal state hp-record was started with. */
const SAVED_SIGNALS = 'HEAPPROF_SIGNALS';

/**
 * The signals ignored and blocked when hp-record was started (`nohup`, a shell's background job,
 * a service manager), as bin/hp-record.js read them from /proc before Node reset both: Node and
 * the child it spawns start with every signal at its default and none blocked. Taken out of the
 * environment, so the program's is unchanged.
 */
export function takeStartSignals(env: NodeJS.ProcessEnv = process.env): { ignore: number[]; block: number[] } {
  const saved = env[SAVED_SIGNALS];
  delete env[SAVED_SIGNALS];
  const out = { ignore: [] as number[], block: [] as number[] };
  if (!saved) return out;
  for (const [, key, hex] of saved.matchAll(/(SigIgn|SigBlk):([0-9a-fA-F]{1,16})/g)) {
    const bits = BigInt(`0x${hex}`);
    const list = key === 'SigIgn' ? out.ignore : out.block;
    for (let n = 1; n <= 64; n++) if ((bits >> BigInt(n - 1)) & 1n) list.push(n);
  }
  return out;
}

/** Where bin/hp-record.js's shell line leaves the environment's order and PWD as it was started with. */
const SAVED_ENVIRON = 'HEAPPROF_ENVIRON';

/** The environment hp-record was started with, as the shell line saw it in /proc: its names in order, PWD (null: unset), and the variables the shell dropped. */
export interface StartEnvironment {
  names: string[];
  pwd: string | null;
  dropped: [string, string][];
}

/**
 * The shell that runs bin/hp-record.js's first line (dash) rewrites the environment it passes on:
 * it drops every variable whose name is not a shell identifier (A-B, a.b, 1X, CAFÉ), sets PWD to
 * the working directory when PWD is unset or does not name it (a program started from cron, a
 * service manager, `env -i`, or a parent that changed directory since), and reorders the
 * variables. So the line lists what it was given, from /proc/$$/environ, one entry a line: a name,
 * `=VALUE` for PWD, `+NAME=VALUE` for a name the shell drops (values with `\` and newlines
 * escaped), then a `.`; null when it could not, or when that passed 64 KiB (one environment string
 * may not pass 128 KiB: Node would not start).
 * Taken out of the environment.
 */
export function takeStartEnvironment(env: NodeJS.ProcessEnv = process.env): StartEnvironment | null {
  const saved = env[SAVED_ENVIRON];
  delete env[SAVED_ENVIRON];
  if (saved === undefined) return null;
  const lines = saved.split('\n');
  if (lines.pop() !== '.') return null; // the shell could not read /proc
  const unescape = (text: string): string => text.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  const found: StartEnvironment = { names: [], pwd: null, dropped: [] };
  for (const line of lines) {
    if (line.startsWith('=')) {
      found.pwd = unescape(line.slice(1));
      found.names.push('PWD');
    } else if (line.startsWith('+')) {
      const eq = line.indexOf('=');
      const name = line.slice(1, eq);
      const value = unescape(line.slice(eq + 1));
      // Not UTF-8 (as Node decoded the line: U+FFFD), it cannot be given back byte for byte.
      if (eq > 1 && !name.includes('\ufffd') && !value.includes('\ufffd')) {
        found.dropped.push([name, value]);
        found.names.push(name);
      }
    } else if (line) found.names.push(line);
  }
  return found;
}

/** Put PWD and the variables the shell dropped back as hp-record was given them (in `env`, which is process.env by default). */
export function restoreStartEnvironment(start: StartEnvironment | null, env: NodeJS.ProcessEnv = process.env): void {
  if (!start) return;
  if (start.pwd === null) delete env.PWD;
  else if (!start.pwd.includes('\ufffd')) env.PWD = start.pwd; // not UTF-8: rawBytes() puts its bytes back
  for (const [name, value] of start.dropped) if (env[name] === undefined) env[name] = value;
}

/** The environment with the variables hp-record was started with in their original order, any others after them. */
export function inStartOrder(env: NodeJS.ProcessEnv, start: StartEnvironment | null): NodeJS.ProcessEnv {
  if (!start) return env;
  const ordered: NodeJS.ProcessEnv = {};
  for (const name of start.names) if (env[name] !== undefined && !(name in ordered)) ordered[name] = env[name];
  for (const [name, value] of Object.entries(env)) if (!(name in ordered)) ordered[name] = value;
  return ordered;
}

/** Signals whose default action is to do nothing: nothing to ignore in hp-record itself. */
const HARMLESS_SIGNALS = new Set(['SIGCHLD', 'SIGCONT', 'SIGURG', 'SIGWINCH']);
/** Signals the terminal sends to the whole foreground process group, program included. */
const GROUP_SIGNALS = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT', 'SIGHUP']);

/**
 * True when our process group is the foreground group of a controlling terminal: then a Ctrl-C
 * (or Ctrl-\, or a hangup) has already reached the program, which shares our group, and sending
 * it again could interrupt the program's own KeyboardInterrupt handling.
 */
export function inTerminalForeground(): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after "pid (comm) ": state ppid pgrp session tty_nr tpgid ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const ttyNr = Number(fields[4]);
    const tpgid = Number(fields[5]);
    return ttyNr !== 0 && tpgid === pgrp;
  } catch {
    return Boolean(process.stdin.isTTY); // no /proc: assume an interactive terminal delivers to the group
  }
}

/** What the bootstrap wrote to its status file. */
interface BootstrapStatus {
  state: 'error' | 'started' | 'finished';
  exit?: number;
  message?: string;
  files?: string[];
  /** The recorded (python) process. */
  pid?: number;
  summary?: Record<string, unknown>;
}

/**
 * The bootstrap says 'started' just before it starts the recorder (its own allocations stay out
 * of the profile), so that alone does not mean recording began: the profile's header on disk
 * does. A start that fails (a full disk) leaves no header, and no start line is printed for it.
 */
function profileBegun(st: BootstrapStatus, pid: number): boolean {
  const hpm = st.files?.[0];
  if (!hpm) return true; // stats mode without a file: nothing to wait for
  // Ours, not another run's on the same base (--force): the lock names the recording process.
  if (hpm.endsWith('.hpm') && lockHolder(hpm.slice(0, -4)) !== pid) return false;
  try {
    return statSync(hpm).size > 0;
  } catch {
    return false;
  }
}

/** What a profile on disk holds, read back after the run: only what reached the disk counts. */
export interface DiskProfile {
  base: string;
  pid: number | null;
  ppid: number | null;
  /** Wall clock at the start of recording, microseconds since the epoch. */
  startTimeUs: number;
  /** Alloc and free events. */
  events: number;
  /** The END marker is there: the recorder closed the profile. */
  complete: boolean;
  /** Checksum failures, truncated blocks and the like, as the readers report them. */
  issues: number;
  /** Why the profile could not be read at all. */
  error?: string;
  /** A followed fork's profile, BASE.PID (1) or BASE.PID.PID... (more): how many pids its name has. */
  level?: number;
  /** Its .hpm is there but not its .hpd: the process died while creating the profile. */
  unborn?: boolean;
  /** Not closed because its process is still running (a daemon that outlived the program). */
  running?: boolean;
}

/** Read a profile back: its header, its alloc/free events counted, whether it was closed. */
export async function readDiskProfile(base: string, startedAfterUs = -Infinity): Promise<DiskProfile | null> {
  let issues = 0;
  try {
    // Loaded only when needed: most runs never read a profile back.
    const [{ openProfile }, { OP_FREE }] = await Promise.all([import('../format/profile.js'), import('../format/source.js')]);
    const src = await openProfile(base, { worker: false, onIssue: () => void issues++ });
    try {
      const h = src.header;
      if (h.startTimeUs < startedAfterUs) return null;
      let events = 0;
      for await (const batch of src.batches()) {
        for (let i = 0; i < batch.length; i++) if (batch.op[i]! <= OP_FREE) events++;
      }
      return { base, pid: h.pid, ppid: h.ppid, startTimeUs: h.startTimeUs, events, complete: src.complete, issues };
    } finally {
      await src.close();
    }
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { base, pid: null, ppid: null, startTimeUs: 0, events: 0, complete: false, issues, error: message };
  }
}

/**
 * The profiles of followed forks of a recording to BASE: BASE.PID.hpm + BASE.PID.hpd (children and
 * their own children alike) that started recording at or after `sinceUs` (so that an earlier run's
 * children, left in the same directory, are not counted). Sorted by start time.
 */
export async function findChildProfiles(base: string, sinceUs: number): Promise<DiskProfile[]> {
  const dir = dirname(base);
  const prefix = basename(base);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: DiskProfile[] = [];
  for (const name of names) {
    if (!name.startsWith(`${prefix}.`) || !name.endsWith('.hpm')) continue;
    // BASE.PID, and BASE.PID.PID... for the children of children (a fork server's workers).
    if (!/^\d+(\.\d+)*$/.test(name.slice(prefix.length + 1, -4))) continue;
    const pids = name.slice(prefix.length + 1, -4).split('.');
    const child = join(dir, name.slice(0, -4));
    const p = await readDiskProfile(child, sinceUs);
    if (p && (p.error === undefined || statSafe(`${child}.hpm`) >= sinceUs / 1000)) {
      p.level = pids.length;
      if (p.error === undefined && !p.complete && p.pid !== null) p.running = processRunning(p.pid);
      if (p.error !== undefined) {
        // Its header may be missing: the name still says whose it is.
        p.pid ??= Number(pids[pids.length - 1]);
        p.unborn = !existsSync(`${child}.hpd`);
      }
      found.push(p);
    }
  }
  return found.sort((a, b) => a.startTimeUs - b.startTimeUs || a.base.localeCompare(b.base));
}

/** Whether process PID exists and is not a zombie (Linux's /proc; false where it cannot tell). */
function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== '' && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function statSafe(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -Infinity;
  }
}

/** Why a profile on disk holds no events, or what is wrong with one that holds some. */
function diskProfileNote(p: DiskProfile): string {
  if (p.unborn) return 'no events: killed while creating its profile (only the .hpm was written; readers given several profiles leave it out)';
  if (p.error !== undefined) return `unreadable: ${p.error.replace(/^hp-\w+: /, '')}`;
  const damaged = p.issues > 0 ? `; ${count(p.issues)} damaged or truncated block${p.issues === 1 ? '' : 's'}` : '';
  const events = `${count(p.events)} event${p.events === 1 ? '' : 's'}`;
  if (p.complete) return p.events === 0 ? `no events: no allocation was sampled before it ended${damaged}` : `${events}${damaged}`;
  if (p.running) return `${p.events === 0 ? 'no events yet' : `${events} so far`}: still running (it outlived the program; its profile grows until it ends)${damaged}`;
  if (p.events === 0) return `no events: it ended before its first flush without closing its profile (killed by SIGKILL or by a signal the recorder does not handle?)${damaged}`;
  return `${events}, up to its last flush: it ended without closing its profile (killed?)${damaged}`;
}

/** Summary lines for the children of a recording (without the "hp-record: " prefix). */
export function formatChildren(children: DiskProfile[], parentPid: number | undefined, forks: number | undefined, limit = 20): string[] {
  const lines: string[] = [];
  for (const c of children.slice(0, limit)) {
    lines.push(`child ${c.pid ?? '?'}: ${c.base}.hpm, ${c.base}.hpd: ${diskProfileNote(c)}`);
  }
  if (children.length > limit) {
    const rest = children.slice(limit);
    lines.push(`and ${count(rest.length)} more child profiles with ${count(rest.reduce((n, c) => n + c.events, 0))} events`);
  }
  if (forks !== undefined && parentPid !== undefined) {
    // A profile too damaged to name its parent is a direct child by its name (BASE.PID).
    const direct = children.filter((c) => c.ppid === parentPid || (c.ppid === null && c.level === 1)).length;
    const silent = forks - direct;
    if (silent > 0) {
      lines.push(`${count(silent)} forked ${silent === 1 ? 'child' : 'children'} recorded nothing and wrote no files (no allocation sampled before ${silent === 1 ? 'it' : 'they'} exec'd or exited)`);
    }
  }
  return lines;
}

function readStatus(path: string): BootstrapStatus | null {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as BootstrapStatus;
    return value && typeof value === 'object' && typeof value.state === 'string' ? value : null;
  } catch {
    return null;
  }
}

const count = (n: number): string => n.toLocaleString('en-US');

/**
 * The one summary line (without the "hp-record: " prefix), from the bootstrap's status and, when
 * the program died before the recorder could report, from the profile read back from disk.
 */
export function formatSummary(status: BootstrapStatus, mode: 'profile' | 'stats', signal: NodeJS.Signals | null, onDisk: DiskProfile | null = null): string {
  const files = status.files ?? [];
  const where = files.length > 0 ? files.join(', ') : 'no files';
  if (status.state !== 'finished') {
    const how = signal ? `was killed by ${signal}` : 'exited (or replaced itself with exec) without running atexit handlers';
    if (onDisk && onDisk.error === undefined) {
      const state = onDisk.complete ? 'the recorder closed the profile' : 'the profile is readable up to its last flush';
      return `${where}: the program ${how}; ${state}: ${count(onDisk.events)} events`;
    }
    return `${where}: the program ${how}; the profile is readable up to its last flush`;
  }
  const s = status.summary ?? {};
  const num = (key: string): number | undefined => (typeof s[key] === 'number' && Number.isFinite(s[key]) ? (s[key] as number) : undefined);
  const parts: string[] = [];
  if (mode === 'profile') {
    const events = num('events');
    const traces = num('traces');
    if (events !== undefined) parts.push(`${count(events)} events`);
    if (traces !== undefined) parts.push(`${count(traces)} traces`);
  }
  const allocations = num('allocations_seen') ?? num('allocations');
  if (allocations !== undefined) parts.push(`${count(allocations)} allocations seen`);
  const written = num('bytes_written');
  if (written !== undefined && files.length > 0) parts.push(`${formatBytes(written)} written`);
  const fraction = num('sampled_fraction');
  if (fraction !== undefined && mode === 'profile') parts.push(`${formatPercent(fraction)} of allocations sampled`);
  const recorderPeak = num('recorder_peak_bytes');
  if (recorderPeak !== undefined && mode === 'profile') parts.push(`recorder peak memory ${formatBytes(recorderPeak)}`);
  const lost = num('lost_events');
  if (lost) parts.push(`${count(lost)} events lost (out of memory)`);
  for (const key of ['stop_error', 'summary_error', 'error']) {
    if (typeof s[key] === 'string') parts.push(`recorder error: ${s[key] as string}`);
  }
  if (typeof s['write_error'] === 'string' && s['write_error'] !== '') {
    const at = num('write_failed_s');
    const unwritten = num('events_unwritten') ?? 0;
    parts.push(
      `recording stopped${at !== undefined ? ` at ${at.toFixed(1)} s` : ''}: ${s['write_error'] as string}; ` +
        `${count(unwritten)} recorded events were not written and later allocations were not recorded: the profile is incomplete`,
    );
  }
  return parts.length > 0 ? `${where}: ${parts.join(', ')}` : where;
}

/** True when the recorder's summary says the profile lost events (a failed write, or out of memory). */
export function profileLostEvents(status: BootstrapStatus | null): boolean {
  const s = status?.state === 'finished' ? status.summary ?? {} : {};
  return (typeof s['write_error'] === 'string' && s['write_error'] !== '') || (typeof s['lost_events'] === 'number' && s['lost_events'] > 0);
}

/**
 * The share of allocations sampled: 0% and 100% only when none or all were (99.96% is not
 * "100%", which reads as every allocation recorded), one decimal from 10%, two digits below.
 */
function formatPercent(fraction: number): string {
  const pct = fraction * 100;
  if (pct === 0 || fraction >= 1) return `${pct.toFixed(0)}%`;
  if (pct < 10) return `${pct.toPrecision(2)}%`;
  // As many decimals as it takes not to round up to 100.
  let d = 1;
  while (d < 12 && Number(pct.toFixed(d)) >= 100) d++;
  return `${pct.toFixed(d)}%`;
}

/** --mark-signal: USR1 or USR2 (with or without SIG). Other signals have meanings a program relies on. */
function parseMarkSignal(value: string, mode: string): NodeJS.Signals {
  const name = `SIG${value.toUpperCase().replace(/^SIG/, '')}`;
  if (name !== 'SIGUSR1' && name !== 'SIGUSR2') throw new UsageError(`--mark-signal ${value}: expected USR1 or USR2`);
  if (mode === 'stats') throw new UsageError('--mode stats records no timeline: --mark-signal does not apply');
  return name as NodeJS.Signals;
}

/** Die of `signal` like the program did; where that is impossible (ignored by Node), exit 128+n as shells report it. */
function dieBySignal(signal: NodeJS.Signals): void {
  for (const sig of FORWARDED_SIGNALS) process.removeAllListeners(sig);
  process.removeAllListeners(signal); // the --mark-signal's, or one that was ignored at start
  try {
    process.kill(process.pid, signal);
  } catch {
    // fall through
  }
  process.exitCode = 128 + (osConstants.signals[signal] ?? 0);
}

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    // What the program must inherit as python would: read before anything else starts.
    const startSignals = takeStartSignals();
    const startEnvironment = takeStartEnvironment();
    restoreStartEnvironment(startEnvironment);
    const addressLimit = takeStartLimit('as');
    const fileLimit = takeStartLimit('nofile');
    const fds = inheritedFds();
    const closedStdio = takeClosedStdio();
    const split = splitCommandLine(argv);
    const args = parser(NAME, split.own, USAGE, EXAMPLES)
      .parserConfiguration({
        'halt-at-non-option': true,
        'populate--': true,
        'parse-positional-numbers': false,
        'duplicate-arguments-array': false,
      })
      .option('output', { alias: 'o', type: 'string', requiresArg: true, describe: 'Profile base name: writes BASE.hpm and BASE.hpd (default ./heapprof.PID; a directory means DIR/heapprof.PID)' })
      .option('sample', { type: 'string', requiresArg: true, describe: "Size-range sampling table, e.g. '{128: 1e-4, 8192: 0.1}' (the default); '{}' records every allocation" })
      .option('sample-bytes', { type: 'string', requiresArg: true, describe: 'Byte-Poisson sampling: on average one sample every R bytes (e.g. 512K)' })
      .option('mode', { requiresArg: true, choices: ['profile', 'stats'] as const, default: 'profile' as const, describe: 'profile: record events; stats: print the HEAP USAGE SUMMARY size table at exit' })
      .option('python', { type: 'string', requiresArg: true, describe: 'Python interpreter (default: $HEAPPROF_PYTHON, else python3 on PATH)' })
      .option('module', { alias: 'm', requiresArg: true, type: 'string', describe: 'Run a library module as a script, like python -m; what follows is its arguments' })
      .option('c', { requiresArg: true, type: 'string', describe: 'Run this Python code, like python -c; what follows is its arguments' })
      .option('follow-fork', { type: 'boolean', default: false, describe: 'Also record forked children, each to BASE.CHILDPID.hpm/.hpd' })
      .option('follow-children', { type: 'boolean', default: false, describe: 'Also record the Python processes the program starts (multiprocessing spawn and forkserver, subprocess running python) and forked children, each to BASE.PID.hpm/.hpd' })
      .option('force', { type: 'boolean', default: false, describe: 'Overwrite an existing profile; run a script that does not look like Python' })
      .option('mark-signal', { type: 'string', requiresArg: true, describe: 'USR1 or USR2: each time the program (or hp-record) receives it, write a mark signal-N into the profile' })
      .option('pid', { type: 'string', requiresArg: true, describe: 'Attach to this running Python process instead of starting one (see ATTACHING in hp-record(1))' })
      .option('duration', { type: 'string', requiresArg: true, describe: 'With --pid: stop after SECONDS (default: at Ctrl-C or --stop)' })
      .option('stop', { type: 'boolean', default: false, describe: 'With --pid: stop the hp-record that is recording that process' })
      .option('native', { type: 'boolean', describe: 'Also record C allocations (malloc family, anonymous mmap) with their thread, by preloading the hook into Python (see hp-record(1)); default: $HEAPPROF_NATIVE' })
      .option('native-stacks', { type: 'boolean', default: false, describe: 'With --native (implied): each sampled C allocation gets its native frames up to the Python ones, not only its caller' })
      .conflicts('sample', 'sample-bytes')
      .fail((msg, err) => {
        // yargs reports some usage errors (a missing option value) as a YError: still bad usage.
        if (err && err.name !== 'YError') throw err;
        const text = msg || err?.message || 'bad usage';
        throw new UsageError(`${text.replace(/\s*\n\s*/g, ' ')} (see hp-record --help)`);
      })
      .parseSync();
    setQuiet(Boolean(args.quiet));
    // The native option given on the command line, for the errors of modes that have no native recording.
    const nativeGiven = args.native === true ? '--native' : args['native-stacks'] ? '--native-stacks' : null;
    if (args.pid !== undefined || args.stop || args.duration !== undefined) {
      // The C allocator can only be interposed from the start (LD_PRELOAD): an attached process keeps its own.
      if (nativeGiven) throw new UsageError(`${nativeGiven} preloads the hook when the program starts: it does not apply with --pid`);
      // A program after hp-record's options (split off before yargs) is an error here too.
      await runAttach({ ...args, '--': [...((args['--'] as unknown[] | undefined) ?? []), ...(split.target ?? [])] });
      return;
    }

    const mode = args.mode;
    const force = Boolean(args.force);
    const followChildren = Boolean(args['follow-children']);
    const followFork = followChildren || Boolean(args['follow-fork']);
    let rest = [...((args['--'] as unknown[] | undefined) ?? []).map(String), ...(split.target ?? [])];
    const interpreter = args.module === undefined ? interpreterFirst(rest) : null;
    if (interpreter) {
      if (args.python !== undefined) throw new UsageError(`${interpreter.python}: the interpreter is given twice (--python ${args.python} and before the program): keep one`);
      rest = interpreter.rest;
    }
    const target = parseTarget(rest, args.module);

    if (mode === 'stats') {
      if (args.sample !== undefined || args['sample-bytes'] !== undefined) {
        throw new UsageError('--mode stats counts every allocation: --sample and --sample-bytes do not apply');
      }
      if (followFork) throw new UsageError(`--mode stats does not follow forks: drop ${followChildren ? '--follow-children' : '--follow-fork'}`);
      if (nativeGiven) throw new UsageError(`--mode stats counts Python allocations only: drop ${nativeGiven}`);
    }
    const markSignal = args['mark-signal'] !== undefined ? parseMarkSignal(args['mark-signal'], mode) : null;
    const sampling = args.sample !== undefined ? parseSampleSpec(args.sample) : null;
    const sampleBytes = args['sample-bytes'] !== undefined ? parseByteCount(args['sample-bytes']) : null;

    const python = interpreter?.python ?? args.python ?? (process.env.HEAPPROF_PYTHON || 'python3');
    if (args.python === '') throw new UsageError('--python: needs an interpreter');
    if (findExecutable(python) === null) {
      const from = interpreter ? 'command line' : args.python !== undefined ? '--python' : process.env.HEAPPROF_PYTHON ? 'HEAPPROF_PYTHON' : 'default';
      const hint = from === 'default' ? ' (use --python EXE or HEAPPROF_PYTHON)' : '';
      throw new UsageError(`${python}: ${python.includes('/') ? 'not an executable file' : 'not found on PATH'}${hint}`);
    }
    if (target[0] !== '-m' && target[0] !== '-c' && target[0] !== '-') {
      const script = target[0]!;
      if (!existsSync(script)) throw new UsageError(`${script}: no such file`);
      // python runs a directory (or a zip application) through the __main__ module in it.
      if (statSync(script).isDirectory() && !readdirSync(script).some((name) => name === '__main__' || name.startsWith('__main__.')))
        throw new UsageError(`${script}: a directory without __main__.py`);
      const why = force ? null : notPythonReason(script);
      if (why) throw new UsageError(`${script}: ${why} (hp-record runs Python programs; --force runs it with ${python} anyway)`);
    }
    // An explicit --native or --no-native wins; otherwise $HEAPPROF_NATIVE (1 on, 0 or unset off), which
    // does not apply to --mode stats (it has no native recording).
    const nativeStacks = Boolean(args['native-stacks']);
    if (nativeStacks && args.native === false) throw new UsageError('--native-stacks records C allocations: it does not go with --no-native');
    const native = args.native ?? (nativeStacks || (mode === 'profile' && nativeFromEnvironment(process.env)));
    const hookLib = native ? hookLibraryPath() : null;
    if (hookLib !== null && !existsSync(hookLib)) throw new HpError(`${hookLib}: no such file (run \`npx node-gyp rebuild\`)`, EXIT_DATA);
    const output = planOutput(args.output, mode, force, followFork);
    if (!existsSync(BOOTSTRAP_PATH)) throw new HpError(`${BOOTSTRAP_PATH}: no such file (is the heapprof package complete?)`, EXIT_DATA);

    // A private directory (mode 0700) for the bootstrap, as sitecustomize.py, and its status file.
    let privateDir: string;
    try {
      privateDir = mkdtempSync(join(tmpdir(), 'hp-record-'));
    } catch (err) {
      throw new HpError(`${tmpdir()}: cannot create hp-record's private directory: ${errnoText(err)}`, EXIT_DATA);
    }
    const statusPath = join(privateDir, 'status.json');
    try {
      try {
        // The status file is written in place (python pads it with spaces, which JSON allows), so that
        // a temporary directory that fills up during the run cannot lose the recorder's report.
        writeFileSync(statusPath, ' '.repeat(STATUS_RESERVE_BYTES), { mode: 0o600 });
        writeFileSync(join(privateDir, 'sitecustomize.py'), bootstrapLoader(BOOTSTRAP_PATH), { mode: 0o600 });
      } catch (err) {
        throw new HpError(`${privateDir}: cannot prepare hp-record's private directory: ${errnoText(err)}`, EXIT_DATA);
      }
      const userPythonPath = process.env.PYTHONPATH;
      const config = {
        status: statusPath,
        recorder_pid: process.pid, // the bootstrap's watchdog: if hp-record dies, the program is ended
        target,
        package_parent: PACKAGE_PARENT,
        pythonpath: userPythonPath ?? null,
        mode,
        base: output.base ?? null,
        dir: output.dir ?? null,
        sampling: sampling?.map((r) => [r.bound, r.p]) ?? null,
        sample_bytes: sampleBytes,
        follow_fork: followFork,
        follow_children: followChildren,
        force,
        native,
        native_stacks: nativeStacks,
        preload: hookLib,
        // --native sets HEAPPROF_NATIVE_LIB for the package: the bootstrap sets the user's value back.
        user_native_lib: process.env.HEAPPROF_NATIVE_LIB ?? null,
        mark_signal: markSignal === null ? null : osConstants.signals[markSignal],
        // Ignored and blocked at our start: the bootstrap restores them, which Node's spawn reset.
        signals: startSignals.ignore.length + startSignals.block.length > 0 ? startSignals : null,
        // The soft address-space limit bin/hp-record.js raised for Node: the bootstrap sets it back.
        rlimit_as: addressLimit,
        rlimit_nofile: fileLimit,
        // Descriptors 0-2 closed at our start (Node reopened them on /dev/null): the bootstrap closes them again.
        closed_stdio: closedStdio,
        // Arguments and environment entries whose bytes Node could not keep (not UTF-8): the bootstrap restores them.
        raw_bytes: rawBytes(target, process.env),
      };
      const configPath = join(privateDir, 'config.json');
      try {
        writeFileSync(configPath, JSON.stringify(config), { mode: 0o600 });
      } catch (err) {
        throw new HpError(`${privateDir}: cannot prepare hp-record's private directory: ${errnoText(err)}`, EXIT_DATA);
      }
      const startedUs = Date.now() * 1000;
      let stopPolling = (): void => {};
      let announced = false;
      const program = target[0] === '-m' ? `-m ${target[1]}` : target[0] === '-c' ? '-c CODE' : target[0] === '-' ? '- (the program from standard input)' : target[0]!;
      const startLine = (pid: number): void => {
        if (announced) return;
        announced = true;
        writeStderr(`${NAME}: recording ${python} ${program} (pid ${pid}) to ${recordingDestination(mode, output, pid)}; sampler: ${mode === 'stats' ? 'every allocation' : samplerText(sampling, sampleBytes)}\n`);
      };
      const { code, signal } = await runChild(
        python,
        target,
        markSignal,
        inStartOrder({
          ...process.env,
          PYTHONPATH: userPythonPath ? `${privateDir}${delimiter}${userPythonPath}` : privateDir,
          // The configuration is a file in the private directory and the variable names it: one
          // environment string may not pass 128 KiB (MAX_ARG_STRLEN), and the configuration holds the
          // program's whole command line, so a long argument list that python takes would fail to start.
          [CONFIG_VAR]: JSON.stringify({ config_file: configPath }),
          ...(hookLib !== null ? nativeEnvironment(hookLib, process.env) : {}),
        }, startEnvironment),
        (pid) => {
          if (isQuiet()) return;
          // Said once the bootstrap reports the recorder started: a program that never starts
          // (no such module, an unsupported Python) gets its one error line and nothing else.
          const poll = setInterval(() => {
            const st = readStatus(statusPath);
            if (st === null || (st.state === 'started' && !profileBegun(st, pid))) return;
            clearInterval(poll);
            if (st.state !== 'error') startLine(pid);
          }, 25);
          stopPolling = () => {
            clearInterval(poll);
            // A program that ended before the first look: say it now, before the summary.
            const st = readStatus(statusPath);
            if (st !== null && st.state !== 'error' && (st.state !== 'started' || profileBegun(st, pid))) startLine(pid);
          };
        },
        { fds, ignoredSignals: startSignals.ignore },
      );
      stopPolling();
      const status = readStatus(statusPath);
      // A program that exec'd or was killed could not remove its lock file, nor could the recorder of
      // one that closed the lock's descriptor (os.closerange): it goes with its holder.
      const hpm0 = status?.files?.[0];
      if (status && mode === 'profile' && hpm0?.endsWith('.hpm')) removeStaleLock(hpm0.slice(0, -4), status.pid);
      if (status?.state === 'error') {
        throw new HpError(status.message ?? 'the recorder could not start', status.exit ?? code ?? EXIT_DATA);
      }
      if (status === null && signal) {
        // Killed (a signal hp-record passed on, say) while Python was still starting, before the bootstrap ran.
        if (!isQuiet()) writeStderr(`${NAME}: the program was killed by ${signal} before the recorder started; nothing was recorded\n`);
      } else if (status === null) {
        // The program ran, but python never imported the bootstrap (site disabled?): say so whatever -q says.
        writeStderr(`${NAME}: ${python} did not load the recorder (is its site module disabled?); nothing was recorded\n`);
      } else if (!isQuiet()) {
        const hpm = status.files?.[0];
        const base = mode === 'profile' && hpm?.endsWith('.hpm') ? hpm.slice(0, -4) : null;
        // Killed before the recorder could report: what reached the disk is the answer.
        const onDisk = base && status.state !== 'finished' ? await readDiskProfile(base) : null;
        const lines = [formatSummary(status, mode, signal, onDisk)];
        if (base && followFork) {
          const forks = status.summary?.['forks'];
          // One second of slack: a child's start time is its fork, after ours, on the same clock.
          const children = await findChildProfiles(base, startedUs - 1_000_000);
          lines.push(...formatChildren(children, status.pid, typeof forks === 'number' ? forks : undefined));
        }
        const hint = mode === 'profile' && status.state === 'finished' ? nativeHint(status.summary ?? {}) : null;
        if (hint) lines.push(hint);
        // No next step towards files that are gone (deleted, or their directory, while recording).
        if (base && existsSync(`${base}.hpm`) && existsSync(`${base}.hpd`)) {
          lines.push(`next: hp-snapshot ${base}    (also: hp-history ${base}, hp-report ${base} -o report.html)`);
        } else if (base) {
          lines.push(`${base}.hpm, ${base}.hpd: no longer there (deleted while recording?): nothing to read`);
        }
        writeStderr(lines.map((line) => `${NAME}: ${line}\n`).join(''));
      }
      removePrivateDir(privateDir);
      if (signal) dieBySignal(signal);
      else if (code === 0 && profileLostEvents(status)) process.exitCode = EXIT_DATA;
      else process.exitCode = code ?? EXIT_DATA;
    } finally {
      removePrivateDir(privateDir);
    }
  }, { exitWhenDone: true });
}

/** hp-record --pid PID [--stop | --duration S]: record a running process (lib/attach.ts). */
async function runAttach(args: {
  pid?: string; stop?: boolean; duration?: string; output?: string; sample?: string; 'sample-bytes'?: string;
  mode?: string; python?: string; module?: string; 'follow-fork'?: boolean; 'follow-children'?: boolean; force?: boolean; '--'?: unknown[];
}): Promise<void> {
  const say = (line: string): void => {
    process.stderr.write(`${NAME}: ${line}\n`);
  };
  // Loaded only for --pid (it brings node:net and gdb's plumbing): every other run starts without it.
  const { attachBase, inspectTarget, recordAttached, stopSession } = await import('../attach.js');
  if (args.pid === undefined) throw new UsageError(`--${args.stop ? 'stop' : 'duration'} needs --pid PID`);
  if (!/^\d+$/.test(args.pid.trim()) || Number(args.pid) <= 0) throw new UsageError(`--pid '${args.pid}': expected a process id`);
  const pid = Number(args.pid);
  const rest = (args['--'] ?? []) as unknown[];
  if (rest.length > 0 || args.module !== undefined) throw new UsageError('--pid attaches to a running process: give no program to run');
  if (args.python !== undefined) throw new UsageError('--python does not apply with --pid (the process runs its own interpreter)');
  if (args.mode === 'stats') throw new UsageError('--mode stats is not available with --pid (it would print in the process\'s stderr)');
  if (args['follow-children']) throw new UsageError('--follow-children does not apply with --pid (the processes it starts get no bootstrap); --follow-fork does');
  if (args.stop) {
    for (const opt of ['output', 'sample', 'sample-bytes', 'duration'] as const) {
      if (args[opt] !== undefined) throw new UsageError(`--stop takes no --${opt}`);
    }
    await stopSession(pid, (line) => {
      if (!isQuiet()) say(line);
    });
    return;
  }
  let durationS: number | null = null;
  if (args.duration !== undefined) {
    durationS = Number(args.duration);
    if (args.duration.trim() === '' || !Number.isFinite(durationS) || durationS <= 0) throw new UsageError(`--duration '${args.duration}': expected seconds > 0`);
  }
  const sampling = args.sample !== undefined ? parseSampleSpec(args.sample) : null;
  const sampleBytes = args['sample-bytes'] !== undefined ? parseByteCount(args['sample-bytes']) : null;
  const target = inspectTarget(pid);
  const force = Boolean(args.force);
  const base = attachBase(planOutput(args.output, 'profile', force, Boolean(args['follow-fork'])), pid, force);
  const gdb = process.env.HEAPPROF_GDB || 'gdb';
  const gdbPath = findExecutable(gdb);
  if (gdbPath === null) throw new HpError(`--pid ${pid}: ${gdb} not found${gdb.includes('/') ? '' : ' on PATH'}: attaching needs gdb (e.g. apt-get install gdb), or set HEAPPROF_GDB`, EXIT_DATA);
  const startedUs = Date.now() * 1000;
  const result = await recordAttached(
    target,
    { pid, base, sampling: sampling?.map((r) => [r.bound, r.p]) ?? null, sampleBytes, followFork: Boolean(args['follow-fork']), force, durationS, gdb: gdbPath },
    say,
  );
  if (isQuiet()) return;
  const timing = `attach ${result.attachSeconds.toFixed(2)} s${result.detachSeconds !== null ? `, detach ${result.detachSeconds.toFixed(2)} s` : ''}`;
  if (result.ended === 'target-exited') {
    // The process's own exit closes the profile (atexit, os._exit, an unhandled SIGTERM) without
    // a word to hp-record: the profile on disk says whether it was closed, and what it holds.
    const onDisk = result.summary ? null : await readDiskProfile(base);
    const how = result.summary
      ? 'the process exited; its profile was closed at exit'
      : onDisk && onDisk.error === undefined
        ? onDisk.complete
          ? `the process ended and the recorder closed the profile: ${count(onDisk.events)} events`
          : `the process ended without closing the profile (killed by SIGKILL?); it is readable up to its last flush: ${count(onDisk.events)} events`
        : 'the process exited or was killed while recorded; the profile is readable up to its last flush';
    say(`${result.files.join(', ')}: ${how} (${timing})`);
  } else {
    say(`${formatSummary({ state: 'finished', files: result.files, summary: result.summary ?? {} }, 'profile', null)}; process ${pid} left running (${timing})`);
  }
  if (args['follow-fork']) {
    // The children forked while attached, as for a recorded program (one second of slack: a
    // child's start time is its fork, after the attach began, on the same clock).
    const forks = result.summary?.['forks'];
    for (const line of formatChildren(await findChildProfiles(base, startedUs - 1_000_000), pid, typeof forks === 'number' ? forks : undefined)) say(line);
  }
}

/**
 * Start the program with our stdio and wait for it, passing signals on: hp-record never dies
 * before the program does. SIGTERM is always forwarded; SIGINT, SIGQUIT and SIGHUP only when they
 * cannot have come from our terminal (see inTerminalForeground), so that a Ctrl-C arrives once.
 */
function runChild(
  command: string,
  args: string[],
  markSignal: NodeJS.Signals | null,
  env: NodeJS.ProcessEnv,
  onStart: (pid: number) => void = () => {},
  inherited: { fds: number[]; ignoredSignals: number[] } = { fds: [], ignoredSignals: [] },
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let child: ChildProcess | undefined;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals): void => {
    if (GROUP_SIGNALS.has(sig) && inTerminalForeground()) return;
    if (!child) pending.push(sig);
    else if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const sig of FORWARDED_SIGNALS) {
    if (sig === markSignal) continue; // passed on once, below
    try {
      process.on(sig, forward);
    } catch {
      // a signal this platform does not have (SIGPWR, SIGSTKFLT outside Linux)
    }
  }
  // The mark signal sent to hp-record goes to the program, whose bootstrap writes the mark.
  if (markSignal) process.on(markSignal, () => child && child.exitCode === null && child.signalCode === null && child.kill(markSignal));
  // A signal ignored when we started (the program ignores it again: see the bootstrap) must not
  // end hp-record either, whose death would end the program (its watchdog).
  for (const n of inherited.ignoredSignals) {
    const name = Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined;
    if (!name || HARMLESS_SIGNALS.has(name) || FORWARDED_SIGNALS.includes(name) || name === markSignal || process.listenerCount(name) > 0) continue;
    try {
      process.on(name, () => {});
    } catch {
      // one Node will not watch (SIGKILL, SIGSTOP, the fault signals): nothing to do
    }
  }
  return new Promise((resolve, reject) => {
    child = spawn(command, args, { stdio: childStdio(inherited.fds), env });
    if (child.pid !== undefined) onStart(child.pid);
    // The handlers stay until hp-record exits or re-raises the program's signal: a late Ctrl-C must not
    // turn the program's exit status into ours.
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(new HpError(`${command}: cannot run: ${errnoText(err)}`, EXIT_DATA));
    });
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
    for (const sig of pending.splice(0)) child.kill(sig);
  });
}
