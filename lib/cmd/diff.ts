// hp-diff: what grew and what shrank between two moments of one profile, or between two
// profiles or snapshots, by site, with the 95% interval of every change; NDJSON or a table.

import { tellingCallers } from '../model/sites.js';
import { OutputWriter, UsageError, formatBytes, parser, runMain, setQuiet, warn } from '../cli.js';
import type { SnapshotAt } from '../model/snapshot.js';
import { isGlobArg, manyInputs, openInputs } from '../profile-inputs.js';
import { commandReadOptions, inputName, isNdjsonArg, isStreamArg, ndjsonKindOfFile, openSource, V1_WEIGHTS_OPTION, v1WeightsArg } from '../source-arg.js';
import { changeInterval, diffStackSets, rowRecord, type DiffGroupBy, type DiffRow } from '../export/diff.js';
import { loadStackSet, type StackSet } from '../export/stacks.js';
import { GROUP_BY_VALUES, inputArg, parseAt, refuseStatsMode, reportIncomplete, resolveMarkOptions, useOptions, wantsJson } from './common.js';
import { changesTable, type ChangeRow } from './human.js';

const NAME = 'hp-diff';
export const DIFF_SCHEMA_VERSION = 1;

const USAGE = `Usage: $0 PROFILE --at T1 --at T2 [options]
       $0 BEFORE AFTER [--at T | --at T1 --at T2] [options]

What grew or shrank between two times in one profile, or between two profiles or hp-snapshot
outputs, by site (the whole stack by default; --group-by), with the 95% interval of each change
(the two estimates' variances add). Sites whose interval excludes zero come first, largest growth
first, then largest shrinkage, then changes within the noise. A table on a terminal, NDJSON
otherwise (or with --json).

A profile is read at --at (default: peak). An NDJSON input is hp-snapshot output, or hp-events
output when an --at applies to it; - is stdin (for one input only). A quoted glob ('run.*')
names the profiles of several processes (a --follow-fork run), read as one side.`;

const EXAMPLES: Array<[string, string]> = [
  ['$0 run --at 100 --at 500', 'what grew between 100 s and 500 s'],
  ['$0 before after --at end --significant', 'two runs compared at their end, real changes only'],
  ["$0 'old.*' 'new.*' --at end", 'two multi-process runs, every process of each summed'],
];

