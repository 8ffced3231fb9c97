// hp-events: a profile (or events NDJSON) as events NDJSON: a meta line, each trace before
// its first use, one line per event, and a summary line.

import { OutputWriter, formatBytes, parser, runMain, setQuiet } from '../cli.js';
import { metaLine, secondsText, summaryLine, traceLine } from '../format/ndjson.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_NAMES, type EventBatch, type ProfileSource } from '../format/source.js';
import { probabilityFunction } from '../format/weights.js';
import { frameLabel, NO_STACK_LABEL, traceOrPlaceholder } from '../model/sites.js';
import { commandReadOptions, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { WindowedSource } from '../format/merged.js';
import { manyInputs, openInputs } from '../profile-inputs.js';
import { checkWindow, checkWithinSpan, inputArg, noteEmptyWindow, resolveMarkOptions, secondsOption, useOptions, wantsJson } from './common.js';
import { clip, terminalWidth } from './human.js';
import { asciiBytes, LineBytes } from '../line-bytes.js';
import { markLine } from '../format/ndjson.js';
import { sourceMarks } from '../format/marks.js';

const USAGE = `$0 [PROFILE|-] [--from SECONDS] [--to SECONDS]

Write a profile's events as NDJSON (schema 1, see hp-events(1)): a "meta" line, a "trace"
line before the first event that uses each trace (frames innermost first), one "event" line
per event (t in seconds since start, op alloc|free|rss|end|lost, trace, size, weight w = 1/p),
a "mark" line (t, label) for each mark in its place in time, and a final "summary" line. --from
and --to take seconds or mark:LABEL. PROFILE is a base name (run = run.hpm + run.hpd), an events
NDJSON file, or - for stdin (the default). Several profiles (or a quoted glob 'run.*') are written
as one stream, aligned on wall-clock time (t from the earliest start), identical traces merged. On
a terminal (or with --no-json) one readable line per event instead: time, op, size, weight and
the innermost frame.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run --from 4 --to 4.2', 'the events of 200 ms'],
  ["$0 run | grep -v '/site-packages/' | hp-snapshot -", 'a snapshot without the allocations of installed packages'],
  ['$0 run | hp-collapse --alloc > alloc.txt', 'all bytes ever allocated, as folded stacks'],
];

// The constant parts of an event line: {"type":"event","t":T,"op":"alloc","trace":ID,"size":S,"w":W}
const EVENT_T = asciiBytes('{"type":"event","t":');
const OP_ALLOC_TRACE = asciiBytes(',"op":"alloc","trace":');
const OP_FREE_TRACE = asciiBytes(',"op":"free","trace":');
const SIZE = asciiBytes(',"size":');
const CLOSE_LINE = asciiBytes('}\n');
const OP_END_LINE = asciiBytes(',"op":"end"}\n');

export function main(argv: string[]): void {
  runMain('hp-events', async () => {
    const args = useOptions(parser('hp-events', argv, USAGE, EXAMPLES).strict(false).strictOptions(), ['from', 'to', 'json', 'strict'], {
      from: { describe: 'Only events at or after this time (seconds since start, or mark:LABEL)' },
      to: { describe: 'Only events before this time (seconds since start, or mark:LABEL)' },
    })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(args.quiet === true);
    const inputs = args._.map(String);
    const merged = manyInputs(inputs);
    const input = merged ? '' : inputArg(args._, 'hp-events');
    const given = { from: args.from, to: args.to }; // as written: mark:LABEL, for messages
    await resolveMarkOptions(args, ['from', 'to'], () => (merged ? inputs : input));
    const fromUs = secondsOption(args.from, 'from');
    const toUs = secondsOption(args.to, 'to');
    checkWindow({ text: given.from, us: fromUs }, { text: given.to, us: toUs });
    const json = wantsJson(args.json);
    const { opts, done } = commandReadOptions({
      v1Weights: v1WeightsArg(args['v1-weights']),
      strict: Boolean(args.strict),
      // Several profiles: the window is on the merged timeline, applied after merging.
      ...(fromUs !== undefined && !merged ? { fromUs } : {}),
      ...(toUs !== undefined && !merged ? { toUs } : {}),
    });
    const source = merged ? new WindowedSource(await openInputs(inputs, opts, false), fromUs, toUs) : await openSource(input, opts);
    const out = new OutputWriter();
    // The latest event time read (the decoder passes the end marker through any window), for the check of --from/--to.
    let lastUs = 0;
    // Events read in the window, less the end marker (which the decoder passes through any window), for the note on an empty one.
    let read = 0;
    const sawBatch = (batch: EventBatch): void => {
      for (let i = 0; i < batch.length; i++) if (batch.op[i] !== OP_END) read++;
      if (batch.length > 0) lastUs = Math.max(lastUs, batch.timeUs[batch.length - 1]!);
    };
    const checkSpan = (): void => {
      if (!source.complete) return;
      const spanUs = source instanceof WindowedSource ? source.lastUs : lastUs;
      checkWithinSpan('--from', fromUs, spanUs);
      checkWithinSpan('--to', toUs, spanUs);
    };
    try {
      if (!json) {
        await humanEvents(source, out, sawBatch, toUs);
        checkSpan();
        if (read === 0) noteEmptyWindow(given.from, given.to, 'no events');
        return;
      }
      // The window of this stream: this command's --from/--to within an input stream's own.
      const inner = (source as ProfileSource).window;
      const windowFrom = fromUs === undefined ? (inner?.fromUs ?? null) : Math.max(fromUs, inner?.fromUs ?? 0);
      const windowTo = toUs === undefined ? (inner?.toUs ?? null) : Math.min(toUs, inner?.toUs ?? Infinity);
      const lines = new LineBytes(out);
      lines.text(metaLine(source.header, source.histogram, windowFrom !== null || windowTo !== null ? { fromUs: windowFrom, toUs: windowTo } : undefined));
      const probability = probabilityFunction(source.header.sampling);
      // An event line's end, `,"w":W}\n`, by probability: a table sampler has a handful of
      // distinct values, and consecutive events mostly share one.
      const weightBytes = new Map<number, Uint8Array>();
      let lastP = NaN;
      let lastWeight = asciiBytes('');
      const weightEnd = (p: number): Uint8Array => {
        if (p === lastP) return lastWeight;
        let w = weightBytes.get(p);
        if (w === undefined) {
          w = asciiBytes(`,"w":${String(p > 0 ? 1 / p : 0)}}\n`);
          if (weightBytes.size < 4096) weightBytes.set(p, w);
        }
        lastP = p;
        lastWeight = w;
        return w;
      };
      // Traces already written: one bit per id below 2^24 (a Set entry cost ~50 bytes per trace), a Set above.
      let seen = new Uint8Array(1024);
      const far = new Set<number>();
      const written = {
        has: (id: number): boolean => (id < 1 << 24 ? id >>> 3 < seen.length && (seen[id >>> 3]! & (1 << (id & 7))) !== 0 : far.has(id)),
        add: (id: number): void => {
          if (id >= 1 << 24) {
            far.add(id);
            return;
          }
          if (id >>> 3 >= seen.length) {
            let m = seen.length * 2;
            while (m <= id >>> 3) m *= 2;
            const n = new Uint8Array(m);
            n.set(seen);
            seen = n;
          }
          seen[id >>> 3]! |= 1 << (id & 7);
        },
      };
      let events = 0;
      // End markers at or after --to, left out of the stream, and whether one was written.
      let endCut = 0;
      let endWritten = false;
      // Marks go in their place in time (before the events of their own microsecond), within --from/--to.
      let marks = sourceMarks(source);
      let nextMark = 0;
      let nextMarkUs = marks.length > 0 ? marks[0]!.timeUs : Infinity;
      const inWindow = (us: number): boolean => (fromUs === undefined || us >= fromUs) && (toUs === undefined || us < toUs);
      const marksUpTo = (us: number): string => {
        let text = '';
        while (nextMark < marks.length && marks[nextMark]!.timeUs <= us) {
          const m = marks[nextMark++]!;
          if (inWindow(m.timeUs)) text += markLine(m);
        }
        nextMarkUs = nextMark < marks.length ? marks[nextMark]!.timeUs : Infinity;
        return text;
      };
      // The events of `batch` from `start` until a chunk is full: a function of its own, kept
      // out of the async loop, for the optimizing compiler. Returns where it stopped.
      const writeEvents = (batch: EventBatch, start: number): number => {
        const { op, timeUs, trace, size } = batch;
        let i = start;
        while (i < batch.length && !lines.full) {
          const o = op[i]!;
          const us = timeUs[i]!;
          if (us >= nextMarkUs) lines.text(marksUpTo(us));
          if (o === OP_ALLOC || o === OP_FREE) {
            const id = trace[i]!;
            if (id !== 0 && !written.has(id)) {
              written.add(id);
              lines.text(traceLine(traceOrPlaceholder((x) => source.trace(x), id)));
            }
            const s = size[i]!;
            lines.bytes(EVENT_T);
            lines.seconds(us);
            lines.bytes(o === OP_ALLOC ? OP_ALLOC_TRACE : OP_FREE_TRACE);
            lines.number(id);
            lines.bytes(SIZE);
            lines.number(s);
            lines.bytes(weightEnd(probability(s)));
          } else if (o === OP_END) {
            // The decoder passes the end marker through a window; --to stops before it (it is
            // not an event of the window, and a reader would take its time for the end).
            if (toUs !== undefined && us >= toUs) endCut++;
            else {
              lines.bytes(EVENT_T);
              lines.seconds(us);
              lines.bytes(OP_END_LINE);
              endWritten = true;
            }
          } else {
            lines.bytes(EVENT_T);
            lines.seconds(us);
            lines.text(`,"op":"${OP_NAMES[o]}"`);
            lines.bytes(SIZE);
            lines.number(size[i]!);
            lines.bytes(CLOSE_LINE);
          }
          i++;
        }
        return i;
      };
      for await (const batch of source.batches()) {
        sawBatch(batch);
        // NDJSON input defines its marks as it streams.
        if (source.marks && source.marks().length > marks.length) {
          marks = [...marks.slice(0, nextMark), ...sourceMarks(source).slice(nextMark)];
          nextMarkUs = nextMark < marks.length ? marks[nextMark]!.timeUs : Infinity;
        }
        for (let i = 0; i < batch.length; ) {
          i = writeEvents(batch, i);
          if (lines.full) await lines.flush();
        }
        events += batch.length;
      }
      checkSpan();
      lines.text(marksUpTo(Infinity));
      // Complete: the end marker was read and, with --to, is in the stream (a window that stops
      // before it, as hp-events(1) says, is not complete).
      lines.text(summaryLine(source.complete && (toUs === undefined || endWritten), events - endCut, source.histogram));
      await lines.flush();
      await out.flush();
      if (read === 0) noteEmptyWindow(given.from, given.to, 'no events');
    } finally {
      done();
      await source.close();
    }
  });
}

/** The terminal view: one aligned line per event, the innermost frame of its trace. */
async function humanEvents(source: import('../format/source.js').ProfileSource, out: OutputWriter, seen: (batch: EventBatch) => void, toUs: number | undefined): Promise<void> {
  const probability = probabilityFunction(source.header.sampling);
  // Per trace, its innermost frame already clipped to the terminal (clip() is costly, and a
  // trace's events are many).
  const sites = new Map<number, string>();
  const width = terminalWidth();
  const site = (id: number): string => {
    let l = sites.get(id);
    if (l === undefined) {
      const t = traceOrPlaceholder((x) => source.trace(x), id);
      l = clip(t.frames[0] ? frameLabel(t.frames[0]) : NO_STACK_LABEL, Math.max(20, width - 42));
      sites.set(id, l);
    }
    return l;
  };
  // The weight column by probability (few distinct values), and the op column by op.
  const weights = new Map<number, string>();
  const weightColumn = (p: number): string => {
    let w = weights.get(p);
    if (w === undefined) {
      w = (p > 0 ? Number((1 / p).toPrecision(3)).toString() : '0').padStart(8);
      if (weights.size < 4096) weights.set(p, w);
    }
    return w;
  };
  const opColumns = OP_NAMES.map((name) => `  ${name.padEnd(5)} `);
  const lines = new LineBytes(out);
  lines.text(`${'t (s)'.padStart(12)}  ${'op'.padEnd(5)} ${'size'.padStart(10)} ${'weight'.padStart(8)}  site\n`);
  for await (const batch of source.batches()) {
    seen(batch);
    for (let i = 0; i < batch.length; i++) {
      const o = batch.op[i]!;
      const head = `${secondsText(batch.timeUs[i]!).padStart(12)}${opColumns[o]!}`;
      if (o === OP_ALLOC || o === OP_FREE) {
        const s = batch.size[i]!;
        lines.text(`${head}${formatBytes(s).padStart(10)} ${weightColumn(probability(s))}  ${site(batch.trace[i]!)}\n`);
      } else if (o === OP_END) {
        // As in NDJSON: --to stops before the end marker.
        if (toUs === undefined || batch.timeUs[i]! < toUs) lines.text(`${head.trimEnd()}\n`);
      } else {
        lines.text(`${head}${formatBytes(batch.size[i]!).padStart(10)}\n`);
      }
      if (lines.full) await lines.flush();
    }
  }
  await lines.flush();
  await out.flush();
}
