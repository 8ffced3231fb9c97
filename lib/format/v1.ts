// heapprof 1.0.x profiles (man/hpx.5, HEAPPROF 1.0.x FILES): big-endian header with a
// fixed32 version 1, traces appended to .hpm, fixed-size-prefix events in .hpd with signed
// time deltas. No blocks, checksums or end marker: a reader stops at the first event it
// cannot decode whole. Also a writer, for tests and fixtures.

import { readFile } from 'node:fs/promises';
import { HpError } from '../cli.js';
import { BlockFile } from './block-file.js';
import { ByteSink, Cursor, FormatError } from './bytes.js';
import { OP_ALLOC, OP_FREE, type EventBatch, type ProfileSource, type ReadOptions } from './source.js';
import { MAX_NAME_LENGTH, MAX_TRACE_FRAMES, NO_STACK_TRACE, type Frame, type Header, type Sampling, type Trace } from './types.js';

const NEGATIVE = 0x80000000;
const FREE = 0x40000000;
const INDEX_MASK = 0x3fffffff;
const SCALE = 0xffffffff;
const BATCH = 1 << 14;

/** True when the first bytes of an .hpm are heapprof 1.0.x's big-endian version word. */
/** heapprof 1.0.x header sanity limits (it has no checksum). */
const V1_MAX_RANGES = 64;
const V1_MAX_BOUND = 2 ** 48;

export function isV1Header(first4: Buffer): boolean {
  return first4.length >= 4 && first4.readUInt32BE(0) === 1;
}

/** Big-endian u64 as a number (exact below 2^53; sampling bounds above that are "infinite"). */
function u64be(c: Cursor): number {
  const hi = c.bytes(4).readUInt32BE(0);
  const lo = c.bytes(4).readUInt32BE(0);
  return hi * 0x100000000 + lo;
}

export class V1Profile implements ProfileSource {
  readonly name: string;
  private readonly traceTable: Trace[] = [NO_STACK_TRACE];
  readonly histogram = null;
  private started = false;

  private constructor(
    readonly header: Header,
    private readonly hpd: BlockFile,
    private readonly opts: ReadOptions,
    base: string,
  ) {
    this.name = base;
  }

  static async open(base: string, hpmPath: string, hpdPath: string, opts: ReadOptions): Promise<V1Profile> {
    const meta = await readFile(hpmPath);
    const c = new Cursor(meta);
    let header: Header;
    const traces: Trace[] = [];
    try {
      c.bytes(4); // version, checked by the caller
      // No checksum in this format: every field is range-checked so that most flipped bits
      // are caught (man/hpx.5, HEAPPROF 1.0.x FILES).
      const sec = u64be(c);
      if (sec >= 2 ** 33) throw new FormatError(`start time ${sec} s is absurd (2^33 s or more)`, 4);
      const nsec = u64be(c);
      if (nsec >= 1e9) throw new FormatError(`start nanoseconds ${nsec} are not below 10^9`, 12);
      const n = c.varint();
      if (n > V1_MAX_RANGES) throw new FormatError(`sampling table of ${n} ranges (at most ${V1_MAX_RANGES})`, 20);
      if (n * 12 > c.remaining) throw new FormatError(`sampling table of ${n} ranges does not fit the file`, c.pos);
      const bounds: number[] = [];
      const probs: number[] = [];
      for (let i = 0; i < n; i++) {
        const at = c.pos;
        const b = u64be(c);
        if (b > V1_MAX_BOUND) throw new FormatError(`sampling bound ${b} is absurd (above 2^48)`, at);
        if (i > 0 && !(b > bounds[i - 1]!)) throw new FormatError(`sampling bounds do not increase (${bounds[i - 1]} then ${b})`, at);
        bounds.push(b);
        probs.push(c.bytes(4).readUInt32BE(0) / SCALE);
      }
      header = {
        formatVersion: 1,
        startTimeUs: sec * 1e6 + Math.floor(nsec / 1000),
        pid: null,
        ppid: null,
        pythonVersion: null,
        argv: [],
        sampling: { kind: 'table', bounds, probs },
        mode: 'profile',
        recorder: 'heapprof 1.0.x',
        hostname: null,
        stackCapture: true,
        notes: [],
        profileId: null,
      };
      // Traces until the end of the file; a trace cut off by a crash is dropped with a warning.
      let id = 1;
      while (c.remaining > 0) {
        const start = c.pos;
        try {
          const frames: Frame[] = [];
          for (;;) {
            const linePlus1 = c.varint();
            if (linePlus1 === 0) break;
            const len = c.varint();
            if (len > MAX_NAME_LENGTH) throw new FormatError(`file name of ${len} bytes is longer than the ${MAX_NAME_LENGTH}-byte limit`, c.pos);
            if (frames.length >= MAX_TRACE_FRAMES) throw new FormatError(`trace ${id} has more than ${MAX_TRACE_FRAMES} frames`, c.pos);
            frames.push({ function: null, file: c.utf8(len), line: linePlus1 - 1 });
          }
          traces.push({ id: id++, frames, dropped: 0 });
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          const msg = e.message.startsWith('bad varint') || /past the end|truncated/.test(e.message) ? `truncated trace ${id} at byte ${start}; ignored` : `trace ${id} at byte ${start}: ${e.message}; ignored it and the rest`;
          if (opts.strict) throw new HpError(`${hpmPath}: ${msg}`);
          opts.onIssue?.({ file: hpmPath, message: msg, offset: start });
          break;
        }
      }
    } catch (e) {
      if (e instanceof FormatError) throw new HpError(`${hpmPath}: heapprof 1.0 header: byte ${e.at}: ${e.message}`);
      throw e;
    }
    const hpd = await BlockFile.open(hpdPath);
    const mode = opts.v1Weights ?? 'auto';
    if (mode !== 'stored' && header.sampling.kind === 'table' && header.sampling.probs.some((p) => p < 1)) {
      const counts = mode === 'recorded' ? null : await countAllocationsByRange(hpd, header.sampling);
      if (!counts || everyAllocationRecorded(counts, header.sampling)) {
        const table = header.sampling.bounds.map((b, i) => `${b}: ${header.sampling.kind === 'table' ? Number(header.sampling.probs[i]!.toPrecision(6)) : ''}`).join(', ');
        header.notes.push(`heapprof 1.0.x stored sampling table {${table}}; read with weight 1`);
        const why = counts
          ? `every allocation was recorded (its events by size range fit no sampling by its stored table {${table}})`
          : `--v1-weights recorded`;
        opts.onIssue?.({ file: hpmPath, message: `heapprof 1.0.x profile: ${why}; each event weighs 1 (--v1-weights stored uses the table)` });
        header.sampling = { kind: 'table', bounds: [], probs: [] };
      }
    }
    const p = new V1Profile(header, hpd, opts, base);
    for (const tr of traces) p.traceTable.push(tr); // not push(...traces): millions of arguments overflow the stack
    return p;
  }

