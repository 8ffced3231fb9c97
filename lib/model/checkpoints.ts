// The live-heap half of the seek index (lib/format/index.ts holds the records and the .hpi
// bytes): building an index is one read of the .hpd through a LiveHeap, taking a checkpoint of
// its columns every so many bytes; reading through it restores the checkpoint before T into an
// empty LiveHeap and replays at most one checkpoint interval (a snapshot at T, the peak, or a
// history from T). Results are identical to a full decode.

import { BlockFile, problemText, type BlockProblem } from '../format/block-file.js';
import { crc32 } from '../format/bytes.js';
import { decodeBlock } from '../format/events.js';
import { readFileHeader } from '../format/hpx.js';
import { BLOCK_HEADER_SIZE, HPD_MAGIC } from '../format/hpx-writer.js';
import {
  checkpointBefore,
  defaultMinBytes,
  DEFAULT_CHECKPOINT_BYTES,
  IndexedSource,
  issueForwarder,
  loadIndexWith,
  v2Header,
  type BuildOptions,
  type Checkpoint,
  type IndexBuilder,
  type IndexOptions,
  type LoadedIndex,
  type SeekIndex,
  type Tail,
} from '../format/index.js';
import { openProfile } from '../format/profile.js';
import { OP_ALLOC, OP_FREE, OP_RSS, type EventBatch, type ProfileSource, type ReadOptions } from '../format/source.js';
import type { Header, ReadIssue, Sampling } from '../format/types.js';
import { LiveHeap } from './live.js';
import { liveHeapAt, PeakTracker, type LiveSnapshot, type SnapshotAt } from './snapshot.js';
import { exactSampling, HALF_B, HalfSplit, halfSampling, splitSeed } from './split.js';

/**
 * A CRC of what LiveHeap computes for a fixed little sequence under this sampler: if the model's
 * arithmetic ever changes, old checkpoints no longer match it and the index is rebuilt.
 */
function modelFingerprint(sampling: Sampling): number {
  const h = new LiveHeap(sampling);
  const sizes = [1, 40, 127, 128, 500, 8191, 8192, 100000, 3e9];
  sizes.forEach((s, i) => h.apply(OP_ALLOC, 1 + (i % 3), s));
  h.apply(OP_FREE, 2, 40);
  h.apply(OP_FREE, 1, 8191);
  // Trace 3 back to nothing live through frees of sizes it mostly did not have: what the total loses then.
  for (let k = 0; k < 3; k++) h.apply(OP_FREE, 3, 127);
  const cols = new Float64Array(6 * h.slots + 5);
  for (let s = 0; s < h.slots; s++) {
    cols[6 * s] = h.traceOfSlot[s]!;
    cols[6 * s + 1] = h.bytes[s]!;
    cols[6 * s + 2] = h.bytesVar[s]!;
    cols[6 * s + 3] = h.count[s]!;
    cols[6 * s + 4] = h.countVar[s]!;
    cols[6 * s + 5] = h.sampled[s]!;
  }
  cols.set([h.totalBytes, h.totalBytesVar, h.totalCount, h.totalCountVar, h.totalSampled], 6 * h.slots);
  let crc = crc32(new Uint8Array(cols.buffer));
  if (!exactSampling(sampling)) {
    // And how the draws split for the peak (lib/model/split.ts): 64 events through it.
    const split = new HalfSplit(sampling);
    const halves = new Float64Array(65);
    for (let i = 0; i < 64; i++) halves[i] = split.event(i % 5 === 4 ? OP_FREE : OP_ALLOC, i % 3, sizes[i % sizes.length]!);
    halves[64] = split.totalA;
    crc = crc32(new Uint8Array(halves.buffer), crc);
  }
  return crc;
}

function takeCheckpoint(heap: LiveHeap, offset: number, maxBeforeUs: number, curUs: number, lastUs: number, lastRss: number, lastRssUs: number): Checkpoint {
  const n = heap.slots;
  return {
    offset,
    maxBeforeUs,
    curUs,
    lastUs,
    lastRss,
    lastRssUs,
    slots: n,
    traceOfSlot: heap.traceOfSlot.slice(0, n),
    bytes: heap.bytes.slice(0, n),
    bytesVar: heap.bytesVar.slice(0, n),
    count: heap.count.slice(0, n),
    countVar: heap.countVar.slice(0, n),
    sampled: heap.sampled.slice(0, n),
    totals: Float64Array.of(heap.totalBytes, heap.totalBytesVar, heap.totalCount, heap.totalCountVar, heap.totalSampled),
  };
}

