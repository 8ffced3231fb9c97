// Input arguments of the reader commands that accept several profiles: shell- or command-expanded
// globs (`hp-history run.*`, `hp-snapshot 'run.*'`) turned into profile bases, and those bases
// opened as one source (lib/format/merged.ts) aligned on wall-clock time, summed, or split by
// process with --by pid.

import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { HpError, UsageError, formatBytes, warn } from './cli.js';
import { MergedSource, type MergedOptions } from './format/merged.js';
import { profileBase } from './format/profile.js';
import { OP_RSS, type EventBatch, type ProfileSource, type ReadOptions } from './format/source.js';
import { sourceMarks } from './format/marks.js';
import type { Header, Mark } from './format/types.js';
import { isNdjsonArg, openSource } from './source-arg.js';

const GLOB_CHARS = /[*?[]/;

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        let set = glob.slice(i + 1, close);
        if (set.startsWith('!')) set = `^${set.slice(1)}`;
        re += `[${set.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Expand one quoted glob against its directory (the last path component only). */
export function expandGlob(pattern: string): string[] {
  const dir = dirname(pattern);
  const re = globToRegExp(basename(pattern));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  const hits = names.filter((n) => re.test(n) && !(n.startsWith('.') && !basename(pattern).startsWith('.')));
  return hits.map((n) => (dir === '.' && !pattern.startsWith('./') ? n : join(dir, n)));
}

/** True when `arg` is a glob this module expands itself (a quoted `'run.*'`). */
export function isGlobArg(arg: string): boolean {
  return arg !== '-' && GLOB_CHARS.test(basename(arg));
}

/**
 * What a name refers to, so that two names of one profile count once: the real path of its
 * .hpm (`run`, `./run`, a symbolic link), else of the file itself, else the absolute path.
 */
function identity(base: string): string {
  if (base === '-') return base;
  for (const file of /\.(ndjson|jsonl|json)$/i.test(base) ? [base] : [`${base}.hpm`, base]) {
    try {
      return realpathSync(file);
    } catch {
      // not there: try the next, else the name itself
    }
  }
  return resolve(base);
}

/**
 * Profile bases named by the arguments, in order, each once: globs expanded, `run.hpm` and
 * `run.hpd` both meaning `run`, names of the same file (`run`, `./run`) counted once, seek
 * indexes (.hpi) and other companions left out.
 */
export function profileBases(args: string[]): string[] {
  const bases: string[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    let names = [arg];
    if (isGlobArg(arg)) {
      names = expandGlob(arg).filter((n) => /\.hp[md]$/.test(n));
      if (names.length === 0) throw new UsageError(`${arg}: matches no profile`);
    } else if (args.length > 1 && /\.(hpi|html|txt|pb\.gz)$/.test(arg)) {
      continue; // a shell-expanded run.* also names the companions of the profiles
    }
    for (const n of names) {
      const base = /\.(ndjson|jsonl|json)$/i.test(n) || n === '-' ? n : profileBase(n);
      const id = identity(base);
      if (seen.has(id)) continue;
      seen.add(id);
      bases.push(base);
    }
  }
  return bases.sort(naturalOrder);
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** `--by` values: `pid` splits by process. */
export const BY_CHOICES = ['pid'] as const;

/**
 * A profile whose process died while creating it: its .hpm, but no .hpd (the recorder makes the
 * .hpm first). Among several inputs (a forked child's run.PID next to its parent's) it is left
 * out with a warning rather than failing them all; alone, opening it says what is missing.
 */
function unborn(base: string): boolean {
  return existsSync(`${base}.hpm`) && !existsSync(`${base}.hpd`);
}

/**
 * Open every input as one source: a single input as itself (byPid adds its pid frame), several
 * through MergedSource (`merged`: its options). Throws UsageError for stdin among several inputs.
 */
export async function openInputs(args: string[], opts: ReadOptions, byPid: boolean, merged: MergedOptions = {}): Promise<ProfileSource> {
  const bases = profileBases(args.length === 0 ? ['-'] : args);
  if (bases.length > 1 && bases.includes('-')) throw new UsageError('stdin cannot be read together with other inputs');
  if (bases.length === 1 && !byPid) return openSource(bases[0]!, opts);
  const sources: ProfileSource[] = [];
  try {
    for (const b of bases) {
      if (bases.length > 1 && (await isNdjsonArg(b))) throw new HpError(`${b}: several inputs must be profiles (BASE.hpm + BASE.hpd), not NDJSON`, 2);
      if (bases.length > 1 && unborn(b)) {
        warn(`${b}.hpm: left out: it has no .hpd (a process killed while creating its profile)`);
        continue;
      }
      sources.push(await openSource(b, opts));
    }
    if (sources.length === 0) throw new HpError(`${args.join(' ')}: no profile with both files (BASE.hpm + BASE.hpd)`);
    return new MergedSource(sources, byPid, undefined, merged);
  } catch (e) {
    await Promise.all(sources.map((s) => s.close()));
    throw e;
  }
}

/**
 * The marks of the inputs on the timeline the readers put them on: one profile's own, or,
 * for several, every profile's shifted onto the merged (wall-clock) timeline. Reads headers
 * and metadata only.
 */
export async function inputMarks(args: string[]): Promise<Mark[]> {
  const source = await openInputs(args, {}, false);
  try {
    return sourceMarks(source);
  } finally {
    await source.close();
  }
}

/** True when the arguments name more than one profile (globs expanded). */
export function manyInputs(args: string[]): boolean {
  return profileBases(args.length === 0 ? ['-'] : args).length > 1;
}

/** The first RSS sample of a stream: an attached recording writes one at attach. */
export class FirstRss {
  value: number | null = null;

  see(batch: EventBatch): void {
    if (this.value !== null) return;
    for (let i = 0; i < batch.length; i++) {
      if (batch.op[i] === OP_RSS) {
        this.value = batch.size[i]!;
        return;
      }
    }
  }
}

function duration(us: number): string {
  const s = us / 1e6;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** One sentence on an attached recording: the heap before is unknown, RSS at attach is the baseline. */
export function attachedSentence(name: string, header: Header, rss: number | null): string | null {
  if (!header.attached) return null;
  const who = header.pid !== null ? `process ${header.pid}` : 'a running process';
  const baseline = rss !== null ? `; its RSS then, ${formatBytes(rss)}, is the baseline` : '';
  return `${name}: attached to ${who} after it had run ${duration(header.attached.processAgeUs)}: the heap allocated before attaching is unknown (live bytes count only what was allocated since)${baseline}`;
}

/** The attach sentences of a source (each attached process of a merged one); `rss` is the single source's first RSS. */
export function attachedSentences(source: ProfileSource, rss: number | null): string[] {
  if (source instanceof MergedSource) {
    return source.sources.map((s, i) => attachedSentence(s.name, s.header, source.firstRss[i] ?? null)).filter((x): x is string => x !== null);
  }
  const one = attachedSentence(source.name, source.header, rss);
  return one ? [one] : [];
}
