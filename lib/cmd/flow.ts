// hp-flow: the original heapprof's flow graph as Graphviz dot, for one or several moments.

import { UsageError, parser, runMain, setQuiet, warn } from '../cli.js';
import type { ProfileSource } from '../format/source.js';
import { manyInputs, openInputs } from '../profile-inputs.js';
import { commandReadOptions, inputName, isNdjsonArg, isStreamArg, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { buildFlowGraph, renderDot } from '../export/flow.js';
import { checkOutputArg, writeResult } from '../export/output.js';
import { loadStackSet, type StackSet } from '../export/stacks.js';
import { inputArg, parseAt, reportIncomplete, resolveMarkOptions, useOptions, warnSitesLeftOut } from './common.js';

const NAME = 'hp-flow';

const USAGE = `Usage: $0 [PROFILE...|-] [--at T]... [--threshold F] [-o FILE]

The flow graph of the live heap as Graphviz dot: a box per line of code, an arrow per call (caller
to callee), each box with the bytes allocated at that line (local) and at or below it (cumulative)
and their share of the total, coloured by cumulative share. Several --at draw several moments in
one graph. Lines below --threshold of the total are left out, and chains of lines that allocate
nothing themselves are drawn as one double-bordered box.

A profile is read at each --at (default: peak). With no input, or -, stdin is hp-snapshot output
(grouped by trace, so that whole stacks are known), or hp-events output when --at is given.
Several profiles (or a quoted glob 'run.*') are read as one, aligned on wall-clock time.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run | dot -Tsvg > flow.svg', 'the peak as an SVG graph'],
  ['$0 run --at 3800 --at 4500 --threshold 0.02 -o flow.dot', 'two moments in one graph'],
  ['hp-snapshot run --at end --json | $0 | dot -Tpng > leaks.png', 'what was never freed'],
];

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = useOptions(parser(NAME, argv, USAGE, EXAMPLES).parserConfiguration({ 'parse-positional-numbers': false }).strict(false).strictOptions(), ['at', 'output', 'strict'], {
      at: { array: true, default: undefined, describe: "The moment: seconds since start, 'peak' (default), 'end' or mark:LABEL; repeat for several" },
    })
      .option('threshold', { type: 'number', default: 0.01, requiresArg: true, describe: 'Leave out lines whose cumulative share is below this fraction at every time' })
      .option('collapse', { type: 'boolean', default: true, describe: 'Collapse chains of non-allocating lines into one box (--no-collapse draws every line)' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(Boolean(args.quiet));
    const inputs = args._.map(String);
    // Several profiles (or a quoted glob) are read as one, aligned on wall-clock time.
    const merged = manyInputs(inputs);
    if (merged && inputs.includes('-')) throw new UsageError('stdin cannot be read together with other inputs');
    const input = merged ? inputs.join(' ') : inputArg(inputs, NAME);
    await checkOutputArg(args.output, merged ? inputs : [input]);
    const threshold = args.threshold;
    if (!(threshold >= 0 && threshold < 1)) throw new UsageError('--threshold: expected a fraction in [0, 1), e.g. 0.01 for 1%');
    await resolveMarkOptions(args, ['at'], () => (merged ? inputs : input));
    const ats = ((args.at as unknown as unknown[] | undefined) ?? []).map((a) => parseAt(String(a)));
    if (ats.length > 1 && (await isStreamArg(input))) throw new UsageError(`${inputName(input)} can be read only once: save the profile to a file to draw several times`);

    const sets: StackSet[] = [];
    for (const at of ats.length > 0 ? ats : [null]) {
      const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) });
      try {
        const isNdjson = !merged && (await isNdjsonArg(input));
        const open = (a: string): Promise<ProfileSource> => (merged ? openInputs(inputs, opts, false) : openSource(a, opts));
        const set = await loadStackSet(input, at ?? (isNdjson ? null : { kind: 'peak' }), open, async (a) => !merged && isNdjsonArg(a));
        if (set.ignored) warn(`ignored ${set.ignored} lines that are not snapshot sites`);
        warnSitesLeftOut(input, set.sitesLeftOut, 'the graph');
        // Once, though a profile drawn at several --at may be read to its end more than once.
        if (set.readToEndOf && sets.every((s) => !s.readToEndOf)) reportIncomplete(set.readToEndOf);
        // One frame per site: no calls to draw.
        if (set.groupBy !== undefined && set.groupBy !== 'trace' && set.groupBy !== 'stack') warn(`${input === '-' ? 'stdin' : input}: a snapshot grouped by ${set.groupBy} has no stacks, so the graph has no calls: give hp-snapshot --group-by trace`);
        sets.push(set);
      } finally {
        done();
      }
    }
    const graph = buildFlowGraph(sets);
    const title = `heapprof flow graph: ${input === '-' ? 'stdin' : input}`;
    const dot = renderDot(graph, { threshold, title, collapse: Boolean(args.collapse) });
    await writeResult(args.output, dot, false);
  });
}
