// What grew and what shrank between two heaps, by site, with a 95% interval on every change.
// The two estimates' variances add (exact for independent profiles; conservative for two moments
// of one profile, where allocations live at both moments cancel and the true variance is smaller).

import type { Domain, Frame } from '../format/types.js';
import { Z95, halfWidth95 } from '../format/weights.js';
import { interval95, whole, type Pseudo } from '../model/estimate.js';
import { NO_STACK_LABEL, frameLabel, siteParts } from '../model/sites.js';
import type { StackSet, WeightedStack } from './stacks.js';

/** How stacks are grouped into sites: the whole stack, or the innermost line, function or file. */
export type DiffGroupBy = 'stack' | 'line' | 'function' | 'file';
export const DIFF_GROUP_BY: readonly DiffGroupBy[] = ['line', 'stack', 'function', 'file'];

interface SiteKey {
  key: string;
  label: string;
  /** The frame that names the site (null for no Python stack), and for `stack` the whole stack. */
  frame: Frame | null;
  stack: Frame[] | null;
  /** Where the profiles record it (native recording), the domain of the site's allocations. */
  domain?: Domain;
}

/**
 * As hp-snapshot groups (lib/model/sites.ts): a C allocation of a native recording belongs to
 * the innermost Python frame, its domain beside it (and its C caller, grouping by stack, or
 * when no Python frame is on its stack), and sites of different domains stay apart.
 */
function siteKey(s: WeightedStack, by: DiffGroupBy): SiteKey {
  const domain = s.domain ?? 'python';
  const { leaf, caller, dkey, domainTag: tag, callerTag } = siteParts(s.frames, domain);
  const extra = domain === 'python' ? {} : { domain };
  const stackKey = (): string => `s${s.frames.map((f) => `${f.file}\0${f.line}\0${f.function ?? ''}`).join('\u0001')}${dkey}`;
  if (!leaf) {
    if (by === 'stack') return { key: stackKey(), label: NO_STACK_LABEL + callerTag, frame: null, stack: s.frames, ...extra };
    // As hp-snapshot: C allocations with no Python code on the stack (a library's own threads)
    // are told apart by the C function that called the allocator.
    return { key: `none${dkey}${caller ? `\0${caller.function ?? ''}\0${caller.file}` : ''}`, label: NO_STACK_LABEL + callerTag, frame: null, stack: null, ...extra };
  }
  switch (by) {
    case 'stack':
      return { key: stackKey(), label: frameLabel(leaf) + callerTag, frame: leaf, stack: s.frames, ...extra };
    case 'line':
      return { key: `l${leaf.file}\0${leaf.line}\0${leaf.function ?? ''}${dkey}`, label: frameLabel(leaf) + tag, frame: leaf, stack: null, ...extra };
    case 'function': {
      const f = { function: leaf.function, file: leaf.file, line: 0 };
      return { key: `f${leaf.file}\0${leaf.function ?? ''}${dkey}`, label: frameLabel(f) + tag, frame: f, stack: null, ...extra };
    }
    case 'file':
      return { key: `F${leaf.file}${dkey}`, label: leaf.file + tag, frame: { function: null, file: leaf.file, line: 0 }, stack: null, ...extra };
  }
}

export interface Side {
  bytes: number;
  bytesVar: number;
  count: number;
  countVar: number;
  /** Totals: the part of `bytes` known exactly, and what could be live undrawn. */
  exact?: number;
  unseen?: Pseudo | null;
  /** The 95% interval the input states (snapshot NDJSON), while the site is one input line. */
  interval?: [number, number];
  /** Input stacks summed into this side. */
  stacks?: number;
}

export interface DiffRow {
  site: SiteKey;
  before: Side;
  after: Side;
  change: number;
  /** 95% interval of the change; equal to the change when both estimates are exact. */
  lo: number;
  hi: number;
  countChange: number;
  /** The interval excludes 0: the site really grew (1) or shrank (-1); 0 when it may not have changed. */
  direction: 1 | -1 | 0;
}

function emptySide(): Side {
  return { bytes: 0, bytesVar: 0, count: 0, countVar: 0 };
}

/** A side's bytes and count as the NDJSON and the table print them: whole, never below 0. */
function shown(x: number): number {
  return whole(Math.max(0, x));
}

/** A side's 95% interval as printed (rounded outwards); null when exact. */
function sideInterval(s: Side): [number, number] | null {
  if (s.interval) return s.interval;
  const ci = interval95(Math.max(0, s.bytes), s.bytesVar, s.unseen, s.exact);
  return ci ? [whole(Math.max(0, Math.floor(ci[0]))), whole(Math.ceil(ci[1]))] : null;
}

