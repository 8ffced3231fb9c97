// hpx v2 decoder (man/hpx.5): the .hpm header and dictionary, and the .hpd event log as
// columnar batches. Strict about our own format (bad magic/version/checksum named with its
// offset); recoverable damage (corrupt block, truncated tail, undefined trace) is reported
// through ReadOptions.onIssue and skipped, or thrown with --strict.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HpError } from '../cli.js';
import { CODE_DIR, FROM_SOURCE, ROOT } from '../where.cjs';
import { BlockFile, inBlock, problemText, type Block, type BlockProblem } from './block-file.js';
import { Cursor, FormatError, crc32 } from './bytes.js';
import {
  FILE_HEADER_SIZE,
  FORMAT_VERSION,
  HDR,
  HPD_FLAG_REPEAT,
  HPD_MAGIC,
  HPM_FLAG_DEFLATE,
  HPM_MAGIC,
  MAX_BLOCK_PAYLOAD,
  REC,
} from './hpx-writer.js';
import { decodeBlock, type DecodedBlock } from './events.js';
import { TraceTable } from './trace-table.js';
import { EventTally, type TallyState } from './tally.js';
import { Symbolizer } from './elf.js';
import { unsampledNotice } from './weights.js';
import { readerKernels } from '../native.js';
import type { Columns, DecodeJob } from './hpd-worker.js';
import { OP_FREE, type EventBatch, type ProfileSource, type ReadOptions } from './source.js';
import { blankHeader, MAX_NAME_LENGTH, MAX_TRACE_FRAMES, NO_STACK_TRACE, type Frame, type Header, type HistogramBucket, type Mark, type Sampling, type ThreadInfo, type Trace } from './types.js';
import { DOMAIN_CODES } from './hpx-writer.js';

export * from './hpx-writer.js';

const MAX_HEADER_BODY = 1 << 20;

/** Problems we can read past: reported once each, or thrown in strict mode. */
class IssueSink {
  private readonly seen = new Set<string>();
  constructor(private readonly opts: ReadOptions) {}
  report(file: string, message: string, offset?: number): void {
    const where = offset === undefined ? '' : ` at byte ${offset}`;
    const text = `${file}${where}: ${message}`;
    if (this.opts.strict) throw new HpError(text);
    if (this.seen.has(text)) return;
    this.seen.add(text);
    this.opts.onIssue?.({ file, message: offset === undefined ? message : `byte ${offset}: ${message}`, ...(offset !== undefined ? { offset } : {}) });
  }
}

export interface FileHeader {
  magic: string;
  version: number;
  flags: number;
  profileId: Buffer;
  body: Buffer;
  /** Offset of the first block. */
  end: number;
}

/** Validate and split the 32-byte file header (+ body). Throws HpError naming the file. */
export async function readFileHeader(f: BlockFile, expected: Buffer): Promise<FileHeader> {
  const name = f.path;
  if (f.size === 0) throw new HpError(`${name}: empty file (no header)`);
  const head = Buffer.from(await f.read(0, FILE_HEADER_SIZE));
  if (head.length < 4 || !head.subarray(0, 4).equals(expected)) {
    if (head.length >= 4 && head.subarray(0, 4).equals(expected === HPM_MAGIC ? HPD_MAGIC : HPM_MAGIC)) {
      throw new HpError(`${name}: this is a .${expected === HPM_MAGIC ? 'hpd' : 'hpm'} file, not a .${expected === HPM_MAGIC ? 'hpm' : 'hpd'}`);
    }
    throw new HpError(`${name}: not a heapprof profile (bad magic at byte 0)`);
  }
  if (head.length < FILE_HEADER_SIZE) {
    throw new HpError(`${name}: truncated header (${head.length} of ${FILE_HEADER_SIZE} bytes)`);
  }
  const version = head.readUInt16LE(4);
  if (version !== FORMAT_VERSION) {
    throw new HpError(`${name}: unsupported format version ${version} at byte 4 (this heapprof reads 1 and 2)`);
  }
  const flags = head.readUInt16LE(6);
  // The .hpd may say its events include REPEATs (man/hpx.5, EVENTS; the decoder reads them in
  // any .hpd), the .hpm that its blocks are deflated.
  const known = expected === HPD_MAGIC ? HPD_FLAG_REPEAT : HPM_FLAG_DEFLATE;
  if ((flags & ~known) !== 0) throw new HpError(`${name}: unknown header flags 0x${flags.toString(16)} at byte 6`);
  const bodyLength = head.readUInt32LE(24);
  if (bodyLength > MAX_HEADER_BODY) throw new HpError(`${name}: header body length ${bodyLength} at byte 24 is absurd`);
  if (FILE_HEADER_SIZE + bodyLength > f.size) {
    throw new HpError(`${name}: truncated header (body needs ${bodyLength} bytes, file has ${f.size - FILE_HEADER_SIZE})`);
  }
  const body = Buffer.from(await f.read(FILE_HEADER_SIZE, bodyLength));
  const crc = crc32(body, crc32(head.subarray(0, 28)));
  if (crc !== head.readUInt32LE(28)) throw new HpError(`${name}: header checksum mismatch at byte 28`);
  return { magic: head.toString('latin1', 0, 4), version, flags, profileId: head.subarray(8, 24), body, end: FILE_HEADER_SIZE + bodyLength };
}

