// The seek index of an hpx v2 profile (BASE.hpi, man/hpx.5 "INDEX FILE"): every .hpd block's
// offset and times, plus periodic checkpoints of the live heap per trace, so that a snapshot at
// T or a history from T decodes at most one checkpoint interval instead of everything before T.
// Written by the reader on first use; a stale (profile changed or grew) or corrupt index is
// detected and rebuilt. Results through the index are identical to a full decode.
//
// This file is the bytes half: the records (blocks, checkpoint columns, fingerprint), their
// encoding and checks, and loading a .hpi or writing a fresh one. What a checkpoint holds is
// computed by the model: lib/model/checkpoints.ts builds the index with a LiveHeap (an
// IndexBuilder passed to loadIndexWith) and reads through it (snapshots, history from T).

import { constants as fsConstants, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { HpError } from '../cli.js';
import { BlockFile } from './block-file.js';
import { crc32, FormatError } from './bytes.js';
import { MAX_TIME_US } from './events.js';
import { decodeHeaderBody, readFileHeader } from './hpx.js';
import { BLOCK_HEADER_SIZE, HPM_MAGIC } from './hpx-writer.js';
import { profileBase } from './profile.js';
import type { EventBatch, ProfileSource, ReadOptions } from './source.js';
import type { Header, ReadIssue, Sampling } from './types.js';

export const INDEX_MAGIC = Buffer.from('HPXI', 'latin1');
export const INDEX_VERSION = 4; // 2: .hpd identity and block-header CRC in the fingerprint; 3: the split peak; 4: issues name blocks by offset only
const INDEX_HEADER_SIZE = 80;
/** Bytes of the end of the .hpd whose CRC the index keeps, to notice a rewritten profile. */
const TAIL_BYTES = 65536;
/** Checkpoint at least this often (bytes of .hpd): bounds what a seek decodes. */
export const DEFAULT_CHECKPOINT_BYTES = 8 * 1024 * 1024;

/** The live heap (LiveHeap's columns) and the reader's clock, just before a block. */
export interface Checkpoint {
  /** Offset of the block this state precedes (a valid block: reading starts there). */
  offset: number;
  /** Highest event time before the block: the state is the snapshot for any T >= this. */
  maxBeforeUs: number;
  /** liveHeapAt's clock state at that point (the last alloc/free time, the last event time). */
  curUs: number;
  lastUs: number;
  /** The last RSS sample before the block (-1 if none) and its time. */
  lastRss: number;
  lastRssUs: number;
  slots: number;
  traceOfSlot: Uint32Array;
  bytes: Float64Array;
  bytesVar: Float64Array;
  count: Float64Array;
  countVar: Float64Array;
  sampled: Float64Array;
  totals: Float64Array; // bytes, bytesVar, count, countVar, sampled
}

export interface SeekIndex {
  profileId: string;
  /** Offset of the first .hpd block. */
  hpdStart: number;
  /** Per valid block, in file order: offset, block time, and the highest event time in it. */
  blockOffset: Float64Array;
  blockTimeUs: Float64Array;
  blockMaxUs: Float64Array;
  checkpoints: Checkpoint[];
  /**
   * Last event time read (as liveHeapAt counts it), the peak moment and the estimate it is the
   * highest of (a sampled profile's: half A's bytes, lib/model/split.ts).
   */
  lastUs: number;
  peakUs: number;
  peakBytes: number;
  /** A sampled profile's heap at the peak as half B estimates it (null for an exact profile: replay to peakUs). */
  peakHalf: Checkpoint | null;
  events: number;
  /** END was seen. */
  complete: boolean;
  /** Event times never decrease (every v2 writer guarantees it; peak seeks rely on it). */
  monotone: boolean;
  /** Problems met while building, reported again to whoever reads through the index. */
  issues: ReadIssue[];
  /** For a profile without END (still being written): where and in what state indexing stopped, to extend it when the profile grows. */
  tail: Tail | null;
}

/** The index builder's state after the last block it read (a checkpoint plus its loop state). */
export interface Tail {
  /** checkpoint.offset: the end of the last block read, where reading resumes. */
  checkpoint: Checkpoint;
  prevRawUs: number;
  sinceCheckpoint: number;
  /** BlockFile's count of blocks read so far (kept in the index format; messages name blocks by offset). */
  nextBlockIndex: number;
  /** A sampled profile's split: its state and half B's heap (the peak so far is the index's peakHalf). */
  half: { split: SplitState; heap: Checkpoint } | null;
}

/** What continues a split of the draws (lib/model/split.ts): events drawn, A's total, per-pair counts. */
export interface SplitState {
  ordinal: number;
  totalA: number;
  /** Five f64 per (trace, size) with live draws: trace, size, in A only, in B only, in both; in (trace, size) order. */
  pairs: Float64Array;
}

export interface Fingerprint {
  hpdSize: number;
  hpdHeadCrc: number;
  hpdTailCrc: number;
  hpmHeaderCrc: number;
  modelCrc: number;
  /**
   * CRC-32 of the .hpd's device, inode, mtime and ctime (ns): any write to the .hpd changes
   * its ctime, which no one can set back, so a byte changed anywhere in the profile (not only
   * in the head and tail the CRCs above cover) makes the index stale. A copied profile gets
   * a new inode and ctime: its index is rebuilt once.
   */
  hpdIdentityCrc: number;
}

/** Where the index of a profile lives. */
export function indexPath(arg: string): string {
  return `${profileBase(arg)}.hpi`;
}

async function readRange(path: string, offset: number, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function identityCrc(st: { dev: bigint; ino: bigint; mtimeNs: bigint; ctimeNs: bigint }): number {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(BigInt.asUintN(64, st.dev), 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, st.ino), 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, st.mtimeNs), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, st.ctimeNs), 24);
  return crc32(b);
}

