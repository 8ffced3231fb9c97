// heapprof 1.0.x profiles (man/hpx.5, HEAPPROF 1.0.x FILES): big-endian header with a
// fixed32 version 1, traces appended to .hpm, fixed-size-prefix events in .hpd with signed
// time deltas. No blocks, checksums or end marker: a reader stops at the first event it
// cannot decode whole. Also a writer, for tests and fixtures.

import { readFile } from 'node:fs/promises';
import { HpError } from '../cli.js';
import { BlockFile } from './block-file.js';
import { ByteSink, Cursor, FormatError } from './bytes.js';
import { OP_ALLOC, OP_FREE, type EventBatch, type ProfileSource, type ReadOptions } from './source.js';
import { MAX_NAME_LENGTH, MAX_TRACE_FRAMES, NO_STACK_TRACE, type Frame, type Header, type Trace } from './types.js';

const NEGATIVE = 0x80000000;
const FREE = 0x40000000;
const INDEX_MASK = 0x3fffffff;
const SCALE = 0xffffffff;
const BATCH = 1 << 14;

/** True when the first bytes of an .hpm are heapprof 1.0.x's big-endian version word. */
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
      const sec = u64be(c);
      const nsec = u64be(c);
      const n = c.varint();
      if (n * 12 > c.remaining) throw new FormatError(`sampling table of ${n} ranges does not fit the file`, c.pos);
      const bounds: number[] = [];
      const probs: number[] = [];
      for (let i = 0; i < n; i++) {
        bounds.push(u64be(c));
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

  /** heapprof 1.0.x has no end marker; a profile is taken as complete when it decodes to its end. */
  complete = false;

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
    this.complete = offset >= f.size;
  }

  async close(): Promise<void> {
    await this.hpd.close();
  }
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