/** Put a checkpoint's state into an empty LiveHeap (same slots in the same order, same values). */
export function restoreCheckpoint(heap: LiveHeap, cp: Checkpoint): void {
  if (heap.slots !== 0) throw new Error('restoreCheckpoint needs an empty LiveHeap');
  for (let s = 0; s < cp.slots; s++) heap.slotOf(cp.traceOfSlot[s]!);
  heap.bytes.set(cp.bytes);
  heap.bytesVar.set(cp.bytesVar);
  heap.count.set(cp.count);
  heap.countVar.set(cp.countVar);
  heap.sampled.set(cp.sampled);
  heap.totalBytes = cp.totals[0]!;
  heap.totalBytesVar = cp.totals[1]!;
  heap.totalCount = cp.totals[2]!;
  heap.totalCountVar = cp.totals[3]!;
  heap.totalSampled = cp.totals[4]!;
}

/**
 * Read the whole .hpd once, the way V2Profile does (same blocks skipped, stops after END), and
 * record blocks, checkpoints and the peak. Memory: one LiveHeap plus the checkpoints.
 */
export async function buildIndex(base: string, header: Header, opts: BuildOptions = {}, resume: SeekIndex | null = null): Promise<SeekIndex> {
  const hpdPath = `${base}.hpd`;
  const f = await BlockFile.open(hpdPath);
  try {
    const fh = await readFileHeader(f, HPD_MAGIC);
    const heap = new LiveHeap(header.sampling);
    // A sampled profile's peak: chosen on half A of its draws, kept as half B's heap there
    // (lib/model/split.ts), exactly as liveHeapAt finds it.
    const sampled = !exactSampling(header.sampling);
    let split: HalfSplit | null = null;
    let heapB: LiveHeap | null = null;
    let tracker: PeakTracker | null = null;
    // A checkpoint costs ~44 bytes per trace: by default space them so the index stays small
    // next to the .hpd (at most about 1/32 of it).
    const issues: ReadIssue[] = [];
    const issue = (offset: number, message: string): void => {
      issues.push({ file: hpdPath, message: `byte ${offset}: ${message}`, offset });
    };
    const offsets: number[] = [];
    const times: number[] = [];
    const maxes: number[] = [];
    const checkpoints: Checkpoint[] = [];
    let batch: EventBatch = { length: 0, op: new Uint8Array(1 << 14), timeUs: new Float64Array(1 << 14), trace: new Uint32Array(1 << 14), size: new Float64Array(1 << 14) };
    let curUs = 0;
    let lastUs = 0;
    let maxUs = 0;
    let prevRaw = -Infinity;
    let lastRss = -1;
    let lastRssUs = 0;
    let monotone = true;
    let peakBytes = 0;
    let peakUs = 0;
    let events = 0;
    let complete = false;
    let sinceCheckpoint = 0;
    let truncatedAt: number | null = null;
    let start = fh.end;
    let firstIndex = 0;
    const tail = resume?.tail;
    if (resume && tail && (!sampled || (tail.half && resume.peakHalf))) {
      // Continue where the last build stopped: its state, and what it found before that point.
      const cp = tail.checkpoint;
      restoreCheckpoint(heap, cp);
      if (sampled) {
        split = new HalfSplit(header.sampling, splitSeed(header), tail.half!.split);
        heapB = new LiveHeap(halfSampling(header.sampling));
        restoreCheckpoint(heapB, tail.half!.heap);
        tracker = new PeakTracker(heapB);
        const peak = new LiveHeap(heapB.sampling);
        restoreCheckpoint(peak, resume.peakHalf!);
        tracker.resume(peak, resume.peakUs, resume.peakBytes);
      }
      for (let b = 0; b < resume.blockOffset.length; b++) {
        offsets.push(resume.blockOffset[b]!);
        times.push(resume.blockTimeUs[b]!);
        maxes.push(resume.blockMaxUs[b]!);
      }
      checkpoints.push(...resume.checkpoints);
      issues.push(...resume.issues.filter((i) => i.offset !== undefined && i.offset < cp.offset));
      ({ curUs, lastUs, lastRss, lastRssUs } = cp);
      maxUs = cp.maxBeforeUs;
      prevRaw = tail.prevRawUs;
      monotone = resume.monotone;
      peakBytes = resume.peakBytes;
      peakUs = resume.peakUs;
      events = resume.events;
      sinceCheckpoint = tail.sinceCheckpoint;
      start = cp.offset;
      firstIndex = tail.nextBlockIndex;
    } else if (sampled) {
      split = new HalfSplit(header.sampling, splitSeed(header));
      heapB = new LiveHeap(halfSampling(header.sampling));
      tracker = new PeakTracker(heapB);
    }
    let endOfRead = start;
    let nextBlockIndex = firstIndex;
    const onProblem = (p: BlockProblem): void => {
      if (p.kind === 'truncated') truncatedAt = p.offset;
      else issue(p.offset, problemText(p));
    };
    for await (const raw of f.blocks(start, onProblem)) {
      const block = firstIndex === 0 ? raw : { ...raw, index: raw.index + firstIndex };
      endOfRead = block.offset + BLOCK_HEADER_SIZE + block.payload.length;
      nextBlockIndex = block.index + 1;
      const interval = opts.checkpointBytes ?? Math.max(DEFAULT_CHECKPOINT_BYTES, 32 * 44 * heap.slots);
      if (sinceCheckpoint >= interval) {
        checkpoints.push(takeCheckpoint(heap, block.offset, maxUs, curUs, lastUs, lastRss, lastRssUs));
        sinceCheckpoint = 0;
      }
      sinceCheckpoint += BLOCK_HEADER_SIZE + block.payload.length;
      const d = decodeBlock(
        block,
        (count) => {
          if (count > batch.op.length) {
            const n = Math.max(count, batch.op.length * 2);
            batch = { length: 0, op: new Uint8Array(n), timeUs: new Float64Array(n), trace: new Uint32Array(n), size: new Float64Array(n) };
          }
          return batch;
        },
        -Infinity,
        Infinity,
      );
      if (!d.ok) {
        issue(d.offset, d.message);
        continue;
      }
      const sawEnd = d.sawEnd;
      // liveHeapAt's loop, step for step (clock clamp, moments for the peak).
      const { op, timeUs, trace, size } = batch;
      const n = batch.length;
      let blockMax = block.timeUs;
      // The split of the whole block first (the addon's loop where built), then its results per event.
      let totalA = split ? split.splitBatch(batch) : 0;
      for (let i = 0; i < n; i++) {
        const raw = timeUs[i]!;
        if (raw < prevRaw) monotone = false;
        prevRaw = raw;
        if (raw > maxUs) maxUs = raw;
        if (raw > blockMax) blockMax = raw;
        const t = raw < curUs ? curUs : raw;
        lastUs = t;
        const o = op[i]!;
        if (o !== OP_ALLOC && o !== OP_FREE) {
          if (o === OP_RSS) {
            lastRss = size[i]!;
            lastRssUs = t;
          }
          continue;
        }
        if (t !== curUs) {
          if (tracker) tracker.moment(curUs, totalA);
          else if (heap.totalBytes > peakBytes) {
            peakBytes = heap.totalBytes;
            peakUs = curUs;
          }
          curUs = t;
        }
        heap.apply(o, trace[i]!, size[i]!);
        if (split) {
          if (split.halves[i]! & HALF_B) {
            tracker!.beforeChange(heapB!.slotOf(trace[i]!));
            heapB!.apply(o, trace[i]!, size[i]!);
          }
          totalA = split.totals[i]!;
        }
      }
      events += n;
      opts.onProgress?.(block.offset + BLOCK_HEADER_SIZE + block.payload.length, f.size);
      offsets.push(block.offset);
      times.push(block.timeUs);
      maxes.push(blockMax);
      if (sawEnd) {
        complete = true;
        break;
      }
    }
    let peakHalf: Checkpoint | null = null;
    let half: Tail['half'] = null;
    if (tracker) {
      tracker.moment(curUs, split!.totalA);
      ({ peakUs, peakBytes } = tracker);
      // B's heap now (to continue from) before the tracker gives up its peak state.
      if (!complete) half = { split: split!.state(), heap: takeCheckpoint(heapB!, endOfRead, maxUs, curUs, lastUs, lastRss, lastRssUs) };
      peakHalf = takeCheckpoint(tracker.result(), endOfRead, maxUs, peakUs, lastUs, lastRss, lastRssUs);
    } else if (heap.totalBytes > peakBytes) {
      peakBytes = heap.totalBytes;
      peakUs = curUs;
    }
    if (truncatedAt !== null && !complete) {
      issue(truncatedAt, 'truncated last block (recorder still running or crashed); read everything before it');
    }
    // Problems after the last block read are found again when the profile has grown (a block
    // being written looks truncated or corrupt until it is whole).
    const resumeState: Tail | null = complete
      ? null
      : { checkpoint: takeCheckpoint(heap, endOfRead, maxUs, curUs, lastUs, lastRss, lastRssUs), prevRawUs: prevRaw, sinceCheckpoint, nextBlockIndex, half };
    return {
      tail: resumeState,
      profileId: header.profileId ?? '',
      hpdStart: fh.end,
      blockOffset: Float64Array.from(offsets),
      blockTimeUs: Float64Array.from(times),
      blockMaxUs: Float64Array.from(maxes),
      checkpoints,
      lastUs,
      peakUs,
      peakBytes,
      peakHalf,
      events,
      complete,
      monotone,
      issues,
    };
  } finally {
    await f.close();
  }
}

