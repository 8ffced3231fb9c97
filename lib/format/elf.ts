// Names for native frames that the recorder could only give as an offset into their shared
// object: `dladdr` reads the dynamic symbol table, which holds exported functions only, so a
// static function (numpy's `default_malloc`, most of a library's internals) is recorded as
// "0x173ff8". Readers look such offsets up in the object's full ELF symbol table (.symtab), when
// the object is still where it was and unchanged since the recording (its modification time is
// not after the profile's start), and keep the offset otherwise (stripped objects, another
// machine, a rebuilt library). Only 64-bit little-endian ELF (x86-64, AArch64), as recorded.
//
// Everything read from the object is bounded by its size: a hostile or truncated file yields no
// names, never an exception or a large allocation.

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

const SHT_SYMTAB = 2;
const PT_LOAD = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
/** The largest symbol or string table read (libraries with debug symbols stay far below). */
const MAX_TABLE_BYTES = 256 * 1024 * 1024;
const PAGE = 4096;

/** The function symbols of one object, sorted by address. */
class SymbolTable {
  constructor(
    private readonly starts: Float64Array,
    private readonly sizes: Float64Array,
    private readonly nameOffsets: Uint32Array,
    private readonly strtab: Buffer,
    /** The link-time address that the object's load base (dladdr's dli_fbase) corresponds to. */
    private readonly baseVaddr: number,
  ) {}

  /** The function containing a return address given as an offset from the load base. */
  lookup(offset: number): string | null {
    // A return address can be one past the end of its caller (a call as the last instruction).
    const addr = this.baseVaddr + offset - 1;
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! <= addr) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Symbols that share the address: any of them with a size covering it.
    for (let i = found; i >= 0 && this.starts[i] === this.starts[found]; i--) {
      if (addr < this.starts[i]! + this.sizes[i]!) return this.name(this.nameOffsets[i]!);
    }
    return null;
  }

  private name(offset: number): string | null {
    if (offset >= this.strtab.length) return null;
    const end = this.strtab.indexOf(0, offset);
    if (end <= offset) return null;
    return this.strtab.toString('utf8', offset, end);
  }
}

function readAt(fd: number, position: number, length: number): Buffer | null {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) return null;
    done += n;
  }
  return buf;
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** The function symbols of the ELF file at `path`, or null (not ELF64 LE, no .symtab, changed, unreadable). */
export function readSymbolTable(path: string, notModifiedAfterMs = Infinity): SymbolTable | null {
  let fd: number;
  try {
    // Non-blocking: a FIFO named by a hostile profile must not wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.mtimeMs > notModifiedAfterMs) return null;
    const size = st.size;
    const fits = (off: number, len: number): boolean => off >= 0 && len >= 0 && off + len <= size;
    const eh = size >= 64 ? readAt(fd, 0, 64) : null;
    if (!eh || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return null;
    const phoff = u64(eh, 0x20);
    const shoff = u64(eh, 0x28);
    const phentsize = eh.readUInt16LE(0x36);
    const phnum = eh.readUInt16LE(0x38);
    const shentsize = eh.readUInt16LE(0x3a);
    const shnum = eh.readUInt16LE(0x3c);
    if (phentsize < 56 || shentsize < 64 || !fits(phoff, phnum * phentsize) || !fits(shoff, shnum * shentsize)) return null;

    // dli_fbase is where the first loadable segment's page was mapped.
    const ph = readAt(fd, phoff, phnum * phentsize);
    if (!ph) return null;
    let baseVaddr = -1;
    for (let i = 0; i < phnum; i++) {
      if (ph.readUInt32LE(i * phentsize) === PT_LOAD) {
        baseVaddr = Math.floor(u64(ph, i * phentsize + 0x10) / PAGE) * PAGE;
        break;
      }
    }
    if (baseVaddr < 0) return null;

    const sh = readAt(fd, shoff, shnum * shentsize);
    if (!sh) return null;
    let symtab = -1;
    for (let i = 0; i < shnum; i++) if (sh.readUInt32LE(i * shentsize + 4) === SHT_SYMTAB) symtab = i;
    if (symtab < 0) return null;
    const at = symtab * shentsize;
    const symOff = u64(sh, at + 0x18);
    const symSize = u64(sh, at + 0x20);
    const link = sh.readUInt32LE(at + 0x28);
    const entsize = u64(sh, at + 0x38) || 24;
    if (link >= shnum || entsize < 24 || symSize > MAX_TABLE_BYTES || !fits(symOff, symSize)) return null;
    const strOff = u64(sh, link * shentsize + 0x18);
    const strSize = u64(sh, link * shentsize + 0x20);
    if (strSize > MAX_TABLE_BYTES || !fits(strOff, strSize)) return null;
    const syms = readAt(fd, symOff, symSize);
    const strtab = readAt(fd, strOff, strSize);
    if (!syms || !strtab) return null;

    const count = Math.floor(symSize / entsize);
    const order: number[] = [];
    for (let i = 0; i < count; i++) {
      const e = i * entsize;
      const type = syms[e + 4]! & 0xf;
      const shndx = syms.readUInt16LE(e + 6);
      if ((type === STT_FUNC || type === STT_GNU_IFUNC) && shndx !== 0 && u64(syms, e + 16) > 0 && u64(syms, e + 8) > 0) order.push(e);
    }
    order.sort((a, b) => u64(syms, a + 8) - u64(syms, b + 8));
    const starts = new Float64Array(order.length);
    const sizes = new Float64Array(order.length);
    const names = new Uint32Array(order.length);
    order.forEach((e, i) => {
      starts[i] = u64(syms, e + 8);
      sizes[i] = u64(syms, e + 16);
      names[i] = syms.readUInt32LE(e);
    });
    return new SymbolTable(starts, sizes, names, strtab, baseVaddr);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

const HEX_OFFSET = /^0x[0-9a-f]{1,12}$/;

/** Resolves recorded offsets to static function names, one symbol table per object, read once. */
export class Symbolizer {
  private readonly tables = new Map<string, SymbolTable | null>();

  /** `startTimeUs`: the profile's start (µs since the epoch); 0 when unknown (no check). */
  constructor(private readonly startTimeUs: number) {}

  /** The name for a native frame's function, or the function as recorded. */
  name(fn: string | null, file: string): string | null {
    if (fn === null || !HEX_OFFSET.test(fn) || !file.startsWith('/')) return fn;
    let table = this.tables.get(file);
    if (table === undefined) {
      table = readSymbolTable(file, this.startTimeUs > 0 ? this.startTimeUs / 1000 : Infinity);
      this.tables.set(file, table);
    }
    return table?.lookup(Number.parseInt(fn.slice(2), 16)) ?? fn;
  }
}
