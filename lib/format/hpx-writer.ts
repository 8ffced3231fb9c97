// hpx v2 encoder (man/hpx.5): used by tests, fixtures and benchmarks to write profiles the
// way the native recorder does: strings/frames/traces into .hpm blocks, events into .hpd
// blocks, trace definitions flushed before the first block that uses them.

import { open, type FileHandle } from 'node:fs/promises';
import { ByteSink, crc32 } from './bytes.js';
import type { Frame, Header, HistogramBucket, Sampling, Trace } from './types.js';

export const HPM_MAGIC = Buffer.from('HPXM', 'latin1');
export const HPD_MAGIC = Buffer.from('HPXD', 'latin1');
export const BLOCK_MAGIC = Buffer.from('HBLK', 'latin1');
export const FORMAT_VERSION = 2;
export const FILE_HEADER_SIZE = 32;
export const BLOCK_HEADER_SIZE = 24;
export const MAX_BLOCK_PAYLOAD = 64 * 1024 * 1024;

export const HDR = {
  startTimeUs: 1,
  pid: 2,
  ppid: 3,
  pythonVersion: 4,
  argv: 5,
  samplingTable: 6,
  samplingPoisson: 7,
  mode: 8,
  recorder: 9,
  stackCapture: 10,
  note: 11,
  hostname: 12,
  attached: 22,
  /** varint bitmask: 1 malloc family, 2 anonymous mmap recorded (hp-record --native). */
  native: 13,
  /** varint 1: traces carry thread ids (TRACE_INFO). */
  threads: 14,
} as const;

export const REC = { STRING: 1, FRAME: 2, TRACE: 3, HISTOGRAM: 4, END: 5, THREAD: 6, TRACE_INFO: 7, MARK: 8 } as const;
/** TRACE_INFO domain codes. */
export const DOMAIN_CODES = ['python', 'native', 'mmap'] as const;
export const KIND = { ALLOC: 0, FREE: 1, REPEAT: 2, EXT: 3 } as const;
/** .hpd file header flag: events may be REPEATs of the block's cache (man/hpx.5, EVENTS). */
export const HPD_FLAG_REPEAT = 1;
/** .hpm file header flag: every block's payload is raw deflate (man/hpx.5, BLOCKS). */
export const HPM_FLAG_DEFLATE = 1;
/** Slots of the REPEAT cache: a REPEAT's header ((slot * 2 + free) * 4 + 2) stays one byte. */
export const REPEAT_SLOTS = 16;
export const EXT = { RSS: 0, END: 1, LOST: 2, MARK: 3 } as const;

/** Build the 32-byte file header (+ body for .hpm). */
export function encodeFileHeader(magic: Buffer, profileId: Buffer, body: Buffer, flags = 0): Buffer {
  const out = Buffer.alloc(FILE_HEADER_SIZE + body.length);
  magic.copy(out, 0);
  out.writeUInt16LE(FORMAT_VERSION, 4);
  out.writeUInt16LE(flags, 6);
  profileId.copy(out, 8, 0, 16);
  out.writeUInt32LE(body.length, 24);
  body.copy(out, FILE_HEADER_SIZE);
  const crc = crc32(body, crc32(out.subarray(0, 28)));
  out.writeUInt32LE(crc, 28);
  return out;
}

export function encodeHeaderBody(h: Partial<Header> & { sampling: Sampling }): Buffer {
  const s = new ByteSink(256);
  const field = (tag: number, write: (b: ByteSink) => void): void => {
    const inner = new ByteSink(64);
    write(inner);
    s.varint(tag);
    s.varint(inner.length);
    s.bytes(inner.view());
  };
  const text = (tag: number, v: string): void => field(tag, (b) => b.bytes(Buffer.from(v, 'utf8')));
  field(HDR.startTimeUs, (b) => b.varint(h.startTimeUs ?? 0));
  if (h.pid != null) field(HDR.pid, (b) => b.varint(h.pid!));
  if (h.ppid != null) field(HDR.ppid, (b) => b.varint(h.ppid!));
  if (h.pythonVersion != null) text(HDR.pythonVersion, h.pythonVersion);
  for (const a of h.argv ?? []) text(HDR.argv, a);
  if (h.sampling.kind === 'table') {
    const { bounds, probs } = h.sampling;
    field(HDR.samplingTable, (b) => {
      b.varint(bounds.length);
      bounds.forEach((bound, i) => {
        b.varint(bound);
        b.f64(probs[i]!);
      });
    });
  } else {
    const R = h.sampling.meanBytes;
    field(HDR.samplingPoisson, (b) => b.f64(R));
  }
  field(HDR.mode, (b) => b.varint(h.mode === 'stats' ? 1 : 0));
  text(HDR.recorder, h.recorder ?? 'heapprof-ts-writer');
  field(HDR.stackCapture, (b) => b.varint(h.stackCapture === false ? 0 : 1));
  for (const n of h.notes ?? []) text(HDR.note, n);
  if (h.hostname != null) text(HDR.hostname, h.hostname);
  if (h.attached) field(HDR.attached, (b) => b.varint(h.attached!.processAgeUs));
  if (h.native) field(HDR.native, (b) => b.varint(h.nativeStacks ? 7 : 3));
  return s.take();
}