async function fingerprintOf(base: string, modelCrc: number): Promise<Fingerprint> {
  const hpd = `${base}.hpd`;
  const st = await stat(hpd, { bigint: true });
  const hpdSize = Number(st.size);
  const head = await readRange(hpd, 0, 32);
  const tailStart = Math.max(0, hpdSize - TAIL_BYTES);
  const tail = await readRange(hpd, tailStart, hpdSize - tailStart);
  const hpmHead = await readRange(`${base}.hpm`, 0, 32);
  return {
    hpdSize,
    hpdHeadCrc: crc32(head),
    hpdTailCrc: crc32(tail),
    hpmHeaderCrc: hpmHead.length === 32 ? hpmHead.readUInt32LE(28) : 0,
    modelCrc,
    hpdIdentityCrc: identityCrc(st),
  };
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return (
    a.hpdSize === b.hpdSize &&
    a.hpdHeadCrc === b.hpdHeadCrc &&
    a.hpdTailCrc === b.hpdTailCrc &&
    a.hpmHeaderCrc === b.hpmHeaderCrc &&
    a.modelCrc === b.modelCrc &&
    a.hpdIdentityCrc === b.hpdIdentityCrc
  );
}

/**
 * CRC-32 of the 24-byte header of every block the index lists, read from the .hpd now (each
 * header holds its block's payload CRC): the index's block list is only used when it names
 * real blocks of this file. One small read per block (about 2 µs each from the page cache).
 * Null when an offset does not hold a block header.
 */
function blockHeadersCrc(hpdPath: string, offsets: Float64Array): number | null {
  const fd = openSync(hpdPath, 'r');
  try {
    const head = Buffer.alloc(BLOCK_HEADER_SIZE);
    let crc = 0;
    for (let b = 0; b < offsets.length; b++) {
      if (readSync(fd, head, 0, BLOCK_HEADER_SIZE, offsets[b]!) !== BLOCK_HEADER_SIZE || head.readUInt32LE(0) !== 0x4b4c4248) return null;
      crc = crc32(head, crc);
    }
    return crc;
  } finally {
    closeSync(fd);
  }
}

export interface BuildOptions {
  checkpointBytes?: number;
  /** Bytes of .hpd read so far and total, while building (progress on a terminal). */
  onProgress?: (bytesRead: number, totalBytes: number) => void;
}

// ---- serialization (layout in man/hpx.5, INDEX FILE) ----

function pad8(n: number): number {
  return (n + 7) & ~7;
}

