// Sites: how traces are grouped for reporting (by whole trace, or by the innermost frame's
// line, function or file), their labels, and the "file:line" rule for following lines.

import { isProcessFrame } from '../format/merged.js';
import { traceDomain, type Domain, type Frame, type ThreadInfo, type Trace } from '../format/types.js';
import { HpError } from '../cli.js';
import { addEstimate, emptyEstimate, type Estimate } from './estimate.js';
import type { LiveHeap } from './live.js';

export type GroupBy = 'trace' | 'line' | 'function' | 'file' | 'thread';
export const GROUP_BY: readonly GroupBy[] = ['trace', 'line', 'function', 'file', 'thread'];

export const NO_STACK_LABEL = '[no Python stack]';

/** Marks a native (C) frame wherever frames are printed as text (folded stacks, labels). */
export const NATIVE_SUFFIX = ' [native]';

/** `function (file:line)`; `file:line` when the format has no function names (heapprof 1.0.x); native frames end in ` [native]`. */
export function frameLabel(f: Frame): string {
  const where = f.line > 0 ? `${f.file}:${f.line}` : f.file;
  const text = f.function ? `${f.function} (${where})` : where;
  return f.native ? text + NATIVE_SUFFIX : text;
}

/** `symbol (library.so)`: a native frame named briefly, by the base name of its shared object. */
export function nativeCallerLabel(f: Frame): string {
  const slash = f.file.lastIndexOf('/');
  return `${f.function ?? '?'} (${slash >= 0 ? f.file.slice(slash + 1) : f.file})`;
}

/** `thread 2 "name" (tid 1234)`, or the mark of a profile that did not record threads. */
export function threadLabel(t: ThreadInfo | undefined): string {
  if (!t) return '[thread not recorded]';
  return `thread ${t.id}${t.name ? ` "${t.name}"` : ''}${t.tid ? ` (tid ${t.tid})` : ''}`;
}

/** A site as reported: its key, label and the frames that stand for it (leaf first). */
export interface SiteInfo {
  key: string;
  label: string;
  /** Trace id when grouping by trace. */
  trace: number | null;
  frames: Frame[];
  dropped: number;
  /** Domain of the site's allocations (python for profiles without native recording). */
  domain: Domain;
  /** The native frame that called the allocator (native and mmap domains), when recorded. */
  nativeCaller?: Frame;
  /** The allocating thread, grouping by thread (or by trace, where recorded). */
  thread?: ThreadInfo;
}

/**
 * For sites shown together whose labels are equal (by trace: two stacks with the same innermost
 * frame, say one function called from two places), the caller that tells each apart: the
 * outermost frame of the shortest start of its stack that no other site of that label shares
 * (or, when that frame is in a pseudo-file such as `<frozen importlib._bootstrap>`, the next one
 * out in a real file), as that frame's label. None where a label is unique, and for a site whose
 * frames read the same as another's.
 */
export function tellingCallers(sites: readonly { label: string; frames: readonly Frame[] }[]): (string | undefined)[] {
  const byLabel = new Map<string, number[]>();
  sites.forEach((s, i) => {
    const group = byLabel.get(s.label);
    if (group) group.push(i);
    else byLabel.set(s.label, [i]);
  });
  const callers: (string | undefined)[] = sites.map(() => undefined);
  for (const group of byLabel.values()) {
    if (group.length < 2) continue;
    const texts = group.map((i) => sites[i]!.frames.map(frameLabel));
    // Do the first d + 1 frames of a and b read the same?
    const sameStart = (a: string[], b: string[], d: number): boolean => {
      if (a.length <= d || b.length <= d) return false;
      for (let k = 0; k <= d; k++) if (a[k] !== b[k]) return false;
      return true;
    };
    group.forEach((i, g) => {
      const mine = texts[g]!;
      for (let d = 1; d < mine.length; d++) {
        if (texts.every((other, h) => h === g || !sameStart(mine, other, d))) {
          // From there out, the first frame of a real file: importlib's <frozen ...> frames
          // between an import and the module it runs tell a reader nothing.
          const frames = sites[i]!.frames;
          callers[i] = frameLabel(frames.slice(d).find((f) => !f.file.startsWith('<')) ?? frames[d]!);
          return;
        }
      }
    });
  }
  return callers;
}

