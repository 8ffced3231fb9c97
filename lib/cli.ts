// Command plumbing shared by every hp-* command: option parsing, the one error type and its
// exit codes, stdout writing with back-pressure and quiet EPIPE, NDJSON in and out, warnings.

import { createReadStream, readFileSync, statSync, type ReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Argv } from 'yargs';
import { escapeControls } from './escape.js';
import { jsonTooDeep, lineSplitter, MAX_JSON_DEPTH } from './lines.js';
import { quickHelp, quickParse, quickSpec, type QuickOption } from './quick-args.js';
import { nonUtf8NameHint } from './raw-args.js';
import { load, ROOT } from './where.cjs';

// yargs through its CommonJS build: one pre-bundled file and a few CommonJS dependencies load
// in about two thirds of the CPU time of its ES-module build (some thirty files through the
// asynchronous ESM loader). Same parser, same messages. Loaded only when lib/quick-args.ts
// cannot answer for it: yargs costs about as much as Node's own start, paid by every command.
const yargs = (args: string[]): Argv => (load('yargs/yargs') as (args: string[]) => Argv)(args);

/** Exit codes, in exactly one place: 0 success, 1 bad data or runtime failure, 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_DATA = 1;
export const EXIT_USAGE = 2;

/** An expected failure: printed as one line `cmd: message`, no stack unless HP_DEBUG=1. */
export class HpError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_DATA,
  ) {
    super(message);
    this.name = 'HpError';
  }
}

export class UsageError extends HpError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = 'UsageError';
  }
}

/** Thrown (and swallowed by runMain) when stdout's reader went away: `hp-events x | head -1`. */
export class BrokenPipe extends Error {}

const debug = (): boolean => process.env.HP_DEBUG === '1';

let quiet = false;
let commandName = 'heapprof';

/** Warnings and progress go to stderr, and -q silences them. Data never goes here. */
export function warn(message: string): void {
  if (!quiet) process.stderr.write(`${commandName}: ${escapeControls(message, true)}\n`);
}

export function setQuiet(q: boolean): void {
  quiet = q;
}

export function isQuiet(): boolean {
  return quiet;
}

/** The package's version, for every command's --version. */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** Thrown after a command has done all it was asked (printed its completion script): exit 0. */
export class Finished extends Error {}

/** Edit distance with transpositions (optimal string alignment), for "did you mean" on a mistyped option. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known option closest to a mistyped one (`tpo` -> `top`), or null when none is close. */
export function closestOption(unknown: string, known: string[]): string | null {
  const word = unknown.replace(/^-+/, '');
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    if (k.length < 2) continue;
    const d = k.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= (word.length <= 4 ? 1 : 2) ? best : null;
}

/** A bash (and zsh via bashcompinit) completion script: the command's options, else file names. */
export function completionScript(name: string, options: string[]): string {
  const words = [...new Set(options)].filter((o) => o.length > 0).map((o) => (o.length === 1 ? `-${o}` : `--${o}`)).sort();
  return `# ${name} completion: eval "$(${name} --completion)" in ~/.bashrc (zsh: autoload -U bashcompinit && bashcompinit first)\ncomplete -o default -o bashdefault -W '${words.join(' ')}' ${name}\n`;
}

/** The value given on the command line for an option (for messages), or '' when not found. */
function rawValue(argv: string[], names: string[]): string {
  let found = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    for (const n of names) {
      const flag = n.length === 1 ? `-${n}` : `--${n}`;
      if (a === flag && i + 1 < argv.length) found = argv[i + 1]!;
      else if (a.startsWith(`${flag}=`)) found = a.slice(flag.length + 1);
    }
  }
  return found;
}

/** Every value given on the command line for an option (`--at 1 --at=2 -o x`), in order. */
function givenValues(argv: string[], names: string[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    for (const n of names) {
      const flag = n.length === 1 ? `-${n}` : `--${n}`;
      if (a === flag) found.push(argv[i + 1] ?? '');
      else if (a.startsWith(`${flag}=`)) found.push(a.slice(flag.length + 1));
    }
  }
  return found;
}