export function encodeIndex(idx: SeekIndex, fp: Fingerprint, blocksCrc: number): Buffer {
  const issuesJson = Buffer.from(JSON.stringify(idx.issues.slice(0, 1000)), 'utf8');
  const nBlocks = idx.blockOffset.length;
  let bodySize = 8 * 10 + 24 * nBlocks;
  const cpSize = (cp: Checkpoint): number => 8 * 12 + pad8(4 * cp.slots) + 40 * cp.slots;
  for (const cp of idx.checkpoints) bodySize += cpSize(cp);
  if (idx.peakHalf) bodySize += cpSize(idx.peakHalf);
  if (idx.tail) bodySize += 8 * 3 + cpSize(idx.tail.checkpoint);
  const half = idx.tail?.half;
  if (half) bodySize += 8 * 3 + 8 * half.split.pairs.length + cpSize(half.heap);
  bodySize += pad8(issuesJson.length);
  const out = Buffer.alloc(INDEX_HEADER_SIZE + bodySize);
  INDEX_MAGIC.copy(out, 0);
  out.writeUInt16LE(INDEX_VERSION, 4);
  out.writeUInt16LE(0, 6);
  Buffer.from(idx.profileId, 'hex').copy(out, 8, 0, 16);
  out.writeDoubleLE(fp.hpdSize, 24);
  out.writeUInt32LE(fp.hpdHeadCrc, 32);
  out.writeUInt32LE(fp.hpdTailCrc, 36);
  out.writeUInt32LE(fp.hpmHeaderCrc, 40);
  out.writeUInt32LE(fp.modelCrc, 44);
  out.writeDoubleLE(bodySize, 48);
  out.writeUInt32LE(fp.hpdIdentityCrc, 64);
  out.writeUInt32LE(blocksCrc, 68);
  // 56: body CRC, 60: header CRC, 72..79 reserved (zero)
  const f64 = new Float64Array(out.buffer, out.byteOffset + INDEX_HEADER_SIZE, bodySize / 8);
  let k = 0;
  f64[k++] = idx.hpdStart;
  f64[k++] = nBlocks;
  f64[k++] = idx.checkpoints.length;
  f64[k++] = idx.lastUs;
  f64[k++] = idx.peakUs;
  f64[k++] = idx.peakBytes;
  f64[k++] = idx.events;
  f64[k++] = (idx.complete ? 1 : 0) | (idx.monotone ? 2 : 0) | (idx.peakHalf ? 4 : 0);
  f64[k++] = issuesJson.length;
  f64[k++] = idx.tail ? (half ? 2 : 1) : 0;
  f64.set(idx.blockOffset, k);
  k += nBlocks;
  f64.set(idx.blockTimeUs, k);
  k += nBlocks;
  f64.set(idx.blockMaxUs, k);
  k += nBlocks;
  const putCheckpoint = (cp: Checkpoint): void => {
    f64[k++] = cp.offset;
    f64[k++] = cp.maxBeforeUs;
    f64[k++] = cp.curUs;
    f64[k++] = cp.lastUs;
    f64[k++] = cp.lastRss;
    f64[k++] = cp.lastRssUs;
    f64[k++] = cp.slots;
    f64.set(cp.totals, k);
    k += 5;
    new Uint32Array(f64.buffer, f64.byteOffset + 8 * k, cp.slots).set(cp.traceOfSlot);
    k += pad8(4 * cp.slots) / 8;
    for (const col of [cp.bytes, cp.bytesVar, cp.count, cp.countVar, cp.sampled]) {
      f64.set(col, k);
      k += cp.slots;
    }
  };
  for (const cp of idx.checkpoints) putCheckpoint(cp);
  if (idx.peakHalf) putCheckpoint(idx.peakHalf);
  if (idx.tail) {
    f64[k++] = idx.tail.prevRawUs;
    f64[k++] = idx.tail.sinceCheckpoint;
    f64[k++] = idx.tail.nextBlockIndex;
    putCheckpoint(idx.tail.checkpoint);
  }
  if (half) {
    f64[k++] = half.split.ordinal;
    f64[k++] = half.split.totalA;
    f64[k++] = half.split.pairs.length / 5;
    f64.set(half.split.pairs, k);
    k += half.split.pairs.length;
    putCheckpoint(half.heap);
  }
  issuesJson.copy(out, INDEX_HEADER_SIZE + 8 * k);
  out.writeUInt32LE(crc32(out.subarray(INDEX_HEADER_SIZE)), 56);
  out.writeUInt32LE(crc32(out.subarray(0, 60), crc32(out.subarray(64, 80))), 60);
  return out;
}

