// The option vocabulary every hp-* command shares, defined once: each shared option's name,
// meaning, type, default and help text live in OPTIONS below and a command picks the ones it
// takes with `useOptions`, so `--at` (or `--top`, `--group-by`...) reads the same in every
// --help and parses the same everywhere. Also the input argument, time options in seconds, the
// human-or-NDJSON decision and the check that a requested time lies inside the profile.
//
// To add a shared option (for example `--domain` or `--thread`): add an entry to OPTIONS, then
// name it in the `useOptions` call of each command that takes it.

import { readFileSync } from 'node:fs';
import type { Argv, Options } from 'yargs';
import { MAX_SECONDS, UsageError, secondsNumber, tooLate, warn } from '../cli.js';
import { isMarkSpec, readMarks, resolveMark } from '../format/marks.js';
import type { ProfileSource } from '../format/source.js';
import type { Mark } from '../format/types.js';
import type { SnapshotAt } from '../model/snapshot.js';
import { inputMarks, isGlobArg, profileBases } from '../profile-inputs.js';
import { isNdjsonArg } from '../source-arg.js';
import { DOMAIN_CHOICES, DOMAIN_DESCRIBE, THREAD_DESCRIBE } from './domain-options.js';

/** What a site is: the whole stack (`trace`; `stack` is the same), its innermost line, function or file, or its thread. */
export const GROUP_BY_VALUES = ['trace', 'line', 'function', 'file', 'thread', 'stack'] as const;
export const GROUP_BY_DEFAULT = 'trace';

