// Events NDJSON (the hp-events schema, version 1), both ways: the line writers hp-events
// uses, and a ProfileSource that reads such a stream back, so that
// `hp-events x | hp-snapshot - --at T` gives the numbers `hp-snapshot x --at T` gives.

import type { Readable } from 'node:stream';
import { HpError, ndjsonChunks, type NdjsonLine } from '../cli.js';
import { escapeControls } from '../escape.js';
import { MAX_TIME_US } from './events.js';
import { unsampledNotice } from './weights.js';
import { TraceCounts } from './trace-table.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_LOST, OP_NAMES, OP_RSS, type EventBatch, type ProfileSource, type ReadOptions } from './source.js';
import { MAX_NAME_LENGTH, MAX_TRACE_FRAMES, type Frame, type Header, type HistogramBucket, type Mark, type Sampling, type Trace } from './types.js';

export const EVENTS_SCHEMA = 1;

// ---------------------------------------------------------------- writing

function samplingJson(s: Sampling): Record<string, unknown> {
  return s.kind === 'table' ? { kind: 'table', bounds: s.bounds, probs: s.probs } : { kind: 'poisson', mean_bytes: s.meanBytes };
}

function histogramJson(histogram: HistogramBucket[]): Array<Record<string, number>> {
  return histogram.map((b) => ({ count: b.count, bytes: b.bytes, sampled: b.sampled }));
}

/**
 * The first line: what the profile is and how it was sampled, and the recorder's size
 * histogram when it is known before the events (a profile's .hpm holds it): a reader that
 * stops before the summary line (`hp-snapshot - --at T`) bounds its totals with it as a
 * reader of the profile does.
 */
export function metaLine(h: Header, histogram: HistogramBucket[] | null = null, window: ProfileSource['window'] = undefined): string {
  return `${JSON.stringify({
    type: 'meta',
    schema: EVENTS_SCHEMA,
    format_version: h.formatVersion,
    frames: 'leaf-first',
    start_time_us: h.startTimeUs,
    start_time: new Date(Math.floor(h.startTimeUs / 1000)).toISOString(),
    pid: h.pid,
    ppid: h.ppid,
    python_version: h.pythonVersion,
    argv: h.argv,
    sampling: samplingJson(h.sampling),
    mode: h.mode,
    recorder: h.recorder,
    hostname: h.hostname,
    stack_capture: h.stackCapture,
    notes: h.notes,
    profile_id: h.profileId,
    ...(h.native !== undefined ? { native: h.native } : {}),
    ...(h.nativeStacks ? { native_stacks: true } : {}),
    ...(histogram ? { histogram: histogramJson(histogram) } : {}),
    // A stream cut to a window says so, so that its readers do not take the cut for a crash.
    ...(window ? { window: { from: window.fromUs === null ? null : window.fromUs / 1e6, to: window.toUs === null ? null : window.toUs / 1e6 } } : {}),
  })}\n`;
}

export function traceLine(t: Trace): string {
  const frames = t.frames.map((f) => (f.native ? { function: f.function, file: f.file, line: f.line, native: true } : { function: f.function, file: f.file, line: f.line }));
  const extra = {
    ...(t.domain !== undefined ? { domain: t.domain } : {}),
    ...(t.thread !== undefined ? { thread: t.thread.id, thread_tid: t.thread.tid, thread_name: t.thread.name } : {}),
  };
  return `${JSON.stringify({ type: 'trace', id: t.id, frames, dropped: t.dropped, ...extra })}\n`;
}

/** A mark: its time in seconds since start, its label and its number in the profile. */
export function markLine(m: Mark): string {
  return `${JSON.stringify({ type: 'mark', t: m.timeUs / 1e6, label: m.label, id: m.id })}\n`;
}

/** The last line: whether the recorder's END marker was read, and its size histogram. */
export function summaryLine(complete: boolean, events: number, histogram: HistogramBucket[] | null): string {
  return `${JSON.stringify({ type: 'summary', complete, events, histogram: histogram ? histogramJson(histogram) : null })}\n`;
}