  trace(id: number): Trace | undefined {
    return this.traceTable[id];
  }

  traces(): Iterable<Trace> {
    return this.traceTable;
  }

  /** heapprof 1.0.x has no end marker: whether its recording finished cannot be told. */
  readonly complete = false;

  async *batches(): AsyncIterable<EventBatch> {
    if (this.started) throw new Error('batches() called twice');
    this.started = true;
    const fromUs = this.opts.fromUs ?? -Infinity;
    const toUs = this.opts.toUs ?? Infinity;
    const batch: EventBatch = {
      length: 0,
      op: new Uint8Array(BATCH),
      timeUs: new Float64Array(BATCH),
      trace: new Uint32Array(BATCH),
      size: new Float64Array(BATCH),
    };
    const f = this.hpd;
    let offset = 0;
    let t = 0;
    const undefinedTraces = new Set<number>();
    // Events are at most 4 + 3 * 10 bytes; read windows and decode whole events from them.
    for (;;) {
      const window = await f.read(offset, 1 << 20);
      if (window.length === 0) break;
      const c = new Cursor(window);
      batch.length = 0;
      let consumed = 0;
      while (c.remaining > 0 && batch.length < BATCH) {
        try {
          const word = c.bytes(4).readUInt32BE(0);
          const sec = c.varint();
          const usec = c.varint();
          const size = c.varint();
          const dt = sec * 1e6 + usec;
          t += word & NEGATIVE ? -dt : dt;
          consumed = c.pos;
          const id = word & INDEX_MASK;
          if (id >= this.traceTable.length && !undefinedTraces.has(id)) {
            undefinedTraces.add(id);
            const msg = `event at byte ${offset + consumed} uses undefined trace ${id}`;
            if (this.opts.strict) throw new HpError(`${f.path}: ${msg}`);
            this.opts.onIssue?.({ file: f.path, message: msg, offset: offset + consumed });
            this.traceTable[id] = { id, frames: [{ function: `[undefined trace ${id}]`, file: '?', line: 0 }], dropped: 0 };
          }
          if (t < fromUs || t >= toUs) continue;
          const n = batch.length++;
          batch.op[n] = word & FREE ? OP_FREE : OP_ALLOC;
          batch.timeUs[n] = t;
          batch.trace[n] = id;
          batch.size[n] = size;
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          break; // partial event at the end of the window
        }
      }
      offset += consumed;
      this.opts.onProgress?.(offset, f.size);
      if (batch.length > 0) yield batch;
      if (consumed === 0) {
        // Not even one whole event left: a truncated tail.
        if (offset < f.size) {
          const msg = `truncated event at byte ${offset} (${f.size - offset} bytes); read everything before it`;
          if (this.opts.strict) throw new HpError(`${f.path}: ${msg}`);
          this.opts.onIssue?.({ file: f.path, message: msg, offset });
        }
        break;
      }
    }
  }