/** Frame a payload as a block: magic, length, count, time, CRC, payload. */
export function encodeBlock(payload: Uint8Array, count: number, timeUs: number): Buffer {
  const out = Buffer.allocUnsafe(BLOCK_HEADER_SIZE + payload.length);
  BLOCK_MAGIC.copy(out, 0);
  out.writeUInt32LE(payload.length, 4);
  out.writeUInt32LE(count, 8);
  out.writeBigUInt64LE(BigInt(Math.max(0, Math.round(timeUs))), 12);
  out.set(payload, BLOCK_HEADER_SIZE);
  const crc = crc32(out.subarray(BLOCK_HEADER_SIZE), crc32(out.subarray(4, 20)));
  out.writeUInt32LE(crc, 20);
  return out;
}

export interface HpxWriterOptions {
  header: Partial<Header> & { sampling: Sampling };
  /** Receives .hpm bytes in order. */
  writeHpm: (chunk: Buffer) => void | Promise<void>;
  /** Receives .hpd bytes in order. */
  writeHpd: (chunk: Buffer) => void | Promise<void>;
  /** Events per .hpd block (the recorder cuts blocks by bytes; tests vary this). */
  eventsPerBlock?: number;
  profileId?: Buffer;
  /** Write REPEAT events, as the recorder does (default true); false writes every event in full,
   * as recorders before it did (the .hpd header then has no flags). */
  repeat?: boolean;
  /** Deflate each .hpm block, as the recorder does (default false: tests read .hpm records raw). */
  deflateHpm?: boolean;
}

/** The writer's side of the REPEAT cache, as native/hpxw.h keeps it (same slots, same hash). */
class RepeatCache {
  private filled = 0;
  private next = 0;
  private readonly trace = new Uint32Array(REPEAT_SLOTS);
  private readonly size = new Float64Array(REPEAT_SLOTS);
  private readonly map = new Uint8Array(256);

  reset(): void {
    this.filled = this.next = 0;
  }

  /** The slot holding (trace, size), or -1 after putting it in the next slot. */
  find(trace: number, size: number): number {
    const m = Math.imul((size >>> 0) ^ Math.imul(trace, 0x9e3779b1), 0x85ebca77) >>> 24;
    let slot = this.map[m]!;
    if (slot < this.filled && this.trace[slot] === trace && this.size[slot] === size) return slot;
    slot = this.next;
    this.trace[slot] = trace;
    this.size[slot] = size;
    this.map[m] = slot;
    this.next = (slot + 1) & (REPEAT_SLOTS - 1);
    if (this.filled < REPEAT_SLOTS) this.filled++;
    return -1;
  }
}

/**
 * Incremental writer. Call defineTrace() for a trace before the first event that uses it,
 * then event()/rss()/lost() in time order, then end() (or close() without END to simulate
 * a recorder that is still running or crashed).
 */
export class HpxWriter {
  private readonly hpmRecords = new ByteSink(1 << 12);
  private hpmCount = 0;
  private readonly events = new ByteSink(1 << 16);
  private eventCount = 0;
  private blockTimeUs = 0;
  private lastTimeUs = 0;
  private readonly strings = new Map<string, number>();
  private readonly frames = new Map<string, number>();
  private readonly definedTraces = new Set<number>();
  private readonly definedThreads = new Set<number>();
  private readonly eventsPerBlock: number;
  private pending: Promise<void> = Promise.resolve();
  private readonly repeat: RepeatCache | null;
  readonly profileId: Buffer;

  constructor(private readonly opts: HpxWriterOptions) {
    this.eventsPerBlock = opts.eventsPerBlock ?? 8192;
    this.profileId = opts.profileId ?? process.getBuiltinModule('node:crypto').randomBytes(16);
    this.repeat = opts.repeat === false ? null : new RepeatCache();
    this.emit('hpm', encodeFileHeader(HPM_MAGIC, this.profileId, encodeHeaderBody(opts.header), opts.deflateHpm ? HPM_FLAG_DEFLATE : 0));
    this.emit('hpd', encodeFileHeader(HPD_MAGIC, this.profileId, Buffer.alloc(0), this.repeat ? HPD_FLAG_REPEAT : 0));
  }