/** Parse an index file. Throws FormatError (with the offset) on anything inconsistent. */
export function decodeIndex(buf: Buffer): { index: SeekIndex; fingerprint: Fingerprint; blocksCrc: number } {
  if (buf.length < INDEX_HEADER_SIZE) throw new FormatError('truncated index header', buf.length);
  if (!buf.subarray(0, 4).equals(INDEX_MAGIC)) throw new FormatError('not a heapprof index (bad magic)', 0);
  if (buf.readUInt16LE(4) !== INDEX_VERSION) throw new FormatError(`unsupported index version ${buf.readUInt16LE(4)}`, 4);
  if (buf.readUInt32LE(60) !== crc32(buf.subarray(0, 60), crc32(buf.subarray(64, 80)))) throw new FormatError('index header checksum mismatch', 60);
  const bodySize = buf.readDoubleLE(48);
  if (bodySize % 8 !== 0 || INDEX_HEADER_SIZE + bodySize !== buf.length) throw new FormatError(`index body of ${bodySize} bytes does not match the file`, 48);
  const bodyBytes = buf.subarray(INDEX_HEADER_SIZE);
  if (buf.readUInt32LE(56) !== crc32(bodyBytes)) throw new FormatError('index body checksum mismatch', 56);
  // Typed-array views need 8-byte alignment: a freshly read file has it (no copy); else copy once.
  // Everything below is a view into this one buffer, so loading costs about one CRC pass.
  let body: Float64Array;
  if (bodyBytes.byteOffset % 8 === 0) body = new Float64Array(bodyBytes.buffer, bodyBytes.byteOffset, bodySize / 8);
  else {
    body = new Float64Array(bodySize / 8);
    new Uint8Array(body.buffer).set(bodyBytes);
  }
  const view = (from: number, n: number): Float64Array => body.subarray(from, from + n);
  const fingerprint: Fingerprint = {
    hpdSize: buf.readDoubleLE(24),
    hpdHeadCrc: buf.readUInt32LE(32),
    hpdTailCrc: buf.readUInt32LE(36),
    hpmHeaderCrc: buf.readUInt32LE(40),
    modelCrc: buf.readUInt32LE(44),
    hpdIdentityCrc: buf.readUInt32LE(64),
  };
  let k = 0;
  const need = (n: number): void => {
    if (!Number.isSafeInteger(n) || n < 0 || k + n > body.length) throw new FormatError('index body is inconsistent', INDEX_HEADER_SIZE + 8 * k);
  };
  need(10);
  const hpdStart = body[k++]!;
  const nBlocks = body[k++]!;
  const nCheckpoints = body[k++]!;
  const lastUs = body[k++]!;
  const peakUs = body[k++]!;
  const peakBytes = body[k++]!;
  const events = body[k++]!;
  const flags = body[k++]!;
  const issuesLength = body[k++]!;
  const tailKind = body[k++]!;
  need(3 * nBlocks);
  const blockOffset = view(k, nBlocks);
  k += nBlocks;
  const blockTimeUs = view(k, nBlocks);
  k += nBlocks;
  const blockMaxUs = view(k, nBlocks);
  k += nBlocks;
  need(nCheckpoints);
  const checkpoints: Checkpoint[] = [];
  const getCheckpoint = (): Checkpoint => {
    need(12);
    const offset = body[k++]!;
    const maxBeforeUs = body[k++]!;
    const curUs = body[k++]!;
    const cpLastUs = body[k++]!;
    const lastRss = body[k++]!;
    const lastRssUs = body[k++]!;
    const slots = body[k++]!;
    const totals = view(k, 5);
    k += 5;
    need(pad8(4 * slots) / 8 + 5 * slots);
    const traceOfSlot = new Uint32Array(body.buffer, body.byteOffset + 8 * k, slots);
    k += pad8(4 * slots) / 8;
    const cols: Float64Array[] = [];
    for (let j = 0; j < 5; j++) {
      cols.push(view(k, slots));
      k += slots;
    }
    return { offset, maxBeforeUs, curUs, lastUs: cpLastUs, lastRss, lastRssUs, slots, traceOfSlot, bytes: cols[0]!, bytesVar: cols[1]!, count: cols[2]!, countVar: cols[3]!, sampled: cols[4]!, totals };
  };
  for (let c = 0; c < nCheckpoints; c++) checkpoints.push(getCheckpoint());
  const peakHalf = flags & 4 ? getCheckpoint() : null;
  let tail: Tail | null = null;
  if (tailKind === 1 || tailKind === 2) {
    need(3);
    const prevRawUs = body[k++]!;
    const sinceCheckpoint = body[k++]!;
    const nextBlockIndex = body[k++]!;
    tail = { prevRawUs, sinceCheckpoint, nextBlockIndex, checkpoint: getCheckpoint(), half: null };
    if (tailKind === 2) {
      need(3);
      const ordinal = body[k++]!;
      const totalA = body[k++]!;
      const nPairs = body[k++]!;
      need(5 * nPairs);
      const pairs = view(k, 5 * nPairs);
      k += 5 * nPairs;
      tail.half = { split: { ordinal, totalA, pairs }, heap: getCheckpoint() };
    }
  } else if (tailKind !== 0) throw new FormatError('index tail kind is unknown', INDEX_HEADER_SIZE + 8 * 9);
  need(pad8(issuesLength) / 8);
  let issues: ReadIssue[];
  try {
    issues = JSON.parse(Buffer.from(body.buffer, body.byteOffset + 8 * k, issuesLength).toString('utf8')) as ReadIssue[];
  } catch {
    throw new FormatError('index issue list is not JSON', INDEX_HEADER_SIZE + 8 * k);
  }
  k += pad8(issuesLength) / 8;
  if (k !== body.length) throw new FormatError('index body has trailing bytes', INDEX_HEADER_SIZE + 8 * k);
  const index: SeekIndex = {
    profileId: buf.subarray(8, 24).toString('hex'),
    hpdStart,
    blockOffset,
    blockTimeUs,
    blockMaxUs,
    checkpoints,
    lastUs,
    peakUs,
    peakBytes,
    peakHalf,
    events,
    complete: (flags & 1) !== 0,
    monotone: (flags & 2) !== 0,
    issues,
    tail,
  };
  checkIndex(index, fingerprint.hpdSize);
  return { index, fingerprint, blocksCrc: buf.readUInt32LE(68) };
}

