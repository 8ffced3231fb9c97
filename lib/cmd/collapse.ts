// hp-collapse: snapshot NDJSON (or events NDJSON, or a profile) to Brendan Gregg's folded
// stacks, for flamegraph.pl and speedscope.

import { HpError, OutputWriter, openTextInput, parser, runMain, UsageError, warn, setQuiet } from '../cli.js';
import { ndjsonChunks } from '../cli.js';
import { BY_CHOICES, manyInputs, openInputs } from '../profile-inputs.js';
import { OP_ALLOC, type ProfileSource } from '../format/source.js';
import type { Frame } from '../format/types.js';
import { FoldedStacks, foldedStack } from '../model/folded.js';
import { probabilityFunction } from '../format/weights.js';
import { liveHeapAt } from '../model/snapshot.js';
import { traceOrPlaceholder } from '../model/sites.js';
import { commandReadOptions, isNdjsonArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { inputArg, refuseStatsMode, reportIncomplete, warnSitesLeftOut } from './common.js';
import { secondSnapshot } from '../export/stacks.js';

const USAGE = `$0 [FILE|-]... [--alloc] [--by pid] [--strict]

Brendan Gregg's folded stacks, one line per distinct stack: frames root first as
"function (file:line)" joined by ';', one space, the estimated bytes as an integer;
identical stacks merged, lines sorted. Input (default stdin): hp-snapshot NDJSON (each
site's bytes), or hp-events NDJSON or a profile (bytes still live at the end; with --alloc,
all bytes ever allocated). Several profiles (or a quoted glob 'run.*') are read as one;
--by pid puts each process ("pid 1234") at the root of its stacks.`;

const EXAMPLES: Array<[string, string]> = [
  ['hp-snapshot run --at peak | $0 > flame.txt', 'the peak as folded stacks (speedscope, flamegraph.pl)'],
  ['$0 run > leaks.txt', 'what was still live at the end'],
  ['hp-events run --from 10 --to 20 | $0 --alloc', 'everything allocated in [10 s, 20 s)'],
];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function framesOf(v: unknown, where: string): Frame[] {
  if (!Array.isArray(v)) throw new HpError(`${where}: site: 'frames' must be an array`);
  return v.map((f) => {
    if (!isObj(f) || typeof f.file !== 'string') throw new HpError(`${where}: site: each frame needs a 'file'`);
    const frame: Frame = { function: typeof f.function === 'string' ? f.function : null, file: f.file, line: typeof f.line === 'number' ? f.line : 0 };
    if (f.native === true) frame.native = true; // shown with a ' [native]' suffix
    return frame;
  });
}

export function main(argv: string[]): void {
  runMain('hp-collapse', async () => {
    const args = parser('hp-collapse', argv, USAGE, EXAMPLES)
      .strict(false)
      .strictOptions()
      .option('alloc', { type: 'boolean', default: false, describe: 'From events: all bytes allocated, not those live at the end' })
      .option('by', { requiresArg: true, choices: BY_CHOICES as unknown as string[], describe: 'Profiles: the process ("pid 1234") as every stack\'s root frame' })
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage (a corrupt block, truncation) as an error' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    const readOptions = { v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) };
    setQuiet(args.quiet === true);
    const inputs = args._.map(String);
    const byPid = args.by === 'pid';
    if (byPid || manyInputs(inputs)) {
      // Several profiles (or --by pid): read as one, aligned on wall-clock time.
      const stacks = new FoldedStacks();
      const out = new OutputWriter();
      const { opts, done } = commandReadOptions(readOptions);
      const source = await openInputs(inputs, opts, byPid);
      try {
        await foldEvents(source, stacks, args.alloc);
      } finally {
        done();
        await source.close();
      }
      for (const line of stacks.sortedLines()) await out.write(`${line}\n`);
      await out.flush();
      return;
    }
    const input = inputArg(args._, 'hp-collapse');
    const stacks = new FoldedStacks();
    const out = new OutputWriter();
    const { opts, done } = commandReadOptions(readOptions);
    if (!(await isNdjsonArg(input))) {
      const source = await openSource(input, opts);
      try {
        await foldEvents(source, stacks, args.alloc);
      } finally {
        done();
        await source.close();
      }
    } else {
      const name = input === '-' ? 'stdin' : input;
      const stream = openTextInput(input);
      const chunks = ndjsonChunks(stream, name);
      let foreign = 0;
      let kind: 'snapshot' | 'events' | null = null;
      /** The snapshot line's number, once met. */
      let snapshotLine = 0;
      /** Sites the snapshot line counts, and the site lines read (fewer when cut by --top). */
      let snapshotSites: number | null = null;
      let siteLines = 0;
      let read = 0;
      outer: for (;;) {
        const next = await chunks.next();
        if (next.done) break;
        const lines = next.value;
        read += lines.length;
        for (let k = 0; k < lines.length; k++) {
          const { lineNumber, value } = lines[k]!;
          const where = `${name}: line ${lineNumber}`;
          if (!isObj(value)) {
            foreign++;
            continue;
          }
          if (value.type === 'meta' && kind === null) {
            // Events NDJSON: hand the rest of the stream to the events reader.
            // (Loaded here: its decoders are not needed by a snapshot stream, nor by --help.)
            const { NdjsonSource } = await import('../format/ndjson.js');
            const source = NdjsonSource.fromMeta(chunks, lines.slice(k + 1), name, opts, value, lineNumber, foreign, stream);
            try {
              await foldEvents(source, stacks, args.alloc);
            } finally {
              await source.close();
            }
            foreign = 0;
            kind = 'events';
            break outer;
          }
          if (value.type === 'snapshot') {
            // Two snapshots in one stream (outputs appended to one file) are two moments, not one heap.
            if (snapshotLine > 0) throw secondSnapshot(where, snapshotLine);
            snapshotLine = lineNumber;
            if (typeof value.sites === 'number') snapshotSites = value.sites;
            kind = 'snapshot';
            continue;
          }
          if (value.type === 'site') {
            kind = 'snapshot';
            const bytes = value.bytes;
            if (typeof bytes !== 'number' || !Number.isFinite(bytes)) throw new HpError(`${where}: site: 'bytes' must be a number`);
            const dropped = typeof value.dropped === 'number' ? value.dropped : 0;
            stacks.add(foldedStack(framesOf(value.frames, where), dropped), bytes);
            siteLines++;
            continue;
          }
          foreign++;
        }
      }
      // As every NDJSON reader: nothing at all is an error, not an empty flame graph.
      if (read === 0) throw new HpError(`${name}: empty input (expected hp-snapshot or hp-events NDJSON)`);
      // Nor is a stream of something else (hp-history output, a JSON array): its flame graph would
      // be empty, with exit 0, and -q would leave not even the warning (hp-flow and hp-pprof refuse it too).
      if (kind === null) throw new HpError(`${name}: no hp-snapshot or hp-events line (${foreign} other line${foreign === 1 ? '' : 's'}): expected hp-snapshot or hp-events NDJSON`);
      if (foreign > 0) warn(`${name}: ignored ${foreign} foreign line${foreign === 1 ? '' : 's'} (valid JSON, not hp-snapshot or hp-events)`);
      if (args.alloc && kind === 'snapshot') throw new UsageError('--alloc needs events (hp-events NDJSON or a profile), not a snapshot');
      if (snapshotSites !== null && snapshotSites > siteLines) warnSitesLeftOut(input, snapshotSites - siteLines, 'the flame graph');
    }
    // Line by line through the writer (one joined string fails past V8's string limit), each
    // made as it is written: the stacks are held once, not twice.
    for (const line of stacks.sortedLines()) await out.write(`${line}\n`);
    await out.flush();
  });
}

async function foldEvents(source: ProfileSource, stacks: FoldedStacks, alloc: boolean): Promise<void> {
  refuseStatsMode(source);
  const lookup = (id: number) => traceOrPlaceholder((x) => source.trace(x), id);
  if (!alloc) {
    const snap = await liveHeapAt(source, { kind: 'end' });
    reportIncomplete(source);
    const heap = snap.heap;
    for (let slot = 0; slot < heap.slots; slot++) {
      if (heap.sampled[slot]! <= 0) continue;
      const t = lookup(heap.traceOfSlot[slot]!);
      stacks.add(foldedStack(t.frames, t.dropped), heap.bytes[slot]!);
    }
    return;
  }
  const p = probabilityFunction(source.header.sampling);
  const byTrace = new Map<number, number>();
  for await (const batch of source.batches()) {
    for (let i = 0; i < batch.length; i++) {
      if (batch.op[i] !== OP_ALLOC) continue;
      const s = batch.size[i]!;
      const pi = p(s);
      if (pi <= 0) continue;
      const id = batch.trace[i]!;
      byTrace.set(id, (byTrace.get(id) ?? 0) + s / pi);
    }
  }
  reportIncomplete(source);
  for (const [id, bytes] of byTrace) {
    const t = lookup(id);
    stacks.add(foldedStack(t.frames, t.dropped), bytes);
  }
}
