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
    // The latest event time read (the end marker passes any window), for the check of --from/--to.
    let lastUs = 0;
    // Events read in the window, less the end marker (which passes any window), for the note on an empty one.
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
        await humanEvents(source, out, sawBatch);
        checkSpan();
        if (read === 0) noteEmptyWindow(given.from, given.to, 'no events');
        return;
      }
      // The window of this stream: this command's --from/--to within an input stream's own.
      const inner = (source as ProfileSource).window;
      const windowFrom = fromUs === undefined ? (inner?.fromUs ?? null) : Math.max(fromUs, inner?.fromUs ?? 0);
      const windowTo = toUs === undefined ? (inner?.toUs ?? null) : Math.min(toUs, inner?.toUs ?? Infinity);
      await out.write(metaLine(source.header, source.histogram, windowFrom !== null || windowTo !== null ? { fromUs: windowFrom, toUs: windowTo } : undefined));
      const probability = probabilityFunction(source.header.sampling);
      // Weight strings by probability: a table sampler has a handful of distinct values.
      const weightText = new Map<number, string>();
      const weight = (p: number): string => {
        let w = weightText.get(p);
        if (w === undefined) {
          w = String(p > 0 ? 1 / p : 0);
          if (weightText.size < 4096) weightText.set(p, w);
        }
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
      for await (const batch of source.batches()) {
        sawBatch(batch);
        const { op, timeUs, trace, size } = batch;
        let text = '';
        // NDJSON input defines its marks as it streams.
        if (source.marks && source.marks().length > marks.length) {
          marks = [...marks.slice(0, nextMark), ...sourceMarks(source).slice(nextMark)];
          nextMarkUs = nextMark < marks.length ? marks[nextMark]!.timeUs : Infinity;
        }
        for (let i = 0; i < batch.length; i++) {
          const o = op[i]!;
          if (timeUs[i]! >= nextMarkUs) text += marksUpTo(timeUs[i]!);
          const t = secondsText(timeUs[i]!);
          if (o === OP_ALLOC || o === OP_FREE) {
            const id = trace[i]!;
            if (id !== 0 && !written.has(id)) {
              written.add(id);
              text += traceLine(traceOrPlaceholder((x) => source.trace(x), id));
            }
            const s = size[i]!;
            text += `{"type":"event","t":${t},"op":"${o === OP_ALLOC ? 'alloc' : 'free'}","trace":${id},"size":${s},"w":${weight(probability(s))}}\n`;
          } else if (o === OP_END) {
            text += `{"type":"event","t":${t},"op":"end"}\n`;
          } else {
            text += `{"type":"event","t":${t},"op":"${OP_NAMES[o]}","size":${size[i]!}}\n`;
          }
        }
        events += batch.length;
        await out.write(text);
      }
      checkSpan();
      await out.write(marksUpTo(Infinity));
      await out.write(summaryLine(source.complete, events, source.histogram));
      await out.flush();
      if (read === 0) noteEmptyWindow(given.from, given.to, 'no events');
    } finally {
      done();
      await source.close();
    }
  });
}

/** The terminal view: one aligned line per event, the innermost frame of its trace. */
async function humanEvents(source: import('../format/source.js').ProfileSource, out: OutputWriter, seen: (batch: EventBatch) => void): Promise<void> {
  const probability = probabilityFunction(source.header.sampling);
  const labels = new Map<number, string>();
  const width = terminalWidth();
  const label = (id: number): string => {
    let l = labels.get(id);
    if (l === undefined) {
      const t = traceOrPlaceholder((x) => source.trace(x), id);
      l = t.frames[0] ? frameLabel(t.frames[0]) : NO_STACK_LABEL;
      labels.set(id, l);
    }
    return l;
  };
  await out.write(`${'t (s)'.padStart(12)}  ${'op'.padEnd(5)} ${'size'.padStart(10)} ${'weight'.padStart(8)}  site\n`);
  for await (const batch of source.batches()) {
    seen(batch);
    let text = '';
    for (let i = 0; i < batch.length; i++) {
      const o = batch.op[i]!;
      const head = `${secondsText(batch.timeUs[i]!).padStart(12)}  ${OP_NAMES[o]!.padEnd(5)} `;
      if (o === OP_ALLOC || o === OP_FREE) {
        const s = batch.size[i]!;
        const p = probability(s);
        const w = p > 0 ? Number((1 / p).toPrecision(3)).toString() : '0';
        text += `${head}${formatBytes(s).padStart(10)} ${w.padStart(8)}  ${clip(label(batch.trace[i]!), Math.max(20, width - 42))}\n`;
      } else if (o === OP_END) {
        text += `${head.trimEnd()}\n`;
      } else {
        text += `${head}${formatBytes(batch.size[i]!).padStart(10)}\n`;
      }
    }
    await out.write(text);
  }
  await out.flush();
}
