// The .hpd event decoder (man/hpx.5, EVENTS): one block's varint-coded events into a columnar
// batch. Its own module, with no dependency beyond the byte helpers, because it is the hot loop
// of every reader and the only code the decoding worker thread (hpd-worker.ts) has to load.

import { Cursor, FormatError } from './bytes.js';
import { inBlock, type Block } from './block-file.js';
import { BLOCK_HEADER_SIZE, EXT, KIND } from './hpx-writer.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_LOST, OP_RSS, type EventBatch } from './source.js';
import { readerKernels } from '../native.js';

// KIND as plain constants: the hot loop then compares with literals, not property loads.
const KIND_ALLOC = KIND.ALLOC;
const KIND_FREE = KIND.FREE;
const KIND_REPEAT = KIND.REPEAT;
const KIND_EXT = KIND.EXT;
const REPEAT_SLOTS = 16;
if (KIND_ALLOC !== OP_ALLOC || KIND_FREE !== OP_FREE) throw new Error('event kinds and op codes must agree for the fast path');

/** Largest size and time (µs) a reader accepts: exact in a double (man/hpx.5, LIMITS). */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const MAX_TIME_US = Number.MAX_SAFE_INTEGER;

/** Every event takes at least this many bytes (a REPEAT: its header and dt). */
export const MIN_EVENT_BYTES = 2;

/**
 * The block's REPEAT cache (man/hpx.5, EVENTS): the (trace, size) of the ALLOC and FREE events
 * written in full, slot after slot round the ring; emptied at each block start.
 */
const repTrace = new Uint32Array(REPEAT_SLOTS);
const repSize = new Float64Array(REPEAT_SLOTS);

/** Where varintTail stopped (a second return value without allocating). */
let tailPos = 0;
/** Set by decodeEventBlock: the largest trace id an ALLOC or FREE of the block used. */
export let decodedMaxTrace = 0;

/**
 * The rest of a varint whose first two 7-bit groups are in `low` and whose second byte had its
 * continuation bit set; `pos` is at the third byte. Sums in doubles (exact below 2^53), at most
 * 10 bytes in all, like Cursor.varint. Leaves the position after the varint in tailPos.
 */
function varintTail(payload: Buffer, end: number, pos: number, low: number): number {
  let v = low;
  let scale = 16384;
  for (let k = 2; ; k++) {
    if (k >= 10 || pos >= end) throw new FormatError('bad varint', pos);
    const b = payload[pos++]!;
    v += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 128;
  }
  tailPos = pos;
  return v;
}

/**
 * Decode one .hpd block's events into `batch` (starting at batch.length). Returns whether an
 * END event was seen. Throws FormatError with an offset relative to the payload.
 * This is the hot loop of every command: varints are decoded inline, no allocation per event.
 */
