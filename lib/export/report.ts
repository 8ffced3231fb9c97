// The data behind hp-report: memory over time (points with the 95% band and RSS) and, at every
// point and at the peak, the live heap as a pruned call tree (every frame node holding at least
// a small share of the heap) plus the top sites, so the page can draw the flame graph for any
// point without the whole profile. All traces count: the call tree is one prefix tree of every
// trace seen, and a point's values are summed up it leaf to root in one pass over its nodes.

import { OP_ALLOC, OP_END, OP_FREE, OP_RSS, type ProfileSource } from '../format/source.js';
import { MergedSource } from '../format/merged.js';
import { DOMAINS, traceDomain, type Frame, type Header, type ThreadInfo, type Trace } from '../format/types.js';
import { unseenOf, wholeInterval95, type Pseudo, type Unseen } from '../model/estimate.js';
import { LiveHeap } from '../model/live.js';
import { RssTimeline } from '../model/rss.js';
import { NO_STACK_LABEL, traceOrPlaceholder } from '../model/sites.js';
import { liveHeapAt, type SnapshotAt } from '../model/snapshot.js';
import { outOfSpan, refuseStatsMode } from './stacks.js';
import { sourceMarks } from '../format/marks.js';

export interface ReportPoint {
  /** Seconds since start. */
  t: number;
  bytes: number;
  lo: number;
  hi: number;
  rss: number | null;
  /**
   * Call-tree nodes holding at least the minimum share of their tree, as flattened groups of
   * TREE_STRIDE: node index (in ReportData.nodes), estimated bytes at or below it and how far
   * its 95% interval reaches below and above them, the estimated number of live allocations at or
   * below it and the same two distances (the interval is asymmetric: man/hp-estimates.7).
   * Parents before children. With threads, each thread's tree follows the whole heap's.
   */
  tree: number[];
  /** Top sites (innermost frame) in groups of SITE_STRIDE: frame index (-1: no Python stack), bytes, and how far the 95% interval reaches below and above them. */
  sites: number[];
  /** Native recordings: live bytes of each domain, in DOMAINS order (python, native, mmap). */
  domains?: number[];
  /** With threads: per thread (ReportData.threads order), its top sites as in `sites`. */
  threadSites?: number[][];
  /** Index of an earlier point whose tree and sites this point shares (nothing changed between). */
  ref?: number;
  peak?: true;
  /** The moment asked for with --at (exact, not a plot point). */
  chosen?: true;
}

export interface ReportData {
  version: 2;
  title: string;
  meta: {
    argv: string[];
    python: string | null;
    pid: number | null;
    hostname: string | null;
    startTimeUs: number;
    sampling: string;
    complete: boolean;
    /** Seconds between points. */
    granularity: number;
    /** Nodes under this share of a point's live bytes are left out of its tree. */
    minShare: number;
    traces: number;
    /** Attached recordings (hp-record --pid): one sentence each on the unknown heap before and the RSS baseline. */
    attached?: string[];
  };
  /**
   * [function or null, file, line]; file '' marks a pseudo frame such as [no Python stack]. Only
   * the frames of the nodes and sites some point uses, not every frame of the profile.
   */
  frames: Array<[string | null, string, number]>;
  /**
   * Call-tree nodes: [parent node, frame]; node 0 is the root (all live bytes), [-1, -1]. With
   * threads, each thread's tree has its own root [-1, -2 - k] for thread k of `threads`.
   */
  nodes: Array<[number, number]>;
  /** The threads that allocated (profiles recorded with hp-record --native); empty otherwise. */
  threads: ThreadInfo[];
  /** The domains the points' `domains` give (empty when the profile has none). */
  domains: string[];
  points: ReportPoint[];
  /** Index in `points` of the peak. */
  peakIndex: number;
  /** Index in `points` shown first: the peak, or the moment asked for. */
  selectedIndex: number;
  /** The profile's marks (heapprof.mark), in time order: seconds since start and label. */
  marks: Array<{ t: number; label: string }>;
}

export interface ReportOptions {
  /** About this many points on the plot. */
  targetPoints: number;
  /** Smallest share of a point's live bytes a call-tree node needs to be kept (e.g. 0.002). */
  minShare: number;
  /** At most this many tree nodes per point (the largest; a parent always outranks its child). */
  maxNodes: number;
  /** Sites listed per point. */
  sites: number;
  title: string;
  /** The moment shown first (default: the peak). */
  at?: SnapshotAt;
}

function samplingText(h: Header): string {
  const s = h.sampling;
  if (s.kind === 'poisson') return `byte-Poisson, mean ${s.meanBytes} bytes between samples`;
  if (s.bounds.length === 0) return 'every allocation recorded';
  return `size table {${s.bounds.map((b, i) => `${b}: ${s.probs[i]}`).join(', ')}}`;
}

