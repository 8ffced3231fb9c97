// Option handling shared by the analysis commands: the input argument, time options in
// seconds, and turning them into µs for ReadOptions.

import { UsageError, warn } from '../cli.js';
import { isMarkSpec, readMarks, resolveMark } from '../format/marks.js';
import type { ProfileSource } from '../format/source.js';
import type { Mark } from '../format/types.js';
import { isNdjsonArg } from '../source-arg.js';

/** The single optional positional argument: a profile base, an NDJSON file, or `-` (default). */
export function inputArg(positionals: Array<string | number>, name: string): string {
  if (positionals.length > 1) throw new UsageError(`expected one input, got ${positionals.length}\nTry '${name} --help'.`);
  return positionals.length === 1 ? String(positionals[0]) : '-';
}

/** A time option in seconds (>= 0) as µs, or undefined. */
export function secondsOption(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${option}: expected seconds >= 0, got '${String(value)}'`);
  return Math.round(n * 1e6);
}

export function positiveInt(value: unknown, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${option}: expected a whole number >= 0, got '${String(value)}'`);
  return n;
}

/** Seconds for messages and captions: 12 s, 1.5 s, 0.002 s. */
export function formatSeconds(us: number): string {
  return `${Number((us / 1e6).toFixed(6))} s`;
}

/** Say once that a profile has no end marker (still being written, or the recorder crashed). */
export function reportIncomplete(source: ProfileSource): void {
  if (!source.complete && source.header.formatVersion === 1) {
    warn(`${source.name}: heapprof 1.0.x profile: the format has no end marker, so whether the recording finished cannot be told; used everything up to its end`);
  } else if (!source.complete) warn(`${source.name}: incomplete profile (no end marker: the recorder is still running or crashed); used everything up to its end`);
}

/**
 * Replaces each `mark:LABEL` value of the named time options by its time in seconds, read from
 * the profile's marks (lib/format/marks.ts), so that the usual parsing of seconds follows.
 * `inputFor(i)` names the input the i-th value of an option refers to (repeatable options).
 */
export async function resolveMarkOptions(args: Record<string, unknown>, options: string[], inputFor: (i: number) => string): Promise<void> {
  const cache = new Map<string, Mark[]>();
  const resolve = async (value: unknown, option: string, i: number): Promise<unknown> => {
    if (!isMarkSpec(value)) return value;
    const input = inputFor(i);
    if (input === '-' || (await isNdjsonArg(input))) throw new UsageError(`--${option}: ${value}: marks are read from a profile, not from an events stream`);
    let marks = cache.get(input);
    if (!marks) cache.set(input, (marks = await readMarks(input)));
    return String(resolveMark(value, marks, option, input) / 1e6);
  };
  for (const option of options) {
    const value = args[option];
    if (Array.isArray(value)) args[option] = await Promise.all(value.map((v, i) => resolve(v, option, i)));
    else if (value !== undefined) args[option] = await resolve(value, option, 0);
  }
}
