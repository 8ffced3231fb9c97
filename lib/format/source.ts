// The one interface every analysis reads from, whatever produced the data: an hpx v2
// profile, a heapprof 1.0.x profile, or an events NDJSON stream. Events come in columnar
// batches so that reading a gigabyte log never allocates an object per event.

import type { Frame, Header, HistogramBucket, Mark, ReadIssue, Trace } from './types.js';

export const OP_ALLOC = 0;
export const OP_FREE = 1;
export const OP_RSS = 2;
export const OP_END = 3;
export const OP_LOST = 4;
export const OP_NAMES = ['alloc', 'free', 'rss', 'end', 'lost'] as const;

/**
 * A run of consecutive events. The arrays may be longer than `length` and may be reused by
 * the source for the next batch: copy what you keep.
 */
export interface EventBatch {
  length: number;
  /** OP_* codes. */
  op: Uint8Array;
  /** Microseconds since the start of recording. */
  timeUs: Float64Array;
  /** Trace id for alloc/free, 0 otherwise. */
  trace: Uint32Array;
  /** Bytes for alloc/free, RSS bytes for rss, lost count for lost. */
  size: Float64Array;
}

export interface ReadOptions {
  /** Turn every recoverable problem (corrupt block, undefined trace, truncation) into an error. */
  strict?: boolean;
  /** Receives recoverable problems as they are found (each reported once). */
  onIssue?: (issue: ReadIssue) => void;
  /**
   * Receives facts about how the profile was recorded that every total depends on, said once:
   * not problems (--strict does not refuse them), e.g. sizes the recording left out (p = 0).
   */
  onNotice?: (notice: ReadIssue) => void;
  /** Only events at or after this time (µs since start); a seekable source skips blocks before it. */
  fromUs?: number;
  /** Only events before this time (µs since start). */
  toUs?: number;
  /**
   * Start decoding at this .hpd byte offset, which must be the start of a block (taken from an
   * index); events before it are not read. hpx v2 only; other sources ignore it.
   */
  startOffset?: number;
  /**
   * false: never decode on a worker thread (the caller reads only a little, e.g. one checkpoint
   * interval through the seek index, so starting a thread would cost more than it saves).
   */
  worker?: boolean;
  /** Keep reading as the recorder appends, until its END marker (live profiles). */
  follow?: boolean;
  /** Called with bytes read so far and total (for progress on a terminal). */
  onProgress?: (bytesRead: number, totalBytes: number) => void;
  /**
   * heapprof 1.0.x weights (man/hpx.5): 'auto' (default) detects from the events whether every
   * allocation was recorded and then weighs each 1; 'recorded' always weighs 1; 'stored' uses
   * the file's sampling table.
   */
  v1Weights?: V1Weights;
}

export type V1Weights = 'auto' | 'recorded' | 'stored';
export const V1_WEIGHTS: readonly V1Weights[] = ['auto', 'recorded', 'stored'];

export interface ProfileSource {
  /** What to call this source in messages (a path, or "stdin"). */
  readonly name: string;
  readonly header: Header;
  /** Trace by id; NO_STACK_TRACE for 0; undefined if never defined (yet). */
  trace(id: number): Trace | undefined;
  /** Every trace defined so far, in id order. */
  traces(): Iterable<Trace>;
  /**
   * Optional, for readers that key frames by number instead of by text (hp-report): a trace's
   * frames as indexes into frameAt (innermost first; the same index for the same frame record
   * in every trace, and in every opening of the same file), or undefined where the trace is
   * not held that way (then use trace()). The array may be a view: read it before the next call.
   */
  traceFrameIndexes?(id: number): { dropped: number; frames: ArrayLike<number> } | undefined;
  /** The frame at an index traceFrameIndexes gave. */
  frameAt?(index: number): Frame;
  /** Marks defined so far, in time order (hpx v2 profiles; other sources have none). */
  marks?(): Mark[];
  /** The recorder's last size histogram, if it wrote one. */
  readonly histogram: HistogramBucket[] | null;
  /** Events in time order. Call at most once. Traces used by a batch are defined before it is yielded. */
  batches(): AsyncIterable<EventBatch>;
  /** After batches() is exhausted: true when the recorder's END marker was seen. */
  readonly complete: boolean;
  /** True when the metadata file ends in a cut block (hpx v2 .hpm): then `complete` is false too. */
  readonly metadataTruncated?: boolean;
  /** Several profiles read as one: each of them, for what is said about one profile (its end, its recorder). */
  readonly parts?: readonly ProfileSource[];
  /**
   * Events NDJSON cut to a time window by the writer (hp-events --from/--to): its bounds in µs
   * (null: open on that side). A stream cut at `toUs` has no END marker (hp-events leaves out
   * one the decoder passes through the window), and one starting at `fromUs` frees blocks
   * allocated before it.
   */
  readonly window?: { fromUs: number | null; toUs: number | null };
  close(): Promise<void>;
}
