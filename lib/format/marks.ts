// Marks: named instants a recorder writes into the timeline (heapprof.mark('loaded'), or a
// signal to hp-record). Every command that takes a time accepts `mark:LABEL` for one; this is
// the one place that turns such a spec into microseconds.

import { UsageError } from '../cli.js';
import type { Mark } from './types.js';
import type { ProfileSource } from './source.js';
import { openProfile } from './profile.js';

export const MARK_PREFIX = 'mark:';

export function isMarkSpec(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(MARK_PREFIX);
}

/** The source's marks in time order (none for sources that carry none). */
export function sourceMarks(source: ProfileSource): Mark[] {
  return source.marks ? [...source.marks()].sort((a, b) => a.timeUs - b.timeUs || a.id - b.id) : [];
}

/** The marks of the profile named by `input` (reads its .hpm only). */
export async function readMarks(input: string): Promise<Mark[]> {
  const source = await openProfile(input, {});
  try {
    return sourceMarks(source);
  } finally {
    await source.close();
  }
}

/**
 * `mark:LABEL` → the time of the first mark named LABEL; `mark:LABEL#N` → of the Nth one
 * (1-based), when no mark is named `LABEL#N` itself. Throws a UsageError (exit 2) naming
 * the option and the profile when there is no such mark.
 */
export function resolveMark(spec: string, marks: Mark[], option: string, profile: string): number {
  const label = spec.slice(MARK_PREFIX.length);
  const exact = marks.find((m) => m.label === label);
  if (exact) return exact.timeUs;
  const nth = /^(.*)#([1-9][0-9]*)$/.exec(label);
  if (nth) {
    const same = marks.filter((m) => m.label === nth[1]);
    const n = Number(nth[2]);
    if (same.length >= n) return same[n - 1]!.timeUs;
  }
  const known = [...new Set(marks.map((m) => m.label))];
  const list = known.length === 0 ? 'it has no marks' : `its marks: ${known.slice(0, 5).join(', ')}${known.length > 5 ? `, ... (${known.length})` : ''}`;
  throw new UsageError(`--${option}: no mark '${label}' in ${profile} (${list})`);
}
