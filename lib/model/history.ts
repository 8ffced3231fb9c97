// Live heap over time: the state at the end of each time bucket (total estimate, the top
// sites, chosen lines), plus the RSS sample nearest to each bucket end. Buckets close as the
// stream passes them, so a fixed granularity streams; an automatic one keeps at most a few
// hundred fine buckets and thins them to about 60 at the end.

import { OP_ALLOC, OP_FREE, OP_RSS, type EventBatch } from '../format/source.js';
import type { Sampling, Trace } from '../format/types.js';
import { addEstimate, emptyEstimate, type Estimate } from './estimate.js';
import { LiveHeap } from './live.js';
import { siteOf, traceMatches, traceOrPlaceholder, type GroupBy, type LineSpec, type SiteEstimate, type SiteInfo } from './sites.js';

export interface HistoryOptions {
  /** Bucket length in µs; null chooses one from the profile's length (about `targetBuckets`). */
  granularityUs: number | null;
  targetBuckets?: number;
  top: number;
  groupBy: GroupBy;
  sites: LineSpec[];
  /** Only buckets ending in [fromUs, toUs] are reported (the heap is still built from 0). */
  fromUs?: number;
  toUs?: number;
}

export interface BucketRecord {
  /** Bucket end, µs since start: the state after every event at or before it. */
  tUs: number;
  total: Estimate;
  top: SiteEstimate[];
  /** One estimate per followed line, in the order given. */
  followed: Estimate[];
  rss: number | null;
  rssUs: number | null;
}

/**
 * Nice bucket lengths in µs, each a multiple of the one before, so that thinning fine
 * buckets to a coarser level keeps exactly the coarser bucket ends.
 */
export function granularityLevels(): number[] {
  const s = 1e6;
  const levels = [1e3, 2e3, 1e4, 2e4, 1e5, 2e5, 1 * s, 2 * s, 10 * s, 20 * s, 60 * s, 120 * s, 600 * s, 1200 * s, 3600 * s, 7200 * s];
  let g = 7200 * s;
  while (levels.length < 40) {
    g *= levels.length % 2 === 0 ? 5 : 2;
    levels.push(g);
  }
  return levels;
}

const MAX_FINE_BUCKETS = 480;

export class HistoryBuilder {
  readonly heap: LiveHeap;
  /** Records resolved and ready to be written, in time order. */
  readonly ready: BucketRecord[] = [];
  granularityUs: number;
  private readonly auto: boolean;
  private levelIndex = 0;
  private readonly levels = granularityLevels();
  private nextEndUs: number;
  private curUs = 0;
  private lastUs = 0;
  private dirty = true;
  private lastRecord: BucketRecord | null = null;
  /** Closed buckets waiting for an RSS sample after their end (or for the look-ahead to pass). */
  private pending: BucketRecord[] = [];
  /** Automatic mode: resolved fine buckets, thinned as the profile grows. */
  private fine: BucketRecord[] = [];
  private lastRss: number | null = null;
  private lastRssUs: number | null = null;
  private readonly fromUs: number;
  private readonly toUs: number;
  // Site grouping caches: slot -> group index, and per-group sums reused per bucket.
  private slotGroup = new Int32Array(256).fill(-1);
  private readonly groups: SiteInfo[] = [];
  private readonly groupIndex = new Map<string, number>();
  private slotFollow: Array<number[] | undefined> = [];
  private finished = false;

  constructor(
    sampling: Sampling,
    private readonly lookup: (id: number) => Trace | undefined,
    private readonly opts: HistoryOptions,
  ) {
    this.heap = new LiveHeap(sampling);
    this.auto = opts.granularityUs === null;
    this.granularityUs = opts.granularityUs ?? this.levels[0]!;
    if (!(this.granularityUs >= 1)) throw new Error('granularity must be at least 1 µs');
    this.fromUs = opts.fromUs ?? 0;
    this.toUs = opts.toUs ?? Infinity;
    this.nextEndUs = this.granularityUs;
  }

  /** RSS samples later than a bucket end by more than this are not waited for. */
  private get lookAheadUs(): number {
    return Math.max(this.granularityUs, 2e6);
  }

  /** True once every bucket up to `toUs` has been closed: the caller can stop reading. */
  get done(): boolean {
    return this.curUs > this.toUs + this.lookAheadUs;
  }

  consume(batch: EventBatch): void {
    const { op, timeUs, trace, size } = batch;
    const n = batch.length;
    const heap = this.heap;
    for (let i = 0; i < n; i++) {
      let t = timeUs[i]!;
      if (t < this.curUs) t = this.curUs; // heapprof 1.0.x wall-clock times may step back
      this.curUs = t;
      if (t > this.nextEndUs) this.passTime(t);
      const o = op[i]!;
      if (o === OP_ALLOC || o === OP_FREE) {
        heap.apply(o, trace[i]!, size[i]!);
        this.dirty = true;
      } else if (o === OP_RSS) {
        this.rssSample(t, size[i]!);
      }
      this.lastUs = t;
    }
  }

  /** Close every bucket ending before `t`, and settle pending RSS look-ups `t` has passed. */
  private passTime(t: number): void {
    while (t > this.nextEndUs && this.nextEndUs <= this.toUs) {
      this.closeBucket(this.nextEndUs);
      this.nextEndUs += this.granularityUs;
    }
    if (this.nextEndUs > this.toUs) this.nextEndUs = Infinity;
    while (this.pending.length > 0 && t > this.pending[0]!.tUs + this.lookAheadUs) this.resolve(this.pending.shift()!);
  }