/**
 * The records of a deflated .hpm block (man/hpx.5, BLOCKS), at most the 64 MiB a block payload
 * may hold: a stream that inflates past it, or is not valid deflate, is a corrupt block.
 */
export function inflateHpmBlock(payload: Buffer): Buffer {
  try {
    // node:zlib loaded on first use, as in bytes.ts (readers' start-up time).
    return process.getBuiltinModule('node:zlib').inflateRawSync(payload, { maxOutputLength: MAX_BLOCK_PAYLOAD });
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'inflates past the 64 MiB limit' : (e as Error).message;
    throw new FormatError(`deflated records: ${why}`, 0);
  }
}

/** Decode the .hpm header body fields into a Header. */
export function decodeHeaderBody(body: Buffer, profileId: Buffer, name: string): Header {
  const h: Header = { ...blankHeader(), profileId: profileId.toString('hex') };
  let haveSampling = false;
  const c = new Cursor(body);
  try {
    while (c.remaining > 0) {
      const tag = c.varint();
      const len = c.varint();
      if (len > c.remaining) throw new FormatError(`header field ${tag} runs past the end of the header`, c.pos);
      const f = new Cursor(body, c.pos, c.pos + len);
      c.pos += len;
      switch (tag) {
        case HDR.startTimeUs: h.startTimeUs = f.varint(); break;
        case HDR.pid: h.pid = f.varint(); break;
        case HDR.ppid: h.ppid = f.varint(); break;
        case HDR.pythonVersion: h.pythonVersion = f.utf8(f.remaining); break;
        case HDR.argv: h.argv.push(f.utf8(f.remaining)); break;
        case HDR.samplingTable: {
          const n = f.varint();
          if (n * 9 > f.remaining) throw new FormatError(`sampling table of ${n} ranges does not fit its field`, f.pos);
          const bounds: number[] = [];
          const probs: number[] = [];
          for (let i = 0; i < n; i++) {
            const bound = f.varint();
            const p = f.f64();
            if (!(p >= 0 && p <= 1)) throw new FormatError(`sampling probability ${p} is not in [0, 1]`, f.pos - 8);
            if (bounds.length > 0 && bound <= bounds[bounds.length - 1]!) {
              throw new FormatError('sampling table bounds are not increasing', f.pos);
            }
            bounds.push(bound);
            probs.push(p);
          }
          h.sampling = { kind: 'table', bounds, probs };
          haveSampling = true;
          break;
        }
        case HDR.samplingPoisson: {
          const R = f.f64();
          if (!(R > 0 && Number.isFinite(R))) throw new FormatError(`byte-Poisson mean ${R} must be positive`, f.pos - 8);
          h.sampling = { kind: 'poisson', meanBytes: R };
          haveSampling = true;
          break;
        }
        case HDR.mode: h.mode = f.varint() === 1 ? 'stats' : 'profile'; break;
        case HDR.recorder: h.recorder = f.utf8(f.remaining); break;
        case HDR.stackCapture: h.stackCapture = f.varint() !== 0; break;
        case HDR.note: h.notes.push(f.utf8(f.remaining)); break;
        case HDR.hostname: h.hostname = f.utf8(f.remaining); break;
        case HDR.attached: h.attached = { processAgeUs: f.varint() }; break;
        case HDR.native: {
          const mask = f.varint();
          h.native = mask !== 0;
          if (mask & 4) h.nativeStacks = true;
          break;
        }
        default: break; // unknown fields are skipped by design
      }
    }
  } catch (e) {
    if (e instanceof FormatError) throw new HpError(`${name}: header byte ${FILE_HEADER_SIZE + e.at}: ${e.message}`);
    throw e;
  }
  if (!haveSampling && h.mode === 'profile') throw new HpError(`${name}: header has no sampling configuration`);
  return h;
}