/**
 * Indices of the `k` largest of values[0..n), largest first; ties go to the lower index. A bounded
 * min-heap makes it O(n log k), so 10^5 traces or tree nodes are ranked without a full sort.
 */
export function topIndices(values: ArrayLike<number>, n: number, k: number, include: (i: number) => boolean = () => true): number[] {
  const chosen: number[] = [];
  // "a ranks below b": the heap keeps the lowest-ranked chosen index at its root.
  const below = (a: number, b: number): boolean => values[a]! < values[b]! || (values[a] === values[b] && a > b);
  const swap = (i: number, j: number): void => {
    const x = chosen[i]!;
    chosen[i] = chosen[j]!;
    chosen[j] = x;
  };
  for (let i = 0; i < n; i++) {
    if (!include(i)) continue;
    if (chosen.length < k) {
      chosen.push(i);
      let c = chosen.length - 1;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!below(chosen[c]!, chosen[p]!)) break;
        swap(c, p);
        c = p;
      }
    } else if (k > 0 && below(chosen[0]!, i)) {
      chosen[0] = i;
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        const r = l + 1;
        let m = c;
        if (l < chosen.length && below(chosen[l]!, chosen[m]!)) m = l;
        if (r < chosen.length && below(chosen[r]!, chosen[m]!)) m = r;
        if (m === c) break;
        swap(c, m);
        c = m;
      }
    }
  }
  return chosen.sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
}

/** The smallest of 1, 2, 5 x 10^k µs that is at least `us`. */
export function niceGranularityUs(us: number): number {
  let g = 1;
  for (;;) {
    for (const m of [1, 2, 5]) if (g * m >= us) return g * m;
    g *= 10;
  }
}

const round = (x: number): number => Math.max(0, Math.round(x));

/** Numbers per node in ReportPoint.tree. */
export const TREE_STRIDE = 7;
export const SITE_STRIDE = 4;

/** How far an estimate's 95% interval (rounded outwards, as the NDJSON's) reaches below and above the rounded estimate. */
function reach(value: number, variance: number, unseen?: Pseudo | null, exact = 0): [number, number] {
  const v = round(value);
  const ci = wholeInterval95(value, variance, unseen, exact);
  return ci ? [Math.max(0, v - ci[0]), Math.max(0, ci[1] - v)] : [0, 0];
}

/** What the call tree reads traces and frames from (a ProfileSource, or a test's table). */
export type TraceLookup = Pick<ProfileSource, 'trace'> & Partial<Pick<ProfileSource, 'traceFrameIndexes' | 'frameAt'>>;

/**
 * The prefix tree of every trace seen (root first), frames interned, and per live-heap slot the
 * tree leaf and site of its trace. Node ids grow as traces appear, and a parent's id is always
 * below its children's, so summing values in decreasing id order pushes every value to the root.
 *
 * Frames are numbered in order of first sight and merged by their text (function, file, line),
 * but held as numbers: a frame the source keeps in its trace table is found through the table's
 * frame index (an Int32Array from index to tree frame), and its text is read back from the
 * source only to hash it once and, at the end, for the frames a point uses. A profile of 10^5
 * traces has ~600,000 distinct frames; a Map keyed by their text and an array per frame held
 * ~75 MB of heap.
 */
export class CallTree {
  /** Tree frames defined so far. */
  frameCount = 0;
  /** Per tree frame: the source's frame index (>= 0), or -1 - its index in heldFrames. */
  private frameRef = new Int32Array(1024);
  /** Frames the source does not hold by index (pseudo frames, traces kept as objects): few. */
  private readonly heldFrames: Frame[] = [];
  /** Source frame index -> tree frame + 1 (0 = not seen yet). */
  private fromSource = new Int32Array(1024);
  /** Open-addressing hash of frame text -> tree frame + 1 (0 = empty), at most half full. */
  private frameSlots = new Int32Array(2048);
  private frameHashes = new Int32Array(1024);
  parent = new Int32Array(1024);
  frameOf = new Int32Array(1024);
  /** The root of each node's tree (0, or a thread's root); null while there are no threads (all 0). */
  rootOf: Int32Array | null = null;
  size = 1;
  /** Threads seen, in order of first sight, and the root node of each one's tree. */
  readonly threads: ThreadInfo[] = [];
  readonly threadRoots: number[] = [];
  private readonly threadIndex = new Map<number, number>();
  /** Traces with a thread or a domain (native recordings): their thread tree's leaf and domain index. */
  private readonly nativeInfo = new Map<number, { threadLeaf: number; domain: number }>();
  /**
   * Open-addressing hash of (parent, frame) to child node: each slot holds a node id + 1 (0 =
   * empty), whose key is read back from parent[] and frameOf[]. 4 bytes a slot, at most half
   * full, and nothing for the collector: a Map of 3 million children (100,000 traces 40 frames
   * deep) took over 300 MB while it grew.
   */
  private childSlots = new Int32Array(2048);
  /** Per trace id: its leaf node + 1 and its site + 2 (0 = not defined yet); ids past the arrays in a Map. */
  private leafOfTrace = new Int32Array(1024);
  private siteOfTrace = new Int32Array(1024);
  private readonly farTraces = new Map<number, [number, number]>();
  private readonly noStackFrame: number;
  /**
   * Where traces and frames are read (replaced when the profile is reopened: frame indexes must
   * mean the same frames in every opening, as they do for one file).
   */
  source: TraceLookup = { trace: () => undefined };

