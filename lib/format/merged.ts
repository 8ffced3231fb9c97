// Several profiles read as one (the processes of a --follow-fork run, attached processes, any
// mix): events aligned on wall-clock time (each header's start time), traces with the same
// frames merged into one id, RSS summed over the processes (or, with rssByProcess, each
// process's own samples tagged with it). With byPid, every trace gets its process as the
// outermost frame ("pid 1234"), so that every analysis splits by process.

import { HpError } from '../cli.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_RSS, type EventBatch, type ProfileSource } from './source.js';
import type { Frame, Header, HistogramBucket, Mark, ThreadInfo, Trace } from './types.js';

const BATCH = 8192;

/** The outermost pseudo frame that names a process under --by pid. */
export function pidFrame(pid: number | string): Frame {
  return { function: null, file: `pid ${pid}`, line: 0 };
}

/** True for a frame pidFrame made (it is always a trace's outermost). */
export function isProcessFrame(f: Frame): boolean {
  return f.function === null && f.line === 0 && !f.native && /^pid \S+$/.test(f.file);
}

function samplingKey(h: Header): string {
  return JSON.stringify(h.sampling);
}

export interface MergedOptions {
  /**
   * RSS events carry each process's own sample, with the process's number (1 + its index in
   * `sources`) in the `trace` field, and each process's END is kept, numbered the same way:
   * for a reader that combines RSS by its own rule (hp-history's nearest sample per process).
   * Otherwise RSS events carry the sum over the processes and END events are dropped.
   */
  rssByProcess?: boolean;
}

export class MergedSource implements ProfileSource {
  readonly name: string;
  readonly header: Header;
  private readonly shiftUs: number[];
  private readonly traceById = new Map<number, Trace>();
  private readonly idByKey = new Map<string, number>();
  private readonly remap: Array<Map<number, number>>;
  private nextId = 1;
  /** Each source's threads by their id there, as the merged stream numbers them (ids unique across processes). */
  private readonly threadRemap: Array<Map<number, ThreadInfo>>;
  private readonly threadIds = new Set<number>();
  /** The first RSS sample of each source (for an attached process: its RSS at attach). */
  readonly firstRss: Array<number | null>;

  /** `alignUs`: the wall-clock start to align on (default: the earliest of the sources). */
  constructor(
    readonly sources: ProfileSource[],
    private readonly byPid: boolean,
    alignUs?: number,
    private readonly options: MergedOptions = {},
  ) {
    if (sources.length === 0) throw new Error('no sources');
    const first = sources.reduce((a, b) => (b.header.startTimeUs < a.header.startTimeUs ? b : a));
    for (const s of sources) {
      if (samplingKey(s.header) !== samplingKey(first.header)) {
        throw new HpError(`${s.name}: sampled differently from ${first.name} (${describe(s.header)} vs ${describe(first.header)}): profiles read as one must share their sampler (hp-pprof can combine them)`);
      }
      if (s.header.mode !== 'profile') throw new HpError(`${s.name}: a stats-mode profile has no events to merge`);
    }
    const startUs = alignUs ?? first.header.startTimeUs;
    this.shiftUs = sources.map((s) => s.header.startTimeUs - startUs);
    this.remap = sources.map(() => new Map());
    this.threadRemap = sources.map(() => new Map());
    this.firstRss = sources.map(() => null);
    this.name = sources.length === 1 ? sources[0]!.name : `${sources[0]!.name} (+${sources.length - 1} more)`;
    const pids = sources.map((s) => s.header.pid);
    const attached = sources.filter((s) => s.header.attached);
    this.header = {
      ...first.header,
      startTimeUs: startUs,
      pid: sources.length === 1 ? first.header.pid : null,
      ppid: sources.length === 1 ? first.header.ppid : null,
      notes: [
        ...(sources.length > 1 ? [`${sources.length} profiles read as one, aligned on wall-clock time: ${sources.map((s, i) => `${s.name} (pid ${pids[i] ?? '?'}, +${(this.shiftUs[i]! / 1e6).toFixed(3)} s)`).join(', ')}`] : []),
        ...sources.flatMap((s) => s.header.notes.map((n) => (sources.length > 1 ? `${s.name}: ${n}` : n))),
      ],
      ...(attached.length > 0 ? { attached: attached[0]!.header.attached } : {}),
      // Recorded with --native if any of them was: its C allocations are in the stream, whatever
      // the earliest profile's recording (per-domain figures key on this).
      ...(sources.some((s) => s.header.native) ? { native: true } : {}),
      ...(sources.some((s) => s.header.nativeStacks) ? { nativeStacks: true } : {}),
    };
  }