/**
 * Everything the readers rely on in a decoded index, checked (a .hpi with valid checksums can
 * still be hostile): every number finite and in range, blocks in file order inside the .hpd,
 * checkpoints at listed blocks with distinct traces and finite sums, issues well formed.
 * Throws FormatError: the index is then rebuilt, never trusted.
 */
function checkIndex(idx: SeekIndex, hpdSize: number): void {
  const bad = (what: string): never => {
    throw new FormatError(`index ${what}`, INDEX_HEADER_SIZE);
  };
  const time = (v: number): boolean => Number.isFinite(v) && v >= 0 && v <= MAX_TIME_US;
  if (!Number.isSafeInteger(hpdSize) || hpdSize < 32) bad('records an impossible .hpd size');
  if (!Number.isSafeInteger(idx.hpdStart) || idx.hpdStart < 32 || idx.hpdStart > hpdSize) bad('has an impossible first block offset');
  for (const v of [idx.lastUs, idx.peakUs]) if (!time(v)) bad('has an impossible time');
  if (!Number.isFinite(idx.peakBytes) || !Number.isSafeInteger(idx.events) || idx.events < 0) bad('has impossible totals');
  const offsets = new Set<number>();
  let prev = -1;
  for (let b = 0; b < idx.blockOffset.length; b++) {
    const off = idx.blockOffset[b]!;
    if (!Number.isSafeInteger(off) || off <= prev || off < idx.hpdStart || off + BLOCK_HEADER_SIZE > hpdSize) bad(`block ${b} has an impossible offset`);
    if (!time(idx.blockTimeUs[b]!) || !time(idx.blockMaxUs[b]!)) bad(`block ${b} has an impossible time`);
    offsets.add(off);
    prev = off;
  }
  const checkCheckpoint = (cp: Checkpoint, isTail: boolean): void => {
    // A tail's (and the split peak's) state is at a block end, which need not start a listed block.
    if (!Number.isSafeInteger(cp.offset) || (isTail ? cp.offset < idx.hpdStart || cp.offset > hpdSize : !offsets.has(cp.offset))) bad('checkpoint is not at a listed block');
    for (const v of [cp.maxBeforeUs, cp.curUs, cp.lastUs, cp.lastRssUs]) if (!(v === -Infinity || time(v))) bad('checkpoint has an impossible time');
    if (!Number.isFinite(cp.lastRss) || cp.lastRss < -1) bad('checkpoint has an impossible RSS');
    const seen = new Set<number>();
    for (let s = 0; s < cp.slots; s++) seen.add(cp.traceOfSlot[s]!);
    if (seen.size !== cp.slots) bad('checkpoint repeats a trace');
    for (const col of [cp.bytes, cp.bytesVar, cp.count, cp.countVar, cp.sampled, cp.totals]) {
      for (let s = 0; s < col.length; s++) if (!Number.isFinite(col[s]!)) bad('checkpoint has a sum that is not a number');
    }
  };
  let prevCp = -1;
  for (const cp of idx.checkpoints) {
    checkCheckpoint(cp, false);
    if (cp.offset <= prevCp) bad('checkpoints are out of order');
    prevCp = cp.offset;
  }
  if (idx.peakHalf) checkCheckpoint(idx.peakHalf, true);
  if (idx.tail) {
    checkCheckpoint(idx.tail.checkpoint, true);
    if (!Number.isSafeInteger(idx.tail.nextBlockIndex) || idx.tail.nextBlockIndex < 0 || !Number.isFinite(idx.tail.sinceCheckpoint) || !(idx.tail.prevRawUs === -Infinity || time(idx.tail.prevRawUs))) bad('tail is inconsistent');
    const half = idx.tail.half;
    if (half) {
      checkCheckpoint(half.heap, true);
      if (!idx.peakHalf) bad('tail has a split but no split peak');
      const { ordinal, totalA, pairs } = half.split;
      if (!Number.isSafeInteger(ordinal) || ordinal < 0 || !Number.isFinite(totalA)) bad('split is inconsistent');
      for (let k = 0; k < pairs.length; k += 5) {
        const trace = pairs[k]!;
        const size = pairs[k + 1]!;
        const counts = [pairs[k + 2]!, pairs[k + 3]!, pairs[k + 4]!];
        if (!Number.isSafeInteger(trace) || trace < 0 || trace > 0xffffffff || !Number.isSafeInteger(size) || size < 0) bad('split names an impossible trace or size');
        if (counts.some((c) => !Number.isSafeInteger(c) || c < 0) || counts[0]! + counts[1]! + counts[2]! === 0) bad('split has impossible counts');
        if (k > 0 && (pairs[k - 5]! > trace || (pairs[k - 5]! === trace && pairs[k - 4]! >= size))) bad('split pairs are out of order');
      }
    }
  }
  if (!Array.isArray(idx.issues)) bad('issue list is not a list');
  for (const i of idx.issues as unknown[]) {
    const o = i as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || typeof o.file !== 'string' || typeof o.message !== 'string' || (o.offset !== undefined && !Number.isSafeInteger(o.offset))) bad('issue list holds something else than issues');
  }
}

