// hp-record: run a Python program under the heapprof recorder. Validates everything it can before
// starting Python, then starts `python script.py args` itself with the bootstrap (python/heapprof/_run.py)
// as a private sitecustomize that starts the recorder, and behaves like the program: same stdio, same
// exit status, same death by signal.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_DATA, HpError, UsageError, formatBytes, isQuiet, parser, runMain, setQuiet, systemErrorMessage } from '../cli.js';

const NAME = 'hp-record';

/** The environment variable carrying the JSON configuration to the bootstrap, which removes it at once. */
export const CONFIG_VAR = 'HEAPPROF_RECORD_CONFIG';

/** Where the bootstrap lives relative to this module (dist/cmd/record.js and lib/cmd/record.ts alike). */
export const BOOTSTRAP_PATH = fileURLToPath(new URL('../../python/heapprof/_run.py', import.meta.url));
/** The directory that holds the heapprof Python package. */
const PACKAGE_PARENT = dirname(dirname(BOOTSTRAP_PATH));

const USAGE = `Usage: $0 [options] [--] script.py [args...]
       $0 [options] -m module [args...]

Run a Python program under the heapprof recorder, exactly as \`python3 script.py args...\` (or
\`python3 -m module args...\`) would run it: same sys.argv, sys.path[0], __main__, stdin/stdout/stderr,
exit status and signals. The profile goes to BASE.hpm and BASE.hpd, created mode 0600; the default
BASE is heapprof.PID in the current directory (PID = the Python process id). A one-line summary is
printed to stderr at the end. Exit status: the program's own; 2 when hp-record's arguments are bad;
1 when the recorder could not start (the program did not run).`;

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
 * Turn -o into an output plan and check it before anything runs: the directory exists and is
 * writable (probed by creating a file, which also catches read-only mounts and root), and the
 * profile files do not exist unless `force`. `-o run.hpm` means base `run`; an existing directory
 * (or a name ending in /) means "heapprof.PID in there". Throws UsageError.
 */