/** Seconds with microsecond resolution; JSON's shortest form round-trips exactly. */
export function seconds(us: number): number {
  return us / 1e6;
}

/**
 * The JSON text of seconds(us) for whole µs, built from integers (much faster than
 * formatting a double): below 10^15 µs the decimal has at most 15 significant digits, so
 * it is exactly the shortest form JSON.stringify would give.
 */
export function secondsText(us: number): string {
  if (!Number.isInteger(us) || us < 0 || us >= 1e15) return String(us / 1e6);
  const whole = Math.floor(us / 1e6);
  const frac = us - whole * 1e6;
  if (frac === 0) return String(whole);
  let f = String(frac).padStart(6, '0');
  let end = f.length;
  while (f.charCodeAt(end - 1) === 48) end--;
  f = f.slice(0, end);
  return `${whole}.${f}`;
}

// ---------------------------------------------------------------- reading

const BATCH = 4096;

function newBatch(): EventBatch {
  return { length: 0, op: new Uint8Array(BATCH), timeUs: new Float64Array(BATCH), trace: new Uint32Array(BATCH), size: new Float64Array(BATCH) };
}

/** Own entries only: "toString" or "__proto__" is not an op (a plain object would find them on its prototype). */
const OPS = new Map<unknown, number>([
  ['alloc', OP_ALLOC],
  ['free', OP_FREE],
  ['rss', OP_RSS],
  ['end', OP_END],
  ['lost', OP_LOST],
]);

/** Latest start_time_us a Date can show (±8.64e15 ms). */
const MAX_START_TIME_US = 8.64e18;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const OUR_TYPES = new Set(['meta', 'trace', 'event', 'summary', 'mark']);

/** An events NDJSON stream as a ProfileSource. */
export class NdjsonSource implements ProfileSource {
  private traceMap = new Map<number, Trace>();
  private histogramValue: HistogramBucket[] | null = null;
  private sawEnd = false;
  private summaryComplete: boolean | null = null;
  private started = false;
  private foreign = 0;
  private readonly reportedUndefined = new Set<number>();
  window?: { fromUs: number | null; toUs: number | null };

  private constructor(
    readonly name: string,
    readonly header: Header,
    private readonly chunks: AsyncGenerator<NdjsonLine[]>,
    /** Lines already read from the stream after the meta line (the rest of its chunk). */
    private pendingLines: NdjsonLine[],
    private readonly opts: ReadOptions,
    foreignBefore: number,
    private readonly input: Readable,
  ) {
    this.foreign = foreignBefore;
  }

  /** Continue a stream whose meta line the caller has already read (hp-collapse sniffs). */
  static fromMeta(chunks: AsyncGenerator<NdjsonLine[]>, rest: NdjsonLine[], name: string, opts: ReadOptions, meta: Record<string, unknown>, lineNumber: number, foreignBefore: number, input: Readable): NdjsonSource {
    return NdjsonSource.withMeta(name, meta, `${name}: line ${lineNumber}`, chunks, rest, opts, foreignBefore, input);
  }