/** Strings, frames and traces from .hpm blocks, read incrementally (a live profile grows). */
class Dictionary {
  private readonly strings = new Map<number, string>();
  /** Frame id -> index in the trace table's frame list. */
  private readonly frames = new Map<number, number>();
  readonly traces = new TraceTable();
  /** Scratch for one trace's frame indexes. */
  private scratch = new Int32Array(64);
  /** THREAD records (native recording). */
  readonly threads = new Map<number, ThreadInfo>();
  /** TRACE_INFO read ahead of its TRACE: domain, thread, count of leading native frames. */
  private readonly traceInfo = new Map<number, { domain: number; thread: number; native: number }>();
  histogram: HistogramBucket[] | null = null;
  readonly marks: Mark[] = [];
  ended = false;
  /** Every trace id in 0..dense is in `traces` (cached; ids only ever get added). */
  private dense = 0;

  /** `symbolizer`: names for native frames recorded as offsets (static functions). */
  constructor(private readonly symbolizer?: Symbolizer) {
    this.traces.set(0, NO_STACK_TRACE);
  }

  /** Parse one block's records. Throws FormatError (offset relative to payload). */
  parse(payload: Buffer, count: number): void {
    const c = new Cursor(payload);
    let n = 0;
    while (c.remaining > 0) {
      const type = c.varint();
      const len = c.varint();
      if (len > c.remaining) throw new FormatError(`record of ${len} bytes runs past the end of its block`, c.pos);
      const r = new Cursor(payload, c.pos, c.pos + len);
      c.pos += len;
      n++;
      switch (type) {
        case REC.STRING: {
          const id = r.varint();
          if (r.remaining > MAX_NAME_LENGTH) throw new FormatError(`string ${id} of ${r.remaining} bytes is longer than the ${MAX_NAME_LENGTH}-byte limit`, r.pos);
          this.strings.set(id, r.utf8(r.remaining));
          break;
        }
        case REC.FRAME: {
          const id = r.varint();
          const fn = this.string(r.varint(), r.pos);
          const file = this.string(r.varint(), r.pos);
          const line = r.varint();
          this.frames.set(id, this.traces.addFrame({ function: fn === '' ? null : fn, file, line }));
          break;
        }
        case REC.TRACE: {
          const id = r.varint();
          const dropped = r.varint();
          const depth = r.varint();
          if (depth > r.remaining) throw new FormatError(`trace ${id} claims ${depth} frames in ${r.remaining} bytes`, r.pos);
          if (depth > MAX_TRACE_FRAMES) throw new FormatError(`trace ${id} has ${depth} frames, more than the ${MAX_TRACE_FRAMES} limit`, r.pos);
          if (depth > this.scratch.length) this.scratch = new Int32Array(Math.max(depth, this.scratch.length * 2));
          const frames = this.scratch;
          for (let i = 0; i < depth; i++) {
            const fid = r.varint();
            const frame = this.frames.get(fid);
            if (frame === undefined) throw new FormatError(`trace ${id} uses undefined frame ${fid}`, r.pos);
            frames[i] = frame;
          }
          const info = this.traceInfo.get(id);
          if (id !== 0 && info) {
            this.traceInfo.delete(id);
            // Native-recording traces (domain, thread, native frames) stay objects: few of them.
            const native = Math.min(info.native, depth);
            const objs: Frame[] = new Array(depth);
            for (let i = 0; i < depth; i++) {
              const f = this.traces.frameAt(frames[i]!);
              objs[i] = i < native ? { ...f, function: this.symbolizer ? this.symbolizer.name(f.function, f.file) : f.function, native: true } : f;
            }
            const trace: Trace = { id, frames: objs, dropped, domain: DOMAIN_CODES[info.domain] ?? 'native' };
            if (info.thread) trace.thread = this.threads.get(info.thread) ?? { id: info.thread, tid: 0, name: '' };
            this.traces.set(id, trace);
          } else if (id !== 0) this.traces.addTrace(id, dropped, frames.subarray(0, depth));
          break;
        }
        case REC.THREAD: {
          const id = r.varint();
          const tid = r.varint();
          if (r.remaining > MAX_NAME_LENGTH) throw new FormatError(`thread ${id} name of ${r.remaining} bytes is longer than the ${MAX_NAME_LENGTH}-byte limit`, r.pos);
          this.threads.set(id, { id, tid, name: r.utf8(r.remaining) });
          break;
        }
        case REC.TRACE_INFO: {
          const id = r.varint();
          const domain = r.varint();
          const thread = r.varint();
          const native = r.varint();
          this.traceInfo.set(id, { domain, thread, native });
          break;
        }
        case REC.HISTOGRAM: {
          const k = r.varint();
          if (k > r.remaining / 3 || k > 128) throw new FormatError(`histogram of ${k} buckets is absurd`, r.pos);
          const buckets: HistogramBucket[] = [];
          for (let i = 0; i < k; i++) buckets.push({ count: r.varint(), bytes: r.varint(), sampled: r.varint() });
          this.histogram = buckets;
          break;
        }
        case REC.END:
          this.ended = true;
          break;
        case REC.MARK: {
          const id = r.varint();
          const timeUs = r.varint();
          this.marks.push({ id, timeUs, label: r.utf8(r.remaining) });
          break;
        }
        default:
          break; // unknown record types are skipped by their length
      }
    }
    if (n !== count) throw new FormatError(`block says ${count} records, holds ${n}`, 0);
  }