/** A whole number >= 0 for `--option`, with a message that names the option and the value given. */
export function wholeNumber(option: string, min = 0): (value: unknown) => number {
  return (value: unknown): number => {
    const text = Array.isArray(value) ? String(value[value.length - 1]) : String(value);
    const n = text.trim() === '' ? NaN : Number(text);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${option} '${text}': expected a whole number >= ${min}`);
    return n;
  };
}

/** A whole number in [min, max] for `--option` (a size that costs time and memory), checked the same way. */
export function wholeNumberIn(option: string, min: number, max: number): (value: unknown) => number {
  return (value: unknown): number => {
    const text = Array.isArray(value) ? String(value[value.length - 1]) : String(value);
    const n = text.trim() === '' ? NaN : Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${option} '${text}': expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** The charts' sizes (hp-history, hp-chart): a chart is drawn cell by cell, so each is bounded. */
export const CHART_WIDTH = { min: 24, max: 1000 };
export const CHART_HEIGHT = { min: 1, max: 500 };

/** Columns for a chart's data: --width (else $COLUMNS, else the terminal's, else 72) less the 14 of its axis. */
export function chartColumns(width: number | undefined): number {
  const env = Number(process.env.COLUMNS);
  const total = width ?? (Number.isInteger(env) && env >= 20 ? env : process.stdout.isTTY ? process.stdout.columns : 0);
  return Math.min(CHART_WIDTH.max, Math.max(CHART_WIDTH.min, total || 72)) - 14;
}

/** A number (seconds, a fraction...) for `--option`, checked the same way. */
export function finiteNumber(option: string, what = 'a number', ok: (n: number) => boolean = () => true): (value: unknown) => number {
  return (value: unknown): number => {
    const text = Array.isArray(value) ? String(value[value.length - 1]) : String(value);
    const n = text.trim() === '' ? NaN : Number(text);
    if (!Number.isFinite(n) || !ok(n)) throw new UsageError(`--${option} '${text}': expected ${what}`);
    return n;
  };
}

/**
 * The shared options. Commands may override `describe` or `default` where their meaning is
 * narrower (hp-diff's --at takes one time per input), never the name, type or values.
 */
export const OPTIONS = {
  at: { type: 'string', requiresArg: true, default: 'peak', describe: "The moment: seconds since start, 'peak' (highest estimated live heap), 'end', or mark:LABEL" },
  from: { type: 'string', requiresArg: true, describe: 'Start of the time window: seconds since start, or mark:LABEL' },
  to: { type: 'string', requiresArg: true, describe: 'End of the time window: seconds since start, or mark:LABEL' },
  'group-by': { requiresArg: true, choices: GROUP_BY_VALUES as unknown as string[], default: GROUP_BY_DEFAULT, describe: "What a site is: the whole stack ('trace', also 'stack'), its innermost line, function or file, or the thread (--native profiles)" },
  domain: { requiresArg: true, choices: DOMAIN_CHOICES as unknown as string[], default: 'all', describe: DOMAIN_DESCRIBE },
  thread: { type: 'string', requiresArg: true, describe: THREAD_DESCRIBE },
  top: { type: 'string', requiresArg: true, coerce: wholeNumber('top'), describe: 'Only the N largest sites' },
  json: { type: 'boolean', describe: 'Write NDJSON even on a terminal (--no-json: the human view even into a pipe). Default: NDJSON unless stdout is a terminal' },
  strict: { type: 'boolean', default: false, describe: 'Treat recoverable damage (a corrupt block, truncation) as an error' },
  output: { alias: 'o', type: 'string', requiresArg: true, describe: 'Write to FILE instead of stdout' },
  height: { type: 'string', requiresArg: true, default: 15, coerce: wholeNumberIn('height', CHART_HEIGHT.min, CHART_HEIGHT.max), describe: `Chart height in rows (${CHART_HEIGHT.min} to ${CHART_HEIGHT.max})` },
  width: { type: 'string', requiresArg: true, coerce: wholeNumberIn('width', CHART_WIDTH.min, CHART_WIDTH.max), describe: `Chart width in columns, ${CHART_WIDTH.min} to ${CHART_WIDTH.max} (default: $COLUMNS or the terminal width, else 72)` },
} satisfies Record<string, Options>;

export type SharedOption = keyof typeof OPTIONS;

/** The parsed values of the shared options (absent when a command does not take one). */
export interface SharedValues {
  at?: string;
  from?: string;
  to?: string;
  'group-by'?: string;
  domain?: string;
  thread?: string;
  top?: number;
  json?: boolean;
  strict?: boolean;
  output?: string;
  height?: number;
  width?: number;
}

/** Add the named shared options to a parser, with optional per-command describe/default. */
export function useOptions<T>(y: Argv<T>, names: SharedOption[], overrides: Partial<Record<SharedOption, Pick<Options, 'describe' | 'default' | 'array' | 'choices'>>> = {}): Argv<T & SharedValues> {
  let out = y as unknown as Argv<T & SharedValues>;
  for (const name of names) {
    const spec: Options = { ...OPTIONS[name], ...(overrides[name] ?? {}) } as Options;
    // `default: undefined` in an override means "no default" (yargs would take it as a value).
    if ('default' in spec && spec.default === undefined) delete spec.default;
    out = out.option(name, spec) as unknown as Argv<T & SharedValues>;
  }
  return out;
}

/** Human view or NDJSON: --json / --no-json when given, else the human view exactly when stdout is a terminal. */
export function wantsJson(json: unknown): boolean {
  if (typeof json === 'boolean') return json;
  return !process.stdout.isTTY;
}

/** The group-by value as the model names it: `stack` is the same as `trace`. */
export function traceGrouping(by: string): 'trace' | 'line' | 'function' | 'file' | 'thread' {
  return by === 'stack' ? 'trace' : (by as 'trace' | 'line' | 'function' | 'file' | 'thread');
}

/**
 * The single optional positional argument: a profile base, an NDJSON file, or `-` (default).
 * Several names of one profile (`run.hpm run.hpd` as a shell expands `run.*`, `run ./run`) or a
 * quoted glob matching one profile are that profile, as when a command reads several.
 */
export function inputArg(positionals: Array<string | number>, name: string): string {
  const args = positionals.map(String);
  if (args.length === 0) return '-';
  if (args.length === 1 && !isGlobArg(args[0]!)) return args[0]!;
  const bases = profileBases(args);
  if (bases.length > 1) throw new UsageError(`expected one input, got ${bases.length}\nTry '${name} --help'.`);
  return bases[0]!;
}

/** A time option in seconds since start (>= 0) as µs, or undefined (mark:LABEL resolved before: resolveMarkOptions). */
export function secondsOption(value: unknown, option: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : String(value).trim() === '' ? NaN : secondsNumber(String(value));
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${option} '${String(value)}': expected seconds since start or mark:LABEL`);
  if (n > MAX_SECONDS) throw tooLate(`--${option}`, String(value));
  return Math.round(n * 1e6);
}

