// Byte-level primitives shared by the hpx encoders and decoders: LEB128 varints (as numbers,
// exact up to 2^53), a growable output buffer, and a bounds-checked cursor for parsing.

/** CRC-32 (zlib's), of `data` continuing from `value`. node:zlib is loaded on the first call, not
 * at start-up: a command that ends at --help or a usage error never needs it. */
export function crc32(data: Uint8Array, value = 0): number {
  return (zlibCrc32 ??= process.getBuiltinModule('node:zlib').crc32)(data, value);
}
let zlibCrc32: ((data: Uint8Array, value?: number) => number) | undefined;

/** Largest value a reader accepts from a varint: nothing in a profile can be larger. */
export const MAX_SAFE_VARINT = Number.MAX_SAFE_INTEGER;

/** Raised by Cursor on malformed input; decoders turn it into a located message. */
export class FormatError extends Error {
  constructor(
    message: string,
    /** Byte offset relative to the start of the cursor's buffer. */
    readonly at: number,
  ) {
    super(message);
  }
}

/** Reads little-endian fixed ints, varints, f64 and strings from a Buffer, checking bounds. */
export class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) throw new FormatError('varint runs past the end of its record', this.pos);
      const b = buf[pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (result > MAX_SAFE_VARINT) throw new FormatError('varint too large', this.pos);
        this.pos = pos;
        return result;
      }
      scale *= 128;
    }
    throw new FormatError('varint longer than 10 bytes', this.pos);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  utf8(n: number): string {
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  private need(n: number): void {
    if (n > this.end - this.pos) throw new FormatError(`needs ${n} bytes, has ${this.end - this.pos}`, this.pos);
  }
}

/** A growable byte buffer for encoders. */
export class ByteSink {
  buf: Buffer;
  length = 0;
  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(10);
    const buf = this.buf;
    let pos = this.length;
    while (v >= 0x80) {
      buf[pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
    this.length = pos;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.length);
    this.length += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.length);
    this.length += 4;
  }

  u64(v: number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** varint length + UTF-8 bytes. */
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.bytes(b);
  }

  /** A copy of the contents. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.length));
    this.length = 0;
    return out;
  }

  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

/** Bytes a varint of value v takes. */
export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}