  /** The largest n such that every trace id 0..n is defined. */
  denseTraceIds(): number {
    while (this.traces.has(this.dense + 1)) this.dense++;
    return this.dense;
  }

  private string(id: number, at: number): string {
    const s = this.strings.get(id);
    if (s === undefined) throw new FormatError(`undefined string ${id}`, at);
    return s;
  }
}

/** Decoded state shared between a V2Profile and its batch generator. */
const INITIAL_BATCH = 1 << 14;

function newBatch(capacity: number): EventBatch {
  return {
    length: 0,
    op: new Uint8Array(capacity),
    timeUs: new Float64Array(capacity),
    trace: new Uint32Array(capacity),
    size: new Float64Array(capacity),
  };
}

/** decodeBlock into a batch this thread owns, replaced by a larger one when a block holds more events. */
function decodeOwned(block: Block, owned: { batch: EventBatch }, fromUs: number, toUs: number): DecodedBlock {
  return decodeBlock(
    block,
    (count) => {
      if (count > owned.batch.op.length) owned.batch = newBatch(Math.max(count, owned.batch.op.length * 2));
      return owned.batch;
    },
    fromUs,
    toUs,
  );
}

/** Files at least this large (from the start offset) are decoded on a worker thread. */
const WORKER_MIN_BYTES = 16 * 1024 * 1024;

/** One step of a decoded .hpd: a block's events, a problem to report, or the end. */
type Decoded =
  | { kind: 'batch'; batch: EventBatch; index: number; offset: number; end: number; sawEnd: boolean; maxTrace: number; release?: () => void; tally?: TallyState }
  | { kind: 'issue'; message: string; offset: number }
  | { kind: 'done'; truncatedAt: number | null };

type WorkerMessage =
  | { type: 'batch'; slot: number; columns: Columns | null; index: number; offset: number; end: number; length: number; sawEnd: boolean; maxTrace: number; tally: TallyState | null }
  | { type: 'raw'; slot: number; buffer: SharedArrayBuffer | null; length: number; count: number; timeUs: number; index: number; offset: number }
  | { type: 'issue'; message: string; offset: number }
  | { type: 'done'; truncatedAt: number | null }
  | { type: 'error'; message: string; exitCode: number | null };

/**
 * The worker's module, next to this one. Run from source (the tests load lib/*.ts through a
 * TypeScript loader that every new thread would have to start again, for seconds), the built
 * dist/format/hpd-worker.js is used when it is newer than every source it is built from.
 */