/** The builder lib/format/index.ts's loader calls: live-heap checkpoints. */
export const liveHeapIndexBuilder: IndexBuilder = { modelCrc: modelFingerprint, build: buildIndex };

/**
 * The index of an hpx v2 profile with its live-heap checkpoints: BASE.hpi when it is valid for
 * the profile as it is now, else built by reading the profile once (and written to BASE.hpi).
 * Null for a profile that cannot be indexed (heapprof 1.0.x).
 */
export function loadIndex(arg: string, header: Header, opts: IndexOptions = {}): Promise<LoadedIndex | null> {
  return loadIndexWith(arg, header, liveHeapIndexBuilder, opts);
}

export interface SeekedProfile {
  /** Open at the checkpoint's block (or at the start): its batches() begin there. */
  source: ProfileSource;
  /** Seed an empty LiveHeap with the state before the first batch. */
  restore(heap: LiveHeap): void;
  /**
   * Feed this batch first (when not null): the last RSS sample before the checkpoint, so that a
   * history's first buckets get the same nearest RSS as a full read.
   */
  prelude: EventBatch | null;
  /** The checkpoint used (null: reading from the start). */
  checkpoint: Checkpoint | null;
  index: SeekIndex;
  indexOrigin: LoadedIndex['origin'];
}