  constructor() {
    this.parent[0] = -1;
    this.frameOf[0] = -1;
    this.noStackFrame = this.frame({ function: NO_STACK_LABEL, file: '', line: 0 });
  }

  /** A tree frame's text. */
  frameText(i: number): Frame {
    const ref = this.frameRef[i]!;
    return ref >= 0 ? this.source.frameAt!(ref) : this.heldFrames[-1 - ref]!;
  }

  /** The tree frame of a frame given by its text. */
  frame(f: Frame): number {
    return this.intern(f, -1);
  }

  /** The tree frame of the source's frame `index`. */
  private sourceFrame(index: number): number {
    if (index >= this.fromSource.length) this.fromSource = grownTo(this.fromSource, index);
    const known = this.fromSource[index]!;
    if (known !== 0) return known - 1;
    const i = this.intern(this.source.frameAt!(index), index);
    this.fromSource[index] = i + 1;
    return i;
  }

  /** Find or add the frame with f's text; a new one refers to source frame `index` (-1: hold f). */
  private intern(f: Frame, index: number): number {
    const fn = f.function ?? '';
    const h = frameHash(fn, f.file, f.line);
    let mask = this.frameSlots.length - 1;
    let at = h & mask;
    for (let s = this.frameSlots[at]!; s !== 0; s = this.frameSlots[at]!) {
      if (this.frameHashes[s - 1] === h) {
        const g = this.frameText(s - 1);
        if (g.line === f.line && g.file === f.file && (g.function ?? '') === fn) return s - 1;
      }
      at = (at + 1) & mask;
    }
    const i = this.frameCount++;
    if (i >= this.frameRef.length) this.frameRef = grownTo(this.frameRef, i);
    if (index >= 0) this.frameRef[i] = index;
    else {
      this.heldFrames.push(f);
      this.frameRef[i] = -this.heldFrames.length;
    }
    if (i >= this.frameHashes.length) this.frameHashes = grownTo(this.frameHashes, i);
    this.frameHashes[i] = h;
    if (2 * this.frameCount > this.frameSlots.length) {
      const slots = new Int32Array(this.frameSlots.length * 2);
      mask = slots.length - 1;
      for (let j = 0; j < this.frameCount; j++) {
        let k = this.frameHashes[j]! & mask;
        while (slots[k] !== 0) k = (k + 1) & mask;
        slots[k] = j + 1;
      }
      this.frameSlots = slots;
    } else this.frameSlots[at] = i + 1;
    return i;
  }