let workerUrlCache: URL | null = null;
function workerUrl(): URL {
  if (workerUrlCache) return workerUrlCache;
  const dir = join(CODE_DIR, 'format');
  workerUrlCache = pathToFileURL(join(dir, 'hpd-worker.js'));
  if (!FROM_SOURCE) return workerUrlCache;
  workerUrlCache = pathToFileURL(join(dir, 'hpd-worker.ts'));
  try {
    const built = join(ROOT, 'dist', 'format', 'hpd-worker.js');
    const builtAt = statSync(built).mtimeMs;
    const sources = [join(CODE_DIR, 'cli.ts'), join(CODE_DIR, 'where.cjs'), ...readdirSync(dir).map((f) => join(dir, f))];
    if (sources.every((f) => statSync(f).mtimeMs <= builtAt)) workerUrlCache = pathToFileURL(built);
  } catch {
    // no build: the TypeScript one
  }
  return workerUrlCache;
}

/** An open hpx v2 profile. */
export class V2Profile implements ProfileSource {
  readonly name: string;
  private readonly issues: IssueSink;
  private hpmOffset: number;
  private endSeen = false;
  private started = false;
  /** Offset of a cut last .hpm block, as of the latest metadata read (null: none). */
  private hpmTruncatedAt: number | null = null;
  private hpmTruncationReported = false;

  private constructor(
    private readonly hpm: BlockFile,
    private readonly hpd: BlockFile,
    readonly header: Header,
    private readonly dict: Dictionary,
    hpmBlocksStart: number,
    private readonly hpdBlocksStart: number,
    /** .hpm blocks are raw deflate (header flag HPM_FLAG_DEFLATE). */
    private readonly hpmDeflated: boolean,
    private readonly opts: ReadOptions,
    base: string,
  ) {
    this.name = base;
    this.issues = new IssueSink(opts);
    this.hpmOffset = hpmBlocksStart;
  }

  static async open(base: string, hpmPath: string, hpdPath: string, opts: ReadOptions): Promise<V2Profile> {
    const hpm = await BlockFile.open(hpmPath);
    let hpd: BlockFile;
    try {
      hpd = await BlockFile.open(hpdPath);
    } catch (e) {
      await hpm.close();
      throw e;
    }
    try {
      const mh = await readFileHeader(hpm, HPM_MAGIC);
      const dh = await readFileHeader(hpd, HPD_MAGIC);
      if (!mh.profileId.equals(dh.profileId)) {
        throw new HpError(`${hpdPath}: belongs to a different profile than ${hpmPath} (profile ids differ at byte 8)`);
      }
      const header = decodeHeaderBody(mh.body, mh.profileId, hpmPath);
      const p = new V2Profile(hpm, hpd, header, new Dictionary(new Symbolizer(header.startTimeUs)), mh.end, dh.end, (mh.flags & HPM_FLAG_DEFLATE) !== 0, opts, base);
      await p.readMetadata();
      // A follower waits for the recorder to finish the block; any other read is done with the
      // .hpm's tail now (every later look only picks up blocks written since).
      if (!opts.follow) p.reportHpmTruncation();
      p.noteUnsampled();
      return p;
    } catch (e) {
      await hpm.close();
      await hpd.close();
      throw e;
    }
  }

  /** Read .hpm blocks not read yet (the whole file at open; the new tail when a trace is missing). */
  private async readMetadata(): Promise<void> {
    await this.hpm.refreshSize();
    let lastGood = this.hpmOffset;
    this.hpmTruncatedAt = null;
    const onProblem = (p: BlockProblem): void => {
      if (p.kind === 'truncated') {
        // A live recorder may be mid-write: reportHpmTruncation() says it once we are done with the file.
        this.hpmTruncatedAt = p.offset;
        return;
      }
      this.issues.report(this.hpm.path, problemText(p), p.offset);
    };
    for await (const block of this.hpm.blocks(this.hpmOffset, onProblem)) {
      try {
        this.dict.parse(this.hpmDeflated ? inflateHpmBlock(block.payload) : block.payload, block.count);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        // In a deflated block the offset is into the inflated records: the block's start is the place to look.
        this.issues.report(this.hpm.path, inBlock(e.message, block.offset), block.offset + 24 + (this.hpmDeflated ? 0 : e.at));
      }
      lastGood = block.offset + 24 + block.payload.length;
    }
    this.hpmOffset = lastGood;
  }

