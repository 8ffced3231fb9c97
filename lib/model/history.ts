// Live heap over time: the state at the end of each time bucket (total estimate, the top
// sites, chosen lines), plus the RSS sample nearest to each bucket end (several processes: the
// sum of each one's nearest sample, over those alive during the bucket). Buckets close as the
// stream passes them, so a fixed granularity streams; an automatic one keeps at most a few
// hundred fine buckets and thins them at the end to the finest nice length that gives at most
// `maxBuckets` (the chart's width on a terminal).

import { UsageError } from '../cli.js';
import { OP_END, OP_FREE, OP_RSS, type EventBatch } from '../format/source.js';
import { rssLookAheadUs } from './rss.js';
import { DOMAINS, domainIncludes, traceDomain, type Domain, type Sampling, type Trace } from '../format/types.js';
import { addEstimate, emptyEstimate, type Estimate } from './estimate.js';
import { LiveHeap } from './live.js';
import { siteOf, traceMatches, traceOrPlaceholder, type GroupBy, type LineSpec, type SiteEstimate, type SiteInfo } from './sites.js';

export interface HistoryOptions {
  /** Bucket length in µs; null chooses one from the profile's length (autoGranularityUs). */
  granularityUs: number | null;
  /** Automatic granularity: at most this many buckets (default AUTO_MAX_BUCKETS). */
  maxBuckets?: number;
  top: number;
  groupBy: GroupBy;
  sites: LineSpec[];
  /** Only buckets ending in [fromUs, toUs] are reported (the heap is still built from 0). */
  fromUs?: number;
  toUs?: number;
  /** Also split each bucket's total by domain (profiles recorded with --native). */
  domains?: boolean;
  /**
   * Several processes (MergedSource with rssByProcess): each one's start on the stream's
   * timeline. Their RSS events and ENDs carry 1 + the process's index in `trace`. Without it
   * the stream is one process, started at 0, whatever its RSS events' `trace`.
   */
  processStartsUs?: number[];
  /** Reading a profile being recorded: MAX_BUCKETS bounds the buckets held, not those written. */
  follow?: boolean;
}

/** One process's part of a bucket's RSS: its sample nearest to the bucket end. */
interface RssPart {
  bytes: number | null;
  us: number | null;
  /** No sample after the bucket end seen yet (and the process has not ended). */
  waiting: boolean;
  /** When the process ended, if it had by the bucket end (else Infinity). */
  endUs: number;
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
  /** With HistoryOptions.domains: the total of each domain (python, native, mmap), in DOMAINS order. */
  domains?: Estimate[];
  /**
   * Internal, until the record is reported: one part per process started by tUs. `rss` is their
   * sum over the processes alive during the bucket, once its length is final.
   */
  rssParts?: { parts: Array<RssPart | undefined>; waiting: number };
}

/**
 * Nice bucket lengths in µs, each a multiple of the one before, so that thinning fine
 * buckets to a coarser level keeps exactly the coarser bucket ends.
 */
export function granularityLevels(): number[] {
  const s = 1e6;
  const day = 86400 * s;
  const levels = [1e3, 2e3, 1e4, 2e4, 1e5, 2e5, 1 * s, 2 * s, 10 * s, 20 * s, 60 * s, 120 * s, 600 * s, 1200 * s, 3600 * s, 7200 * s, 21600 * s, 43200 * s, day];
  // Then 2, 10, 20, 100 ... days, up to 10^15 µs (beyond, lengths stop being exact integers).
  for (let g = day, k = 0; g * (k % 2 === 0 ? 2 : 5) <= 1e15; k++) levels.push((g *= k % 2 === 0 ? 2 : 5));
  return levels;
}

/** Automatic granularity into a pipe: at most this many buckets (so 60 to 150). */
export const AUTO_MAX_BUCKETS = 150;