  async close(): Promise<void> {
    await this.hpd.close();
  }
}

/** Events read to decide how a 1.0.x profile was recorded (a few seconds of a busy program). */
const DETECT_BYTES = 4 << 20;

/** Allocation events per range of `sampling` (ranges.length + 1 entries) in the first DETECT_BYTES of .hpd. */
async function countAllocationsByRange(hpd: BlockFile, sampling: Sampling & { kind: 'table' }): Promise<number[]> {
  const counts = new Array<number>(sampling.bounds.length + 1).fill(0);
  const window = await hpd.read(0, DETECT_BYTES);
  const c = new Cursor(window);
  while (c.remaining > 0) {
    try {
      const word = c.bytes(4).readUInt32BE(0);
      c.varint();
      c.varint();
      const size = c.varint();
      if (word & FREE) continue;
      let r = 0;
      while (r < sampling.bounds.length && size >= sampling.bounds[r]!) r++;
      counts[r]!++;
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      break;
    }
  }
  return counts;
}

/**
 * Whether a 1.0.x profile's events show that every allocation was recorded although the file
 * stores a sampling table (heapprof 1.0.x on 64-bit Linux did this). The sampled fraction per
 * size range decides: weighting each range's allocation events by its stored 1/p estimates
 * how many allocations the program made per range. If that says some range drawn at p made at
 * least 1000 times as many allocations as the next range up, also sampled but with a higher
 * probability (CPython programs make about 5 to 100 small allocations per medium one), with at
 * least 2 events in the first and 1 in the second, the table was not applied. A table with a
 * single sampled range cannot be judged this way: its stored weights are used. With the seed's table {128: 1e-4, 8192: 0.1}, a file
 * whose events under 128 bytes are about as many as those from 128 to 8191 bytes (the norm
 * when everything is recorded) is 1000 times past that bound.
 */
export function everyAllocationRecorded(counts: readonly number[], sampling: Sampling & { kind: 'table' }): boolean {
  const p = (r: number): number => (r < sampling.probs.length ? sampling.probs[r]! : 1);
  // Only neighbouring ranges are compared: sizes far apart (small objects against multi-KiB
  // buffers) can differ in number by far more than 1000 times in an ordinary program.
  for (let a = 0; a + 1 < counts.length; a++) {
    const b = a + 1;
    // Both ranges sampled and both with events: a range drawn at p = 1 (multi-KiB buffers) can be
    // rarer than small objects by any factor, and an empty range says nothing.
    if (counts[a]! < 2 || counts[b]! < 1 || !(p(a) > 0 && p(a) < p(b) && p(b) < 1)) continue;
    if (counts[a]! / p(a) >= (1000 * counts[b]!) / p(b)) return true;
  }
  return false;
}

export interface V1Spec {
  startSec: number;
  startNsec: number;
  /** [upper bound, probability] pairs. */
  sampling: Array<[number, number]>;
  /** Traces in order (ids 1..n), leaf first; heapprof 1.0 frames have file and line only. */
  traces: Array<Array<{ file: string; line: number }>>;
  /** Events with times in µs since start (deltas may be negative, as 1.0 used the wall clock). */
  events: Array<{ free: boolean; timeUs: number; trace: number; size: number }>;
}

/** Encode a heapprof 1.0.x profile exactly as the documented layout (tests and fixtures). */
export function encodeV1(spec: V1Spec): { hpm: Buffer; hpd: Buffer } {
  const m = new ByteSink();
  const be32 = (s: ByteSink, v: number): void => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    s.bytes(b);
  };
  const be64 = (s: ByteSink, v: number): void => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    s.bytes(b);
  };
  be32(m, 1);
  be64(m, spec.startSec);
  be64(m, spec.startNsec);
  m.varint(spec.sampling.length);
  for (const [bound, p] of spec.sampling) {
    be64(m, bound);
    be32(m, Math.round(p * SCALE));
  }
  for (const trace of spec.traces) {
    for (const f of trace) {
      m.varint(f.line + 1);
      m.string(f.file);
    }
    m.varint(0);
  }
  const d = new ByteSink();
  let last = 0;
  for (const e of spec.events) {
    const delta = e.timeUs - last;
    last = e.timeUs;
    const abs = Math.abs(delta);
    be32(d, (e.trace & INDEX_MASK) | (e.free ? FREE : 0) | (delta < 0 ? NEGATIVE : 0));
    d.varint(Math.floor(abs / 1e6));
    d.varint(abs % 1e6);
    d.varint(e.size);
  }
  return { hpm: m.take(), hpd: d.take() };
}