  /** Once: the .hpm ends in a cut block (its traces, marks, histogram or END may be missing). */
  private reportHpmTruncation(): void {
    if (this.hpmTruncatedAt === null || this.hpmTruncationReported) return;
    this.hpmTruncationReported = true;
    this.issues.report(this.hpm.path, 'truncated last block (recorder still running or crashed); read everything before it', this.hpmTruncatedAt);
  }

  /** The .hpm ends in a cut block: whatever the .hpd says, the profile is not whole. */
  get metadataTruncated(): boolean {
    return this.hpmTruncatedAt !== null;
  }

  private unsampledNoted = false;

  /**
   * Say once (a notice, also under --strict: the file is sound) that a range recorded at p = 0
   * held allocations: every total leaves them out, and no interval can say how much they were.
   */
  private noteUnsampled(): void {
    if (this.unsampledNoted) return;
    const notice = unsampledNotice(this.header.sampling, this.dict.histogram);
    if (notice === null) return;
    this.unsampledNoted = true;
    this.opts.onNotice?.({ file: this.hpm.path, message: notice });
  }

  trace(id: number): Trace | undefined {
    return this.dict.traces.get(id);
  }

  *traces(): Iterable<Trace> {
    for (const id of this.dict.traces.ids()) yield this.dict.traces.get(id)!;
  }

  traceFrameIndexes(id: number): { dropped: number; frames: ArrayLike<number> } | undefined {
    return this.dict.traces.frameIndexesOf(id);
  }

  frameAt(index: number): Frame {
    return this.dict.traces.frameAt(index);
  }

  get histogram(): HistogramBucket[] | null {
    return this.dict.histogram;
  }

  marks(): Mark[] {
    return this.dict.marks;
  }

  get complete(): boolean {
    return this.endSeen && this.hpmTruncatedAt === null;
  }

  /** Whether frees can be matched to allocations: only reading from the start (a seek or --from skips allocations). */
  private freesCheckable(fromUs: number): boolean {
    return this.opts.startOffset === undefined && fromUs === -Infinity;
  }