  private emit(which: 'hpm' | 'hpd', chunk: Buffer): void {
    const fn = which === 'hpm' ? this.opts.writeHpm : this.opts.writeHpd;
    this.pending = this.pending.then(() => fn(chunk));
  }

  private record(type: number, body: ByteSink): void {
    this.hpmRecords.varint(type);
    this.hpmRecords.varint(body.length);
    this.hpmRecords.bytes(body.view());
    this.hpmCount++;
  }

  private stringId(s: string): number {
    let id = this.strings.get(s);
    if (id === undefined) {
      id = this.strings.size + 1;
      this.strings.set(s, id);
      const b = new ByteSink(s.length + 8);
      b.varint(id);
      b.bytes(Buffer.from(s, 'utf8'));
      this.record(REC.STRING, b);
    }
    return id;
  }

  private frameId(f: Frame): number {
    const key = `${f.function ?? ''}\0${f.file}\0${f.line}${f.native ? '\0n' : ''}`;
    let id = this.frames.get(key);
    if (id === undefined) {
      const fn = this.stringId(f.function ?? '');
      const file = this.stringId(f.file);
      id = this.frames.size + 1;
      this.frames.set(key, id);
      const b = new ByteSink(16);
      b.varint(id);
      b.varint(fn);
      b.varint(file);
      b.varint(f.line);
      this.record(REC.FRAME, b);
    }
    return id;
  }

  /** Define a trace (ids > 0, leaf frame first). Redefinitions are ignored. A trace with a domain,
   * a thread or native frames (leading, as the recorder writes them) gets THREAD and TRACE_INFO records. */
  defineTrace(t: Trace): void {
    if (t.id === 0 || this.definedTraces.has(t.id)) return;
    const ids = t.frames.map((f) => this.frameId(f));
    let native = 0;
    while (native < t.frames.length && t.frames[native]!.native) native++;
    if (t.domain !== undefined || t.thread !== undefined || native > 0) {
      if (t.thread && !this.definedThreads.has(t.thread.id)) {
        this.definedThreads.add(t.thread.id);
        const th = new ByteSink(16 + t.thread.name.length);
        th.varint(t.thread.id);
        th.varint(t.thread.tid);
        th.bytes(Buffer.from(t.thread.name, 'utf8'));
        this.record(REC.THREAD, th);
      }
      const info = new ByteSink(16);
      info.varint(t.id);
      info.varint(Math.max(0, DOMAIN_CODES.indexOf(t.domain ?? 'python')));
      info.varint(t.thread?.id ?? 0);
      info.varint(native);
      this.record(REC.TRACE_INFO, info);
    }
    const b = new ByteSink(8 + ids.length * 2);
    b.varint(t.id);
    b.varint(t.dropped);
    b.varint(ids.length);
    for (const id of ids) b.varint(id);
    this.record(REC.TRACE, b);
    this.definedTraces.add(t.id);
  }

  histogram(buckets: HistogramBucket[]): void {
    const b = new ByteSink(8 + buckets.length * 6);
    b.varint(buckets.length);
    for (const x of buckets) {
      b.varint(x.count);
      b.varint(x.bytes);
      b.varint(x.sampled);
    }
    this.record(REC.HISTOGRAM, b);
  }

  private head(h: number, timeUs: number): void {
    if (this.eventCount === 0) {
      this.blockTimeUs = Math.max(timeUs, this.lastTimeUs);
      this.lastTimeUs = this.blockTimeUs;
    }
    const t = Math.max(timeUs, this.lastTimeUs);
    this.events.varint(h);
    this.events.varint(Math.round(t - this.lastTimeUs));
    this.lastTimeUs = Math.round(t - this.lastTimeUs) + this.lastTimeUs;
  }

  /** An alloc or free of `size` bytes under trace `trace` at `timeUs` µs since start. */
  event(op: 'alloc' | 'free', timeUs: number, trace: number, size: number): void {
    const free = op === 'alloc' ? 0 : 1;
    const slot = this.repeat ? this.repeat.find(trace, size) : -1;
    if (slot >= 0) this.head((slot * 2 + free) * 4 + KIND.REPEAT, timeUs);
    else {
      this.head(trace * 4 + free, timeUs);
      this.events.varint(size);
    }
    this.afterEvent();
  }

  private ext(type: number, timeUs: number, body: number | null): void {
    this.head(type * 4 + KIND.EXT, timeUs);
    if (body === null) this.events.varint(0);
    else {
      const b = new ByteSink(10);
      b.varint(body);
      this.events.varint(b.length);
      this.events.bytes(b.view());
    }
    this.afterEvent();
  }

  rss(timeUs: number, bytes: number): void {
    this.ext(EXT.RSS, timeUs, bytes);
  }

  lost(timeUs: number, count: number): void {
    this.ext(EXT.LOST, timeUs, count);
  }

  private markCount = 0;