/**
 * A yargs parser preconfigured the same way for every command: usage text that is both help
 * and spec, 2 or 3 examples at the end of --help, -q, --version, --completion, --strict
 * options with "did you mean" for a mistyped one, numbers checked with a message naming the
 * option and the value, failures reported as UsageError (exit 2).
 */
export function parser(name: string, argv: string[], usage: string, examples: Array<[string, string]> = []): Argv {
  commandName = name;
  // The command's calls are recorded; parseSync() answers through lib/quick-args.ts when it can,
  // else (and at the first call it does not know) the real yargs parser is built and the calls replayed.
  const calls: Array<[string, unknown[]]> = [];
  let real: Argv | null = null;
  const materialize = (): Argv => {
    if (real === null) {
      let y = yargsParser(name, argv, usage, examples);
      for (const [method, args] of calls) y = (y as unknown as Record<string, (...a: unknown[]) => Argv>)[method]!(...args);
      real = y;
    }
    return real;
  };
  const forward = (prop: string | symbol): unknown => {
    const y = materialize();
    const v = (y as unknown as Record<string | symbol, unknown>)[prop];
    if (typeof v !== 'function') return v;
    return (...a: unknown[]) => {
      const r = (v as (...a: unknown[]) => unknown).apply(y, a);
      return r === y ? facade : r;
    };
  };
  const recorded = new Set(['option', 'strict', 'strictOptions', 'parserConfiguration', 'conflicts', 'fail']);
  const facade: Argv = new Proxy({} as Argv, {
    get(_, prop) {
      if (real !== null) return forward(prop);
      if (prop === 'parseSync') {
        return () => {
          const quick = quickAnswer(name, argv, usage, examples, calls);
          if (quick !== null) {
            if (process.env.HP_CHECK_ARGS === '1') checkQuickAnswer(materialize(), argv, quick);
            if (quick.help !== undefined) {
              process.stdout.write(`${quick.help}\n`);
              throw new Finished();
            }
            return quick.args;
          }
          return materialize().parseSync();
        };
      }
      if (typeof prop === 'string' && recorded.has(prop)) {
        return (...a: unknown[]) => {
          calls.push([prop, a]);
          return facade;
        };
      }
      return forward(prop);
    },
  });
  return facade;
}

/** The options parser() declares for every command, as lib/quick-args.ts reads them. */
const BASE_OPTIONS: Array<[string, QuickOption]> = [
  ['quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No warnings, progress or summaries on stderr' }],
  ['completion', { type: 'boolean', describe: 'Print a bash/zsh completion script for this command' }],
  ['help', { alias: 'h', type: 'boolean', describe: 'Show help' }],
  ['version', { type: 'boolean', describe: 'Print the version' }],
];

/** `--help` or the parsed options without yargs, or null when yargs must answer. */
function quickAnswer(name: string, argv: string[], usage: string, examples: Array<[string, string]>, calls: Array<[string, unknown[]]>): { help?: string; args?: Record<string, unknown> } | null {
  const spec = quickSpec(name, usage, examples, BASE_OPTIONS, calls);
  if (spec === null) return null;
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    const help = quickHelp(spec);
    return help === null ? null : { help };
  }
  if (argv.length === 1 && argv[0] === '--version') return { help: VERSION };
  const args = quickParse(spec, argv);
  return args === null ? null : { args };
}

/** HP_CHECK_ARGS=1 (the tests): the fast path's answer must be exactly yargs' answer. */
function checkQuickAnswer(y: Argv, argv: string[], quick: { help?: string; args?: Record<string, unknown> }): void {
  let expected: unknown;
  if (quick.help !== undefined) {
    if (argv[0] === '--version') expected = VERSION;
    else y.showHelp((text) => (expected = text));
    if (expected !== quick.help) throw new Error(`HP_CHECK_ARGS: --help differs from yargs':\n${JSON.stringify(quick.help)}\n${JSON.stringify(expected)}`);
    process.stderr.write(`${commandName}: HP_CHECK_ARGS: ${argv[0]} without yargs, as yargs prints it\n`);
    return;
  }
  expected = y.parseSync();
  // node:util through require: an ES import of it runs every lazy getter of the module (some 10 ms).
  const { isDeepStrictEqual } = load('node:util') as typeof import('node:util');
  if (!isDeepStrictEqual({ ...(expected as object) }, quick.args)) throw new Error(`HP_CHECK_ARGS: ${JSON.stringify(argv)} parsed differently from yargs: ${JSON.stringify(quick.args)} vs ${JSON.stringify(expected)}`);
  process.stderr.write(`${commandName}: HP_CHECK_ARGS: parsed without yargs, as yargs parses it\n`);
}