  private newNode(parent: number, frame: number): number {
    if (this.size === this.parent.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(this.size * 2);
        b.set(a);
        return b;
      };
      this.parent = grow(this.parent);
      this.frameOf = grow(this.frameOf);
      if (this.rootOf) this.rootOf = grow(this.rootOf);
    }
    const n = this.size++;
    this.parent[n] = parent;
    this.frameOf[n] = frame;
    if (parent < 0 && !this.rootOf) this.rootOf = new Int32Array(this.parent.length);
    if (this.rootOf) this.rootOf[n] = parent < 0 ? n : this.rootOf[parent]!;
    return n;
  }

  private static slotOf(parent: number, frame: number, mask: number): number {
    let h = Math.imul(parent, 0x9e3779b1) ^ Math.imul(frame + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h & mask;
  }

  private child(parent: number, frame: number): number {
    let slots = this.childSlots;
    let mask = slots.length - 1;
    let i = CallTree.slotOf(parent, frame, mask);
    for (let s = slots[i]!; s !== 0; s = slots[i]!) {
      if (this.parent[s - 1] === parent && this.frameOf[s - 1] === frame) return s - 1;
      i = (i + 1) & mask;
    }
    const n = this.newNode(parent, frame);
    if (2 * this.size > slots.length) {
      // Double and re-insert every child node (roots, with no parent, are nobody's child).
      slots = new Int32Array(slots.length * 2);
      mask = slots.length - 1;
      for (let m = 1; m < this.size; m++) {
        const p = this.parent[m]!;
        if (p < 0) continue;
        let j = CallTree.slotOf(p, this.frameOf[m]!, mask);
        while (slots[j] !== 0) j = (j + 1) & mask;
        slots[j] = m + 1;
      }
      this.childSlots = slots;
    } else slots[i] = n + 1;
    return n;
  }

  /** The root node of a thread's own tree (its frame is -2 - the thread's index). */
  private threadRoot(thread: ThreadInfo): number {
    let k = this.threadIndex.get(thread.id);
    if (k === undefined) {
      k = this.threads.length;
      this.threads.push({ id: thread.id, tid: thread.tid, name: thread.name });
      this.threadIndex.set(thread.id, k);
      this.threadRoots.push(this.newNode(-1, -2 - k));
    }
    return this.threadRoots[k]!;
  }

  /** The path of a trace's frames (root first) below `node`. */
  private path(node: number, trace: Trace): number {
    if (trace.dropped > 0) node = this.child(node, this.droppedFrame(trace.dropped));
    if (trace.frames.length === 0) node = this.child(node, this.noStackFrame);
    for (let i = trace.frames.length - 1; i >= 0; i--) node = this.child(node, this.frame(trace.frames[i]!));
    return node;
  }

  private droppedFrame(dropped: number): number {
    return this.frame({ function: `[${dropped} outer frames not recorded]`, file: '', line: 0 });
  }

  /** A native recording's trace: the leaf in its thread's tree (-1: no thread) and its domain (DOMAINS index). */
  nativeOf(traceId: number): { threadLeaf: number; domain: number } | undefined {
    this.leaf(traceId);
    return this.nativeInfo.get(traceId);
  }

  private define(traceId: number): void {
    let node = 0;
    let site = -1;
    const indexed = traceId === 0 ? undefined : this.source.traceFrameIndexes?.(traceId);
    if (indexed) {
      // The source's frame indexes (a view into its table: read before anything else asks it).
      const frames = indexed.frames;
      if (indexed.dropped > 0) node = this.child(node, this.droppedFrame(indexed.dropped));
      if (frames.length === 0) node = this.child(node, this.noStackFrame);
      for (let i = frames.length - 1; i >= 0; i--) node = this.child(node, this.sourceFrame(frames[i]!));
      if (frames.length > 0) site = this.sourceFrame(frames[0]!);
    } else {
      const trace = traceOrPlaceholder((id) => this.source.trace(id), traceId);
      node = this.path(0, trace);
      if (trace.thread !== undefined || trace.domain !== undefined) {
        const threadLeaf = trace.thread ? this.path(this.threadRoot(trace.thread), trace) : -1;
        this.nativeInfo.set(traceId, { threadLeaf, domain: Math.max(0, DOMAINS.indexOf(traceDomain(trace))) });
      }
      site = trace.frames.length > 0 ? this.frame(trace.frames[0]!) : -1;
    }
    if (traceId >= DIRECT_TRACE_IDS) {
      this.farTraces.set(traceId, [node, site]);
      return;
    }
    if (traceId >= this.leafOfTrace.length) {
      this.leafOfTrace = grownTo(this.leafOfTrace, traceId);
      this.siteOfTrace = grownTo(this.siteOfTrace, traceId);
    }
    this.leafOfTrace[traceId] = node + 1;
    this.siteOfTrace[traceId] = site + 2;
  }

  /** The tree node of a trace's innermost frame. */
  leaf(traceId: number): number {
    if (traceId >= DIRECT_TRACE_IDS) {
      if (!this.farTraces.has(traceId)) this.define(traceId);
      return this.farTraces.get(traceId)![0];
    }
    if (traceId >= this.leafOfTrace.length || this.leafOfTrace[traceId] === 0) this.define(traceId);
    return this.leafOfTrace[traceId]! - 1;
  }

  /** A trace's site: the frame index of its innermost frame, -1 for no Python stack. */
  site(traceId: number): number {
    if (traceId >= DIRECT_TRACE_IDS) {
      if (!this.farTraces.has(traceId)) this.define(traceId);
      return this.farTraces.get(traceId)![1];
    }
    if (traceId >= this.leafOfTrace.length || this.leafOfTrace[traceId] === 0) this.define(traceId);
    return this.siteOfTrace[traceId]! - 2;
  }
}

/** Trace ids below this are mapped through flat arrays. */
const DIRECT_TRACE_IDS = 1 << 22;