/**
 * The lengths an automatic granularity may end on, in µs, ascending: 1, 2 and 5 x 10^k ms below
 * a second; 1, 2, 5, 10, 20 and 30 s; 1, 2, 5, 10, 20 and 30 min; 1, 2, 3, 6 and 12 h; then
 * 1, 2 and 5 x 10^k days (up to 10^15 µs). Every level (what fine buckets are thinned through)
 * is one of them, so that one is always a multiple of the fine length.
 */
export function niceGranularities(): number[] {
  return [...NICE];
}

const NICE: readonly number[] = (() => {
  const s = 1e6;
  const out = new Set<number>(granularityLevels());
  for (const us of [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5]) out.add(us);
  for (const sec of [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 21600, 43200]) out.add(sec * s);
  for (let d = 1; d <= 1e4; d *= 10) for (const m of [1, 2, 5]) out.add(m * d * 86400 * s);
  return Object.freeze([...out].filter((g) => g <= 1e15).sort((a, b) => a - b));
})();

/**
 * The automatic bucket length for a span: the finest nice length (niceGranularities) that is a
 * multiple of `fineUs` (the fine buckets already kept) and gives at most `maxBuckets` buckets.
 * Nice lengths differ by at most 2.5x, so the count is between maxBuckets / 2.5 and maxBuckets
 * when the fine buckets allow it.
 */
export function autoGranularityUs(spanUs: number, maxBuckets: number, fineUs = 1e3): number {
  const span = Math.max(1, spanUs);
  for (const g of NICE) {
    if (g < fineUs || g % fineUs !== 0) continue;
    if (Math.ceil(span / g) <= maxBuckets) return g;
  }
  return NICE[NICE.length - 1]!;
}

/**
 * SUFFIX_GCD[i]: the greatest common divisor of NICE[i..]. Computed once: needsDetail asks at
 * every closed bucket, and rebuilding the list there cost a small profile's hp-history a third
 * of its run (most of it in the collector).
 */
const SUFFIX_GCD: readonly number[] = (() => {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const out = new Array<number>(NICE.length);
  for (let i = NICE.length - 1, d = 0; i >= 0; i--) out[i] = d = gcd(NICE[i]!, d);
  return out;
})();

/** The greatest common divisor of the nice lengths at or above `floorUs`: every possible choice is a multiple of it. */
function commonDivisorFrom(floorUs: number): number {
  const i = NICE.findIndex((g) => g >= floorUs);
  return i < 0 ? 1 : SUFFIX_GCD[i]!;
}

const MAX_FINE_BUCKETS = 480;
/**
 * Most buckets a fixed granularity may write in one run (with --follow: hold at once), so that a
 * tiny --granularity cannot run for minutes and fill memory (man/hp-history.1).
 */