  async *batches(): AsyncIterable<EventBatch> {
    if (this.started) throw new Error('batches() called twice');
    this.started = true;
    const fromUs = this.opts.fromUs ?? -Infinity;
    const toUs = this.opts.toUs ?? Infinity;
    const start = this.opts.startOffset ?? this.hpdBlocksStart;
    const decoded = this.useWorker(start) ? this.decodeInWorker(start, fromUs, toUs) : this.decodeInline(start, fromUs, toUs);
    let truncatedAt: number | null = null;
    const reportedUndefined = new Set<number>();
    let lastTimeUs = -Infinity;
    // Frees of blocks never allocated (per trace, more frees than allocations so far): only
    // checkable when reading from the start, since a seek or --from skips allocations.
    const tally = new EventTally(this.freesCheckable(fromUs));
    for await (const d of decoded) {
      if (d.kind === 'issue') {
        this.issues.report(this.hpd.path, d.message, d.offset);
        continue;
      }
      if (d.kind === 'done') {
        truncatedAt = d.truncatedAt;
        break;
      }
      const batch = d.batch;
      if (d.sawEnd) this.endSeen = true;
      // Every trace a block uses must be defined; a live profile may need the .hpm tail.
      // Writers number traces from 1 without gaps, so one comparison settles nearly every block.
      if (d.maxTrace > this.dict.denseTraceIds()) {
        let missing = false;
        for (let i = 0; i < batch.length; i++) {
          if (batch.op[i]! <= OP_FREE && !this.dict.traces.has(batch.trace[i]!)) {
            missing = true;
            break;
          }
        }
        if (missing) {
          await this.readMetadata();
          for (let i = 0; i < batch.length; i++) {
            const id = batch.trace[i]!;
            if (batch.op[i]! <= OP_FREE && !this.dict.traces.has(id)) {
              if (!reportedUndefined.has(id)) {
                // The first one in detail; the rest are counted once the read ends (a cut or
                // damaged .hpm leaves hundreds undefined: one line each drowned everything else).
                if (reportedUndefined.size === 0) {
                  this.issues.report(this.hpd.path, `event uses undefined trace ${id} (${this.hpm.path} defines none such: cut short or damaged?); such events are shown as unknown sites`, d.offset);
                }
                reportedUndefined.add(id);
              }
              this.dict.traces.set(id, { id, frames: [{ function: `[undefined trace ${id}]`, file: '?', line: 0 }], dropped: 0 });
            }
          }
        }
      }
      // Semantic checks (man/hpx.5, LIMITS): times going back across blocks (blocks duplicated
      // or reordered), events the recorder reports lost, and data after END.
      if (batch.length > 0) {
        const first = batch.timeUs[0]!;
        if (first < lastTimeUs) this.issues.report(this.hpd.path, `time goes back from ${lastTimeUs} to ${first} µs (blocks duplicated or out of order)`, d.offset);
        const last = batch.timeUs[batch.length - 1]!;
        if (last > lastTimeUs) lastTimeUs = last;
        // The decoding thread, when there is one, counted these batches already.
        if (d.tally) tally.assign(d.tally);
        else tally.add(batch);
      }
      this.opts.onProgress?.(d.end, this.hpd.size);
      if (batch.length > 0) yield batch;
      d.release?.();
      if (this.endSeen) {
        if (d.end < this.hpd.size) this.issues.report(this.hpd.path, `${this.hpd.size - d.end} bytes after the block holding END were ignored`, d.end);
        break;
      }
    }
    const { unmatched, lost } = tally;
    if (reportedUndefined.size > 1) {
      this.issues.report(this.hpd.path, `events use ${reportedUndefined.size} traces that ${this.hpm.path} does not define; shown as unknown sites`);
    }
    if (unmatched > 0) {
      this.issues.report(
        this.hpd.path,
        `${unmatched} free${unmatched === 1 ? '' : 's'} of blocks never allocated (the first at ${tally.firstUnmatchedUs / 1e6} s, trace ${tally.firstUnmatchedTrace}): ignored`,
      );
    }
    if (lost > 0) this.issues.report(this.hpd.path, `the recorder lost ${lost} event${lost === 1 ? '' : 's'} (the first at ${tally.firstLostUs / 1e6} s): estimates undercount`);
    if (truncatedAt !== null && !this.endSeen) {
      this.issues.report(this.hpd.path, 'truncated last block (recorder still running or crashed); read everything before it', truncatedAt);
    }
    if (!this.endSeen) {
      // Pick up a HISTOGRAM or END the recorder wrote after our first look.
      await this.readMetadata();
      this.noteUnsampled();
    }
    this.reportHpmTruncation();
  }

  /**
   * Whether to decode on a worker thread: for a large file read to its end (not a live one
   * being followed, nor a short read the caller announced with `worker: false`), where running
   * the decoder beside the analysis pays for starting a thread.
   * HEAPPROF_READ_WORKER=0 or 1 overrides the choice (the tests compare both paths).
   */
  private useWorker(start: number): boolean {
    const forced = process.env.HEAPPROF_READ_WORKER;
    if (this.opts.follow || this.opts.worker === false) return false;
    if (forced === '0' || forced === '1') return forced === '1';
    return this.hpd.size - start >= WORKER_MIN_BYTES;
  }

  /** The .hpd's blocks decoded in this thread, as the stream batches() consumes. */
  private async *decodeInline(start: number, fromUs: number, toUs: number): AsyncGenerator<Decoded> {
    const owned = { batch: newBatch(INITIAL_BATCH) };
    let truncatedAt: number | null = null;
    const problems: Decoded[] = [];
    const onProblem = (p: BlockProblem): void => {
      if (p.kind === 'truncated') {
        truncatedAt = p.offset;
        return;
      }
      problems.push({ kind: 'issue', message: problemText(p), offset: p.offset });
    };
    const follow = this.opts.follow ? { isDone: () => this.endSeen } : null;
    for await (const block of this.hpd.blocks(start, onProblem, follow)) {
      yield* problems.splice(0);
      if (block.timeUs >= toUs) break; // blocks are in time order
      const d = decodeOwned(block, owned, fromUs, toUs);
      if (!d.ok) {
        yield { kind: 'issue', message: d.message, offset: d.offset };
        continue;
      }
      yield { kind: 'batch', batch: owned.batch, index: block.index, offset: block.offset, end: block.offset + 24 + block.payload.length, sawEnd: d.sawEnd, maxTrace: d.maxTrace };
    }
    yield* problems.splice(0);
    yield { kind: 'done', truncatedAt };
  }