// ---- loading, with staleness checks ----

/**
 * Below this .hpd size a full read is fast anyway: commands read directly and write no index.
 * $HEAPPROF_INDEX_MIN_BYTES overrides it (0: index every profile).
 */
export const INDEX_MIN_BYTES = 32 * 1024 * 1024;

/** The size below which profiles are not indexed: $HEAPPROF_INDEX_MIN_BYTES, else INDEX_MIN_BYTES. */
export function defaultMinBytes(): number {
  const env = process.env['HEAPPROF_INDEX_MIN_BYTES'];
  const n = env === undefined || env.trim() === '' ? NaN : Number(env);
  return Number.isFinite(n) && n >= 0 ? n : INDEX_MIN_BYTES;
}

export interface IndexOptions extends BuildOptions {
  /** Profiles whose .hpd is smaller are not indexed (the functions return null); default INDEX_MIN_BYTES. */
  minBytes?: number;
  /** Write BASE.hpi when (re)built (default true; an unwritable directory just keeps it in memory). */
  write?: boolean;
  /** Told why an existing index was not used ("stale: ...", "corrupt: ..."); not an error. */
  onNote?: (message: string) => void;
}

/**
 * What computes an index's contents (lib/model/checkpoints.ts, with a LiveHeap): a CRC of the
 * model's arithmetic under this sampler (kept in the fingerprint: when it changes, old
 * checkpoints are rebuilt), and the build itself (from scratch, or continuing `resume`'s tail).
 */
export interface IndexBuilder {
  modelCrc(sampling: Sampling): number;
  build(base: string, header: Header, opts: BuildOptions, resume: SeekIndex | null): Promise<SeekIndex>;
}

export interface LoadedIndex {
  index: SeekIndex;
  /** How the index was obtained: read, built from scratch, or extended after the profile grew. */
  origin: 'file' | 'built' | 'extended';
}

/**
 * The index of an hpx v2 profile: BASE.hpi when it is valid for the profile as it is now,
 * else built by `builder` reading the profile once (and written to BASE.hpi). Null for a
 * profile that cannot be indexed (heapprof 1.0.x). Callers use loadIndex in
 * lib/model/checkpoints.ts, which passes the live-heap builder.
 */