/** A copy of `a` at least `index + 1` long (doubling). */
function grownTo(a: Int32Array<ArrayBuffer>, index: number): Int32Array<ArrayBuffer> {
  let n = a.length * 2;
  while (n <= index) n *= 2;
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

/** FNV-1a over a frame's function, file and line (the text CallTree merges frames by). */
function frameHash(fn: string, file: string, line: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < fn.length; i++) h = Math.imul(h ^ fn.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xff, 0x01000193);
  for (let i = 0; i < file.length; i++) h = Math.imul(h ^ file.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ line, 0x01000193);
  h ^= h >>> 15;
  return h | 0;
}

/** Turns live heaps into report points, and remembers which tree nodes any point used. */
class PointMaker {
  /**
   * Per tree node: a value summed over its subtree and its variance. Bytes first, then counts,
   * through the same two arrays: four arrays of the 3 million nodes of 10^5 deep traces were
   * 116 MB.
   */
  private sums = new Float64Array(0);
  private vars = new Float64Array(0);
  private siteBytes = new Float64Array(0);
  private siteVar = new Float64Array(0);
  readonly usedNodes = new Set<number>([0]);
  /** What the total's interval allows for as live undrawn (man/hp-estimates.7). */
  unseen: Unseen | null = null;
  /** Split each point by domain (a native recording). */
  domains = false;

  constructor(
    private readonly tree: CallTree,
    private readonly opts: ReportOptions,
  ) {}

  /**
   * Fill sums/vars for nodes 0..n): each live slot's value at its leaf (and its thread tree's
   * leaf), then pushed up to the roots, children before parents.
   */
  private sumUp(n: number, slots: number, leafOfSlot: Int32Array, threadLeafOfSlot: Int32Array, value: Float64Array, variance: Float64Array): void {
    if (this.sums.length < n) {
      // The tree stops growing once every trace has been seen: a little headroom is enough.
      const size = Math.ceil(n * 1.25);
      this.sums = new Float64Array(size);
      this.vars = new Float64Array(size);
    } else {
      this.sums.fill(0, 0, n);
      this.vars.fill(0, 0, n);
    }
    const sums = this.sums;
    const vars = this.vars;
    for (let s = 0; s < slots; s++) {
      const leaf = leafOfSlot[s]!;
      if (leaf < 0) continue;
      const x = value[s]!;
      const v = Math.max(0, variance[s]!);
      sums[leaf]! += x;
      vars[leaf]! += v;
      const threadLeaf = threadLeafOfSlot[s]!;
      if (threadLeaf >= 0) {
        sums[threadLeaf]! += x;
        vars[threadLeaf]! += v;
      }
    }
    const parent = this.tree.parent;
    for (let node = n - 1; node > 0; node--) {
      const p = parent[node]!;
      if (p < 0) continue; // a thread's root
      sums[p]! += sums[node]!;
      vars[p]! += vars[node]!;
    }
  }