/** A v2 profile's header and its seek index (loaded or built), or null where there is none to use. */
async function headerAndIndex(arg: string, opts: ReadOptions, indexOpts: IndexOptions): Promise<(LoadedIndex & { header: Header }) | null> {
  const header = await v2Header(arg, indexOpts.minBytes ?? defaultMinBytes());
  if (!header) return null;
  const loaded = await loadIndex(arg, header, { ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...indexOpts });
  return loaded ? { header, ...loaded } : null;
}

/**
 * Open a profile positioned for reading everything from time `beforeUs` on: the latest
 * checkpoint whose events all precede `beforeUs`. hp-history --from F uses it with
 * beforeUs = F: restore() its builder's LiveHeap, consume `prelude`, then the batches.
 * Null when the profile is not an indexable hpx v2 file or is smaller than minBytes (callers
 * then read from the start as usual).
 */
export async function openSeeked(arg: string, beforeUs: number, opts: ReadOptions = {}, indexOpts: IndexOptions = {}): Promise<SeekedProfile | null> {
  const loaded = await headerAndIndex(arg, opts, indexOpts);
  if (!loaded) return null;
  const { index } = loaded;
  const cp = checkpointBefore(index, beforeUs);
  const readOpts = issueForwarder(index, opts, cp ? cp.offset : 0);
  const source = await openProfile(arg, cp ? { ...readOpts, startOffset: cp.offset } : readOpts);
  return {
    source,
    restore: (heap) => {
      if (cp) restoreCheckpoint(heap, cp);
    },
    prelude:
      cp && cp.lastRss >= 0
        ? { length: 1, op: Uint8Array.of(OP_RSS), timeUs: Float64Array.of(cp.lastRssUs), trace: Uint32Array.of(0), size: Float64Array.of(cp.lastRss) }
        : null,
    checkpoint: cp,
    index,
    indexOrigin: loaded.origin,
  };
}