export async function loadIndexWith(arg: string, header: Header, builder: IndexBuilder, opts: IndexOptions = {}): Promise<LoadedIndex | null> {
  if (header.formatVersion !== 2 || header.profileId === null) return null;
  const base = profileBase(arg);
  const path = indexPath(base);
  const modelCrc = builder.modelCrc(header.sampling);
  const fp = await fingerprintOf(base, modelCrc);
  let existing: Buffer | null = null;
  try {
    existing = readIndexFile(path, fp.hpdSize);
  } catch (e) {
    if (e instanceof FormatError) opts.onNote?.(`${path}: ${e.message}; rebuilding`);
    else if ((e as NodeJS.ErrnoException).code !== 'ENOENT') opts.onNote?.(`${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); rebuilding`);
  }
  let resume: SeekIndex | null = null;
  if (existing) {
    try {
      const { index, fingerprint, blocksCrc } = decodeIndex(existing);
      if (index.profileId !== header.profileId) opts.onNote?.(`${path}: belongs to another profile; rebuilding`);
      else if (sameFingerprint(fingerprint, fp) && blockHeadersCrc(`${base}.hpd`, index.blockOffset) !== blocksCrc) {
        opts.onNote?.(`${path}: its block list does not match the profile; rebuilding`);
      } else if (!sameFingerprint(fingerprint, fp)) {
        if (await grewFrom(base, index, fingerprint, fp, blocksCrc)) {
          resume = index;
          opts.onNote?.(`${path}: profile grew from ${fingerprint.hpdSize} to ${fp.hpdSize} bytes; extending the index`);
        } else {
          opts.onNote?.(`${path}: stale (${fingerprint.hpdSize !== fp.hpdSize ? `profile was ${fingerprint.hpdSize} bytes, is ${fp.hpdSize}` : 'profile changed'}); rebuilding`);
        }
      } else return { index, origin: 'file' };
    } catch (e) {
      // Whatever is wrong with an index (it is a cache), the answer is to rebuild it.
      opts.onNote?.(e instanceof FormatError ? `${path}: corrupt (byte ${e.at}: ${e.message}); rebuilding` : `${path}: unusable (${(e as Error).message}); rebuilding`);
      resume = null;
    }
  }
  const index = await builder.build(base, header, opts, resume);
  // The profile may have grown while we read it: only keep an index that matches what we read.
  const after = await fingerprintOf(base, modelCrc);
  if (opts.write !== false && sameFingerprint(after, fp)) {
    // A fresh name, created exclusively and never through a symlink (O_EXCL, O_NOFOLLOW), with
    // the profile's own permissions; rename() then replaces BASE.hpi itself, never what a
    // symlink there points to.
    const tmp = `${path}.${process.pid}.${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}.tmp`;
    let created = false;
    try {
      const mode = (await stat(`${base}.hpd`)).mode & 0o666;
      const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, mode);
      created = true;
      try {
        await fh.chmod(mode); // open's mode is reduced by the umask; the profile's is what it is
        await fh.writeFile(encodeIndex(index, fp, blockHeadersCrc(`${base}.hpd`, index.blockOffset) ?? 0));
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e) {
      opts.onNote?.(`${path}: not written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); using it in memory`);
      if (created) await unlink(tmp).catch(() => {});
    }
  }
  return { index, origin: resume ? 'extended' : 'built' };
}

/**
 * The bytes of BASE.hpi: opened without following a symlink, only a regular file, and no
 * larger than an index of this .hpd can be (16 times the .hpd plus 1 MiB: a checkpoint costs
 * 44 bytes per trace and a trace at least 3 bytes of events). Throws FormatError for a file
 * that cannot be an index, the system error otherwise.
 */