  private static withMeta(name: string, meta: Obj, where: string, chunks: AsyncGenerator<NdjsonLine[]>, rest: NdjsonLine[], opts: ReadOptions, foreignBefore: number, input: Readable): NdjsonSource {
    const source = new NdjsonSource(name, parseMeta(meta, where), chunks, rest, opts, foreignBefore, input);
    // The histogram as known at the start (the summary line's, when read, replaces it).
    if (Array.isArray(meta.histogram)) source.histogramValue = parseHistogram(meta.histogram, where, 'meta');
    source.noteUnsampled();
    if (isObj(meta.window)) {
      const bound = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? Math.round(x * 1e6) : null);
      source.window = { fromUs: bound(meta.window.from), toUs: bound(meta.window.to) };
    }
    return source;
  }

  /** Read up to the meta line (which must come before any other line of ours). */
  static async open(input: Readable, name: string, opts: ReadOptions = {}): Promise<NdjsonSource> {
    const chunks = ndjsonChunks(input, name);
    let foreign = 0;
    /** The first hp-snapshot line met, if any: the error then says what the input is. */
    let snapshotLine = 0;
    for (;;) {
      const next = await chunks.next();
      if (next.done) {
        if (snapshotLine > 0) {
          throw new HpError(
            `${name}: line ${snapshotLine}: hp-snapshot output, not hp-events: a snapshot is one moment, read as it is (with no --at, --from, --to or --alloc) by hp-diff, hp-flow, hp-pprof and hp-collapse`,
          );
        }
        if (foreign > 0) throw new HpError(`${name}: no hp-events meta line (${foreign} lines of something else)`);
        throw new HpError(`${name}: empty input (expected hp-events NDJSON)`);
      }
      const lines = next.value;
      for (let k = 0; k < lines.length; k++) {
        const { lineNumber, value } = lines[k]!;
        if (!isObj(value) || !OUR_TYPES.has(value.type as string)) {
          if (snapshotLine === 0 && isObj(value) && value.type === 'snapshot') snapshotLine = lineNumber;
          foreign++;
          continue;
        }
        if (value.type !== 'meta') throw new HpError(`${name}: line ${lineNumber}: '${String(value.type)}' line before the meta line`);
        return NdjsonSource.withMeta(name, value, `${name}: line ${lineNumber}`, chunks, lines.slice(k + 1), opts, foreign, input);
      }
    }
  }

  trace(id: number): Trace | undefined {
    if (id === 0) return { id: 0, frames: [], dropped: 0 };
    return this.traceMap.get(id);
  }

  *traces(): Iterable<Trace> {
    yield* [...this.traceMap.values()].sort((a, b) => a.id - b.id);
  }

  get histogram(): HistogramBucket[] | null {
    return this.histogramValue;
  }

  private readonly markList: Mark[] = [];

  /** Mark lines read so far. */
  marks(): Mark[] {
    return this.markList;
  }

  get complete(): boolean {
    return this.summaryComplete ?? this.sawEnd;
  }

  private unsampledNoted = false;

  /** Once: sizes drawn at p = 0 that held allocations (a notice, also under --strict). */
  private noteUnsampled(): void {
    const notice = this.unsampledNoted ? null : unsampledNotice(this.header.sampling, this.histogramValue);
    if (notice === null) return;
    this.unsampledNoted = true;
    this.opts.onNotice?.({ file: this.name, message: notice });
  }

  private issue(message: string, lineNumber?: number): void {
    const text = lineNumber === undefined ? message : `line ${lineNumber}: ${message}`;
    if (this.opts.strict) throw new HpError(`${this.name}: ${text}`);
    this.opts.onIssue?.({ file: this.name, message: text, ...(lineNumber !== undefined ? { offset: lineNumber } : {}) });
  }

  async *batches(): AsyncIterable<EventBatch> {
    if (this.started) throw new Error('batches() called twice');
    this.started = true;
    const fromUs = this.opts.fromUs ?? -Infinity;
    const toUs = this.opts.toUs ?? Infinity;
    let batch = newBatch();
    // Semantic checks as for .hpd (man/hpx.5, LIMITS): events the recorder lost, and frees of
    // blocks never allocated (only checkable when reading from the start).
    // (A stream that starts at its writer's --from, after the start, frees blocks allocated before it.)
    const liveByTrace = fromUs === -Infinity && !(this.window?.fromUs) ? new TraceCounts() : null;
    let lastEventUs = -Infinity;
    const wallClockTimes = this.header.formatVersion === 1;
    let lastEventT = 0;
    let lost = 0;
    let firstLostUs = 0;
    let unmatched = 0;
    let firstUnmatchedUs = 0;
    let firstUnmatchedTrace = 0;
    const report = (): void => {
      if (unmatched > 0) this.issue(`${unmatched} free${unmatched === 1 ? '' : 's'} of blocks never allocated (the first at ${firstUnmatchedUs / 1e6} s, trace ${firstUnmatchedTrace}): ignored`);
      if (lost > 0) this.issue(`the recorder lost ${lost} event${lost === 1 ? '' : 's'} (the first at ${firstLostUs / 1e6} s): estimates undercount`);
    };
    for (;;) {
      let lines = this.pendingLines;
      this.pendingLines = [];
      if (lines.length === 0) {
        const next = await this.chunks.next();
        if (next.done) break;
        lines = next.value;
      }
      for (const { lineNumber, value } of lines) {
      if (!isObj(value)) {
        this.foreign++;
        continue;
      }
      const where = (): string => `${this.name}: line ${lineNumber}`;
      switch (value.type) {
        case 'event': {
          const op = OPS.get(value.op);
          if (op === undefined) throw new HpError(`${where()}: event: 'op' must be one of ${OP_NAMES.join(', ')}`);
          const t = value.t;
          if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new HpError(`${where()}: event: 't' must be a number of seconds >= 0`);
          const timeUs = Math.round(t * 1e6);
          if (timeUs > MAX_TIME_US) throw new HpError(`${where()}: event: 't' ${t} s is past the ${MAX_TIME_US / 1e6} s limit`);
          // Every reader replays events in order (the live heap at --at T stops at the first event
          // after T): an event that goes back in time would be silently misplaced. Streams of
          // heapprof 1.0.x files are exempt: 1.0 timed events by the wall clock, which can step
          // back, and its file reader takes them in file order too.
          if (timeUs < lastEventUs && !wallClockTimes) throw new HpError(`${where()}: t ${t} is before the previous event's ${lastEventT}: events must be in time order`);
          lastEventUs = timeUs;
          lastEventT = t;
          let size = 0;
          if (op !== OP_END) {
            size = value.size as number;
            // Sizes are summed exactly as doubles: above 2^53 - 1 bytes (8 PiB) they would not be.
            if (typeof size === 'number' && size > Number.MAX_SAFE_INTEGER) {
              throw new HpError(`${where()}: event: 'size' ${size} is past the ${Number.MAX_SAFE_INTEGER}-byte limit (2^53 - 1)`);
            }
            if (typeof size !== 'number' || !Number.isFinite(size) || size < 0) throw new HpError(`${where()}: event: 'size' must be a number >= 0`);
          }
          let trace = 0;
          if (op === OP_ALLOC || op === OP_FREE) {
            trace = value.trace as number;
            if (!Number.isInteger(trace) || trace < 0 || trace > 0xffffffff) throw new HpError(`${where()}: event: 'trace' must be an integer id >= 0`);
            if (trace !== 0 && !this.traceMap.has(trace) && !this.reportedUndefined.has(trace)) {
              // A filtered stream (`hp-events run | grep -v ...`) drops trace lines: one warning,
              // then its events count under an unknown site each.
              if (this.reportedUndefined.size === 0) this.issue(`event uses undefined trace ${trace} (was its trace line filtered out?): such events are shown as unknown sites`, lineNumber);
              this.reportedUndefined.add(trace);
              this.traceMap.set(trace, { id: trace, frames: [{ function: `[undefined trace ${trace}]`, file: '?', line: 0 }], dropped: 0 });
            }
          }
          if (op === OP_END) this.sawEnd = true;
          if (timeUs >= toUs) {
            // Events are in time order: nothing later can be in the window.
            if (batch.length > 0) yield batch;
            report();
            return;
          }
          if (timeUs < fromUs) continue;
          if (op === OP_LOST) {
            if (lost === 0) firstLostUs = timeUs;
            lost += size;
          } else if (liveByTrace !== null && op === OP_ALLOC) liveByTrace.add(trace);
          else if (liveByTrace !== null && op === OP_FREE && !liveByTrace.remove(trace)) {
            if (unmatched === 0) {
              firstUnmatchedUs = timeUs;
              firstUnmatchedTrace = trace;
            }
            unmatched++;
          }
          const i = batch.length++;
          batch.op[i] = op;
          batch.timeUs[i] = timeUs;
          batch.trace[i] = trace;
          batch.size[i] = size;
          if (batch.length === BATCH) {
            yield batch;
            batch = newBatch();
          }
          break;
        }
        case 'trace': {
          const t = parseTrace(value, where());
          this.traceMap.set(t.id, t);
          break;
        }
        case 'mark': {
          const t = value.t;
          if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || typeof value.label !== 'string') throw new HpError(`${where()}: mark: needs 't' (seconds >= 0) and 'label' (a string)`);
          this.markList.push({ id: typeof value.id === 'number' ? value.id : this.markList.length + 1, timeUs: Math.round(t * 1e6), label: value.label });
          break;
        }
        case 'summary':
          if (typeof value.complete === 'boolean') this.summaryComplete = value.complete;
          if (Array.isArray(value.histogram)) this.histogramValue = parseHistogram(value.histogram, where());
          this.noteUnsampled();
          break;
        case 'meta':
          throw new HpError(`${where()}: a second meta line (concatenated profiles are not supported)`);
        default:
          this.foreign++;
      }
      }
    }
    if (batch.length > 0) yield batch;
    report();
  }

  /** Lines that were valid JSON but not of this schema (reported once by the caller). */
  get foreignLines(): number {
    return this.foreign;
  }

  async close(): Promise<void> {
    await this.chunks.return(undefined);
    if (this.foreign > 0) this.opts.onIssue?.({ file: this.name, message: `ignored ${this.foreign} foreign line${this.foreign === 1 ? '' : 's'} (valid JSON, not hp-events)` });
    this.foreign = 0;
    if (this.input !== process.stdin) this.input.destroy();
  }
}