  /** The same stream, decoded by lib/format/hpd-worker on another thread. */
  private async *decodeInWorker(start: number, fromUs: number, toUs: number): AsyncGenerator<Decoded> {
    const control = new Int32Array(new SharedArrayBuffer(4));
    // Work goes to whichever thread has time for it. With the addon's kernels this one does:
    // it keeps the tally and decodes blocks itself whenever it would otherwise wait
    // (hpd-worker.ts hands them over undecoded). Without them the decoding thread does both.
    const mainHasKernels = readerKernels() !== null;
    const job: DecodeJob = { path: this.hpd.path, start, fromUs, toUs, checkFrees: this.freesCheckable(fromUs), mainHasKernels, control: control.buffer as SharedArrayBuffer };
    // A slot (batch or undecoded block) the worker may fill again.
    const release = (): void => {
      Atomics.add(control, 0, 1);
      Atomics.notify(control, 0);
    };
    const rawSlots: Buffer[] = [];
    const owned = { batch: newBatch(INITIAL_BATCH) };
    const slots: EventBatch[] = [];
    const url = workerUrl();
    // A built (.js) worker needs none of the parent's loaders (a test runner's TypeScript one takes seconds to start).
    // node:worker_threads is loaded here, by the reads that use it, not at every command's start.
    const { Worker } = process.getBuiltinModule('node:worker_threads');
    const worker = new Worker(url, { workerData: job, ...(url.pathname.endsWith('.js') ? { execArgv: [] } : {}) });
    const queue: WorkerMessage[] = [];
    let wake: (() => void) | null = null;
    let failure: Error | null = null;
    const push = (m: WorkerMessage): void => {
      queue.push(m);
      const w = wake;
      wake = null;
      w?.();
    };
    worker.on('message', push);
    worker.on('error', (e: Error) => {
      failure = e;
      push({ type: 'error', message: e.message, exitCode: null });
    });
    // Only reached before 'done' when the thread died (a normal end posts 'done' first).
    worker.on('exit', (code) => push({ type: 'error', message: `decoder thread ended early (status ${code})`, exitCode: null }));
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const m = queue.shift()!;
        if (m.type === 'issue') {
          yield { kind: 'issue', message: m.message, offset: m.offset };
        } else if (m.type === 'done') {
          yield { kind: 'done', truncatedAt: m.truncatedAt };
          return;
        } else if (m.type === 'error') {
          if (m.exitCode !== null) throw new HpError(m.message, m.exitCode);
          throw failure ?? new Error(m.message);
        } else if (m.type === 'raw') {
          if (m.buffer) rawSlots[m.slot] = Buffer.from(m.buffer);
          const block = { index: m.index, offset: m.offset, count: m.count, timeUs: m.timeUs, payload: rawSlots[m.slot]!.subarray(0, m.length) };
          const d = decodeOwned(block, owned, fromUs, toUs);
          release(); // the payload is decoded: its slot can take the next block
          if (!d.ok) yield { kind: 'issue', message: d.message, offset: d.offset };
          else yield { kind: 'batch', batch: owned.batch, index: m.index, offset: m.offset, end: m.offset + 24 + m.length, sawEnd: d.sawEnd, maxTrace: d.maxTrace };
        } else {
          if (m.columns) {
            const c = m.columns;
            slots[m.slot] = { length: 0, op: new Uint8Array(c.op), timeUs: new Float64Array(c.timeUs), trace: new Uint32Array(c.trace), size: new Float64Array(c.size) };
          }
          const batch = slots[m.slot]!;
          batch.length = m.length;
          yield { kind: 'batch', batch, index: m.index, offset: m.offset, end: m.end, sawEnd: m.sawEnd, maxTrace: m.maxTrace, release, ...(m.tally ? { tally: m.tally } : {}) };
        }
      }
    } finally {
      await worker.terminate();
    }
  }

  async close(): Promise<void> {
    await this.hpm.close();
    await this.hpd.close();
  }
}

export type { Sampling };