export function decodeEventBlock(payload: Buffer, count: number, blockTimeUs: number, batch: EventBatch, fromUs: number, toUs: number): boolean {
  const end = payload.length;
  const { op, timeUs, trace, size } = batch;
  let n = batch.length;
  let pos = 0;
  let t = blockTimeUs;
  let sawEnd = false;
  let maxTrace = 0;
  // REPEAT cache: slot k holds the pair of the last full ALLOC/FREE whose count in the block is k mod 16.
  const rt = repTrace;
  const rs = repSize;
  let full = 0;
  const ranged = fromUs > -Infinity || toUs < Infinity;
  for (let i = 0; i < count; i++) {
    if (pos >= end) throw new FormatError(`block says ${count} events, holds ${i}`, pos);
    // Fast path for nearly every event: an ALLOC or FREE whose three varints have at most three
    // bytes each, or a REPEAT, with at least 9 bytes left in the block so that no read needs a
    // bounds check. Anything else (an extension event, a longer varint, the block's tail) is
    // decoded again from its first byte by the careful path below, which finds every error.
    if (end - pos >= 9) {
      let p = pos;
      let b = payload[p++]!;
      let h = b & 0x7f;
      if (b >= 0x80) {
        b = payload[p++]!;
        h |= (b & 0x7f) << 7;
        if (b >= 0x80) {
          b = payload[p++]!;
          h |= (b & 0x7f) << 14;
        }
      }
      const kind = h & 3;
      if (kind === KIND_REPEAT && b < 0x80 && h < 0x80 && h >>> 3 < full) {
        // REPEAT: a one-byte header naming a filled slot, then dt.
        b = payload[p++]!;
        let dt = b & 0x7f;
        if (b >= 0x80) {
          b = payload[p++]!;
          dt |= (b & 0x7f) << 7;
          if (b >= 0x80) {
            b = payload[p++]!;
            dt |= (b & 0x7f) << 14;
          }
        }
        if (b < 0x80) {
          pos = p;
          t += dt;
          if (ranged && (t < fromUs || t >= toUs)) continue;
          const slot = h >>> 3;
          op[n] = (h >>> 2) & 1; // OP_ALLOC or OP_FREE
          timeUs[n] = t;
          trace[n] = rt[slot]!;
          size[n] = rs[slot]!;
          n++;
          continue;
        }
      } else if (b < 0x80 && kind <= KIND_FREE) {
        b = payload[p++]!;
        let dt = b & 0x7f;
        if (b >= 0x80) {
          b = payload[p++]!;
          dt |= (b & 0x7f) << 7;
          if (b >= 0x80) {
            b = payload[p++]!;
            dt |= (b & 0x7f) << 14;
          }
        }
        if (b < 0x80) {
          b = payload[p++]!;
          let v = b & 0x7f;
          if (b >= 0x80) {
            b = payload[p++]!;
            v |= (b & 0x7f) << 7;
            if (b >= 0x80) {
              b = payload[p++]!;
              v |= (b & 0x7f) << 14;
            }
          }
          if (b < 0x80) {
            pos = p;
            t += dt;
            const id = h >>> 2;
            if (id > maxTrace) maxTrace = id;
            rt[full & (REPEAT_SLOTS - 1)] = id;
            rs[full & (REPEAT_SLOTS - 1)] = v;
            full++;
            if (ranged && (t < fromUs || t >= toUs)) continue;
            op[n] = kind; // KIND_ALLOC/KIND_FREE are OP_ALLOC/OP_FREE
            timeUs[n] = t;
            trace[n] = id;
            size[n] = v;
            n++;
            continue;
          }
        }
      }
    }
    // Varints of one or two bytes (nearly all of them) stay in small-integer arithmetic; longer
    // ones continue in varintTail, in doubles, exactly as before.
    // h
    let b = payload[pos++]!;
    let h = b & 0x7f;
    if (b >= 0x80) {
      if (pos >= end) throw new FormatError('bad varint', pos);
      b = payload[pos++]!;
      h |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        h = varintTail(payload, end, pos, h);
        pos = tailPos;
      }
    }
    // dt
    b = payload[pos++]!;
    let dt = b & 0x7f;
    if (b >= 0x80) {
      if (pos >= end) throw new FormatError('bad varint', pos);
      b = payload[pos++]!;
      dt |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        dt = varintTail(payload, end, pos, dt);
        pos = tailPos;
      }
    }
    t += dt;
    // Integer ops below 2^31 (h may be held as a double after a long varint: '%' would be fmod).
    const kind = h < 0x80000000 ? h & 3 : h % 4;
    const id = h < 0x80000000 ? h >>> 2 : Math.floor(h / 4);
    if (kind === KIND_REPEAT) {
      // REPEAT (header and dt only): its slot must hold a pair of this block.
      if (pos > end) throw new FormatError('event runs past the end of its block', end);
      if (id >= 2 * REPEAT_SLOTS) throw new FormatError('REPEAT slot out of range', pos);
      const slot = id >>> 1;
      if (slot >= full) throw new FormatError('REPEAT of an empty slot', pos);
      if (ranged && (t < fromUs || t >= toUs)) continue;
      op[n] = id & 1; // OP_ALLOC or OP_FREE
      timeUs[n] = t;
      trace[n] = rt[slot]!;
      size[n] = rs[slot]!;
      n++;
      continue;
    }
    // size, or ext length
    b = payload[pos++]!;
    let v = b & 0x7f;
    if (b >= 0x80) {
      if (pos >= end) throw new FormatError('bad varint', pos);
      b = payload[pos++]!;
      v |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        v = varintTail(payload, end, pos, v);
        pos = tailPos;
      }
    }
    if (pos > end) throw new FormatError('event runs past the end of its block', end);
    let code: number;
    let value = v;
    if (kind <= KIND_FREE) {
      code = kind === KIND_ALLOC ? OP_ALLOC : OP_FREE;
      if (v > MAX_SAFE) throw new FormatError(`size ${v} is past 2^53-1`, pos);
      if (id > maxTrace) {
        if (id > 0xffffffff) throw new FormatError(`trace id ${id} out of range`, pos);
        maxTrace = id;
      }
      rt[full & (REPEAT_SLOTS - 1)] = id;
      rs[full & (REPEAT_SLOTS - 1)] = v;
      full++;
    } else if (kind === KIND_EXT) {
      const bodyEnd = pos + v;
      if (bodyEnd > end) throw new FormatError('extension event runs past the end of its block', pos);
      if (id === EXT.END) {
        code = OP_END;
        value = 0;
        sawEnd = true;
      } else if (id === EXT.RSS || id === EXT.LOST) {
        const c = new Cursor(payload, pos, bodyEnd);
        value = c.varint();
        code = id === EXT.RSS ? OP_RSS : OP_LOST;
      } else {
        // Unknown extensions are skipped by their length; so is MARK, whose label and time
        // readers take from the .hpm MARK record (ProfileSource.marks()).
        pos = bodyEnd;
        continue;
      }
      pos = bodyEnd;
    } else {
      throw new Error('unreachable: every kind is handled above');
    }
    if (ranged && (t < fromUs || t >= toUs) && code !== OP_END) continue;
    op[n] = code;
    timeUs[n] = t;
    trace[n] = code <= OP_FREE ? id : 0;
    size[n] = value;
    n++;
  }
  if (pos !== end) throw new FormatError(`${end - pos} bytes after the last of ${count} events`, pos);
  // Times only grow within a block: checking the last one bounds them all.
  if (t > MAX_TIME_US) throw new FormatError(`event time ${t} µs is past the 2^53-1 µs limit`, pos);
  batch.length = n;
  decodedMaxTrace = maxTrace;
  return sawEnd;
}

