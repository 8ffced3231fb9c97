// Turn a command's input argument into a ProfileSource: `-`, a pipe or device path, or an NDJSON
// file is read as events NDJSON (the hp-events schema); anything else is a profile base (`run`, `run.hpm`,
// `run.hpd`, hpx v2 or heapprof 1.0.x). Also the read options every command shares:
// recoverable problems as warnings, and progress on stderr when it is a terminal.

import { open, stat } from 'node:fs/promises';
import { formatBytes, isQuiet, openTextInput, warn } from './cli.js';
import { openProfile } from './format/profile.js';
import { V1_WEIGHTS, type ProfileSource, type ReadOptions, type V1Weights } from './format/source.js';
import type { ReadIssue } from './format/types.js';

/** The --v1-weights option, defined once for every command that reads profiles (man/hpx.5). */
export const V1_WEIGHTS_OPTION = {
  requiresArg: true,
  choices: V1_WEIGHTS as unknown as string[],
  default: 'auto',
  describe: 'heapprof 1.0.x files: detect how they were recorded (auto), weigh every event 1 (recorded), or use their stored table (stored)',
} as const;

export function v1WeightsArg(value: unknown): V1Weights {
  return V1_WEIGHTS.includes(value as V1Weights) ? (value as V1Weights) : 'auto';
}

/**
 * Is `arg` a stream that can be read only once: `-`, or a pipe or device path (bash's
 * `<(...)`, a FIFO)? Not a profile base whose BASE.hpm exists.
 */
export async function isStreamArg(arg: string): Promise<boolean> {
  if (arg === '-') return true;
  if (/\.(hpm|hpd)$/.test(arg)) return false;
  try {
    if ((await stat(`${arg}.hpm`)).isFile()) return false;
  } catch {
    // no BASE.hpm
  }
  try {
    const st = await stat(arg);
    return st.isFIFO() || st.isCharacterDevice() || st.isSocket();
  } catch {
    return false;
  }
}

/** "stdin" for `-`, else the path: how messages name an input. */
export function inputName(arg: string): string {
  return arg === '-' ? 'stdin' : arg;
}

/** Does `arg` name events NDJSON rather than a profile? */
export async function isNdjsonArg(arg: string): Promise<boolean> {
  if (/\.(ndjson|jsonl|json)$/i.test(arg)) return true;
  // A pipe (`<(hp-snapshot ...)`, a named FIFO) or a device is a stream, as `-` is. It is not
  // sniffed: bytes read from a pipe cannot be read again by the reader that opens it next.
  if (await isStreamArg(arg)) return true;
  if (/\.(hpm|hpd)$/.test(arg)) return false;
  // A plain file that is not a profile base: sniff its first non-blank byte.
  try {
    if (!(await stat(arg)).isFile()) return false;
  } catch {
    return false;
  }
  const fh = await open(arg, 'r');
  try {
    const buf = Buffer.alloc(64);
    const { bytesRead } = await fh.read(buf, 0, 64, 0);
    const text = buf.subarray(0, bytesRead).toString('latin1').trimStart();
    return text.startsWith('{');
  } finally {
    await fh.close();
  }
}

/**
 * What a regular NDJSON file holds, from its first lines of ours: hp-snapshot output
 * ('snapshot': a "snapshot" or "site" line first) or hp-events output ('events': a "meta" line
 * first); null when neither shows in its first 1 MiB, or for a stream, which is not sniffed (see
 * isNdjsonArg).
 */
export async function ndjsonKindOfFile(arg: string): Promise<'snapshot' | 'events' | null> {
  if ((await isStreamArg(arg)) || !(await isNdjsonArg(arg))) return null;
  let fh;
  try {
    fh = await open(arg, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(1 << 20);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, 0, buf.length, 0));
    } catch {
      return null; // a directory, an unreadable file: its reader says what it is
    }
    const lines = buf.subarray(0, bytesRead).toString('utf8').split('\n');
    // The last piece may be a line cut at the buffer's end: not read.
    if (bytesRead === buf.length) lines.pop();
    for (const line of lines) {
      if (!line.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      const type = value && typeof value === 'object' ? (value as Record<string, unknown>).type : undefined;
      if (type === 'meta') return 'events';
      if (type === 'snapshot' || type === 'site') return 'snapshot';
    }
    return null;
  } finally {
    await fh.close();
  }
}

export async function openSource(arg: string, opts: ReadOptions): Promise<ProfileSource> {
  if (await isNdjsonArg(arg)) {
    const input = openTextInput(arg);
    // The NDJSON reader (and what it imports) loads only for an NDJSON input: every command starts faster.
    const { NdjsonSource } = await import('./format/ndjson.js');
    return NdjsonSource.open(input, arg === '-' ? 'stdin' : arg, opts);
  }
  return openProfile(arg, opts);
}

/**
 * A progress line on stderr for a long read, only on a terminal: first drawn half a second into
 * the read (a read that ends sooner draws nothing: no flash of "reading 99% (0 of 0 MiB)"), then
 * at most 5 times a second.
 */
export function progressReporter(now: () => number = Date.now): { onProgress?: (read: number, total: number) => void; done: () => void } {
  if (!process.stderr.isTTY || isQuiet()) return { done: () => {} };
  let last = now() + 300;
  let shown = false;
  return {
    onProgress: (read, total) => {
      const t = now();
      if (t - last < 200 || total <= 0) return;
      last = t;
      shown = true;
      const pct = Math.min(100, (100 * read) / total).toFixed(0);
      process.stderr.write(`\rreading ${pct}% (${formatBytes(read)} of ${formatBytes(total)})\x1b[K`);
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

/** ReadOptions wired to the command's stderr: warnings once each, progress on a terminal. */
export function commandReadOptions(extra: ReadOptions = {}): { opts: ReadOptions; done: () => void } {
  const progress = progressReporter();
  // Once per command, not per open: hp-report and hp-snapshot --at peak read a profile twice.
  const said = new Set<string>();
  const sayOnce = (issue: ReadIssue): void => {
    const text = `${issue.file}: ${issue.message}`;
    if (said.has(text)) return;
    said.add(text);
    warn(text);
  };
  const opts: ReadOptions = {
    ...extra,
    onIssue: sayOnce,
    onNotice: sayOnce,
    ...(progress.onProgress ? { onProgress: progress.onProgress } : {}),
  };
  return { opts, done: progress.done };
}
