// Sequential reader of the block structure shared by .hpm and .hpd (man/hpx.5, BLOCKS):
// reads the file in large chunks, validates each block (magic, length, checksum), reports a
// corrupt block and resynchronises at the next valid one, stops at a truncated tail, and can
// keep waiting for more blocks while a recorder is still appending (follow mode).

import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HpError } from '../cli.js';
import { crc32 } from './bytes.js';
import { BLOCK_HEADER_SIZE, MAX_BLOCK_PAYLOAD } from './hpx-writer.js';

const CHUNK = 4 * 1024 * 1024;
const MAGIC_U32 = 0x4b4c4248; // "HBLK" read as little-endian u32

export interface Block {
  /** 0-based count of the blocks read before it in this read (not a position in the file: messages use `offset`). */
  index: number;
  /** Byte offset of the block header in the file. */
  offset: number;
  count: number;
  timeUs: number;
  /** Valid until the next block is requested. */
  payload: Buffer;
}

export type BlockProblem =
  | { kind: 'corrupt'; offset: number; index: number; message: string; resumedAt: number | null }
  | { kind: 'truncated'; offset: number; index: number; message: string };

/**
 * How every reader reports a corrupt block: "what; skipped to byte B", reported at the block's
 * byte offset. The offset alone names the block: a count of blocks read (`index`) depends on
 * where reading started and on what resynchronising skipped, so it is no position.
 */
export function problemText(p: Extract<BlockProblem, { kind: 'corrupt' }>): string {
  return `${p.message}${p.resumedAt !== null ? `; skipped to byte ${p.resumedAt}` : ''}`;
}

/** Where an issue inside a block's payload lies: the message is reported at its own byte. */
export function inBlock(message: string, blockOffset: number): string {
  return `${message} (in the block at byte ${blockOffset})`;
}

/**
 * Payload bytes resynchronisation may checksum over a whole read of a file of `size` bytes:
 * eight times the file plus two maximal blocks. Linear in the file; real damage (a few bad
 * blocks) uses a small part of it. The C reference decoder uses the same rule.
 */
export function resyncBudgetFor(size: number): number {
  return 8 * size + 2 * MAX_BLOCK_PAYLOAD;
}