const nativeOut = new Float64Array(3);
/** Blocks of fewer events are decoded in TypeScript: the addon's call costs more than they do. */
const MIN_NATIVE_BLOCK = 64;
/** What decodeBlock found: the block's events (in the batch it was given), or the problem that rejects the whole block. */
export type DecodedBlock = { ok: true; sawEnd: boolean; maxTrace: number } | { ok: false; message: string; offset: number };

/**
 * One .hpd block into the batch `batchFor(count)` returns (emptied first), the same way for every
 * reader: an impossible event count is rejected before any memory is asked for, and a FormatError
 * becomes the located message every reader reports.
 */
export function decodeBlock(block: Block, batchFor: (count: number) => EventBatch, fromUs: number, toUs: number): DecodedBlock {
  if (block.timeUs > MAX_TIME_US) {
    return { ok: false, message: inBlock(`block time ${block.timeUs} µs is past the 2^53-1 µs limit`, block.offset), offset: block.offset + 12 };
  }
  // Every event takes at least 2 bytes: a larger count is corruption, not an allocation request.
  if (block.count * MIN_EVENT_BYTES > block.payload.length) {
    return { ok: false, message: inBlock(`block says ${block.count} events in ${block.payload.length} bytes`, block.offset), offset: block.offset + 8 };
  }
  const batch = batchFor(block.count);
  batch.length = 0;
  const native = readerKernels();
  // A call into the addon costs about as much as decoding 50 events here: small blocks stay in TypeScript.
  if (native && block.count >= MIN_NATIVE_BLOCK) {
    // The C decoder, when built, reads about twice as fast; a block it refuses is decoded again
    // below, so that every problem is found and worded by the one decoder that reports them.
    const out = nativeOut;
    if (native.decodeBlockInto(block.payload, block.count, block.timeUs, fromUs, toUs, batch.op, batch.timeUs, batch.trace, batch.size, out)) {
      batch.length = out[0]!;
      return { ok: true, sawEnd: out[1] === 1, maxTrace: out[2]! };
    }
    batch.length = 0;
  }
  try {
    const sawEnd = decodeEventBlock(block.payload, block.count, block.timeUs, batch, fromUs, toUs);
    return { ok: true, sawEnd, maxTrace: decodedMaxTrace };
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    return { ok: false, message: inBlock(e.message, block.offset), offset: block.offset + BLOCK_HEADER_SIZE + e.at };
  }
}