function parseMeta(v: Obj, where: string): Header {
  if (v.schema !== undefined && v.schema !== EVENTS_SCHEMA) {
    const shown = typeof v.schema === 'number' ? String(v.schema) : escapeControls(JSON.stringify(v.schema).slice(0, 40));
    throw new HpError(`${where}: meta: unsupported schema ${shown} (this reader knows ${EVENTS_SCHEMA})`);
  }
  const s = v.sampling;
  if (!isObj(s)) throw new HpError(`${where}: meta: no 'sampling'`);
  let sampling: Sampling;
  if (s.kind === 'table') {
    const bounds = s.bounds;
    const probs = s.probs;
    if (!Array.isArray(bounds) || !Array.isArray(probs) || bounds.length !== probs.length) throw new HpError(`${where}: meta: sampling table needs 'bounds' and 'probs' of equal length`);
    for (let i = 0; i < bounds.length; i++) {
      const b = bounds[i];
      const p = probs[i];
      if (typeof b !== 'number' || !(b >= 0) || (i > 0 && !(b > (bounds[i - 1] as number)))) throw new HpError(`${where}: meta: sampling bounds must increase`);
      if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new HpError(`${where}: meta: sampling probabilities must be in [0, 1]`);
    }
    sampling = { kind: 'table', bounds: bounds as number[], probs: probs as number[] };
  } else if (s.kind === 'poisson') {
    if (typeof s.mean_bytes !== 'number' || !(s.mean_bytes > 0)) throw new HpError(`${where}: meta: poisson sampling needs 'mean_bytes' > 0`);
    sampling = { kind: 'poisson', meanBytes: s.mean_bytes };
  } else {
    throw new HpError(`${where}: meta: unknown sampling kind ${JSON.stringify(s.kind)}`);
  }
  const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const start = v.start_time_us;
  if (start !== undefined && start !== null && !(typeof start === 'number' && start >= 0 && start <= MAX_START_TIME_US)) {
    throw new HpError(`${where}: meta: 'start_time_us' must be a number of µs from 0 to ${MAX_START_TIME_US}`);
  }
  const strings = (x: unknown, field: string): string[] => {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) throw new HpError(`${where}: meta: '${field}' must be a list of strings`);
    return x as string[];
  };
  const str = (x: unknown): string | null => (typeof x === 'string' ? x : null);
  return {
    formatVersion: num(v.format_version) ?? 2,
    startTimeUs: num(v.start_time_us) ?? 0,
    pid: num(v.pid),
    ppid: num(v.ppid),
    pythonVersion: str(v.python_version),
    argv: strings(v.argv, 'argv'),
    sampling,
    mode: v.mode === 'stats' ? 'stats' : 'profile',
    recorder: str(v.recorder),
    hostname: str(v.hostname),
    stackCapture: v.stack_capture !== false,
    notes: strings(v.notes, 'notes'),
    profileId: str(v.profile_id),
    ...(typeof v.native === 'boolean' ? { native: v.native } : {}),
    ...(v.native_stacks === true ? { nativeStacks: true } : {}),
  };
}