  make(heap: LiveHeap, tUs: number, rss: number | null): ReportPoint {
    const tree = this.tree;
    const total = heap.total();
    // The interval as NDJSON has it (rounded outwards), so that the page and hp-history agree to the byte.
    const ci = wholeInterval95(total.bytes, total.bytesVar, this.unseen?.bytes, total.exactBytes) ?? [round(total.bytes), round(total.bytes)];
    // Leaves first (this may grow the tree), then size the work arrays.
    const slots = heap.slots;
    const leafOfSlot = new Int32Array(slots);
    const siteOfSlot = new Int32Array(slots);
    const threadLeafOfSlot = new Int32Array(slots).fill(-1);
    const domainBytes = [0, 0, 0];
    for (let s = 0; s < slots; s++) {
      if (heap.sampled[s]! > 0 && heap.bytes[s]! > 0) {
        const trace = heap.traceOfSlot[s]!;
        leafOfSlot[s] = tree.leaf(trace);
        siteOfSlot[s] = tree.site(trace) + 1; // 0: no Python stack
        const info = tree.nativeOf(trace);
        if (info) threadLeafOfSlot[s] = info.threadLeaf;
        domainBytes[info ? info.domain : 0]! += heap.bytes[s]!;
      } else leafOfSlot[s] = -1;
    }
    const n = tree.size;
    const nf = tree.frameCount + 1;
    const nThreads = tree.threads.length;
    // Sites of the whole heap, then of each thread: nf entries each.
    const siteSlots = nf * (1 + nThreads);
    if (this.siteBytes.length < siteSlots) {
      this.siteBytes = new Float64Array(Math.ceil(siteSlots * 1.25));
      this.siteVar = new Float64Array(Math.ceil(siteSlots * 1.25));
    } else {
      this.siteBytes.fill(0, 0, siteSlots);
      this.siteVar.fill(0, 0, siteSlots);
    }
    const siteBytes = this.siteBytes;
    const siteVar = this.siteVar;
    for (let s = 0; s < slots; s++) {
      if (leafOfSlot[s]! < 0) continue;
      const b = heap.bytes[s]!;
      const v = Math.max(0, heap.bytesVar[s]!);
      siteBytes[siteOfSlot[s]!]! += b;
      siteVar[siteOfSlot[s]!]! += v;
      const threadLeaf = threadLeafOfSlot[s]!;
      if (threadLeaf >= 0) {
        const k = -2 - tree.frameOf[tree.rootOf![threadLeaf]!]!;
        siteBytes[(k + 1) * nf + siteOfSlot[s]!]! += b;
        siteVar[(k + 1) * nf + siteOfSlot[s]!]! += v;
      }
    }
    // A root (the whole heap, a thread's heap) is a total: its interval is the total's, with the
    // part drawn at p = 1 exact and the profile's allowance for what was live undrawn, as
    // hp-snapshot's (--thread) total line and the plot's band have it, not a site's.
    const exactOfRoot = new Map<number, { bytes: number; count: number }>([[0, { bytes: total.exactBytes ?? 0, count: total.exactCount ?? 0 }]]);
    for (let s = 0; s < slots; s++) {
      const threadLeaf = threadLeafOfSlot[s]!;
      if (threadLeaf < 0 || leafOfSlot[s]! < 0 || heap.bytesVar[s]! > 0 || heap.countVar[s]! > 0) continue;
      const root = tree.rootOf![threadLeaf]!;
      const e = exactOfRoot.get(root) ?? { bytes: 0, count: 0 };
      e.bytes += heap.bytes[s]!;
      e.count += heap.count[s]!;
      exactOfRoot.set(root, e);
    }
    const isRoot = (node: number): boolean => node === 0 || (tree.rootOf !== null && tree.rootOf[node] === node);
    const nodeReach = (node: number, which: 'bytes' | 'count'): [number, number] =>
      isRoot(node) ? reach(this.sums[node]!, this.vars[node]!, this.unseen?.[which], exactOfRoot.get(node)?.[which] ?? 0) : reach(this.sums[node]!, this.vars[node]!);
    this.sumUp(n, slots, leafOfSlot, threadLeafOfSlot, heap.bytes, heap.bytesVar);
    const values = this.sums;
    // Each tree (the whole heap's, each thread's) keeps the nodes holding minShare of its root.
    const rootOf = tree.rootOf;
    const keep = (inThreads: boolean): number[] => {
      let kept: number[] = [];
      for (let node = 0; node < n; node++) {
        const root = rootOf ? rootOf[node]! : 0;
        if ((root !== 0) !== inThreads) continue;
        if (values[node]! > 0 && values[node]! >= Math.max(1, this.opts.minShare * values[root]!)) kept.push(node);
      }
      if (kept.length > this.opts.maxNodes) {
        const candidates = Float64Array.from(kept, (node) => values[node]!);
        kept = topIndices(candidates, candidates.length, this.opts.maxNodes).map((i) => kept[i]!).sort((a, b) => a - b);
      }
      return kept;
    };
    const keptNodes = [0];
    for (const node of keep(false)) if (node !== 0) keptNodes.push(node);
    if (nThreads > 0) keptNodes.push(...keep(true));
    const treeOut: number[] = new Array(keptNodes.length * TREE_STRIDE);
    keptNodes.forEach((node, i) => {
      this.usedNodes.add(node);
      treeOut[i * TREE_STRIDE] = node;
      treeOut[i * TREE_STRIDE + 1] = round(this.sums[node]!);
      [treeOut[i * TREE_STRIDE + 2], treeOut[i * TREE_STRIDE + 3]] = nodeReach(node, 'bytes');
    });
    this.sumUp(n, slots, leafOfSlot, threadLeafOfSlot, heap.count, heap.countVar);
    keptNodes.forEach((node, i) => {
      treeOut[i * TREE_STRIDE + 4] = round(this.sums[node]!);
      [treeOut[i * TREE_STRIDE + 5], treeOut[i * TREE_STRIDE + 6]] = nodeReach(node, 'count');
    });
    const sitesOf = (base: number): number[] => {
      const list: number[] = [];
      for (const i of topIndices(siteBytes.subarray(base, base + nf), nf, this.opts.sites, (j) => siteBytes[base + j]! > 0)) {
        list.push(i - 1, round(siteBytes[base + i]!), ...reach(siteBytes[base + i]!, siteVar[base + i]!));
      }
      return list;
    };
    const point: ReportPoint = {
      t: tUs / 1e6,
      bytes: round(total.bytes),
      lo: ci[0],
      hi: ci[1],
      rss,
      tree: treeOut,
      sites: sitesOf(0),
    };
    if (this.domains) point.domains = domainBytes.map(round);
    if (nThreads > 0) point.threadSites = tree.threads.map((_, k) => sitesOf((k + 1) * nf));
    return point;
  }
}