  /** A mark as the recorder writes one: a MARK record in .hpm, an EXT MARK event naming its id. */
  mark(timeUs: number, label: string): void {
    const id = ++this.markCount;
    const b = new ByteSink(16 + label.length * 3);
    b.varint(id);
    b.varint(Math.max(Math.round(timeUs), this.lastTimeUs));
    b.bytes(Buffer.from(label, 'utf8'));
    this.record(REC.MARK, b);
    this.ext(EXT.MARK, timeUs, id);
  }

  private afterEvent(): void {
    this.eventCount++;
    if (this.eventCount >= this.eventsPerBlock) this.flush();
  }

  /** Write pending .hpm records, then pending events, each as one block. */
  flush(): void {
    if (this.hpmCount > 0) {
      const records = this.hpmRecords.view();
      const payload = this.opts.deflateHpm ? process.getBuiltinModule('node:zlib').deflateRawSync(records, { level: 6, windowBits: 12, memLevel: 5 }) : records;
      this.emit('hpm', encodeBlock(payload, this.hpmCount, this.lastTimeUs));
      this.hpmRecords.reset();
      this.hpmCount = 0;
    }
    if (this.eventCount > 0) {
      this.emit('hpd', encodeBlock(this.events.view(), this.eventCount, this.blockTimeUs));
      this.events.reset();
      this.eventCount = 0;
      this.repeat?.reset(); // each block decodes alone
    }
  }

  /** Clean stop: END record in .hpm, END event in .hpd, flushed. */
  async end(timeUs: number = this.lastTimeUs): Promise<void> {
    this.record(REC.END, new ByteSink(1));
    this.ext(EXT.END, timeUs, null);
    this.flush();
    await this.pending;
  }

  /** Flush without an END marker (a profile still being written, or a crash). */
  async close(): Promise<void> {
    this.flush();
    await this.pending;
  }
}

export interface ProfileSpec {
  header: Partial<Header> & { sampling: Sampling };
  traces: Trace[];
  /** Events in time order; traces are defined just before first use. */
  events: Array<{ op: 'alloc' | 'free' | 'rss' | 'lost' | 'mark'; timeUs: number; trace?: number; size: number; label?: string }>;
  histogram?: HistogramBucket[];
  eventsPerBlock?: number;
  /** Write END markers (default true). */
  complete?: boolean;
  /** 16 bytes; random by default (fixtures pass a fixed one so regenerating gives the same bytes). */
  profileId?: Buffer;
  /** REPEAT events (default true): see HpxWriterOptions.repeat. */
  repeat?: boolean;
  /** Deflated .hpm blocks (default false): see HpxWriterOptions.deflateHpm. */
  deflateHpm?: boolean;
}

/** Encode a whole profile in memory: { hpm, hpd }. */
export async function encodeProfile(spec: ProfileSpec): Promise<{ hpm: Buffer; hpd: Buffer }> {
  const hpm: Buffer[] = [];
  const hpd: Buffer[] = [];
  const w = new HpxWriter({
    header: spec.header,
    writeHpm: (c) => void hpm.push(Buffer.from(c)),
    writeHpd: (c) => void hpd.push(Buffer.from(c)),
    ...(spec.eventsPerBlock !== undefined ? { eventsPerBlock: spec.eventsPerBlock } : {}),
    ...(spec.profileId !== undefined ? { profileId: spec.profileId } : {}),
    ...(spec.repeat !== undefined ? { repeat: spec.repeat } : {}),
    ...(spec.deflateHpm !== undefined ? { deflateHpm: spec.deflateHpm } : {}),
  });
  const byId = new Map(spec.traces.map((t) => [t.id, t]));
  for (const e of spec.events) {
    if (e.op === 'rss') w.rss(e.timeUs, e.size);
    else if (e.op === 'mark') w.mark(e.timeUs, e.label ?? '');
    else if (e.op === 'lost') w.lost(e.timeUs, e.size);
    else {
      const t = byId.get(e.trace ?? 0);
      if (t) w.defineTrace(t);
      w.event(e.op, e.timeUs, e.trace ?? 0, e.size);
    }
  }
  if (spec.histogram) w.histogram(spec.histogram);
  if (spec.complete === false) await w.close();
  else await w.end();
  return { hpm: Buffer.concat(hpm), hpd: Buffer.concat(hpd) };
}

/** Write a whole profile to BASE.hpm and BASE.hpd (tests and fixtures). */
export async function writeProfile(base: string, spec: ProfileSpec): Promise<void> {
  const { hpm, hpd } = await encodeProfile(spec);
  const write = async (path: string, data: Buffer): Promise<void> => {
    const fh: FileHandle = await open(path, 'w', 0o600);
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
  };
  await write(`${base}.hpm`, hpm);
  await write(`${base}.hpd`, hpd);
}