function parseTrace(v: Obj, where: string): Trace {
  const id = v.id;
  if (!Number.isInteger(id) || (id as number) <= 0 || (id as number) > 0xffffffff) throw new HpError(`${where}: trace: 'id' must be an integer >= 1`);
  if (!Array.isArray(v.frames)) throw new HpError(`${where}: trace: 'frames' must be an array`);
  if (v.frames.length > MAX_TRACE_FRAMES) throw new HpError(`${where}: trace: ${v.frames.length} frames, more than the ${MAX_TRACE_FRAMES} limit`);
  const frames: Frame[] = v.frames.map((f: unknown) => {
    if (!isObj(f) || typeof f.file !== 'string') throw new HpError(`${where}: trace: each frame needs a 'file'`);
    if (f.file.length > MAX_NAME_LENGTH || (typeof f.function === 'string' && f.function.length > MAX_NAME_LENGTH)) {
      throw new HpError(`${where}: trace: a frame name is longer than the ${MAX_NAME_LENGTH}-character limit`);
    }
    const line = f.line ?? 0;
    if (!Number.isInteger(line) || (line as number) < 0) throw new HpError(`${where}: trace: frame 'line' must be an integer >= 0`);
    const frame: Frame = { function: typeof f.function === 'string' ? f.function : null, file: f.file, line: line as number };
    if (f.native === true) frame.native = true;
    return frame;
  });
  const dropped = Number.isInteger(v.dropped) && (v.dropped as number) >= 0 ? (v.dropped as number) : 0;
  const trace: Trace = { id: id as number, frames, dropped };
  if (v.domain !== undefined) {
    if (v.domain !== 'python' && v.domain !== 'native' && v.domain !== 'mmap') throw new HpError(`${where}: trace: 'domain' must be python, native or mmap`);
    trace.domain = v.domain;
  }
  if (Number.isInteger(v.thread) && (v.thread as number) > 0) {
    const name = typeof v.thread_name === 'string' ? v.thread_name : '';
    if (name.length > MAX_NAME_LENGTH) throw new HpError(`${where}: trace: 'thread_name' is longer than the ${MAX_NAME_LENGTH}-character limit`);
    trace.thread = { id: v.thread as number, tid: Number.isInteger(v.thread_tid) ? (v.thread_tid as number) : 0, name };
  }
  return trace;
}

function parseHistogram(list: unknown[], where: string, line: 'meta' | 'summary' = 'summary'): HistogramBucket[] {
  return list.map((b) => {
    if (!isObj(b) || typeof b.count !== 'number' || typeof b.bytes !== 'number' || typeof b.sampled !== 'number') {
      throw new HpError(`${where}: ${line}: histogram entries need count, bytes and sampled`);
    }
    return { count: b.count, bytes: b.bytes, sampled: b.sampled };
  });
}