/**
 * The frames the page needs, those of the tree nodes and sites the points use, in tree-frame
 * order, and each tree frame's index among them (-1: not needed). Rewrites the points' sites to
 * these indexes. A trace table may hold ~600,000 frames of which the points use a few percent.
 */
function pageFrames(tree: CallTree, usedNodes: Iterable<number>, points: ReportPoint[]): { frames: ReportData['frames']; pageIndex: Int32Array<ArrayBuffer> } {
  const pageIndex = new Int32Array(tree.frameCount);
  const USED = 1;
  for (const node of usedNodes) if (tree.frameOf[node]! >= 0) pageIndex[tree.frameOf[node]!] = USED;
  const siteLists = (p: ReportPoint): number[][] => [p.sites, ...(p.threadSites ?? [])];
  for (const p of points) for (const list of siteLists(p)) for (let i = 0; i < list.length; i += SITE_STRIDE) if (list[i]! >= 0) pageIndex[list[i]!] = USED;
  const frames: ReportData['frames'] = [];
  for (let f = 0; f < tree.frameCount; f++) {
    if (pageIndex[f] !== USED) {
      pageIndex[f] = -1;
      continue;
    }
    pageIndex[f] = frames.length;
    const text = tree.frameText(f);
    frames.push([text.function, text.file, text.line]);
  }
  for (const p of points) for (const list of siteLists(p)) for (let i = 0; i < list.length; i += SITE_STRIDE) if (list[i]! >= 0) list[i] = pageIndex[list[i]!]!;
  return { frames, pageIndex };
}

/**
 * Read the profile twice (it must be seekable; `open` gives a fresh source each time): first for
 * the peak and the profile's length, then for the points of the plot at a fixed granularity, each
 * the state after every event at or before its time.
 */