function yargsParser(name: string, argv: string[], usage: string, examples: Array<[string, string]>): Argv {
  let y = yargs(argv)
    .scriptName(name)
    .usage(usage)
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No warnings, progress or summaries on stderr' })
    .option('completion', { type: 'boolean', describe: 'Print a bash/zsh completion script for this command' })
    .strict()
    .help('help')
    .alias('help', 'h')
    .version('version', 'Print the version', VERSION)
    // Usage texts are laid out by hand; yargs re-wrapping them breaks lines mid-word.
    .wrap(null)
    .middleware((args) => {
      const options = (y as unknown as { getOptions(): unknown }).getOptions() as { key: Record<string, unknown>; alias: Record<string, string[]>; number: string[]; array: string[]; boolean: string[]; configuration?: Record<string, unknown> };
      if (args.completion === true) {
        const names = Object.keys(options.key).concat(...Object.values(options.alias));
        process.stdout.write(completionScript(name, names));
        throw new Finished();
      }
      // An option that takes one value, given twice, is a mistake to name, not to guess at
      // (yargs would make an array of it, which the option's own check then calls malformed),
      // unless the command configures yargs for the last one to win (hp-record does).
      const lastWins = options.configuration?.['duplicate-arguments-array'] === false;
      for (const key of lastWins ? [] : Object.keys(options.key)) {
        if (options.array.includes(key) || options.boolean.includes(key)) continue;
        const names = [key, ...(options.alias[key] ?? [])];
        const values = givenValues(argv, names);
        if (values.length > 1) {
          throw new UsageError(`--${key} given ${values.length === 2 ? 'twice' : `${values.length} times`} (${values.map((v) => `'${v}'`).join(', then ')}): it takes one value\nTry '${name} --help'.`);
        }
      }
      for (const key of options.number) {
        const v = args[key];
        const bad = (x: unknown): boolean => typeof x === 'number' && Number.isNaN(x);
        if (bad(v) || (Array.isArray(v) && v.some(bad))) {
          const names = [key, ...(options.alias[key] ?? [])];
          throw new UsageError(`--${key} '${rawValue(argv, names)}': expected a number\nTry '${name} --help'.`);
        }
      }
    }, true)
    .fail((msg, err) => {
      // yargs reports some of its own parse failures (e.g. `-o` with no value) as a YError
      // in `err`: those are usage errors too. Anything else thrown in a handler is not.
      if (err && err.name !== 'YError') throw err;
      // On one line, whatever yargs' own layout (its message for a value outside an option's
      // choices takes three: 'Invalid values:', '  Argument: ..., Given: ..., Choices: ...').
      let text = (msg ?? err?.message ?? 'bad usage').replace(/\s*\n\s*/g, ' ');
      const unknown = /^Unknown arguments?: (.*)$/.exec(text);
      if (unknown) {
        const options = (y as unknown as { getOptions(): unknown }).getOptions() as { key: Record<string, unknown>; alias: Record<string, string[]> };
        const known = Object.keys(options.key).concat(...Object.values(options.alias));
        // yargs lists `group-bi` twice, also camel-cased as `groupBi`: once is enough.
        const listed = unknown[1]!.split(', ');
        const kebab = (u: string): string => u.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        const words = listed.filter((u) => !/[A-Z]/.test(u) || !listed.includes(kebab(u)));
        text = `unknown option${words.length === 1 ? '' : 's'}: ${words.map((u) => (u.length === 1 ? `-${u}` : `--${u}`)).join(', ')}`;
        const hints = words
          .map((u) => [u, closestOption(u, known)] as const)
          .filter(([, k]) => k !== null)
          .map(([, k]) => (k!.length === 1 ? `-${k}` : `--${k}`));
        if (hints.length > 0) text += `; did you mean ${[...new Set(hints)].join(' or ')}?`;
      }
      throw new UsageError(`${text}\nTry '${name} --help'.`);
    });
  for (const [command, description] of examples) y = y.example(command, description);
  return y;
}

