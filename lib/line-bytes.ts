// Output lines composed as bytes in a reused buffer and handed to an OutputWriter in ~1 MB chunks:
// for commands that write millions of lines (hp-events), where a string per line and a string
// per batch cost most of the time in garbage collection (doc/benchmarks.md, "hp-events").

import type { OutputWriter } from './cli.js';

/** Bytes handed on at a time: large enough that a write costs little, small enough to stay in cache. */
const CHUNK_BYTES = 1 << 20;
/** Room past a chunk for the line that fills it (a longer one grows the buffer). */
const SLACK_BYTES = 1 << 12;

/** ASCII text as bytes, for the constant parts of a line. */
export function asciiBytes(text: string): Uint8Array {
  return Buffer.from(text, 'latin1');
}

export class LineBytes {
  private buf: Buffer;
  private pos = 0;
  /** Chunks the stream has finished with, to compose the next ones in. */
  private readonly spare: Buffer[] = [];

  constructor(
    private readonly out: OutputWriter,
    private readonly chunkBytes = CHUNK_BYTES,
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes + SLACK_BYTES);
  }

  /** A chunk is ready: the caller awaits flush() before adding more, which is the back-pressure. */
  get full(): boolean {
    return this.pos >= this.chunkBytes;
  }

  /** Make room for `n` more bytes (a line longer than the slack grows this chunk's buffer). */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Constant bytes (asciiBytes()); a short loop beats TypedArray.set for a few dozen bytes. */
  bytes(b: Uint8Array): void {
    const n = b.length;
    this.room(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = b[i]!;
    this.pos = p;
  }

  /** Any text, as UTF-8 (the encoding a string written to the stream would get). */
  text(s: string): void {
    if (s.length === 0) return;
    this.room(s.length * 3);
    this.pos += this.buf.write(s, this.pos);
  }

  /** A number as JSON.stringify (and String) writes it; non-negative safe integers without a string. */
  number(n: number): void {
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n)) this.digits(n);
    else this.text(String(n));
  }

  /** A non-negative safe integer in decimal. */
  private digits(n: number): void {
    if (n < 10) {
      this.room(1);
      this.buf[this.pos++] = 48 + n;
      return;
    }
    let len = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
    this.room(len);
    const buf = this.buf;
    let p = this.pos + len;
    this.pos = p;
    // Above 2^31 in floating point, below it (nearly every number here) in 32-bit integers.
    while (n >= 0x80000000) {
      const q = Math.floor(n / 10);
      buf[--p] = 48 + (n - q * 10);
      n = q;
    }
    let m = n | 0;
    while (m >= 10) {
      const q = (m / 10) | 0;
      buf[--p] = 48 + (m - q * 10);
      m = q;
    }
    buf[--p] = 48 + m;
  }

  /** Microseconds as seconds, the same text as secondsText() (lib/format/ndjson.ts) writes. */
  seconds(us: number): void {
    if (!Number.isInteger(us) || us < 0 || us >= 1e15) {
      this.text(String(us / 1e6));
      return;
    }
    const whole = Math.floor(us / 1e6);
    let frac = (us - whole * 1e6) | 0;
    this.digits(whole);
    if (frac === 0) return;
    // Six digits after the point, then the trailing zeros taken back.
    this.room(7);
    const buf = this.buf;
    const p = this.pos;
    buf[p] = 46;
    for (let i = 6; i >= 1; i--) {
      const q = (frac / 10) | 0;
      buf[p + i] = 48 + (frac - q * 10);
      frac = q;
    }
    let end = p + 7;
    while (buf[end - 1] === 48) end--;
    this.pos = end;
  }

  /** Hand what is composed to the writer, waiting while the stream is full. */
  async flush(): Promise<void> {
    if (this.pos === 0) return;
    const chunk = this.buf;
    const length = this.pos;
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.chunkBytes + SLACK_BYTES);
    this.pos = 0;
    // Only a chunk of the usual size is kept for reuse: one grown for a long line is let go.
    const reuse =
      chunk.length === this.chunkBytes + SLACK_BYTES
        ? (): void => {
            if (this.spare.length < 2) this.spare.push(chunk);
          }
        : undefined;
    await this.out.writeBytes(chunk.subarray(0, length), reuse);
  }
}