export async function buildReportData(open: () => Promise<ProfileSource>, opts: ReportOptions): Promise<ReportData> {
  const tree = new CallTree();
  const maker = new PointMaker(tree, opts);
  let header: Header;
  let peak: ReportPoint;
  let lastUs: number;
  let traces = 0;
  {
    const source = await open();
    try {
      header = source.header;
      refuseStatsMode(source);
      maker.unseen = unseenOf(header.sampling, source.histogram);
      maker.domains = header.native === true;
      tree.source = source;
      const snap = await liveHeapAt(source, { kind: 'peak' });
      // A sampled profile's peak is estimated on half of its draws: its allowance is that half's.
      maker.unseen = unseenOf(snap.heap.sampling, source.histogram);
      peak = { ...maker.make(snap.heap, snap.atUs, null), peak: true };
      maker.unseen = unseenOf(header.sampling, source.histogram);
      lastUs = snap.lastUs;
      // As every reader: a time after a finished profile's end prints its span (before the second read).
      if (opts.at?.kind === 'time' && snap.readToEnd && source.complete && opts.at.us > lastUs) throw outOfSpan('--at', opts.at.us, lastUs);
    } finally {
      await source.close();
    }
  }
  const granularityUs = niceGranularityUs(Math.max(1, lastUs) / opts.targetPoints);
  const points: ReportPoint[] = [];
  let complete = false;
  let chosen: ReportPoint | null = null;
  let marks: Array<{ t: number; label: string }> = [];
  let frames: ReportData['frames'] = [];
  let pageIndex = new Int32Array(0);
  const source = await open();
  try {
    tree.source = source;
    const heap = new LiveHeap(header.sampling);
    let nextEndUs = granularityUs;
    let curUs = 0;
    // Every RSS sample, per process when several profiles are read as one: a point's RSS comes
    // from them once the read is over, by the rule hp-history applies as it streams (lib/model/rss.ts).
    const perProcess = source instanceof MergedSource && source.rssByProcess;
    const rssTimeline = new RssTimeline(perProcess ? source.sources.map((_, i) => source.offsetUs(i)) : [0]);
    const rssAt = (endUs: number): number | null => rssTimeline.at(endUs, granularityUs)?.bytes ?? null;
    // Each point's time in µs (its t is in seconds), for its RSS at the end.
    const pointUs: number[] = [];
    let dirty = true;
    let lastMade = -1;
    // --at end is the state after the last event, at its time (as hp-snapshot --at end), not the
    // last point of the plot, which ends at the first multiple of the granularity after it.
    let captureUs = opts.at?.kind === 'time' ? opts.at.us : opts.at?.kind === 'end' ? lastUs : null;
    // The peak was found in the first read, without the RSS: its RSS is the one at its time.
    const peakUs = Math.round(peak.t * 1e6);
    let chosenUs = 0;
    const close = (endUs: number): void => {
      if (!dirty && lastMade >= 0) {
        const m = points[lastMade]!;
        points.push({ t: endUs / 1e6, bytes: m.bytes, lo: m.lo, hi: m.hi, rss: null, tree: [], sites: [], ...(m.domains ? { domains: m.domains } : {}), ref: lastMade });
      } else {
        lastMade = points.length;
        points.push(maker.make(heap, endUs, null));
      }
      pointUs.push(endUs);
      dirty = false;
    };
    for await (const batch of source.batches()) {
      const { op, timeUs, trace, size } = batch;
      for (let i = 0; i < batch.length; i++) {
        let t = timeUs[i]!;
        if (t < curUs) t = curUs; // heapprof 1.0.x wall-clock times may step back
        curUs = t;
        while (t > nextEndUs) {
          close(nextEndUs);
          nextEndUs += granularityUs;
        }
        if (captureUs !== null && t > captureUs) {
          chosen = { ...maker.make(heap, captureUs, null), chosen: true };
          chosenUs = captureUs;
          captureUs = null;
        }
        const o = op[i]!;
        if (o === OP_ALLOC || o === OP_FREE) {
          heap.apply(o, trace[i]!, size[i]!);
          dirty = true;
        } else if (o === OP_RSS) {
          rssTimeline.sample(perProcess ? trace[i]! - 1 : 0, t, size[i]!);
        } else if (o === OP_END && perProcess) rssTimeline.end(trace[i]! - 1, t);
      }
    }
    const lastEnd = Math.max(granularityUs, Math.ceil(curUs / granularityUs) * granularityUs);
    while (nextEndUs <= lastEnd) {
      close(nextEndUs);
      nextEndUs += granularityUs;
    }
    if (captureUs !== null) {
      chosen = { ...maker.make(heap, captureUs, null), chosen: true };
      chosenUs = captureUs;
    }
    for (let k = 0; k < points.length; k++) points[k]!.rss = rssAt(pointUs[k]!);
    peak.rss = rssAt(peakUs);
    if (chosen) chosen.rss = rssAt(chosenUs);
    complete = source.complete;
    for (const tr of source.traces()) if (tr.id > 0) traces++;
    marks = sourceMarks(source).map((m) => ({ t: m.timeUs / 1e6, label: m.label }));
    // The frames' text is read from this source, so before it closes.
    ({ frames, pageIndex } = pageFrames(tree, maker.usedNodes, points.concat(peak, chosen ?? [])));
  } finally {
    await source.close();
  }
  // The peak (and the chosen moment) go in time order; at a point's own time they come first.
  const insert = (extra: ReportPoint): number => {
    let at = points.findIndex((p) => p.t >= extra.t);
    if (at < 0) at = points.length;
    points.splice(at, 0, extra);
    for (const p of points) if (p.ref !== undefined && p.ref >= at) p.ref++;
    return at;
  };
  let peakIndex = insert(peak);
  let selectedIndex = peakIndex;
  if (chosen) {
    selectedIndex = insert(chosen);
    if (selectedIndex <= peakIndex) peakIndex++;
  }

  // Keep only the nodes some point uses, renumbered in id order (parents stay before children).
  const used = [...maker.usedNodes].sort((a, b) => a - b);
  const compact = new Map<number, number>(used.map((node, i) => [node, i]));
  const nodes: Array<[number, number]> = used.map((node) => {
    const frame = tree.frameOf[node]!;
    return [tree.parent[node]! < 0 || node === 0 ? -1 : compact.get(tree.parent[node]!)!, frame < 0 ? frame : pageIndex[frame]!];
  });
  for (const p of points) for (let i = 0; i < p.tree.length; i += TREE_STRIDE) p.tree[i] = compact.get(p.tree[i]!)!;

  return {
    version: 2,
    title: opts.title,
    meta: {
      argv: header.argv,
      python: header.pythonVersion,
      pid: header.pid,
      hostname: header.hostname,
      startTimeUs: header.startTimeUs,
      sampling: samplingText(header),
      complete,
      granularity: granularityUs / 1e6,
      minShare: opts.minShare,
      traces,
    },
    frames,
    nodes,
    threads: tree.threads,
    domains: header.native === true ? [...DOMAINS] : [],
    points,
    peakIndex,
    selectedIndex,
    marks,
  };
}