function row(site: SiteKey, before: Side, after: Side): DiffRow {
  // The change is computed from the two sides as printed, so that change = after - before holds
  // in the output, and a diff of two profiles and of their saved snapshots agree to the byte.
  const change = shown(after.bytes) - shown(before.bytes);
  // Each side's variance is the one its own (skewed) 95% interval implies upwards, so that a
  // side with few or no allocations drawn still counts its uncertainty (man/hp-estimates.7):
  // the interval it prints, which a snapshot NDJSON line states and which the variance read
  // back from such a line would not rebuild (it includes the exact part and unseen allowance).
  const up = (s: Side): number => {
    const ci = sideInterval(s);
    return ci ? (Math.max(0, ci[1] - shown(s.bytes)) / Z95) ** 2 : 0;
  };
  const h = halfWidth95(up(before) + up(after));
  const lo = change - h;
  const hi = change + h;
  // Sub-byte differences are rounding noise between two sums of floats, not a change.
  const direction: DiffRow['direction'] = lo > 0.5 ? 1 : hi < -0.5 ? -1 : 0;
  return { site, before, after, change, lo, hi, countChange: shown(after.count) - shown(before.count), direction };
}

function group(set: StackSet, by: DiffGroupBy, into: Map<string, { site: SiteKey; before: Side; after: Side }>, which: 'before' | 'after'): void {
  for (const s of set.stacks) {
    const site = siteKey(s, by);
    let e = into.get(site.key);
    if (!e) into.set(site.key, (e = { site, before: emptySide(), after: emptySide() }));
    const side = e[which];
    side.bytes += s.est.bytes;
    side.bytesVar += s.est.bytesVar;
    side.count += s.est.count;
    side.countVar += s.est.countVar;
    side.stacks = (side.stacks ?? 0) + 1;
    // An input's own interval holds for its one line; a sum of several lines gets a derived one.
    if (side.stacks === 1 && s.bytesInterval) side.interval = s.bytesInterval;
    else delete side.interval;
  }
}

/**
 * Order: significant growth (largest first), then significant shrinkage (largest first), then
 * changes within the noise (largest magnitude first); ties by label, then key.
 */
export function compareRows(a: DiffRow, b: DiffRow): number {
  const rank = (r: DiffRow): number => (r.direction === 1 ? 0 : r.direction === -1 ? 1 : 2);
  return (
    rank(a) - rank(b) ||
    Math.abs(b.change) - Math.abs(a.change) ||
    (a.site.label < b.site.label ? -1 : a.site.label > b.site.label ? 1 : 0) ||
    (a.site.key < b.site.key ? -1 : a.site.key > b.site.key ? 1 : 0)
  );
}

export interface DiffResult {
  rows: DiffRow[];
  total: DiffRow;
}

/** Per site: before, after, the change and its 95% interval. Sites absent at both moments are left out. */
export function diffStackSets(before: StackSet, after: StackSet, by: DiffGroupBy): DiffResult {
  const sites = new Map<string, { site: SiteKey; before: Side; after: Side }>();
  group(before, by, sites, 'before');
  group(after, by, sites, 'after');
  const rows: DiffRow[] = [];
  for (const s of sites.values()) {
    if (s.before.bytes <= 0 && s.after.bytes <= 0 && s.before.count <= 0 && s.after.count <= 0) continue;
    rows.push(row(s.site, s.before, s.after));
  }
  rows.sort(compareRows);
  const totalOf = (set: StackSet): Side => ({
    bytes: set.total.bytes,
    bytesVar: set.total.bytesVar,
    count: set.total.count,
    countVar: set.total.countVar,
    exact: set.total.exactBytes ?? 0,
    unseen: set.unseen?.bytes ?? null,
    ...(set.totalInterval ? { interval: set.totalInterval } : {}),
  });
  const total = row({ key: 'total', label: 'total', frame: null, stack: null }, totalOf(before), totalOf(after));
  return { rows, total };
}

/** The change's 95% interval as the NDJSON has it (change_lo, change_hi); null when both sides are exact. */
export function changeInterval(r: DiffRow): [number, number] | null {
  return r.hi - r.lo >= 1 ? [whole(Math.floor(r.lo)), whole(Math.ceil(r.hi))] : null;
}

/** The NDJSON object of one row (schema in man/hp-diff.1). */
export function rowRecord(r: DiffRow, type: 'site' | 'total'): Record<string, unknown> {
  const o: Record<string, unknown> = { type };
  if (type === 'site') {
    o.site = r.site.label;
    if (r.site.frame) {
      o.function = r.site.frame.function;
      o.file = r.site.frame.file;
      o.line = r.site.frame.line;
    }
    if (r.site.stack) o.frames = r.site.stack.map((f) => (f.native ? { function: f.function, file: f.file, line: f.line, native: true } : { function: f.function, file: f.file, line: f.line }));
    if (r.site.domain) o.domain = r.site.domain;
  }
  const side = (name: string, s: Side): void => {
    o[name] = shown(s.bytes);
    const ci = sideInterval(s);
    if (ci) {
      o[`${name}_lo`] = ci[0];
      o[`${name}_hi`] = ci[1];
    }
  };
  side('before', r.before);
  side('after', r.after);
  o.change = whole(r.change);
  o.change_lo = whole(Math.floor(r.lo));
  o.change_hi = whole(Math.ceil(r.hi));
  o.count_change = whole(r.countChange);
  o.significant = r.direction !== 0;
  o.direction = r.direction === 1 ? 'growth' : r.direction === -1 ? 'shrink' : 'none';
  return o;
}
