// Decodes a .hpd file's event blocks on a worker thread, so that a reader's analysis (the
// main thread) runs beside the decoding instead of after it. Only V2Profile starts it (see
// decodeInWorker there); the protocol is private to the two.
//
// Worker -> main, in file order:
//   { type: 'batch', slot, columns?, index, offset, end, length, sawEnd, maxTrace, tally }
//       one block's events, decoded into pool slot `slot` (columns: that slot's shared
//       buffers, sent when the slot is first used or had to grow); tally: the counts of
//       lib/format/tally.ts over every batch so far, when the job asks for them here (off
//       the analysis thread), else null
//   { type: 'raw', slot, buffer?, length, count, timeUs, index, offset }
//       a block's payload (checksum checked), undecoded, in pool slot `slot`'s byte buffer
//       (buffer: that SharedArrayBuffer, sent when first used or grown): the main thread
//       decodes it (with job.mainHasKernels, whenever it has fewer than SHARE_BELOW waiting),
//       then counts the slot consumed
//   { type: 'issue', message, offset }   a problem the inline reader would report (same text)
//   { type: 'done', truncatedAt }        the last block was read (truncatedAt: null or a byte offset)
//   { type: 'error', message, exitCode } reading failed (exitCode set for an HpError; the cli
//       module is not loaded here, it would bring the whole command-line stack)
// Flow control is a shared counter, not messages: the main thread adds 1 to `control[0]` (and
// notifies) when it is done with a batch; the worker fills slots round-robin and waits while
// all POOL slots are unconsumed. Memory is bounded however far the decoder could run ahead.

import { parentPort, workerData } from 'node:worker_threads';
import { BlockFile, problemText, type BlockProblem } from './block-file.js';
import { decodeBlock } from './events.js';
import type { EventBatch } from './source.js';
import { EventTally } from './tally.js';

export interface DecodeJob {
  path: string;
  start: number;
  fromUs: number;
  toUs: number;
  /** Match frees to allocations (reading from the start): see EventTally. */
  checkFrees: boolean;
  /**
   * The main thread runs the addon's kernels, so it has time to spare: it keeps the tally, and
   * gets a block undecoded ('raw') whenever it has fewer than SHARE_BELOW waiting. Otherwise
   * this thread keeps the tally (sent with each batch) and decodes every block.
   */
  mainHasKernels: boolean;
  /** Int32Array over it: [0] = batches the main thread has consumed. */
  control: SharedArrayBuffer;
}

/** Pool slots: batches decoded (or blocks handed over undecoded) but not yet consumed. */
export const POOL = 8;
const MIN_CAPACITY = 1 << 16;
const MIN_RAW_BYTES = 1 << 18;
/** job.mainHasKernels: a block goes undecoded when fewer than this many are waiting for the main thread. */
const SHARE_BELOW = 3;

export interface Columns {
  op: SharedArrayBuffer;
  timeUs: SharedArrayBuffer;
  trace: SharedArrayBuffer;
  size: SharedArrayBuffer;
}

function newColumns(capacity: number): Columns {
  return {
    op: new SharedArrayBuffer(capacity),
    timeUs: new SharedArrayBuffer(capacity * 8),
    trace: new SharedArrayBuffer(capacity * 4),
    size: new SharedArrayBuffer(capacity * 8),
  };
}

async function main(job: DecodeJob): Promise<void> {
  const port = parentPort!;
  const control = new Int32Array(job.control);
  const slots: Array<{ cols: Columns; batch: EventBatch; sent: boolean } | undefined> = [];
  const rawSlots: Array<{ sab: SharedArrayBuffer; bytes: Uint8Array; sent: boolean } | undefined> = [];
  let produced = 0;
  const tally = new EventTally(job.checkFrees);

  const file = await BlockFile.open(job.path);
  // Atomics.waitAsync does not keep a thread alive: this timer does, until the end.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let truncatedAt: number | null = null;
  const onProblem = (p: BlockProblem): void => {
    if (p.kind === 'truncated') {
      truncatedAt = p.offset;
      return;
    }
    port.postMessage({ type: 'issue', message: problemText(p), offset: p.offset });
  };
  try {
    for await (const block of file.blocks(job.start, onProblem)) {
      if (block.timeUs >= job.toUs) break; // blocks are in time order
      // Wait for the slot to be free: every batch before the last POOL consumed.
      for (;;) {
        const consumed = Atomics.load(control, 0);
        if (produced - consumed < POOL) break;
        const w = Atomics.waitAsync(control, 0, consumed);
        if (w.async) await w.value;
      }
      const k = produced % POOL;
      if (job.mainHasKernels && produced - Atomics.load(control, 0) < SHARE_BELOW) {
        // The main thread is waiting for work (with the addon's kernels the analysis leaves it
        // idle much of the time, and decoding is most of this thread's): it gets this block
        // undecoded and decodes it itself. A main thread with work queued (a command whose
        // analysis is the slower side) gets none.
        const n = block.payload.length;
        let raw = rawSlots[k];
        if (!raw || raw.bytes.length < n) {
          const sab = new SharedArrayBuffer(Math.max(MIN_RAW_BYTES, n));
          raw = { sab, bytes: new Uint8Array(sab), sent: false };
          rawSlots[k] = raw;
        }
        raw.bytes.set(block.payload);
        produced++;
        const buffer = raw.sent ? null : raw.sab;
        raw.sent = true;
        port.postMessage({ type: 'raw', slot: k, buffer, length: n, count: block.count, timeUs: block.timeUs, index: block.index, offset: block.offset });
        continue;
      }
      const d = decodeBlock(
        block,
        (count) => {
          const slot = slots[k];
          if (slot && slot.batch.op.length >= count) return slot.batch;
          const cols = newColumns(Math.max(MIN_CAPACITY, count));
          const batch = { length: 0, op: new Uint8Array(cols.op), timeUs: new Float64Array(cols.timeUs), trace: new Uint32Array(cols.trace), size: new Float64Array(cols.size) };
          slots[k] = { cols, batch, sent: false };
          return batch;
        },
        job.fromUs,
        job.toUs,
      );
      if (!d.ok) {
        port.postMessage({ type: 'issue', message: d.message, offset: d.offset });
        continue;
      }
      const slot = slots[k]!;
      const batch = slot.batch;
      if (!job.mainHasKernels) tally.add(batch);
      produced++;
      const columns = slot.sent ? null : slot.cols;
      slot.sent = true;
      port.postMessage({
        type: 'batch',
        slot: k,
        columns,
        index: block.index,
        offset: block.offset,
        end: block.offset + 24 + block.payload.length,
        length: batch.length,
        sawEnd: d.sawEnd,
        // The largest trace id an ALLOC or FREE used: the main thread checks the dictionary only
        // when it passes the ids known to be defined.
        maxTrace: d.maxTrace,
        tally: job.mainHasKernels ? null : tally.state(),
      });
      if (d.sawEnd) break;
    }
    port.postMessage({ type: 'done', truncatedAt });
  } finally {
    clearInterval(keepAlive);
    await file.close();
  }
}

main(workerData as DecodeJob).catch((e: unknown) => {
  const err = (e instanceof Error ? e : new Error(String(e))) as Error & { exitCode?: unknown };
  parentPort!.postMessage({ type: 'error', message: err.message, exitCode: typeof err.exitCode === 'number' ? err.exitCode : null });
});