/** Where bin/ keeps NODE_EXTRA_CA_CERTS while Node starts without it. */
const SAVED_CA_CERTS = 'HEAPPROF_NODE_EXTRA_CA_CERTS';

/**
 * bin/ starts Node without NODE_EXTRA_CA_CERTS: when it is set, Node 20 builds its whole root
 * certificate store while starting (45 ms on the benchmark machine, as much as the rest of its
 * start-up), and no command uses TLS. Its value waits in SAVED_CA_CERTS; put it back before
 * anything starts a program (hp-record's python, gdb), which sees the environment as it was.
 */
function restoreEnvironment(): void {
  const saved = process.env[SAVED_CA_CERTS];
  if (saved === undefined) return;
  process.env.NODE_EXTRA_CA_CERTS = saved;
  delete process.env[SAVED_CA_CERTS];
}

/**
 * Run a command's body with the project's error policy: set process.exitCode, one-line
 * messages, quiet EPIPE. The process then ends when Node's event loop does; process.exit would
 * cut buffered output, so `exitWhenDone` (hp-record, whose program has ended by then and which
 * starts nothing after) calls it only when neither stdout nor stderr holds anything unwritten:
 * Node's own teardown of the heap and threads would add ~7 ms to every recording.
 */
export function runMain(name: string, body: () => Promise<void>, options: { exitWhenDone?: boolean } = {}): void {
  commandName = name;
  restoreEnvironment();
  whenUsed('stdout', (stdout) =>
    stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') {
        process.exitCode = EXIT_OK;
        // Nobody is reading: stop quietly. Pending work is abandoned on purpose.
        process.exit(EXIT_OK);
      }
      // Any other failure names the stream (`> /dev/full`: "stdout: no space left on device").
      err.path ??= 'stdout';
    }),
  );
  // With \`cmd 2>&1 | head\` stderr is the same closed pipe: a warning written after the reader
  // left must not turn into an uncaught EPIPE (exit 1). Nobody can read it anyway.
  whenUsed('stderr', (stderr) =>
    stderr.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    }),
  );
  const done = (): void => {
    if (options.exitWhenDone && !streams.some((s) => s.writableLength > 0)) process.exit();
  };
  body().then(
    () => {
      process.exitCode ??= EXIT_OK;
      done();
    },
    (err: unknown) => {
      process.exitCode = reportError(name, err);
      done();
    },
  );
}

/** stdout and stderr, once created (see whenUsed). */
const streams: NodeJS.WriteStream[] = [];

/**
 * Calls `setup` with process.stdout (or stderr) when the stream is first used, not at start-up:
 * Node creates it on first use, and creating one on a pipe or a terminal loads net or tty, ~10%
 * of Node's own start, which `--help` (stderr) and `hp-record -q` (both) never need.
 */
function whenUsed(name: 'stdout' | 'stderr', setup: (stream: NodeJS.WriteStream) => void): void {
  const own = Object.getOwnPropertyDescriptor(process, name);
  if (!own?.get || !own.configurable) {
    streams.push(process[name]);
    setup(process[name]);
    return;
  }
  const get = own.get;
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: own.enumerable ?? true,
    get() {
      Object.defineProperty(process, name, own); // Node's own getter from now on
      const stream = get.call(process) as NodeJS.WriteStream;
      streams.push(stream);
      setup(stream);
      return stream;
    },
  });
}