function readIndexFile(path: string, hpdSize: number): Buffer {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FormatError('not a regular file', 0);
    if (st.size > 16 * hpdSize + (1 << 20)) throw new FormatError(`${st.size} bytes is too large for the index of a ${hpdSize}-byte profile`, 0);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new FormatError('is a symbolic link', 0);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Did the profile only grow since `old` was built (a recorder appended blocks)? Then the index
 * can be extended from its tail instead of rebuilt: same header, same sampler and model, and
 * the bytes the old index last saw are still there, unchanged.
 */
async function grewFrom(base: string, old: SeekIndex, was: Fingerprint, now: Fingerprint, blocksCrc: number): Promise<boolean> {
  if (!old.tail || old.complete || now.hpdSize <= was.hpdSize) return false;
  if (was.hpdHeadCrc !== now.hpdHeadCrc || was.hpmHeaderCrc !== now.hpmHeaderCrc || was.modelCrc !== now.modelCrc) return false;
  if (old.tail.checkpoint.offset > was.hpdSize || blockHeadersCrc(`${base}.hpd`, old.blockOffset) !== blocksCrc) return false;
  const from = Math.max(0, was.hpdSize - TAIL_BYTES);
  return crc32(await readRange(`${base}.hpd`, from, was.hpdSize - from)) === was.hpdTailCrc;
}

/** The latest checkpoint whose state is the right start for time T (events before it all <= T). */
export function checkpointBefore(index: SeekIndex, tUs: number): Checkpoint | null {
  let lo = 0;
  let hi = index.checkpoints.length - 1;
  let best: Checkpoint | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const cp = index.checkpoints[mid]!;
    if (cp.maxBeforeUs <= tUs) {
      best = cp;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** .hpd offset to start reading events at or after `fromUs` (hp-events --from): the first block that can hold one. */
export function eventsStartOffset(index: SeekIndex, fromUs: number): number {
  const n = index.blockMaxUs.length;
  for (let b = 0; b < n; b++) if (index.blockMaxUs[b]! >= fromUs) return index.blockOffset[b]!;
  return n > 0 ? index.blockOffset[n - 1]! : index.hpdStart;
}

// ---- reading through the index ----

/**
 * The header of an hpx v2 profile, read without its dictionary (the source opened next reads
 * that); null for anything else, which the caller then opens the usual way (and gets the usual
 * errors for).
 */
export async function v2Header(arg: string, minBytes: number): Promise<Header | null> {
  const base = profileBase(arg);
  try {
    if ((await stat(`${base}.hpd`)).size < minBytes) return null;
  } catch {
    return null;
  }
  let f: BlockFile;
  try {
    f = await BlockFile.open(`${base}.hpm`);
  } catch {
    return null;
  }
  try {
    const head = await f.read(0, 4);
    if (!head.equals(HPM_MAGIC)) return null;
    const fh = await readFileHeader(f, HPM_MAGIC);
    return decodeHeaderBody(fh.body, fh.profileId, f.path);
  } finally {
    await f.close();
  }
}

/**
 * Report the issues the index found before `upTo` (what a full read would have met before the
 * point where reading now starts), then pass on the source's own, once per offset.
 */
export function issueForwarder(index: SeekIndex, opts: ReadOptions, upTo: number): ReadOptions {
  const seen = new Set<string>();
  for (const i of index.issues) {
    if (i.offset === undefined || i.offset >= upTo) continue;
    // Worded as the reader words it in strict mode (IssueSink): "FILE at byte N: ...".
    if (opts.strict) throw new HpError(`${i.file} at byte ${i.offset}: ${i.message.replace(/^byte \d+: /, '')}`);
    seen.add(`${i.file}\0${i.offset}`);
    opts.onIssue?.(i);
  }
  return {
    ...opts,
    onIssue: (i) => {
      if (i.offset !== undefined && seen.has(`${i.file}\0${i.offset}`)) return;
      opts.onIssue?.(i);
    },
  };
}

/**
 * A source that reports `complete` from the index: a peak read through the index stops at the
 * peak, yet the profile's END marker is known (a full read for the peak reads everything).
 */
export class IndexedSource implements ProfileSource {
  constructor(
    private readonly inner: ProfileSource,
    private readonly completeFromIndex: boolean | null,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  get header(): Header {
    return this.inner.header;
  }
  trace(id: number): ReturnType<ProfileSource['trace']> {
    return this.inner.trace(id);
  }
  traces(): ReturnType<ProfileSource['traces']> {
    return this.inner.traces();
  }
  traceFrameIndexes(id: number): ReturnType<NonNullable<ProfileSource['traceFrameIndexes']>> {
    return this.inner.traceFrameIndexes?.(id);
  }
  frameAt(index: number): ReturnType<NonNullable<ProfileSource['frameAt']>> {
    return this.inner.frameAt!(index);
  }
  get histogram(): ProfileSource['histogram'] {
    return this.inner.histogram;
  }
  batches(): AsyncIterable<EventBatch> {
    return this.inner.batches();
  }
  get complete(): boolean {
    return (this.completeFromIndex ?? this.inner.complete) && !this.inner.metadataTruncated;
  }
  get metadataTruncated(): boolean {
    return this.inner.metadataTruncated === true;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