function formatChange(n: number): string {
  return n > 0 ? `+${formatBytes(n)}` : formatBytes(n);
}

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = useOptions(parser(NAME, argv, USAGE, EXAMPLES).parserConfiguration({ 'parse-positional-numbers': false }).strict(false).strictOptions(), ['at', 'group-by', 'top', 'json', 'strict'], {
      at: { array: true, default: undefined, describe: "The moment: seconds since start, 'peak', 'end' or mark:LABEL; one for both inputs (a mark is looked up in each profile; a saved snapshot file keeps its own moment) or one per input, two for one profile (default: peak)" },
      top: { describe: 'Only the first N sites' },
      // Sites of code only: the threads of two runs are not the same threads (hp-snapshot --group-by thread at each time).
      'group-by': { choices: GROUP_BY_VALUES.filter((v) => v !== 'thread'), describe: "What a site is: the whole stack ('trace', also 'stack'), its innermost line, function or file" },
    })
      .option('significant', { type: 'boolean', default: false, describe: 'Only sites whose change is significant (interval excludes 0)' })
      .option('table', { type: 'boolean', describe: 'The table even into a pipe (an older name for --no-json)' })
      .option('v1-weights', V1_WEIGHTS_OPTION)
      .parseSync();
    setQuiet(Boolean(args.quiet));
    // A quoted glob that matches one profile is that profile.
    const inputs = args._.map(String).map((a) => (isGlobArg(a) && !manyInputs([a]) ? inputArg([a], NAME) : a));
    // An input that is a quoted glob ('run.*') names several profiles, read as one.
    const sideOf = (input: string): string | string[] => (input !== '-' && manyInputs([input]) ? [input] : input);
    // One --at for two inputs is the same moment of each: a mark:LABEL names a time of its own
    // in each profile, so it is looked up in each (the first profile's time for both compared a
    // moment the second run had not reached, or had passed).
    const atValues = args.at === undefined ? [] : [args.at as unknown].flat();
    // One --at shared by two inputs is for the profiles among them: a saved hp-snapshot file is
    // its own moment (an --at given for that side alone is still an error, from its reader).
    const snapshotSide = inputs.length === 2 && atValues.length === 1 ? await Promise.all(inputs.map(async (a) => (await ndjsonKindOfFile(a)) === 'snapshot')) : [false, false];
    if (inputs.length === 2 && atValues.length === 1) (args as Record<string, unknown>).at = snapshotSide.map((snap) => (snap ? undefined : atValues[0]));
    await resolveMarkOptions(args, ['at'], (i) => sideOf(inputs[Math.min(i, inputs.length - 1)] ?? '-'));
    const ats = ((args.at as unknown[] | undefined) ?? []).map((a) => (a === undefined ? null : parseAt(String(a))));
    const groupBy = String(args['group-by']) === 'trace' ? 'stack' : (String(args['group-by']) as DiffGroupBy);
    if (args.table === true && args.json === true) throw new UsageError('--table and --json ask for two outputs: --table is the table (an older name for --no-json)');
    const table = args.table === true || !wantsJson(args.json);
    let plan: Array<{ input: string; at: SnapshotAt | null }>;
    if (inputs.length === 1) {
      if (ats.length !== 2) throw new UsageError('one input needs two times: --at T1 --at T2');
      if (await isStreamArg(inputs[0]!)) throw new UsageError(`${inputName(inputs[0]!)} can be read only once: save the profile or events to a file to compare two times`);
      plan = [
        { input: inputs[0]!, at: ats[0]! },
        { input: inputs[0]!, at: ats[1]! },
      ];
    } else if (inputs.length === 2) {
      if (ats.length > 2) throw new UsageError('at most two --at for two inputs');
      if (inputs[0] === '-' && inputs[1] === '-') throw new UsageError('only one input can be stdin');
      plan = [
        { input: inputs[0]!, at: ats[0] ?? null },
        { input: inputs[1]!, at: ats[1] ?? null },
      ];
    } else {
      throw new UsageError(inputs.length === 0 ? 'nothing to compare: give a profile and two --at, or two inputs' : `at most two inputs, got ${inputs.length}`);
    }

    const sets: StackSet[] = [];
    for (const step of plan) {
      const { opts, done } = commandReadOptions({ v1Weights: v1WeightsArg(args['v1-weights']), strict: Boolean(args.strict) });
      try {
        const set = await loadStackSet(step.input, step.at, async (a) => {
          const source = await (a !== '-' && manyInputs([a]) ? openInputs([a], opts, false) : openSource(a, opts));
          refuseStatsMode(source);
          return source;
        }, isNdjsonArg, plan[0]!.input !== plan[1]!.input);
        if (set.ignored) warn(`${step.input}: ignored ${set.ignored} lines that are not snapshot sites`);
        // Once per input: one profile compared at two moments may be read to its end twice.
        if (set.readToEndOf && !sets.some((s) => s.readToEndOf?.name === set.readToEndOf!.name)) reportIncomplete(set.readToEndOf);
        // A site missing from a snapshot cut by --top reads as 0 there: a change that did not happen.
        if (set.sitesLeftOut) {
          const n = set.sitesLeftOut;
          warn(`${step.input === '-' ? 'stdin' : step.input}: ${n} of the snapshot's sites ${n === 1 ? 'is' : 'are'} left out (hp-snapshot --top): compared as 0 there, so their changes and the total's are not the heap's; save the snapshot without --top`);
        }
        sets.push(set);
      } finally {
        done();
      }
    }
    const [before, after] = sets as [StackSet, StackSet];
    // A snapshot grouped by line (function, file) has one-frame stacks: compared with whole stacks
    // of the other side, every site would read as gone on one side and new on the other. Compare
    // at the coarser grouping of the two.
    const FINENESS = ['stack', 'line', 'function', 'file'];
    const rankOf = (set: StackSet): number => (set.groupBy === undefined || set.groupBy === 'trace' || set.groupBy === 'stack' ? 0 : FINENESS.indexOf(set.groupBy));
    const coarser = Math.max(rankOf(before), rankOf(after));
    if (rankOf(before) !== rankOf(after) && FINENESS.indexOf(groupBy) < coarser) {
      const [set, step] = rankOf(before) === coarser ? [before, plan[0]!] : [after, plan[1]!];
      throw new UsageError(`${step.input === '-' ? 'stdin' : step.input}: a snapshot grouped by ${set.groupBy} cannot be compared by ${groupBy === 'stack' ? 'trace' : groupBy} with the other side: give --group-by ${FINENESS[coarser]}`);
    }
    const sameInput = plan[0]!.input === plan[1]!.input;
    const sideName = (input: string, set: StackSet): string => (sameInput ? set.label : `${input === '-' ? 'stdin' : input} ${set.label}`);
    const result = diffStackSets(before, after, groupBy);
    let rows: DiffRow[] = result.rows;
    if (args.significant) rows = rows.filter((r) => r.direction !== 0);
    if (args.top !== undefined) rows = rows.slice(0, args.top as number);

    const out = new OutputWriter();
    const describe = (step: (typeof plan)[number], set: StackSet): Record<string, unknown> => ({
      input: step.input === '-' ? 'stdin' : step.input,
      label: set.label,
      at: set.atUs === null ? null : set.atUs / 1e6,
    });
    if (table) {
      // Stacks of one label (one function reached along two paths) each name a caller apart, as in hp-snapshot.
      const vias = tellingCallers(rows.map((r) => ({ label: r.site.label, frames: r.site.stack ?? [] })));
      const changeRows: ChangeRow[] = rows.map((r, i) => ({ rank: i + 1, change: r.change, interval: changeInterval(r), countChange: r.countChange, site: r.site.label, via: vias[i] }));
      const t = result.total;
      changeRows.push({ rank: 'TOTAL', change: t.change, interval: changeInterval(t), countChange: t.countChange, site: `live ${formatBytes(Math.max(0, t.before.bytes))} -> ${formatBytes(Math.max(0, t.after.bytes))}` });
      const significant = rows.filter((r) => r.direction !== 0).length;
      const beyond = significant === 0 ? 'no site changed beyond the noise' : significant === 1 ? 'site 1 changed beyond the noise' : `sites 1-${significant} changed beyond the noise`;
      await out.write(`${sideName(plan[0]!.input, before)} -> ${sideName(plan[1]!.input, after)}: ${beyond} (95% interval excludes 0)\n${changesTable(changeRows, t.change)}`);
    } else {
      await out.line({
        type: 'meta',
        schema: 'hp-diff',
        version: DIFF_SCHEMA_VERSION,
        group_by: groupBy === 'stack' && args['group-by'] === 'trace' ? 'trace' : groupBy,
        before: describe(plan[0]!, before),
        after: describe(plan[1]!, after),
      });
      for (const r of rows) await out.line(rowRecord(r, 'site'));
      await out.line(rowRecord(result.total, 'total'));
    }
    await out.flush();
    const grew = result.rows.filter((r) => r.direction === 1).length;
    const shrank = result.rows.filter((r) => r.direction === -1).length;
    warn(`${sideName(plan[0]!.input, before)} -> ${sideName(plan[1]!.input, after)}: total ${formatChange(result.total.change)}; ${grew} site${grew === 1 ? '' : 's'} grew, ${shrank} shrank significantly`);
  });
}