/** Map any thrown value to its message on stderr and its exit code. */
export function reportError(name: string, err: unknown): number {
  if (err instanceof BrokenPipe || err instanceof Finished || (err as NodeJS.ErrnoException)?.code === 'EPIPE') return EXIT_OK;
  if (err instanceof HpError) {
    process.stderr.write(`${name}: ${withNameHint(oneLine(err.message))}\n`);
    if (debug()) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    // System errors (ENOENT, EACCES, ENOSPC...) are runtime failures, not bugs.
    process.stderr.write(`${name}: ${withNameHint(oneLine(systemErrorMessage(e)))}\n`);
    if (debug()) process.stderr.write(`${e.stack}\n`);
    return EXIT_DATA;
  }
  process.stderr.write(`${name}: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  if (debug()) process.stderr.write(`${(err as Error)?.stack}\n`);
  else process.stderr.write(`${name}: (set HP_DEBUG=1 for a stack trace)\n`);
  return EXIT_DATA;
}

/**
 * An error message as one line: a newline (or any control character) in it comes from a name or
 * value it quotes (a file named 'a<newline>b', a --field path) and is written \x0a, as escapeControls
 * writes the others; only a usage error's closing "Try 'cmd --help'." keeps a line of its own.
 */
export function oneLine(message: string): string {
  const tryLine = /\nTry '[^'\n]*'\.$/.exec(message);
  const text = tryLine ? message.slice(0, tryLine.index) : message;
  return `${escapeControls(text)}${tryLine ? tryLine[0] : ''}`;
}

/** An error about a file named by an argument that is not UTF-8 says why Node looked for another name. */
function withNameHint(message: string): string {
  // (Not twice: hp-record's -o refusal says it already.)
  const hint = message.includes('UTF-8') ? null : nonUtf8NameHint(message);
  return hint === null ? message : `${message}; ${hint}`;
}

/** "run.hpd: no such file" rather than Node's "ENOENT: no such file or directory, open 'run.hpd'". */
export function systemErrorMessage(e: NodeJS.ErrnoException): string {
  const what: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
    ENOSPC: 'no space left on device',
    EROFS: 'read-only file system',
    EEXIST: 'already exists',
  };
  const text = what[e.code ?? ''] ?? e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
  return e.path ? `${e.path}: ${text}` : text;
}

/**
 * Buffered writer for stdout (or any stream) that respects back-pressure and turns EPIPE
 * into BrokenPipe so that producers stop promptly.
 */
export class OutputWriter {
  private chunks: string[] = [];
  private pendingBytes = 0;
  private broken = false;

  constructor(
    private readonly stream: Writable = process.stdout,
    private readonly highWater = 1 << 16,
  ) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.broken = true;
    });
  }

  /** Append text; resolves immediately unless the buffer is full and the stream is slow. */
  async write(text: string): Promise<void> {
    if (this.broken) throw new BrokenPipe();
    this.chunks.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes >= this.highWater) await this.flush();
  }

  async line(value: unknown): Promise<void> {
    await this.write(`${JSON.stringify(value)}\n`);
  }

  async flush(): Promise<void> {
    if (this.chunks.length === 0) return;
    const data = this.chunks.join('');
    this.chunks = [];
    this.pendingBytes = 0;
    await this.send(data);
  }

  /**
   * Write bytes composed elsewhere (lib/line-bytes.ts), after any text still buffered; `written`
   * is called once the stream no longer holds them, so that their memory can be reused.
   */
  async writeBytes(bytes: Uint8Array, written?: () => void): Promise<void> {
    if (this.broken) throw new BrokenPipe();
    await this.flush();
    await this.send(bytes, written);
  }

  private async send(data: string | Uint8Array, written?: () => void): Promise<void> {
    if (this.broken) throw new BrokenPipe();
    const done = written && ((err?: Error | null): void => {
      if (!err) written();
    });
    if (!this.stream.write(data, done)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          cleanup();
          resolve();
        };
        const onError = (err: NodeJS.ErrnoException): void => {
          cleanup();
          if (err.code === 'EPIPE') reject(new BrokenPipe());
          else reject(err);
        };
        const onClose = (): void => {
          cleanup();
          resolve();
        };
        const cleanup = (): void => {
          this.stream.off('drain', onDrain);
          this.stream.off('error', onError);
          this.stream.off('close', onClose);
        };
        this.stream.on('drain', onDrain);
        this.stream.on('error', onError);
        this.stream.on('close', onClose);
      });
    }
    if (this.broken) throw new BrokenPipe();
  }
}

/** `-` means stdin; anything else is a file path. */
export function openTextInput(arg: string): Readable {
  if (arg === '-') {
    // Nothing named and nothing piped: say so rather than wait, silently, for NDJSON typed in.
    if (process.stdin.isTTY) throw new UsageError('no input: standard input is a terminal; name a profile or file, or pipe NDJSON in (--help)');
    return process.stdin;
  }
  // A directory opens fine and fails on its first read with an EISDIR that names no path.
  let isDir = false;
  try {
    isDir = statSync(arg).isDirectory();
  } catch {
    // missing or unreadable: the stream's own error names the path
  }
  if (isDir) throw new HpError(`${arg}: is a directory`);
  const s: ReadStream = createReadStream(arg);
  return s;
}

export interface NdjsonLine {
  /** 1-based line number in the input. */
  lineNumber: number;
  value: unknown;
}

/**
 * Parsed NDJSON lines, as many at a time as are buffered: lib/lines.ts splits the stream (lines
 * longer than its limit and values nested too deep are errors naming the line), and its
 * lines are drained synchronously on each 'readable', so a large stream costs one await per
 * chunk rather than one per line (the hot path of `hp-events x | hp-...`). Blank lines are
 * skipped. A line that is not JSON throws HpError naming its line, unless `tolerant`, in
 * which case it is counted in `stats.invalid` and skipped.
 */
export async function* ndjsonChunks(
  input: Readable,
  name: string,
  stats: { invalid: number } = { invalid: 0 },
  tolerant = false,
): AsyncGenerator<NdjsonLine[]> {
  const lines = lineSplitter(name);
  let failure: Error | null = null;
  input.on('error', (err) => lines.destroy(err));
  lines.on('error', (err) => (failure = err));
  input.pipe(lines);
  let lineNumber = 0;
  for (;;) {
    const out: NdjsonLine[] = [];
    let raw: string | null;
    while ((raw = lines.read() as string | null) !== null) {
      lineNumber++;
      const text = raw.trim();
      if (text === '') continue;
      if (jsonTooDeep(text)) {
        lines.destroy();
        throw new HpError(`${name}: line ${lineNumber}: nested deeper than ${MAX_JSON_DEPTH} levels`);
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        if (tolerant) {
          stats.invalid++;
          continue;
        }
        lines.destroy();
        throw new HpError(`${name}: line ${lineNumber}: not valid JSON`);
      }
      out.push({ lineNumber, value });
    }
    if (out.length > 0) yield out;
    if (failure) throw failure;
    if (lines.readableEnded) return;
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        lines.off('readable', wake);
        lines.off('end', wake);
        lines.off('error', wake);
        resolve();
      };
      lines.on('readable', wake);
      lines.on('end', wake);
      lines.on('error', wake);
    });
  }
}

/** The same lines one at a time, for inputs too small for chunking to matter. */
export async function* readNdjson(
  input: Readable,
  name: string,
  stats: { invalid: number } = { invalid: 0 },
  tolerant = false,
): AsyncGenerator<NdjsonLine> {
  for await (const chunk of ndjsonChunks(input, name, stats, tolerant)) yield* chunk;
}

export const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * The unit formatBytes writes `n` in (0: bytes, 1: KiB...): the largest whose value, as printed
 * (whole bytes, else one decimal), stays under 1024, so that 1,048,575 bytes is 1.0 MiB, not
 * "1024.0 KiB".
 */
export function byteUnit(n: number): number {
  let u = 0;
  for (let v = Math.abs(n); u < BYTE_UNITS.length - 1 && (u === 0 ? Math.round(v) : Number(v.toFixed(1))) >= 1024; v /= 1024) u++;
  return u;
}

/** Human units for messages and chart axes: 1.5 KiB, 30.0 MiB. */
export function formatBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  const u = byteUnit(n);
  const v = Math.abs(n) / 1024 ** u;
  return u === 0 ? `${sign}${Math.round(v)} B` : `${sign}${v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/**
 * Seconds as a user writes them: decimal, perhaps with a fraction or an exponent (12, 0.5, 1e3).
 * Number() also takes hex, octal and binary ('0x10' is 16 s), which no one means by a time.
 */
export function secondsNumber(text: string): number {
  const t = text.trim();
  return /^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) ? Number(t) : NaN;
}

/**
 * The latest time an option can name: µs since start are whole numbers below 2^53 (some 285
 * years), and a larger time would round to another one or to Infinity ("--at Infinity").
 */
export const MAX_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1e6);

/** A time beyond MAX_SECONDS, as the user wrote it. */
export function tooLate(option: string, text: string): UsageError {
  return new UsageError(`${option} ${text}: after the end of any profile (times are at most ${MAX_SECONDS} s)`);
}