  /** True when RSS events are each process's own, tagged with its number (MergedOptions.rssByProcess). */
  get rssByProcess(): boolean {
    return this.options.rssByProcess === true;
  }

  /** Microseconds from the merged start to source i's start. */
  offsetUs(i: number): number {
    return this.shiftUs[i]!;
  }

  /**
   * Every source's marks on the merged timeline, in time order, numbered afresh. A label
   * several processes wrote (a pytest-xdist worker each) appears once per process.
   */
  marks(): Mark[] {
    const all: Array<Omit<Mark, 'id'>> = [];
    this.sources.forEach((s, i) => {
      for (const m of s.marks?.() ?? []) all.push({ timeUs: m.timeUs + this.shiftUs[i]!, label: m.label });
    });
    all.sort((a, b) => a.timeUs - b.timeUs);
    return all.map((m, i) => ({ id: i + 1, ...m }));
  }

  trace(id: number): Trace | undefined {
    if (id === 0) return { id: 0, frames: [], dropped: 0 };
    return this.traceById.get(id);
  }

  *traces(): Iterable<Trace> {
    yield* [...this.traceById.values()].sort((a, b) => a.id - b.id);
  }

  get histogram(): HistogramBucket[] | null {
    // The processes' exact histograms, bucket by bucket.
    const all = this.sources.map((s) => s.histogram);
    if (all.some((h) => h === null)) return null;
    const n = Math.max(...all.map((h) => h!.length));
    const sum: HistogramBucket[] = [];
    for (let i = 0; i < n; i++) {
      const b = { count: 0, bytes: 0, sampled: 0 };
      for (const h of all) {
        const x = h![i];
        if (x) {
          b.count += x.count;
          b.bytes += x.bytes;
          b.sampled += x.sampled;
        }
      }
      sum.push(b);
    }
    return sum;
  }

  get complete(): boolean {
    return this.sources.every((s) => s.complete);
  }

  get parts(): readonly ProfileSource[] {
    return this.sources.flatMap((s) => s.parts ?? [s]);
  }

  private mergedTrace(i: number, id: number): number {
    const known = this.remap[i]!.get(id);
    if (known !== undefined) return known;
    const source = this.sources[i]!;
    const original = id === 0 ? null : source.trace(id);
    let frames: Frame[];
    let dropped = 0;
    if (id === 0) frames = [];
    else if (!original) frames = [{ function: `[undefined trace ${id} of ${source.name}]`, file: '?', line: 0 }];
    else {
      frames = original.frames;
      dropped = original.dropped;
    }
    if (this.byPid) {
      const pid = source.header.pid ?? source.name;
      frames = id === 0 ? [{ function: null, file: '[no Python stack]', line: 0 }, pidFrame(pid)] : [...frames, pidFrame(pid)];
    }
    // A --native profile's trace also names its domain and thread: traces alike in frames but not
    // in these stay apart, or a native allocation would count as python in the merged stream.
    const domain = original?.domain;
    const thread = original?.thread ? this.mergedThread(i, original.thread) : undefined;
    let merged: number;
    if (frames.length === 0 && !domain && !thread) merged = 0;
    else {
      const where = `${domain ?? ''}\u0001${thread?.id ?? ''}`;
      const key = `${dropped}\0${where}\0${frames.map((f) => `${f.function ?? ''}\u0001${f.file}\u0001${f.line}${f.native ? '\u0001n' : ''}`).join('\0')}`;
      merged = this.idByKey.get(key) ?? 0;
      if (merged === 0) {
        merged = this.nextId++;
        this.idByKey.set(key, merged);
        this.traceById.set(merged, { id: merged, frames, dropped, ...(domain ? { domain } : {}), ...(thread ? { thread } : {}) });
      }
    }
    this.remap[i]!.set(id, merged);
    return merged;
  }