export interface IndexedSnapshot {
  snapshot: LiveSnapshot;
  /** Open source (for trace look-ups and `complete`, as after liveHeapAt); the caller closes it. */
  source: ProfileSource;
  /** What `complete` to report: whether the profile has its END marker. */
  complete: boolean;
  indexOrigin: LoadedIndex['origin'];
}

/**
 * liveHeapAt(openProfile(arg), at), through the index: the same heap, atUs, lastUs and
 * readToEnd, decoding at most one checkpoint interval. Null when the profile cannot be
 * indexed (heapprof 1.0.x, not a file, smaller than minBytes) or, for 'peak', when its times
 * are not monotone: callers then use liveHeapAt on an ordinary source.
 */
export async function liveHeapAtIndexed(arg: string, at: SnapshotAt, opts: ReadOptions = {}, indexOpts: IndexOptions = {}): Promise<IndexedSnapshot | null> {
  const loaded = await headerAndIndex(arg, opts, indexOpts);
  if (!loaded) return null;
  const { header, index } = loaded;
  if (at.kind === 'peak' && !index.monotone) return null;
  if (at.kind === 'peak' && index.peakHalf) {
    // A sampled profile's peak is the index's own record of it (half B's heap at A's peak):
    // nothing to replay. The source serves traces; every problem the build met is reported,
    // as by a full read.
    const source = await openProfile(arg, { ...issueForwarder(index, opts, Infinity), worker: false });
    const heap = new LiveHeap(halfSampling(header.sampling));
    restoreCheckpoint(heap, index.peakHalf);
    return {
      snapshot: { heap, atUs: index.peakUs, lastUs: index.lastUs, readToEnd: true },
      source: new IndexedSource(source, index.complete),
      complete: index.complete && !source.metadataTruncated,
      indexOrigin: loaded.origin,
    };
  }
  const T = at.kind === 'time' ? at.us : at.kind === 'peak' ? index.peakUs : Infinity;
  const cp = checkpointBefore(index, T);
  // A full read for the peak reads everything, so it meets every problem; otherwise only those before T.
  const readOpts = issueForwarder(index, opts, at.kind === 'peak' ? Infinity : cp ? cp.offset : 0);
  // At most one checkpoint interval is decoded: not worth a decoding thread.
  const source = await openProfile(arg, { ...readOpts, ...(cp ? { startOffset: cp.offset } : {}), worker: false });
  const heap = new LiveHeap(header.sampling);
  if (cp) restoreCheckpoint(heap, cp);
  let snapshot: LiveSnapshot;
  try {
    // The peak's moment is known from the index: replay up to it like any other time.
    const replayed = await liveHeapAt(source, at.kind === 'peak' ? { kind: 'time', us: T } : at, {
      heap,
      curUs: cp ? cp.curUs : 0,
      lastUs: cp ? cp.lastUs : 0,
    });
    snapshot = at.kind === 'peak' ? { heap, atUs: index.peakUs, lastUs: index.lastUs, readToEnd: true } : replayed;
  } catch (e) {
    await source.close();
    throw e;
  }
  const complete = (at.kind === 'peak' ? index.complete : source.complete) && !source.metadataTruncated;
  return { snapshot, source: new IndexedSource(source, at.kind === 'peak' ? index.complete : null), complete, indexOrigin: loaded.origin };
}