export function planOutput(output: string | undefined, mode: 'profile' | 'stats', force: boolean): OutputPlan {
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
    if (exists && !force) throw new UsageError(`-o ${output}: ${file} already exists (use --force to overwrite)`);
  }
  return { base };
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
  const probe = join(dir, `.hp-record-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
    unlinkSync(probe);
  } catch (err) {
    throw new UsageError(`-o ${output}: cannot create files in ${dir}: ${errnoText(err)}`);
  }
}

/** The program to run, as python's arguments: [script, args...] or ['-m', module, args...]. */
export function parseTarget(rest: string[], moduleOption: string | undefined): string[] {
  if (moduleOption !== undefined) {
    if (moduleOption === '') throw new UsageError('-m: needs a module name');
    return ['-m', moduleOption, ...rest];
  }
  const [first, ...args] = rest;
  if (first === undefined) throw new UsageError('no program to run: hp-record [options] -- script.py [args...]');
  if (first === '-m') {
    if (args.length === 0 || args[0] === '') throw new UsageError('-m: needs a module name');
    return ['-m', ...args];
  }
  if (first === '-' || (first.startsWith('-') && first.length > 1)) {
    throw new UsageError(`${first}: hp-record runs a script or -m module, not python options`);
  }
  return [first, ...args];
}

/** Signals hp-record passes on to the program. */
const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
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
  summary?: Record<string, unknown>;
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

/** The one summary line (without the "hp-record: " prefix), from the bootstrap's status. */
export function formatSummary(status: BootstrapStatus, mode: 'profile' | 'stats', signal: NodeJS.Signals | null): string {
  const files = status.files ?? [];
  const where = files.length > 0 ? files.join(', ') : 'no files';
  if (status.state !== 'finished') {
    const how = signal ? `was killed by ${signal}` : 'exited without running atexit handlers';
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
  const lost = num('lost_events');
  if (lost) parts.push(`${count(lost)} events lost`);
  for (const key of ['stop_error', 'summary_error', 'error']) {
    if (typeof s[key] === 'string') parts.push(`recorder error: ${s[key] as string}`);
  }
  return parts.length > 0 ? `${where}: ${parts.join(', ')}` : where;
}

function formatPercent(fraction: number): string {
  const pct = fraction * 100;
  if (pct === 0 || pct >= 10) return `${pct.toFixed(pct >= 99.95 || pct === 0 ? 0 : 1)}%`;
  return `${pct.toPrecision(2)}%`;
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
  try {
    process.kill(process.pid, signal);
  } catch {
    // fall through
  }
  process.exitCode = 128 + (osConstants.signals[signal] ?? 0);
}

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = parser(NAME, argv, USAGE)
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
      .option('module', { alias: 'm', requiresArg: true, type: 'string', describe: 'Run a library module as a script, like python -m' })
      .option('follow-fork', { type: 'boolean', default: false, describe: 'Also record forked children, each to BASE.CHILDPID.hpm/.hpd' })
      .option('force', { type: 'boolean', default: false, describe: 'Overwrite an existing profile' })
      .option('mark-signal', { type: 'string', requiresArg: true, describe: 'USR1 or USR2: each time the program (or hp-record) receives it, write a mark signal-N into the profile' })
      .conflicts('sample', 'sample-bytes')
      .fail((msg, err) => {
        // yargs reports some usage errors (a missing option value) as a YError: still bad usage.
        if (err && err.name !== 'YError') throw err;
        const text = msg || err?.message || 'bad usage';
        throw new UsageError(`${text.replace(/\s*\n\s*/g, ' ')} (see hp-record --help)`);
      })
      .parseSync();
    setQuiet(Boolean(args.quiet));

    const mode = args.mode;
    const force = Boolean(args.force);
    const followFork = Boolean(args['follow-fork']);
    const rest = ((args['--'] as unknown[] | undefined) ?? []).map(String);
    const target = parseTarget(rest, args.module);

    if (mode === 'stats') {
      if (args.sample !== undefined || args['sample-bytes'] !== undefined) {
        throw new UsageError('--mode stats counts every allocation: --sample and --sample-bytes do not apply');
      }
      if (followFork) throw new UsageError('--mode stats does not follow forks: drop --follow-fork');
    }
    const markSignal = args['mark-signal'] !== undefined ? parseMarkSignal(args['mark-signal'], mode) : null;
    const sampling = args.sample !== undefined ? parseSampleSpec(args.sample) : null;
    const sampleBytes = args['sample-bytes'] !== undefined ? parseByteCount(args['sample-bytes']) : null;

    const python = args.python ?? (process.env.HEAPPROF_PYTHON || 'python3');
    if (args.python === '') throw new UsageError('--python: needs an interpreter');
    if (findExecutable(python) === null) {
      const from = args.python !== undefined ? '--python' : process.env.HEAPPROF_PYTHON ? 'HEAPPROF_PYTHON' : 'default';
      const hint = from === 'default' ? ' (use --python EXE or HEAPPROF_PYTHON)' : '';
      throw new UsageError(`${python}: ${python.includes('/') ? 'not an executable file' : 'not found on PATH'}${hint}`);
    }
    if (target[0] !== '-m') {
      const script = target[0]!;
      if (!existsSync(script)) throw new UsageError(`${script}: no such file`);
    }
    const output = planOutput(args.output, mode, force);
    if (!existsSync(BOOTSTRAP_PATH)) throw new HpError(`${BOOTSTRAP_PATH}: no such file (is the heapprof package complete?)`, EXIT_DATA);

    // A private directory (mode 0700) for the bootstrap, as sitecustomize.py, and its status file.
    const privateDir = mkdtempSync(join(tmpdir(), 'hp-record-'));
    const statusPath = join(privateDir, 'status.json');
    try {
      symlinkSync(BOOTSTRAP_PATH, join(privateDir, 'sitecustomize.py'));
      const userPythonPath = process.env.PYTHONPATH;
      const config = {
        status: statusPath,
        target,
        package_parent: PACKAGE_PARENT,
        pythonpath: userPythonPath ?? null,
        mode,
        base: output.base ?? null,
        dir: output.dir ?? null,
        sampling: sampling?.map((r) => [r.bound, r.p]) ?? null,
        sample_bytes: sampleBytes,
        follow_fork: followFork,
        force,
        mark_signal: markSignal === null ? null : osConstants.signals[markSignal],
      };
      const { code, signal } = await runChild(python, target, markSignal, {
        ...process.env,
        PYTHONPATH: userPythonPath ? `${privateDir}${delimiter}${userPythonPath}` : privateDir,
        [CONFIG_VAR]: JSON.stringify(config),
      });
      const status = readStatus(statusPath);
      if (status?.state === 'error') {
        throw new HpError(status.message ?? 'the recorder could not start', status.exit ?? code ?? EXIT_DATA);
      }
      if (status === null) {
        // The program ran, but python never imported the bootstrap (site disabled?): say so whatever -q says.
        process.stderr.write(`${NAME}: ${python} did not load the recorder (is its site module disabled?); nothing was recorded\n`);
      } else if (!isQuiet()) {
        process.stderr.write(`${NAME}: ${formatSummary(status, mode, signal)}\n`);
      }
      rmSync(privateDir, { recursive: true, force: true });
      if (signal) dieBySignal(signal);
      else process.exitCode = code ?? EXIT_DATA;
    } finally {
      rmSync(privateDir, { recursive: true, force: true });
    }
  });
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
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let child: ChildProcess | undefined;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals): void => {
    if (GROUP_SIGNALS.has(sig) && inTerminalForeground()) return;
    if (!child) pending.push(sig);
    else if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
  // The mark signal sent to hp-record goes to the program, whose bootstrap writes the mark.
  if (markSignal) process.on(markSignal, () => child && child.exitCode === null && child.signalCode === null && child.kill(markSignal));
  return new Promise((resolve, reject) => {
    child = spawn(command, args, { stdio: 'inherit', env });
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
