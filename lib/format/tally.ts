// What a reader counts over every event of a profile besides decoding it: frees of blocks never
// allocated (per trace, more frees than allocations so far) and events the recorder reports
// lost. One pass per batch, in C when the addon is built (native/decoder/kernels.c). Without the
// addon it runs on the decoding thread when there is one (lib/format/hpd-worker.ts), so that the
// thread running the analysis does not spend a fifth of its time here; with it, on the analysis
// thread, which the addon's kernels leave with time to spare.

import { OP_ALLOC, OP_FREE, OP_LOST, type EventBatch } from './source.js';
import { TraceCounts } from './trace-table.js';
import { readerKernels } from '../native.js';

/** The counts so far (what a decoding thread sends with each batch). */
export interface TallyState {
  unmatched: number;
  firstUnmatchedUs: number;
  firstUnmatchedTrace: number;
  lost: number;
  firstLostUs: number;
}

/** Events addTs takes each time the C kernel stops for it. */
const TS_STEP = 64;
/** Batches shorter than this are counted by addTs: the kernel's call costs more than they do. */
const MIN_KERNEL_RUN = 128;
const NO_TABLE = new Int32Array(0);
/** The kernel's state (see tallyRun in native/decoder/addon.cc); one thread uses it at a time. */
const tallyState = new Float64Array(6);

export class EventTally implements TallyState {
  unmatched = 0;
  firstUnmatchedUs = 0;
  firstUnmatchedTrace = 0;
  lost = 0;
  firstLostUs = 0;
  /** Live allocations per trace; null when frees cannot be checked (a read not from the start skips allocations). */
  private readonly liveByTrace: TraceCounts | null;

  constructor(checkFrees: boolean) {
    this.liveByTrace = checkFrees ? new TraceCounts() : null;
  }

  add(batch: EventBatch): void {
    const kernel = readerKernels();
    // A call into the addon costs about as much as 70 events here: small batches stay in TypeScript.
    if (kernel === null || batch.length < MIN_KERNEL_RUN) {
      this.addTs(batch, 0, batch.length);
      return;
    }
    const state = tallyState;
    const empty = this.liveByTrace === null;
    let i = 0;
    for (;;) {
      state[0] = this.unmatched;
      state[1] = this.firstUnmatchedUs;
      state[2] = this.firstUnmatchedTrace;
      state[3] = this.lost;
      state[4] = this.firstLostUs;
      const live = empty ? NO_TABLE : this.liveByTrace!.directTable();
      i = kernel.tallyRun(batch.op, batch.timeUs, batch.trace, batch.size, i, batch.length, !empty, live, state);
      this.unmatched = state[0]!;
      this.firstUnmatchedUs = state[1]!;
      this.firstUnmatchedTrace = state[2]!;
      this.lost = state[3]!;
      this.firstLostUs = state[4]!;
      if (state[5] === 0) return;
      // An id past the flat table: counted here, which grows the table (or uses its Map).
      const next = Math.min(batch.length, i + TS_STEP);
      this.addTs(batch, i, next);
      i = next;
    }
  }

  /** add() in TypeScript over events [from, to): the reference the C kernel is tested against, and its fallback. */
  addTs(batch: EventBatch, from: number, to: number): void {
    const { op, trace, timeUs, size } = batch;
    const liveByTrace = this.liveByTrace;
    const n = to;
    // Trace ids below this go through the flat table without a call; grown as ids are met.
    let direct = liveByTrace === null ? null : liveByTrace.directTable();
    for (let i = from; i < n; i++) {
      const o = op[i]!;
      if (o <= OP_FREE) {
        if (direct === null) continue;
        const id = trace[i]!;
        if (id < direct.length) {
          // +1 for an ALLOC, -1 for a FREE, without a branch on which (they interleave unpredictably).
          const left = direct[id]! + 1 - 2 * o;
          if (left >= 0) {
            direct[id] = left;
            continue;
          }
        } else if (o === OP_ALLOC) {
          liveByTrace!.add(id);
          direct = liveByTrace!.directTable();
          continue;
        } else if (liveByTrace!.remove(id)) continue;
        if (this.unmatched === 0) {
          this.firstUnmatchedUs = timeUs[i]!;
          this.firstUnmatchedTrace = id;
        }
        this.unmatched++;
        continue;
      }
      if (o !== OP_LOST) continue;
      if (this.lost === 0) this.firstLostUs = timeUs[i]!;
      this.lost += size[i]!;
    }
  }

  state(): TallyState {
    return { unmatched: this.unmatched, firstUnmatchedUs: this.firstUnmatchedUs, firstUnmatchedTrace: this.firstUnmatchedTrace, lost: this.lost, firstLostUs: this.firstLostUs };
  }

  /** Take the counts a decoding thread kept over the same batches. */
  assign(s: TallyState): void {
    this.unmatched = s.unmatched;
    this.firstUnmatchedUs = s.firstUnmatchedUs;
    this.firstUnmatchedTrace = s.firstUnmatchedTrace;
    this.lost = s.lost;
    this.firstLostUs = s.firstLostUs;
  }
}