  /**
   * Source i's thread on the merged stream: its id there unless a thread of another process met
   * earlier in the stream took it, else the lowest free one; OS thread id and name kept.
   */
  private mergedThread(i: number, thread: ThreadInfo): ThreadInfo {
    const known = this.threadRemap[i]!.get(thread.id);
    if (known) return known;
    let id = thread.id;
    if (this.threadIds.has(id)) {
      id = 1;
      while (this.threadIds.has(id)) id++;
    }
    this.threadIds.add(id);
    const merged = id === thread.id ? thread : { ...thread, id };
    this.threadRemap[i]!.set(thread.id, merged);
    return merged;
  }

  async *batches(): AsyncIterable<EventBatch> {
    const n = this.sources.length;
    const iters = this.sources.map((s) => s.batches()[Symbol.asyncIterator]());
    const cur: Array<EventBatch | null> = new Array(n).fill(null);
    const pos = new Array<number>(n).fill(0);
    const fill = async (i: number): Promise<void> => {
      for (;;) {
        const r = await iters[i]!.next();
        if (r.done) {
          cur[i] = null;
          return;
        }
        if (r.value.length > 0) {
          cur[i] = r.value;
          pos[i] = 0;
          return;
        }
      }
    };
    try {
      yield* this.merge(cur, pos, fill);
    } finally {
      // A reader that stops early (the end of a window, an --at moment) ends every profile's
      // read too: a decoder thread still running for one of them kept the process alive.
      await Promise.all(iters.map((it) => it.return?.()));
    }
  }

  /** The sources' batches as one stream in time order; cur, pos and fill are each source's place. */
  private async *merge(
    cur: Array<EventBatch | null>,
    pos: number[],
    fill: (i: number) => Promise<void>,
  ): AsyncGenerator<EventBatch> {
    const n = this.sources.length;
    const lastRss = new Float64Array(n);
    await Promise.all(this.sources.map((_, i) => fill(i)));
    const out: EventBatch = { length: 0, op: new Uint8Array(BATCH), timeUs: new Float64Array(BATCH), trace: new Uint32Array(BATCH), size: new Float64Array(BATCH) };
    let rssSum = 0;
    // Processes that have begun (their first event merged) and that have ended (END), for the
    // RSS between processes: see where a process begins, below.
    const begun = new Uint8Array(n);
    const endedOf = new Uint8Array(n);
    let alive = 0;
    let ended = 0;
    for (;;) {
      // The source with the earliest next event, and the time up to which it can run alone.
      let best = -1;
      let bestT = Infinity;
      let secondT = Infinity;
      for (let i = 0; i < n; i++) {
        const b = cur[i];
        if (!b) continue;
        const t = b.timeUs[pos[i]!]! + this.shiftUs[i]!;
        if (t < bestT) {
          secondT = bestT;
          bestT = t;
          best = i;
        } else if (t < secondT) secondT = t;
      }
      if (best < 0) break;
      const b = cur[best]!;
      const shift = this.shiftUs[best]!;
      let k = pos[best]!;
      while (k < b.length) {
        const t = b.timeUs[k]! + shift;
        if (t > secondT) break;
        const o = b.op[k]!;
        if (!begun[best]) {
          begun[best] = 1;
          // A process begins after every earlier one ended (runs recorded one after another):
          // RSS 0 stands until its first sample, so that a reader of this stream, taking the
          // sample nearest to a moment, reads 0 in the gap as hp-history reads the profiles
          // (lib/model/rss.ts), not this process's first sample ahead of its start.
          if (!this.options.rssByProcess && alive === 0 && ended > 0) {
            this.put(out, OP_RSS, t, 0, 0);
            if (out.length === BATCH) {
              pos[best] = k;
              yield out;
              out.length = 0;
            }
          }
          alive++;
        }
        if (o === OP_END && !endedOf[best]) {
          endedOf[best] = 1;
          ended++;
          alive--;
        }
        if (this.options.rssByProcess && (o === OP_END || o === OP_RSS)) {
          if (o === OP_RSS && this.firstRss[best] === null) this.firstRss[best] = b.size[k]!;
          this.put(out, o, t, best + 1, o === OP_RSS ? b.size[k]! : 0);
        } else if (o === OP_END) {
          // One process ended: it no longer holds any RSS. The merged stream has no END of its own.
          // The last process to end keeps its last sample standing, as one profile's stream does:
          // a 0 there would be the stream's last RSS, read as the heap's last point.
          if (cur.some((c, i) => i !== best && c !== null)) {
            rssSum -= lastRss[best]!;
            lastRss[best] = 0;
            this.put(out, OP_RSS, t, 0, Math.max(0, rssSum));
          }
        } else if (o === OP_RSS) {
          if (this.firstRss[best] === null) this.firstRss[best] = b.size[k]!;
          rssSum += b.size[k]! - lastRss[best]!;
          lastRss[best] = b.size[k]!;
          this.put(out, OP_RSS, t, 0, Math.max(0, rssSum));
        } else {
          const trace = o === OP_ALLOC || o === OP_FREE ? this.mergedTrace(best, b.trace[k]!) : b.trace[k]!;
          this.put(out, o, t, trace, b.size[k]!);
        }
        k++;
        if (out.length === BATCH) {
          pos[best] = k;
          yield out;
          out.length = 0;
        }
      }
      pos[best] = k;
      if (k >= b.length) await fill(best);
    }
    if (out.length > 0) yield out;
  }