/**
 * The one reading of --at, in every command that takes it: seconds since start, `peak` or
 * `end` (mark:LABEL resolved to seconds before: resolveMarkOptions). Absent: the peak.
 */
export function parseAt(value: unknown, option = 'at'): SnapshotAt {
  const v = String(value ?? 'peak').trim();
  if (v === 'peak') return { kind: 'peak' };
  if (v === 'end') return { kind: 'end' };
  const n = v === '' ? NaN : secondsNumber(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${option} '${v}': expected seconds since start, 'peak', 'end' or mark:LABEL`);
  if (n > MAX_SECONDS) throw tooLate(`--${option}`, v);
  return { kind: 'time', us: Math.round(n * 1e6) };
}

/**
 * The one rule for a time window, in every command that takes --from and --to: the window
 * must have a positive length, --to after --from (which is 0 when not given). A --to before
 * --from, or equal to it (`--to 0`, `--from mark:a --to mark:a`), is a usage error naming both:
 * an empty window is a mistake, not a question. A window of positive length that holds no
 * events is an answer, written as empty with a note (noteEmptyWindow).
 */
export function checkWindow(from: { text: unknown; us: number | null | undefined }, to: { text: unknown; us: number | null | undefined }): void {
  if (to.us == null) return;
  const fromUs = from.us ?? 0;
  const fromText = from.us == null ? '0 (the start, as no --from is given)' : String(from.text);
  if (to.us < fromUs) throw new UsageError(`--to ${String(to.text)}: before --from ${fromText}`);
  if (to.us === fromUs) throw new UsageError(`--to ${String(to.text)}: not after --from ${fromText}, so the window is empty`);
}

/** One line on stderr (unless -q) for a window of positive length with nothing in it. */
export function noteEmptyWindow(from: unknown, to: unknown, what: string): void {
  if (from === undefined && to === undefined) return;
  warn(`the window --from ${from === undefined ? '0' : String(from)} --to ${to === undefined ? 'end' : String(to)} holds ${what}`);
}

export function positiveInt(value: unknown, option: string): number {
  return wholeNumber(option)(value);
}

/** Seconds for messages and captions: 12 s, 1.5 s, 0.002 s. */
export function formatSeconds(us: number): string {
  return `${Number((us / 1e6).toFixed(6))} s`;
}

/**
 * A requested time after the profile's last event is a usage error that says what the profile
 * spans (`--at 1e9` on a 5.7 s profile used to draw an empty heap without a word).
 */
export function checkWithinSpan(option: string, requestedUs: number | undefined, lastUs: number): void {
  if (requestedUs === undefined || requestedUs <= lastUs) return;
  throw new UsageError(`${option} ${formatSeconds(requestedUs).replace(/ s$/, '')}: after the end of the profile, which spans 0 .. ${formatSeconds(lastUs)}`);
}

/**
 * A --mode stats profile holds the size table and no events: a command that reads events says so
 * (a usage error) instead of showing an empty heap, and points to hp-stats. One definition, with
 * the exports that read heaps (lib/export/stacks.ts).
 */
export { refuseStatsMode } from '../export/stacks.js';

/**
 * The process still recording this profile, if one is: the recorder holds BASE.hpm.lock, with
 * its pid, for as long as it writes the profile (hp-record(1), FILES), and that pid is the one
 * in the profile's header and still running. null for anything else (stdin, NDJSON, a lock left
 * by a killed recorder whose pid is gone, a followed child's profile, which has no lock).
 */
function recordingPid(source: ProfileSource): number | null {
  const pid = source.header.pid;
  if (!pid) return null;
  let text: string;
  try {
    text = readFileSync(`${source.name}.hpm.lock`, 'latin1');
  } catch {
    return null;
  }
  if (Number.parseInt(text, 10) !== pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/**
 * Say once that a profile has no end marker (still being written, the recorder crashed, or it
 * stopped early on a failed write); not
 * for an events stream its writer cut with --to, which has none by design.
 */
export function reportIncomplete(source: ProfileSource): void {
  if (!source.complete && source.window && source.window.toUs !== null) return;
  // Several profiles read as one: each is named for itself (its end marker, its recorder's lock).
  for (const part of source.parts ?? [source]) reportIncompleteOne(part);
}

function reportIncompleteOne(source: ProfileSource): void {
  const recorder = source.complete ? null : recordingPid(source);
  if (recorder !== null) {
    warn(`${source.name}: still being recorded (pid ${recorder}); used everything written so far (the recorder writes every 0.5 s)`);
  } else if (!source.complete && source.header.formatVersion === 1) {
    warn(`${source.name}: heapprof 1.0.x profile: the format has no end marker, so whether the recording finished cannot be told; used everything up to its end`);
  } else if (source.metadataTruncated) warn(`${source.name}: incomplete profile (its metadata ends in a cut block: traces, marks or the histogram written last are missing); used everything up to its end`);
  else if (!source.complete) warn(`${source.name}: incomplete profile (no end marker: the recorder is still running, crashed, or stopped early on a failed write); used everything up to its end`);
}

/**
 * Replaces each `mark:LABEL` value of the named time options by its time in seconds, read from
 * the profile's marks (lib/format/marks.ts), so that the usual parsing of seconds follows.
 * `inputFor(i)` names the input the i-th value of an option refers to (repeatable options): one
 * profile, or the several profiles a command reads as one (their marks on the merged timeline).
 */
export async function resolveMarkOptions(args: Record<string, unknown>, options: string[], inputFor: (i: number) => string | string[]): Promise<void> {
  const cache = new Map<string, Mark[]>();
  const resolve = async (value: unknown, option: string, i: number): Promise<unknown> => {
    if (!isMarkSpec(value)) return value;
    const named = inputFor(i);
    const inputs = typeof named === 'string' ? [named] : named;
    const input = inputs.join(' ');
    if (inputs.length === 0 || inputs.includes('-') || (await Promise.all(inputs.map((x) => isNdjsonArg(x)))).some(Boolean)) {
      throw new UsageError(`--${option}: ${value}: marks are read from a profile, not from an events stream`);
    }
    let marks = cache.get(input);
    if (!marks) cache.set(input, (marks = typeof named === 'string' ? await readMarks(named) : await inputMarks(named)));
    return String(resolveMark(value, marks, option, input) / 1e6);
  };
  for (const option of options) {
    const value = args[option];
    if (Array.isArray(value)) {
      // In order, so that an error names the first input that lacks the mark.
      const resolved: unknown[] = [];
      for (let i = 0; i < value.length; i++) resolved.push(await resolve(value[i], option, i));
      args[option] = resolved;
    }
    else if (value !== undefined) args[option] = await resolve(value, option, 0);
  }
}

/**
 * A snapshot cut by hp-snapshot --top holds only its largest sites: what is made of it (a flame
 * graph, a pprof, a flow graph) shows those, and its total is theirs, not the heap's. Say so once.
 */
export function warnSitesLeftOut(input: string, leftOut: number | undefined, what: string): void {
  if (!leftOut) return;
  warn(`${input === '-' ? 'stdin' : input}: ${leftOut} of the snapshot's sites ${leftOut === 1 ? 'is' : 'are'} left out (hp-snapshot --top): ${what} holds only the sites given, and its total is theirs, not the heap's; save the snapshot without --top`);
}