export const MAX_BUCKETS = 100_000;

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
  private lastDetailed = false;
  /** Closed buckets waiting for an RSS sample after their end (or for the look-ahead to pass). */
  private pending: BucketRecord[] = [];
  /** Index of the first unresolved record in `pending` (a queue without O(n) shifts). */
  private pendingHead = 0
  /** Automatic mode: resolved fine buckets, thinned as the profile grows. */
  private fine: BucketRecord[] = [];
  /** Per process: its last RSS sample, when it started and when it ended (Infinity until its END). */
  private readonly lastRss: Array<number | null>;
  private readonly lastRssUs: Array<number | null>;
  private readonly startUs: number[];
  private readonly endUs: number[];
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
    this.startUs = opts.processStartsUs ? [...opts.processStartsUs] : [0];
    this.lastRss = this.startUs.map(() => null);
    this.lastRssUs = this.startUs.map(() => null);
    this.endUs = this.startUs.map(() => Infinity);
  }

  /** The time of the last event consumed, µs since start (the profile's span once finished). */
  get lastEventUs(): number {
    return this.lastUs;
  }

  /** Whether any trace seen so far has a frame on followed line `i` (for "never occurs" warnings). */
  followedSeen(i: number): boolean {
    return this.slotFollow.some((f) => f !== undefined && f.includes(i));
  }

  /**
   * Continue from a restored state (a seek-index checkpoint) at `us`, the time of the last
   * event before it: bucket ends before `us` are not produced (callers only seek to a point
   * before their --from, so none of them would be reported), the next one is the first at
   * or after `us`. `rss` is the last RSS sample before the checkpoint, if any.
   */
  seek(us: number, rss: { bytes: number; us: number } | null = null): void {
    this.curUs = us;
    this.lastUs = us;
    if (rss) {
      this.lastRss[0] = rss.bytes;
      this.lastRssUs[0] = rss.us;
    }
    const g = this.granularityUs;
    this.nextEndUs = Math.max(g, Math.ceil(us / g) * g);
    this.dirty = true;
  }

  /** RSS samples later than a bucket end by more than this are not waited for. */
  private get lookAheadUs(): number {
    return rssLookAheadUs(this.granularityUs);
  }

  /** True once every bucket up to `toUs` has been closed: the caller can stop reading. */
  get done(): boolean {
    return this.curUs > this.toUs + this.lookAheadUs;
  }

  consume(batch: EventBatch): void {
    const { op, timeUs, size } = batch;
    const n = batch.length;
    const heap = this.heap;
    let i = 0;
    while (i < n) {
      // Runs of ALLOC/FREE events inside the current bucket go to the heap in one call.
      const o = op[i]!;
      if (o <= OP_FREE) {
        const t = timeUs[i]!;
        if (t > this.nextEndUs) {
          this.curUs = t;
          this.passTime(t);
        }
        // passTime leaves nextEndUs at or after t, so the run takes at least this event.
        i = heap.applyRun(batch, i, n, this.nextEndUs);
        // Times may step back (heapprof 1.0.x wall clocks): the clock only moves forward.
        if (heap.lastRunUs > this.curUs) this.curUs = heap.lastRunUs;
        this.dirty = true;
        continue;
      }
      let t = timeUs[i]!;
      if (t < this.curUs) t = this.curUs;
      this.curUs = t;
      if (t > this.nextEndUs) this.passTime(t);
      if (o === OP_RSS) this.rssSample(t, size[i]!, this.processOf(batch.trace[i]!));
      else if (o === OP_END && this.opts.processStartsUs) this.processEnd(t, this.processOf(batch.trace[i]!));
      i++;
    }
    if (n > 0) this.lastUs = this.curUs;
  }

  /**
   * Close every bucket ending before `t`, and settle pending RSS look-ups `t` has passed.
   * A jump in time (a damaged or hostile profile can put an event at 2^53 µs) must not cost
   * one step per bucket: buckets that will not be reported (before --from) are skipped, an
   * automatic granularity coarsens before closing more than a few hundred, and a fixed one
   * refuses a span of more than MAX_BUCKETS buckets.
   */
  private passTime(t: number): void {
    if (Number.isFinite(this.nextEndUs)) {
      let g = this.granularityUs;
      if (this.nextEndUs < this.fromUs) {
        // Bucket ends before --from are dropped when resolved: close only the last of them.
        const skipTo = Math.min(Math.floor(t / g) * g, Math.ceil(this.fromUs / g) * g) - g;
        if (skipTo > this.nextEndUs) this.nextEndUs = skipTo;
      }
      const until = Math.min(t, this.toUs);
      if (this.auto) {
        while (!this.finished && (until - this.nextEndUs) / g > 2 * MAX_FINE_BUCKETS && this.levelIndex < this.levels.length - 1) {
          this.coarsen();
          g = this.granularityUs;
        }
      } else {
        // Buckets this step would write, on top of those already written (or, following a
        // profile being recorded, those not yet handed over): bounded time and memory.
        const more = Math.ceil((until - Math.max(this.nextEndUs, this.fromUs)) / g);
        const held = this.opts.follow ? this.pending.length - this.pendingHead + this.ready.length : this.written;
        if (more > 0 && held + more > MAX_BUCKETS) {
          throw new UsageError(
            `--granularity ${g / 1e6}: more than ${MAX_BUCKETS} buckets (events reach ${until / 1e6} s): use --granularity ${autoGranularityUs(until - this.fromUs, MAX_BUCKETS, 1) / 1e6} or more, or narrow with --from/--to`,
          );
        }
      }
    }
    while (t > this.nextEndUs && this.nextEndUs <= this.toUs) {
      this.closeBucket(this.nextEndUs);
      this.nextEndUs += this.granularityUs;
    }
    if (this.nextEndUs > this.toUs) this.nextEndUs = Infinity;
    while (this.hasPending() && t > this.pending[this.pendingHead]!.tUs + this.lookAheadUs) this.resolve(this.nextPending());
    this.resolveSettled();
  }

  /** Resolve the pending records, in order, that wait for no process's next sample. */
  private resolveSettled(): void {
    while (this.hasPending() && this.pending[this.pendingHead]!.rssParts!.waiting === 0) this.resolve(this.nextPending());
  }

  /** The process an RSS or END event belongs to (its index in processStartsUs). */
  private processOf(tag: number): number {
    if (!this.opts.processStartsUs) return 0;
    const p = tag - 1;
    if (!(p >= 0 && p < this.startUs.length)) throw new Error(`RSS event of unknown process ${tag}`);
    return p;
  }

  private hasPending(): boolean {
    return this.pendingHead < this.pending.length;
  }

  private nextPending(): BucketRecord {
    const rec = this.pending[this.pendingHead++]!;
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    } else if (this.pendingHead > 4096) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    return rec;
  }

  /**
   * Process p's sample at t. The first sample after a bucket end settles p's part of it: any
   * later one is farther away. The records waiting for p are the latest pending ones (each
   * sample settles all of them), so the walk goes back from the newest and stops at the first
   * that is not.
   */
  private rssSample(t: number, bytes: number, p: number): void {
    for (let k = this.pending.length - 1; k >= this.pendingHead; k--) {
      const rec = this.pending[k]!;
      const part = rec.rssParts!.parts[p];
      if (!part?.waiting) break;
      if (part.us === null || t - rec.tUs < rec.tUs - part.us) {
        part.bytes = bytes;
        part.us = t;
      }
      part.waiting = false;
      rec.rssParts!.waiting--;
    }
    this.lastRss[p] = bytes;
    this.lastRssUs[p] = t;
    this.resolveSettled();
  }

  /** Process p ended at t: no sample of it will come, its last one stands for the records waiting. */
  private processEnd(t: number, p: number): void {
    if (this.endUs[p] !== Infinity) return;
    this.endUs[p] = t;
    for (let k = this.pending.length - 1; k >= this.pendingHead; k--) {
      const parts = this.pending[k]!.rssParts!;
      const part = parts.parts[p];
      if (!part?.waiting) break;
      part.waiting = false;
      parts.waiting--;
    }
    this.resolveSettled();
  }

  /** Each started process's part of the RSS of a bucket ending at t, as known at its close. */
  private rssPartsAt(t: number): NonNullable<BucketRecord['rssParts']> {
    const parts: Array<RssPart | undefined> = new Array(this.startUs.length);
    let waiting = 0;
    for (let p = 0; p < this.startUs.length; p++) {
      if (this.startUs[p]! > t) continue;
      const ended = this.endUs[p]! <= t;
      parts[p] = { bytes: this.lastRss[p]!, us: this.lastRssUs[p]!, waiting: !ended, endUs: this.endUs[p]! };
      if (!ended) waiting++;
    }
    return { parts, waiting };
  }

  /**
   * A record's RSS, once its bucket length `g` is final: the sum of the parts of the processes
   * alive during the bucket (a process that ended before it began holds no memory), rss_t the
   * latest of their samples; null when none of them has a sample. One process: its nearest sample.
   * A bucket between processes (every one started so far ended before it began) is known: 0,
   * at the last end, as the RSS a merged hp-events stream states there.
   */
  private settleRss(rec: BucketRecord, g: number): BucketRecord {
    const parts = rec.rssParts;
    if (!parts) return rec;
    let bytes: number | null = null;
    let us: number | null = null;
    let alive = 0;
    let lastEnd: number | null = null;
    for (const part of parts.parts) {
      if (!part) continue;
      if (part.endUs < rec.tUs - g) {
        lastEnd = lastEnd === null ? part.endUs : Math.max(lastEnd, part.endUs);
        continue;
      }
      alive++;
      if (part.bytes === null) continue;
      bytes = (bytes ?? 0) + part.bytes;
      us = us === null ? part.us : Math.max(us, part.us!);
    }
    if (alive === 0 && lastEnd !== null) {
      bytes = 0;
      us = lastEnd;
    }
    rec.rss = bytes;
    rec.rssUs = us;
    rec.rssParts = undefined;
    return rec;
  }

  /**
   * In automatic mode the final length g gives at most maxBuckets buckets over the span, so
   * g >= span / maxBuckets, and any bucket end e satisfies e < span + g: e / (2 maxBuckets) < g.
   * A bucket end that is not a multiple of every nice length at or above that floor can
   * therefore never be reported: it gets the totals only, not the per-site work.
   */
  private needsDetail(endUs: number): boolean {
    if (!this.auto || this.fromUs > 0) return true;
    const floor = endUs / (2 * (this.opts.maxBuckets ?? AUTO_MAX_BUCKETS));
    if (floor !== this.detailFloor) {
      this.detailFloor = floor;
      this.detailDivisor = commonDivisorFrom(floor);
    }
    return endUs % this.detailDivisor === 0;
  }
  private detailFloor = -1;
  /** Buckets closed within the window so far (MAX_BUCKETS). */
  private written = 0;
  private detailDivisor = 1;

  private closeBucket(endUs: number): void {
    let rec: BucketRecord;
    const detail = this.needsDetail(endUs);
    if (!this.dirty && this.lastRecord && (this.lastDetailed || !detail)) {
      rec = { ...this.lastRecord, tUs: endUs };
    } else {
      rec = detail ? this.measure(endUs) : { tUs: endUs, total: this.heap.total(), top: [], followed: this.opts.sites.map(() => emptyEstimate()), rss: null, rssUs: null };
      this.lastDetailed = detail;
      this.dirty = false;
    }
    rec.rss = null;
    rec.rssUs = null;
    rec.rssParts = this.rssPartsAt(endUs);
    if (this.opts.domains && !rec.domains) rec.domains = this.domainTotals();
    this.lastRecord = rec;
    if (endUs >= this.fromUs) this.written++;
    this.pending.push(rec);
  }

  private resolve(rec: BucketRecord): void {
    if (rec.tUs < this.fromUs) return;
    if (!this.auto) {
      this.ready.push(this.settleRss(rec, this.granularityUs));
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
    this.pending = this.pending.slice(this.pendingHead).filter((r) => r.tUs % g === 0);
    this.pendingHead = 0;
    if (Number.isFinite(this.nextEndUs)) this.nextEndUs = Math.ceil(this.nextEndUs / g) * g;
  }

  /**
   * The group of a slot. Grouping by trace (the default), the group is the slot itself and its
   * SiteInfo is made only when it is reported (siteOfGroup): a million traces must not cost a
   * million labels. Other groupings intern one SiteInfo per distinct site.
   */
  private groupOfSlot(slot: number): number {
    const byTrace = this.opts.groupBy === 'trace';
    if (byTrace && this.opts.sites.length === 0) return slot;
    if (slot >= this.slotGroup.length) {
      const a = new Int32Array(Math.max(slot + 1, this.slotGroup.length * 2)).fill(-1);
      a.set(this.slotGroup);
      this.slotGroup = a;
    }
    let g = this.slotGroup[slot]!;
    if (g >= 0) return g;
    const traceId = this.heap.traceOfSlot[slot]!;
    const tr = traceOrPlaceholder(this.lookup, traceId);
    if (byTrace) g = slot;
    else {
      const site = siteOf(tr, this.opts.groupBy);
      g = this.groupIndex.get(site.key) ?? -1;
      if (g < 0) {
        g = this.groups.length;
        this.groups.push(site);
        this.groupIndex.set(site.key, g);
      }
    }
    this.slotGroup[slot] = g;
    if (this.opts.sites.length > 0) this.slotFollow[slot] = traceMatches(tr, this.opts.sites);
    return g;
  }

  /** Recently used trace-group sites (bounded: cleared when it grows past 4096). */
  private readonly siteCache = new Map<number, SiteInfo>();

  private siteOfGroup(g: number): SiteInfo {
    if (this.opts.groupBy !== 'trace') return this.groups[g]!;
    let s = this.siteCache.get(g);
    if (!s) {
      if (this.siteCache.size >= 4096) this.siteCache.clear();
      s = siteOf(traceOrPlaceholder(this.lookup, this.heap.traceOfSlot[g]!), 'trace');
      this.siteCache.set(g, s);
    }
    return s;
  }

  // ---- per-domain totals (native recording): a domain code per slot, cached like the groups.
  private slotDomain = new Int8Array(0);

  /**
   * The total of each domain name, in DOMAINS order, as hp-snapshot --domain gives it
   * (domainIncludes: native is all C code, mmap included) and by the same function.
   */
  private domainTotals(): Estimate[] {
    const heap = this.heap;
    if (this.slotDomain.length < heap.slots) {
      const a = new Int8Array(Math.max(heap.slots, this.slotDomain.length * 2)).fill(-1);
      a.set(this.slotDomain);
      this.slotDomain = a;
    }
    const domainOf = (slot: number): Domain => {
      let d = this.slotDomain[slot]!;
      if (d < 0) {
        d = DOMAINS.indexOf(traceDomain(traceOrPlaceholder(this.lookup, heap.traceOfSlot[slot]!)));
        this.slotDomain[slot] = d;
      }
      return DOMAINS[d]!;
    };
    return DOMAINS.map((name) => heap.totalWhere((slot) => domainIncludes(name, domainOf(slot))));
  }

  // Per-group sums for one measurement, reused (only groups touched are reset).
  private gBytes = new Float64Array(64);
  private gBytesVar = new Float64Array(64);
  private gCount = new Float64Array(64);
  private gCountVar = new Float64Array(64);
  private gSampled = new Float64Array(64);
  private gTouched = new Uint8Array(64);

  /**
   * Room for `n` groups. Grouping by line, function or file, a slot met for the first time in the
   * middle of a measurement can add a group, so the arrays grow during one: what they hold (the
   * sums and touched flags gathered so far) is carried over.
   */
  private ensureGroups(n: number): void {
    if (n <= this.gBytes.length) return;
    let m = this.gBytes.length;
    while (m < n) m *= 2;
    const grow = <A extends Float64Array | Uint8Array>(old: A, make: (m: number) => A): A => {
      const a = make(m);
      a.set(old);
      return a;
    };
    this.gBytes = grow(this.gBytes, (k) => new Float64Array(k));
    this.gBytesVar = grow(this.gBytesVar, (k) => new Float64Array(k));
    this.gCount = grow(this.gCount, (k) => new Float64Array(k));
    this.gCountVar = grow(this.gCountVar, (k) => new Float64Array(k));
    this.gSampled = grow(this.gSampled, (k) => new Float64Array(k));
    this.gTouched = grow(this.gTouched, (k) => new Uint8Array(k));
  }

  /** The heap's state now, as a bucket ending at `endUs`. O(traces), no allocation per trace. */
  private measure(endUs: number): BucketRecord {
    const heap = this.heap;
    const followed = this.opts.sites.map(() => emptyEstimate());
    const wantTop = this.opts.top > 0;
    const touched: number[] = [];
    if (wantTop || this.opts.sites.length > 0) {
      for (let slot = 0; slot < heap.slots; slot++) {
        if (heap.sampled[slot]! <= 0) continue;
        const g = this.groupOfSlot(slot);
        if (wantTop) {
          this.ensureGroups(g + 1);
          if (this.gTouched[g] === 0) {
            this.gTouched[g] = 1;
            touched.push(g);
            this.gBytes[g] = 0;
            this.gBytesVar[g] = 0;
            this.gCount[g] = 0;
            this.gCountVar[g] = 0;
            this.gSampled[g] = 0;
          }
          this.gBytes[g]! += heap.bytes[slot]!;
          this.gBytesVar[g]! += heap.bytesVar[slot]!;
          this.gCount[g]! += heap.count[slot]!;
          this.gCountVar[g]! += heap.countVar[slot]!;
          this.gSampled[g]! += heap.sampled[slot]!;
        }
        const follow = this.slotFollow[slot];
        if (follow) for (const i of follow) addEstimate(followed[i]!, heap.estimateOfSlot(slot));
      }
    }
    const top = wantTop ? this.topGroups(touched) : [];
    for (const g of touched) this.gTouched[g] = 0;
    return { tUs: endUs, total: heap.total(), top, followed, rss: null, rssUs: null };
  }

  /** The N largest touched groups, largest first (ties by label): a bounded insertion, no full sort. */
  private topGroups(touched: number[]): SiteEstimate[] {
    const n = this.opts.top;
    const best: number[] = [];
    const before = (a: number, b: number): boolean => {
      const d = this.gBytes[a]! - this.gBytes[b]!;
      if (d !== 0) return d > 0;
      return this.siteOfGroup(a).label < this.siteOfGroup(b).label;
    };
    for (const g of touched) {
      if (!(this.gBytes[g]! > 0)) continue;
      if (best.length === n && !before(g, best[n - 1]!)) continue;
      let i = best.length < n ? best.length : n - 1;
      if (best.length < n) best.push(g);
      while (i > 0 && before(g, best[i - 1]!)) {
        best[i] = best[i - 1]!;
        i--;
      }
      best[i] = g;
    }
    return best.map((g) => ({
      site: this.siteOfGroup(g),
      est: { bytes: this.gBytes[g]!, bytesVar: Math.max(0, this.gBytesVar[g]!), count: this.gCount[g]!, countVar: Math.max(0, this.gCountVar[g]!), sampled: this.gSampled[g]! },
      traces: 0,
    }));
  }

  /**
   * Close the remaining buckets, through the one containing the last event, or `untilUs` if
   * later (--by pid: every process's series runs to the end of the latest one).
   */
  finish(untilUs = 0): void {
    if (this.finished) return;
    this.finished = true;
    const endUs = Math.min(Math.max(this.lastUs, untilUs), this.toUs);
    if (this.auto) {
      // The final length: the finest nice one, a multiple of the fine one, within maxBuckets.
      const best = autoGranularityUs(endUs - this.fromUs, this.opts.maxBuckets ?? AUTO_MAX_BUCKETS, this.granularityUs);
      const lastEnd = Math.max(best, Math.ceil(endUs / best) * best);
      while (this.nextEndUs <= lastEnd && this.nextEndUs <= this.toUs) {
        this.closeBucket(this.nextEndUs);
        this.nextEndUs += this.granularityUs;
      }
      while (this.hasPending()) this.resolve(this.nextPending());
      this.ready.push(...this.fine.filter((r) => r.tUs % best === 0 && r.tUs <= lastEnd).map((r) => this.settleRss(r, best)));
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
    while (this.hasPending()) this.resolve(this.nextPending());
  }
}