/**
 * For sites shown together that their labels and telling callers (`callers`, from tellingCallers)
 * leave alike but that different threads allocated (by trace on a --native profile: one line run
 * by several threads), the thread that tells each apart, as `thread 2`. None elsewhere.
 */
export function tellingThreads(sites: readonly { label: string; thread?: ThreadInfo }[], callers: readonly (string | undefined)[]): (string | undefined)[] {
  const groups = new Map<string, number[]>();
  sites.forEach((s, i) => {
    const key = `${s.label}\0${callers[i] ?? ''}`;
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  const threads: (string | undefined)[] = sites.map(() => undefined);
  for (const group of groups.values()) {
    if (new Set(group.map((i) => sites[i]!.thread?.id)).size < 2) continue;
    for (const i of group) threads[i] = sites[i]!.thread ? `thread ${sites[i]!.thread!.id}` : threadLabel(undefined);
  }
  return threads;
}

/**
 * The site a trace belongs to under a grouping. Line, function and file use the innermost
 * Python frame (a native allocation is attributed to the Python line that caused it; its
 * native caller is kept beside), and sites of different domains stay apart, as do sites of
 * different processes (--by pid).
 */
export function siteOf(trace: Trace, by: GroupBy): SiteInfo {
  // Several processes split --by pid: the process is the outermost frame, and a site of one
  // process stays apart from the same site of another.
  const outer = trace.frames[trace.frames.length - 1];
  const proc = outer && isProcessFrame(outer) ? outer : undefined;
  const site = siteWithin(proc ? { ...trace, frames: trace.frames.slice(0, -1) } : trace, by);
  if (!proc) return site;
  const label = `${proc.file}: ${site.label}`;
  if (by === 'trace') return { ...site, label, frames: trace.frames }; // trace ids are already per process
  return { ...site, key: `P${proc.file}\0${site.key}`, label, frames: [...site.frames, proc] };
}

/**
 * What names a stack's site under every grouping, here and in hp-diff (lib/export/diff.ts): its
 * innermost Python frame, the C frame that called the allocator (native recording), the key
 * suffix that keeps domains apart, and the label's tag, with or without that caller.
 */
export interface SiteParts {
  leaf: Frame | undefined;
  caller: Frame | undefined;
  dkey: string;
  domainTag: string;
  callerTag: string;
}

export function siteParts(frames: Frame[], domain: Domain): SiteParts {
  const leaf = frames.find((f) => !f.native);
  const caller = frames[0]?.native ? frames[0] : undefined;
  if (domain === 'python') return { leaf, caller, dkey: '', domainTag: '', callerTag: '' };
  return {
    leaf,
    caller,
    dkey: `\0${domain}`,
    domainTag: ` [${domain}]`,
    callerTag: ` [${domain}${caller ? `: ${nativeCallerLabel(caller)}` : ''}]`,
  };
}

function siteWithin(trace: Trace, by: GroupBy): SiteInfo {
  const domain = traceDomain(trace);
  const { leaf, caller, dkey, domainTag, callerTag: tag } = siteParts(trace.frames, domain);
  const extra = { domain, ...(caller ? { nativeCaller: caller } : {}) };
  if (by === 'trace') {
    return {
      key: `t${trace.id}`,
      label: (leaf ? frameLabel(leaf) : NO_STACK_LABEL) + tag,
      trace: trace.id,
      frames: trace.frames,
      dropped: trace.dropped,
      ...extra,
      ...(trace.thread ? { thread: trace.thread } : {}),
    };
  }
  if (by === 'thread') {
    const th = trace.thread;
    return { key: `T${th ? th.id : 0}`, label: threadLabel(th), trace: null, frames: [], dropped: 0, domain, ...(th ? { thread: th } : {}) };
  }
  if (!leaf) {
    return { key: `none${dkey}${caller ? `\0${caller.function}\0${caller.file}` : ''}`, label: NO_STACK_LABEL + tag, trace: null, frames: caller ? [caller] : [], dropped: 0, ...extra };
  }
  if (by === 'line') {
    const f = { function: leaf.function, file: leaf.file, line: leaf.line };
    return { key: `l${leaf.file}\0${leaf.line}${dkey}`, label: frameLabel(f) + domainTag, trace: null, frames: [f], dropped: 0, domain };
  }
  if (by === 'function') {
    const f = { function: leaf.function, file: leaf.file, line: 0 };
    return { key: `f${leaf.file}\0${leaf.function ?? ''}${dkey}`, label: frameLabel(f) + domainTag, trace: null, frames: [f], dropped: 0, domain };
  }
  const f = { function: null, file: leaf.file, line: 0 };
  return { key: `F${leaf.file}${dkey}`, label: leaf.file + domainTag, trace: null, frames: [f], dropped: 0, domain };
}

/** Trace lookup that never fails: an id the source never defined gets a placeholder frame. */
export function traceOrPlaceholder(lookup: (id: number) => Trace | undefined, id: number): Trace {
  if (id === 0) return { id: 0, frames: [], dropped: 0 };
  return lookup(id) ?? { id, frames: [{ function: `[undefined trace ${id}]`, file: '?', line: 0 }], dropped: 0 };
}

export interface SiteEstimate {
  site: SiteInfo;
  est: Estimate;
  /** Traces merged into the site. */
  traces: number;
}

/**
 * Group a live heap's traces into sites, largest estimated bytes first (ties by label, so the
 * order is deterministic). Sites with nothing live are left out.
 */
export function groupLiveHeap(
  heap: LiveHeap,
  lookup: (id: number) => Trace | undefined,
  by: GroupBy,
  keep: ((t: Trace) => boolean) | null = null,
): SiteEstimate[] {
  const sites = new Map<string, SiteEstimate>();
  for (let slot = 0; slot < heap.slots; slot++) {
    if (heap.sampled[slot]! <= 0) continue;
    const trace = traceOrPlaceholder(lookup, heap.traceOfSlot[slot]!);
    if (keep && !keep(trace)) continue;
    const site = siteOf(trace, by);
    let s = sites.get(site.key);
    if (!s) {
      s = { site, est: emptyEstimate(), traces: 0 };
      sites.set(site.key, s);
    }
    addEstimate(s.est, heap.estimateOfSlot(slot));
    s.traces++;
  }
  return sortSites([...sites.values()]);
}

export function sortSites(list: SiteEstimate[]): SiteEstimate[] {
  return list.sort((a, b) => b.est.bytes - a.est.bytes || (a.site.label < b.site.label ? -1 : a.site.label > b.site.label ? 1 : a.site.key < b.site.key ? -1 : 1));
}

/** A line to follow (`--sites app.py:12`): matches a frame whose file is `file` or ends in `/file`. */
export interface LineSpec {
  text: string;
  file: string;
  line: number;
}

export function parseLineSpecs(text: string): LineSpec[] {
  const out: LineSpec[] = [];
  for (const part of text.split(',')) {
    const t = part.trim();
    if (!t) continue;
    const m = /^(.+):(\d+)$/.exec(t);
    if (!m) throw new HpError(`--sites: '${t}': expected FILE:LINE`, 2);
    out.push({ text: t, file: m[1]!, line: Number(m[2]) });
  }
  if (out.length === 0) throw new HpError('--sites: no FILE:LINE given', 2);
  return out;
}

export function frameMatches(f: Frame, spec: LineSpec): boolean {
  return f.line === spec.line && (f.file === spec.file || f.file.endsWith(`/${spec.file}`));
}

/** Indices of the specs a trace matches: any of its frames, not only the innermost. */
export function traceMatches(trace: Trace, specs: LineSpec[]): number[] {
  const hits: number[] = [];
  specs.forEach((spec, i) => {
    if (trace.frames.some((f) => frameMatches(f, spec))) hits.push(i);
  });
  return hits;
}
