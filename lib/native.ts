// The one place TypeScript touches native code: loads the readers' addon (native/decoder, built
// by node-gyp into build/Release/hpx_decoder.node): the C reference decoder of .hpd files, and
// the C versions of the readers' per-event loops (readerKernels). Everything else is pure TS;
// when the addon is not built, callers get a reason instead and fall back or skip, and readers
// run those loops in TypeScript.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { load as requireFile, ROOT } from './where.cjs';

/** Columnar events as the C decoder returns them (the same op codes as source.ts). */
export interface NativeEvents {
  length: number;
  op: Uint8Array;
  timeUs: Float64Array;
  trace: Uint32Array;
  size: Float64Array;
  /** Blocks with a valid checksum that were read. */
  blocks: number;
  /** True when an END event was read. */
  complete: boolean;
  problems: NativeProblem[];
  /** Problems past the first 10,000, counted but not listed. */
  problemsDropped: number;
}

export interface NativeProblem {
  /** corrupt: bad block (skipped by resynchronising); truncated: cut tail; event: a valid block whose events do not decode. */
  kind: 'corrupt' | 'truncated' | 'event';
  offset: number;
  /** Blocks read before it in this read: not a position in the file (messages name a block by `offset`). */
  index: number;
  message: string;
}

/** What scanHpd sums up while streaming a file through the C decoder. */
export interface NativeScan {
  bytes: number;
  blocks: number;
  events: number;
  allocs: number;
  frees: number;
  rss: number;
  allocBytes: number;
  freeBytes: number;
  /** Unweighted sampled bytes live at the end, and the highest value reached. */
  liveBytes: number;
  peakLiveBytes: number;
  lastUs: number;
  complete: boolean;
  problems: NativeProblem[];
  /** Problems past the first 10,000, counted but not listed. */
  problemsDropped: number;
  /** Wall time of the scan inside C (open to unmap). */
  seconds: number;
}

/** The first arguments of every per-event kernel: a batch's four event columns and the run [from, to) within them. */
type RunColumns = [op: Uint8Array, timeUs: Float64Array, trace: Uint32Array, size: Float64Array, from: number, to: number];

export interface NativeDecoder {
  /** Every event of an .hpd held in memory. Throws on a bad file header. */
  decodeHpd(bytes: Uint8Array): NativeEvents;
  /** Stream a file through the decoder (synchronous: it blocks the event loop). */
  scanHpd(path: string): NativeScan;
  /**
   * One block's events into a batch's columns from index 0, as decodeEventBlock does: true with
   * out = [length, sawEnd (0/1), maxTrace], or false when the block does not decode (the TS
   * decoder then says why) or the columns hold fewer than `count` events.
   */
  decodeBlockInto(
    payload: Uint8Array,
    count: number,
    blockTimeUs: number,
    fromUs: number,
    toUs: number,
    op: Uint8Array,
    timeUs: Float64Array,
    trace: Uint32Array,
    size: Float64Array,
    out: Float64Array,
  ): boolean;
  /**
   * LiveHeap.applyRun's loop (native/decoder/kernels.c): applies events [from, to) and returns
   * where it stopped; state holds the heap's totals, last time and unmatched frees (read and
   * written back) and, in state[7], 0 when it stopped as applyRunTs would, 1 when the event at
   * the returned index needs the TypeScript loop.
   */
  applyRun(
    ...args: [
      ...RunColumns,
      untilUs: number,
      direct: Int32Array,
      sampled: Float64Array,
      bytes: Float64Array,
      bytesVar: Float64Array,
      count: Float64Array,
      countVar: Float64Array,
      poisson: boolean,
      bounds: Float64Array,
      bucketRange: Int8Array,
      w: Float64Array,
      cv: Float64Array,
      state: Float64Array,
    ]
  ): number;
  /**
   * EventTally.add's loop (native/decoder/kernels.c) over events [from, to): returns where it
   * stopped; state holds the tally's five counts (read and written back) and, in state[5], 0 at
   * `to`, 1 when the ALLOC or FREE at the returned index has an id past `live` (the caller's).
   */
  tallyRun(...args: [...RunColumns, checkFrees: boolean, live: Int32Array, state: Float64Array]): number;
  /**
   * HalfSplit.event's loop for a table sampler (native/decoder/kernels.c) over events [from, to):
   * fills halves[i] (1 A, 2 B, 3 both, 0 for an event that is not an ALLOC or FREE) and totals[i]
   * (half A's total after it), changing the split's table in place, and returns where it
   * stopped; state holds ordinal, totalA, used entries, mask, seed and whether the split's map
   * holds keyed pairs (read; the first three written back) and, in state[6], 0 at `to`, 1 when
   * the event at the returned index needs HalfSplit.event.
   */
  splitRun(
    ...args: [...RunColumns, tab: Float64Array, state: Float64Array, bounds: Float64Array, q: Float64Array, halves: Uint8Array, totals: Float64Array]
  ): number;
  /** The decoder's own CRC-32 (slicing by 8), whatever block validation uses. */
  crc32(bytes: Uint8Array, crc?: number): number;
  /** Have the kernel kill this process when its parent (pid given) dies; false when it cannot (lib/start.ts). */
  dieWithParent(parent: number): boolean;
  /** The CRC-32 that validates blocks: the zlib inside Node (which node:zlib and so the TS reader use) or the decoder's own. */
  blockCrc32: 'zlib' | 'slicing-by-8';
  abiVersion: number;
}