  private rssSample(t: number, bytes: number): void {
    // The first sample after a bucket end settles it: any later one is farther away.
    while (this.pending.length > 0) {
      const rec = this.pending.shift()!;
      if (rec.rssUs === null || t - rec.tUs < rec.tUs - rec.rssUs) {
        rec.rss = bytes;
        rec.rssUs = t;
      }
      this.resolve(rec);
    }
    this.lastRss = bytes;
    this.lastRssUs = t;
  }

  private closeBucket(endUs: number): void {
    let rec: BucketRecord;
    if (!this.dirty && this.lastRecord) {
      rec = { ...this.lastRecord, tUs: endUs };
    } else {
      rec = this.measure(endUs);
      this.dirty = false;
    }
    rec.rss = this.lastRss;
    rec.rssUs = this.lastRssUs;
    this.lastRecord = rec;
    this.pending.push(rec);
  }

  private resolve(rec: BucketRecord): void {
    if (rec.tUs < this.fromUs) return;
    if (!this.auto) {
      this.ready.push(rec);
      return;
    }
    this.fine.push(rec);
    // Once finishing, the final length is chosen and the fine buckets must stay as they are.
    while (!this.finished && this.fine.length > MAX_FINE_BUCKETS) this.coarsen();
  }

  private coarsen(): void {
    const g = this.levels[++this.levelIndex]!;
    this.granularityUs = g;
    this.fine = this.fine.filter((r) => r.tUs % g === 0);
    this.pending = this.pending.filter((r) => r.tUs % g === 0);
    if (Number.isFinite(this.nextEndUs)) this.nextEndUs = Math.ceil(this.nextEndUs / g) * g;
  }

  private groupOfSlot(slot: number): number {
    if (slot >= this.slotGroup.length) {
      const a = new Int32Array(Math.max(slot + 1, this.slotGroup.length * 2)).fill(-1);
      a.set(this.slotGroup);
      this.slotGroup = a;
    }
    let g = this.slotGroup[slot]!;
    if (g >= 0) return g;
    const traceId = this.heap.traceOfSlot[slot]!;
    const tr = traceOrPlaceholder(this.lookup, traceId);
    const site = siteOf(tr, this.opts.groupBy);
    g = this.groupIndex.get(site.key) ?? -1;
    if (g < 0) {
      g = this.groups.length;
      this.groups.push(site);
      this.groupIndex.set(site.key, g);
    }
    this.slotGroup[slot] = g;
    if (this.opts.sites.length > 0) this.slotFollow[slot] = traceMatches(tr, this.opts.sites);
    return g;
  }

  /** The heap's state now, as a bucket ending at `endUs`. */
  private measure(endUs: number): BucketRecord {
    const heap = this.heap;
    const groupEst = new Map<number, Estimate>();
    const followed = this.opts.sites.map(() => emptyEstimate());
    for (let slot = 0; slot < heap.slots; slot++) {
      if (heap.sampled[slot]! <= 0) continue;
      const g = this.groupOfSlot(slot);
      const est = heap.estimateOfSlot(slot);
      if (this.opts.top > 0) {
        let e = groupEst.get(g);
        if (!e) groupEst.set(g, (e = emptyEstimate()));
        addEstimate(e, est);
      }
      const follow = this.slotFollow[slot];
      if (follow) for (const i of follow) addEstimate(followed[i]!, est);
    }
    const top = topSites(groupEst, this.groups, this.opts.top);
    return { tUs: endUs, total: heap.total(), top, followed, rss: null, rssUs: null };
  }

  /** Close the remaining buckets (through the one containing the last event). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const endUs = Math.min(this.lastUs, this.toUs);
    if (this.auto) {
      // Pick the final length from the levels that are multiples of the fine one.
      const target = Math.max(1, endUs - this.fromUs) / (this.opts.targetBuckets ?? 60);
      let best = this.granularityUs;
      for (let i = this.levelIndex; i < this.levels.length; i++) {
        const g = this.levels[i]!;
        if (g % this.granularityUs !== 0) continue;
        if (Math.abs(Math.log(g / target)) < Math.abs(Math.log(best / target))) best = g;
      }
      const lastEnd = Math.max(best, Math.ceil(endUs / best) * best);
      while (this.nextEndUs <= lastEnd && this.nextEndUs <= this.toUs) {
        this.closeBucket(this.nextEndUs);
        this.nextEndUs += this.granularityUs;
      }
      while (this.pending.length > 0) this.resolve(this.pending.shift()!);
      this.ready.push(...this.fine.filter((r) => r.tUs % best === 0 && r.tUs <= lastEnd));
      this.fine = [];
      this.granularityUs = best;
      return;
    }
    const g = this.granularityUs;
    const lastEnd = Math.max(g, Math.ceil(endUs / g) * g);
    while (this.nextEndUs <= lastEnd && this.nextEndUs <= this.toUs) {
      this.closeBucket(this.nextEndUs);
      this.nextEndUs += g;
    }
    while (this.pending.length > 0) this.resolve(this.pending.shift()!);
  }
}

function topSites(groupEst: Map<number, Estimate>, groups: SiteInfo[], n: number): SiteEstimate[] {
  if (n <= 0) return [];
  const all: SiteEstimate[] = [];
  for (const [g, est] of groupEst) if (est.bytes > 0) all.push({ site: groups[g]!, est, traces: 0 });
  all.sort((a, b) => b.est.bytes - a.est.bytes || (a.site.label < b.site.label ? -1 : a.site.label > b.site.label ? 1 : 0));
  return all.slice(0, n);
}