  private put(out: EventBatch, op: number, t: number, trace: number, size: number): void {
    const j = out.length++;
    out.op[j] = op;
    out.timeUs[j] = t;
    out.trace[j] = trace;
    out.size[j] = size;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close()));
  }
}

function describe(h: Header): string {
  const s = h.sampling;
  return s.kind === 'poisson' ? `byte-Poisson ${s.meanBytes} B` : `table {${s.bounds.map((b, i) => `${b}: ${s.probs[i]}`).join(', ')}}`;
}

/**
 * A source's events from `fromUs` (inclusive) to `toUs` (exclusive), on its own timeline: what
 * ReadOptions.fromUs/toUs do inside a single profile's reader, for a merged source, whose
 * window is on the merged timeline and so cannot be handed to each profile's reader.
 */
export class WindowedSource implements ProfileSource {
  constructor(
    private readonly inner: ProfileSource,
    private readonly fromUs: number | undefined,
    private readonly toUs: number | undefined,
  ) {}

  get name(): string {
    return this.inner.name;
  }
  get header(): Header {
    return this.inner.header;
  }
  get histogram(): HistogramBucket[] | null {
    return this.inner.histogram;
  }
  get complete(): boolean {
    return this.inner.complete;
  }
  get parts(): readonly ProfileSource[] | undefined {
    return this.inner.parts;
  }
  trace(id: number): Trace | undefined {
    return this.inner.trace(id);
  }
  traces(): Iterable<Trace> {
    return this.inner.traces();
  }
  marks(): Mark[] {
    return this.inner.marks?.() ?? [];
  }

  /** The time of the latest event read, inside the window or not (for the span in messages). */
  lastUs = 0;

  async *batches(): AsyncIterable<EventBatch> {
    const from = this.fromUs ?? -Infinity;
    const to = this.toUs ?? Infinity;
    for await (const b of this.inner.batches()) {
      if (b.length === 0) continue;
      this.lastUs = Math.max(this.lastUs, b.timeUs[b.length - 1]!);
      if (b.timeUs[b.length - 1]! < from) continue;
      const out: EventBatch = { length: 0, op: new Uint8Array(b.length), timeUs: new Float64Array(b.length), trace: new Uint32Array(b.length), size: new Float64Array(b.length) };
      let past = false;
      for (let k = 0; k < b.length; k++) {
        const t = b.timeUs[k]!;
        if (t >= to) {
          past = true;
          break;
        }
        if (t < from) continue;
        const j = out.length++;
        out.op[j] = b.op[k]!;
        out.timeUs[j] = t;
        out.trace[j] = b.trace[k]!;
        out.size[j] = b.size[k]!;
      }
      if (out.length > 0) yield out;
      if (past) return;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
