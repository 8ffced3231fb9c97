// hp-pprof: the live heap at a moment (inuse_space / inuse_objects) or the allocations of a time
// window (alloc_space / alloc_objects) as a gzipped pprof profile, for go tool pprof, Pyroscope,
// Parca and the other tools that read profile.proto.

import { UsageError, parser, runMain, setQuiet, warn, formatBytes } from '../cli.js';
import { commandReadOptions, isNdjsonArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { checkOutputArg, writeResult } from '../export/output.js';
import { profileBases } from '../profile-inputs.js';
import { useOptions } from './common.js';
import { allocationStacks, loadStackSet, type StackSet } from '../export/stacks.js';
import { checkWindow, noteEmptyWindow, parseAt, reportIncomplete, resolveMarkOptions, secondsOption, warnSitesLeftOut } from './common.js';
import type { SnapshotAt } from '../model/snapshot.js';

const NAME = 'hp-pprof';

const USAGE = `Usage: $0 [PROFILE|-]... [--at T | --alloc [--from S] [--to S]] [-o FILE]

Write a gzipped pprof profile (profile.proto) with Python function names, files and line numbers.
Sample values are Horvitz-Thompson estimates: every sampled event is weighted by 1/p before summing.
--at gives the live heap (inuse_space, inuse_objects); --alloc, --from or --to the allocations of a
window (alloc_space, alloc_objects). Several profiles (a --follow-fork run, or a quoted glob
'run.*' that hp-pprof expands) make one pprof with samples labelled pid and profile.

With no input, or -, stdin is read. An NDJSON input (- or a file) is hp-snapshot output, or
hp-events output when --at, --alloc, --from or --to is given. Times are seconds since the start of
each profile, and a mark:LABEL is looked up in each. Binary data is never written to a terminal.`;

const EXAMPLES: Array<[string, string]> = [
  ['hp-snapshot run --at peak | $0 > heap.pb.gz', 'the live heap at the peak, from snapshot NDJSON'],
  ['$0 run --alloc --from 10 --to 20 -o a.pb.gz', 'what was allocated in [10 s, 20 s)'],
  ['$0 run run.[0-9]* --at end -o all.pb.gz', 'every process of a --follow-fork run'],
];

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = useOptions(parser(NAME, argv, USAGE, EXAMPLES).parserConfiguration({ 'parse-positional-numbers': false }).strict(false).strictOptions(), ['at', 'from', 'to', 'output', 'strict'], {
      at: { default: undefined, describe: "The live heap at this moment: seconds since start, 'peak', 'end' or mark:LABEL (default for a profile: peak)" },
      from: { describe: 'Window start, seconds since start (implies --alloc; default 0)' },
      to: { describe: 'Window end, seconds since start, exclusive (implies --alloc; default: the end)' },
    })
      .option('alloc', { type: 'boolean', describe: 'Allocations made in the window (whether freed or not) instead of the live heap' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .conflicts('at', ['alloc', 'from', 'to'])
      .parseSync();
    setQuiet(Boolean(args.quiet));
    const named = args._.map(String);
    if (named.filter((i) => i === '-').length > 1) throw new UsageError('only one input can be stdin');
    // As every reader: quoted globs ('run.*') expanded, run.hpm and run.hpd meaning run, companions left out.
    const inputs = named.length === 0 ? ['-'] : profileBases(named);
    await checkOutputArg(args.output, inputs);
    const alloc = Boolean(args.alloc) || args.from !== undefined || args.to !== undefined;
    // Each profile keeps its own timeline (one set per process): a mark: time is looked up in each.
    const plan: Array<{ input: string; at: SnapshotAt | null; fromUs: number | null; toUs: number | null }> = [];
    for (const input of inputs) {
      const own: Record<string, unknown> = { at: args.at, from: args.from, to: args.to };
      await resolveMarkOptions(own, ['at', 'from', 'to'], () => input);
      const fromUs = secondsOption(own.from, 'from') ?? null;
      const toUs = secondsOption(own.to, 'to') ?? null;
      checkWindow({ text: args.from, us: fromUs }, { text: args.to, us: toUs });
      plan.push({ input, at: own.at !== undefined ? parseAt(String(own.at)) : null, fromUs, toUs });
    }
    if (args.output === undefined && process.stdout.isTTY) throw new UsageError('refusing to write binary output to a terminal: use -o FILE or a pipe');

    const sets: StackSet[] = [];
    for (const { input, at, fromUs, toUs } of plan) {
      const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict), ...(alloc && fromUs !== null ? { fromUs } : {}) });
      try {
        let set: StackSet;
        if (alloc) {
          const source = await openSource(input, opts);
          try {
            set = await allocationStacks(source, fromUs ?? 0, toUs ?? Infinity, plan.length > 1);
          } finally {
            await source.close();
          }
        } else {
          // A profile is read at --at (default peak); NDJSON without --at is hp-snapshot output.
          set = await loadStackSet(input, at, (a) => openSource(a, opts), isNdjsonArg, plan.length > 1);
        }
        if (set.ignored) warn(`${input === '-' ? 'stdin' : input}: ignored ${set.ignored} lines that are not snapshot sites`);
        warnSitesLeftOut(input, set.sitesLeftOut, 'the pprof');
        if (set.readToEndOf) reportIncomplete(set.readToEndOf);
        set.source = input === '-' ? 'stdin' : input;
        sets.push(set);
      } finally {
        done();
      }
    }
    // The encoder and pprof-format load once there is something to encode: not for --help or a bad option.
    const { encodePprof, sampleTypeNames } = await import('../export/pprof.js');
    const data = encodePprof(sets, { comments: [`${NAME} ${argv.join(' ')}`] });
    await writeResult(args.output, data, true);
    const [, space] = sampleTypeNames(sets[0]!.kind);
    for (const set of sets) warn(`${sets.length > 1 ? `${set.source}: ` : ''}${set.label}: ${set.stacks.length.toLocaleString('en-US')} stacks, ${space} ${formatBytes(set.total.bytes)}`);
    if (alloc && sets.every((set) => set.stacks.length === 0)) noteEmptyWindow(args.from, args.to, 'no allocations');
  });
}