const ADDON_ABI = 6; // 2: blockCrc32; 3: problemsDropped, no allocation sized by an unchecked field; 4: decodeBlockInto, applyRun, tallyRun; 5: splitRun; 6: dieWithParent

let cached: { decoder: NativeDecoder | null; reason: string } | null = null;

/** Where the addon is looked for: $HEAPPROF_DECODER, else build/Release under the package root. */
export function nativeDecoderPath(): string {
  const override = process.env['HEAPPROF_DECODER'];
  if (override) return override;
  return join(ROOT, 'build', 'Release', 'hpx_decoder.node');
}

function load(): { decoder: NativeDecoder | null; reason: string } {
  const path = nativeDecoderPath();
  if (!existsSync(path)) {
    return { decoder: null, reason: `native decoder not built (${path} is missing; run \`npx node-gyp rebuild\`)` };
  }
  try {
    const mod = requireFile(path) as NativeDecoder;
    if (mod.abiVersion !== ADDON_ABI) {
      return { decoder: null, reason: `native decoder at ${path} is stale (abi ${String(mod.abiVersion)}, want ${ADDON_ABI}); rebuild it` };
    }
    return { decoder: mod, reason: 'loaded' };
  } catch (e) {
    return { decoder: null, reason: `native decoder at ${path} failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
}

let readerKernelsChecked = false;
let readerKernelsValue: NativeDecoder | null = null;

/**
 * The addon, for the readers' loops (block decoding, the tally, the live heap's update), or
 * null when it is not built or HEAPPROF_NATIVE_READ=0 keeps every reader in TypeScript (the
 * tests compare the two). Decided once per thread, at the first use, so that commands that
 * read no events never load the addon.
 */
export function readerKernels(): NativeDecoder | null {
  if (!readerKernelsChecked) {
    readerKernelsChecked = true;
    readerKernelsValue = process.env['HEAPPROF_NATIVE_READ'] === '0' ? null : nativeDecoder();
  }
  return readerKernelsValue;
}

/** The C decoder, or null when it is not available (see nativeDecoderStatus() for why). */
export function nativeDecoder(): NativeDecoder | null {
  cached ??= load();
  return cached.decoder;
}

/** "loaded", or why the C decoder is not available, in one line. */
export function nativeDecoderStatus(): string {
  cached ??= load();
  return cached.reason;
}