export class BlockFile {
  private buf: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private bufStart = 0;
  /** Valid bytes in buf. */
  private bufLen = 0;
  size = 0;
  /** Bytes consumed so far (for progress). */
  position = 0;
  /**
   * Bytes resync may still checksum (man/hpx.5, BLOCKS): a false "HBLK" whose length claims
   * most of the file costs a CRC over all of it, and a file of such headers would make
   * resynchronising quadratic. Set from the file size on the first resync; when it runs out,
   * resync gives up and the rest of the file is reported as one corrupt region.
   */
  private resyncBudget = -1;
  /** Resync gave up (the budget ran out): the reader says so once. */
  resyncExhausted = false;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string): Promise<BlockFile> {
    const fh = await open(path, 'r');
    const st = await fh.stat();
    if (st.isDirectory()) {
      // Opening a directory succeeds; its first read fails with an EISDIR that names no path.
      await fh.close();
      throw new HpError(`${path}: is a directory (a profile is BASE.hpm + BASE.hpd)`);
    }
    const f = new BlockFile(path, fh);
    f.size = st.size;
    return f;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async refreshSize(): Promise<number> {
    this.size = (await this.fh.stat()).size;
    return this.size;
  }

  /** Read `n` bytes at `offset` (fewer at end of file). The result is a view, valid until the next read. */
  async read(offset: number, n: number): Promise<Buffer> {
    if (offset >= this.bufStart && offset + n <= this.bufStart + this.bufLen) {
      return this.buf.subarray(offset - this.bufStart, offset - this.bufStart + n);
    }
    const want = Math.max(n, CHUNK);
    let next = this.buf;
    if (next.length < want) next = Buffer.allocUnsafe(want);
    // Keep the part of the window that overlaps [offset, ...) to avoid rereading it.
    let kept = 0;
    if (offset >= this.bufStart && offset < this.bufStart + this.bufLen) {
      kept = this.bufStart + this.bufLen - offset;
      this.buf.copy(next, 0, offset - this.bufStart, this.bufStart + this.bufLen);
    }
    let filled = kept;
    while (filled < want) {
      const { bytesRead } = await this.fh.read(next, filled, want - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled >= n) break;
    }
    this.buf = next;
    this.bufStart = offset;
    this.bufLen = filled;
    return this.buf.subarray(0, Math.min(n, filled));
  }

  /**
   * Blocks from `start` to the end of the file. Problems go to `onProblem`; when it returns
   * false the read stops (strict mode throws from it instead). With `follow`, waits for more
   * data at the end until `isDone()` says the writer has finished.
   */
  async *blocks(
    start: number,
    onProblem: (p: BlockProblem) => void,
    follow: { isDone: () => boolean; pollMs?: number } | null = null,
  ): AsyncGenerator<Block> {
    let offset = start;
    let index = 0;
    for (;;) {
      this.position = offset;
      if (offset + BLOCK_HEADER_SIZE > this.size) {
        if (follow && !follow.isDone()) {
          await sleep(follow.pollMs ?? 200);
          await this.refreshSize();
          continue;
        }
        if (offset < this.size) {
          onProblem({
            kind: 'truncated',
            offset,
            index,
            message: `truncated block header (${this.size - offset} of ${BLOCK_HEADER_SIZE} bytes)`,
          });
        }
        return;
      }
      const head = await this.read(offset, BLOCK_HEADER_SIZE);
      const magic = head.readUInt32LE(0);
      const length = head.readUInt32LE(4);
      if (magic !== MAGIC_U32 || length > MAX_BLOCK_PAYLOAD) {
        const why = magic !== MAGIC_U32 ? 'bad block magic' : `block length ${length} exceeds the 64 MiB limit`;
        const next = await this.resync(offset + 1);
        onProblem({ kind: 'corrupt', offset, index, message: this.gaveUp(why, next), resumedAt: next });
        if (next === null) return;
        offset = next;
        index++;
        continue;
      }
      const end = offset + BLOCK_HEADER_SIZE + length;
      if (end > this.size) {
        if (follow && !follow.isDone()) {
          await sleep(follow.pollMs ?? 200);
          await this.refreshSize();
          continue;
        }
        // A corrupted length can also point past the end: only call it truncation when no
        // valid block starts after it.
        const next = await this.resync(offset + 1);
        if (next === null && !this.resyncExhausted) {
          onProblem({
            kind: 'truncated',
            offset,
            index,
            message: `truncated block (${this.size - offset - BLOCK_HEADER_SIZE} of ${length} payload bytes)`,
          });
          return;
        }
        onProblem({ kind: 'corrupt', offset, index, message: this.gaveUp('block length runs past the end of the file', next), resumedAt: next });
        if (next === null) return;
        offset = next;
        index++;
        continue;
      }
      const whole = await this.read(offset, BLOCK_HEADER_SIZE + length);
      const count = whole.readUInt32LE(8);
      const timeUs = Number(whole.readBigUInt64LE(12));
      const stored = whole.readUInt32LE(20);
      const actual = crc32(whole.subarray(BLOCK_HEADER_SIZE), crc32(whole.subarray(4, 20)));
      if (stored !== actual) {
        const next = await this.resync(offset + 1);
        onProblem({ kind: 'corrupt', offset, index, message: this.gaveUp('bad checksum', next), resumedAt: next });
        if (next === null) return;
        offset = next;
        index++;
        continue;
      }
      yield { index, offset, count, timeUs, payload: whole.subarray(BLOCK_HEADER_SIZE) };
      offset = end;
      index++;
    }
  }

  private gaveUp(why: string, next: number | null): string {
    return next === null && this.resyncExhausted ? `${why}; too many false block headers after it, gave up resynchronising (the rest of the file is skipped)` : why;
  }

  /** Offset of the next block at or after `from` whose header and checksum are valid, or null. */
  async resync(from: number): Promise<number | null> {
    if (this.resyncBudget < 0) this.resyncBudget = resyncBudgetFor(this.size);
    let offset = from;
    while (offset + BLOCK_HEADER_SIZE <= this.size) {
      const window = await this.read(offset, Math.min(CHUNK, this.size - offset));
      const i = window.indexOf('HBLK', 0, 'latin1');
      if (i < 0) {
        if (offset + window.length >= this.size) return null;
        offset += Math.max(1, window.length - 3); // the magic may straddle two windows
        continue;
      }
      const v = await this.validAt(offset + i);
      if (v === 'valid') return offset + i;
      if (v === 'exhausted') return null;
      offset += i + 1;
    }
    return null;
  }

  private async validAt(at: number): Promise<'valid' | 'invalid' | 'exhausted'> {
    if (at + BLOCK_HEADER_SIZE > this.size) return 'invalid';
    const head = await this.read(at, BLOCK_HEADER_SIZE);
    const length = head.readUInt32LE(4);
    if (length > MAX_BLOCK_PAYLOAD || at + BLOCK_HEADER_SIZE + length > this.size) return 'invalid';
    if (length > this.resyncBudget) {
      this.resyncExhausted = true;
      this.resyncBudget = 0;
      return 'exhausted';
    }
    this.resyncBudget -= length;
    const whole = await this.read(at, BLOCK_HEADER_SIZE + length);
    const stored = whole.readUInt32LE(20);
    return stored === crc32(whole.subarray(BLOCK_HEADER_SIZE), crc32(whole.subarray(4, 20))) ? 'valid' : 'invalid';
  }
}
