// Command plumbing shared by every hp-* command: option parsing, the one error type and its
// exit codes, stdout writing with back-pressure and quiet EPIPE, NDJSON in and out, warnings.

import { createReadStream, type ReadStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import yargs, { type Argv } from 'yargs';
import { escapeControls } from './escape.js';
import { jsonTooDeep, lineSplitter, MAX_JSON_DEPTH } from './lines.js';

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

/**
 * A yargs parser preconfigured the same way for every command: usage text that is both help
 * and spec, -q, --strict where relevant, failures reported as UsageError (exit 2).
 */
export function parser(name: string, argv: string[], usage: string): Argv {
  commandName = name;
  return yargs(argv)
    .scriptName(name)
    .usage(usage)
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No warnings, progress or summaries on stderr' })
    .strict()
    .help('help')
    .alias('help', 'h')
    .version(false)
    // Usage texts are laid out by hand; yargs re-wrapping them breaks lines mid-word.
    .wrap(null)
    .fail((msg, err) => {
      // yargs reports some of its own parse failures (e.g. `-o` with no value) as a YError
      // in `err`: those are usage errors too. Anything else thrown in a handler is not.
      if (err && err.name !== 'YError') throw err;
      throw new UsageError(`${msg ?? err?.message}\nTry '${name} --help'.`);
    });
}

/**
 * Run a command's body with the project's error policy: set process.exitCode (never
 * process.exit, which would cut buffered output), one-line messages, quiet EPIPE.
 */
export function runMain(name: string, body: () => Promise<void>): void {
  commandName = name;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      process.exitCode = EXIT_OK;
      // Nobody is reading: stop quietly. Pending work is abandoned on purpose.
      process.exit(EXIT_OK);
    }
  });
  body().then(
    () => {
      process.exitCode ??= EXIT_OK;
    },
    (err: unknown) => {
      process.exitCode = reportError(name, err);
    },
  );
}

/** Map any thrown value to its message on stderr and its exit code. */
export function reportError(name: string, err: unknown): number {
  if (err instanceof BrokenPipe || (err as NodeJS.ErrnoException)?.code === 'EPIPE') return EXIT_OK;
  if (err instanceof HpError) {
    process.stderr.write(`${name}: ${escapeControls(err.message, true)}\n`);
    if (debug()) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    // System errors (ENOENT, EACCES, ENOSPC...) are runtime failures, not bugs.
    process.stderr.write(`${name}: ${systemErrorMessage(e)}\n`);
    if (debug()) process.stderr.write(`${e.stack}\n`);
    return EXIT_DATA;
  }
  process.stderr.write(`${name}: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  if (debug()) process.stderr.write(`${(err as Error)?.stack}\n`);
  else process.stderr.write(`${name}: (set HP_DEBUG=1 for a stack trace)\n`);
  return EXIT_DATA;
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
    if (this.broken) throw new BrokenPipe();
    if (!this.stream.write(data)) {
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
  if (arg === '-') return process.stdin;
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

/** Human units for messages and chart axes: 1.5 KiB, 30.0 MiB. */
export function formatBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${sign}${Math.round(v)} B` : `${sign}${v.toFixed(1)} ${units[u]}`;
}
