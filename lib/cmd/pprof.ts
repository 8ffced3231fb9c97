// hp-pprof: the live heap at a moment (inuse_space / inuse_objects) or the allocations of a time
// window (alloc_space / alloc_objects) as a gzipped pprof profile, for go tool pprof, Pyroscope,
// Parca and the other tools that read profile.proto.

import { UsageError, parser, runMain, setQuiet, warn, formatBytes } from '../cli.js';
import { commandReadOptions, openSource } from '../source-arg.js';
import { encodePprof, sampleTypeNames } from '../export/pprof.js';
import { writeResult } from '../export/output.js';
import { allocationStacks, parseAt, parseSeconds, readSnapshotNdjson, snapshotStacks, type StackSet } from '../export/stacks.js';

const NAME = 'hp-pprof';

const USAGE = `Usage: $0 [PROFILE|-] [--at T | --alloc [--from S] [--to S]] [-o FILE]

Write a gzipped pprof profile (profile.proto) with Python function names, files and line numbers.
Sample values are Horvitz-Thompson estimates: every sampled event is weighted by 1/p before summing.

  hp-snapshot run --at peak | hp-pprof > heap.pb.gz     live heap from snapshot NDJSON
  hp-pprof run --at 560 -o heap.pb.gz                   live heap at 560 s (inuse_space, inuse_objects)
  hp-pprof run --alloc --from 10 --to 20 -o a.pb.gz     allocated in [10 s, 20 s) (alloc_space, alloc_objects)

With no input, or -, stdin is read: hp-snapshot output, or hp-events output when --at, --alloc,
--from or --to is given. Binary data is never written to a terminal.`;

export function main(argv: string[]): void {
  runMain(NAME, async () => {
    const args = parser(NAME, argv, USAGE)
      .parserConfiguration({ 'parse-positional-numbers': false })
      .strict(false)
      .strictOptions()
      .option('at', { type: 'string', requiresArg: true, describe: "Live heap at T seconds since start, 'peak' or 'end' (default for a profile: end)" })
      .option('alloc', { type: 'boolean', describe: 'Allocations made in the window (whether freed or not) instead of the live heap' })
      .option('from', { type: 'string', requiresArg: true, describe: 'Window start, seconds since start (implies --alloc; default 0)' })
      .option('to', { type: 'string', requiresArg: true, describe: 'Window end, seconds since start, exclusive (implies --alloc; default: the end)' })
      .option('output', { alias: 'o', type: 'string', requiresArg: true, describe: 'Write to FILE instead of stdout' })
      .option('strict', { type: 'boolean', default: false, describe: 'Treat recoverable damage in the profile as an error' })
      .conflicts('at', ['alloc', 'from', 'to'])
      .parseSync();
    setQuiet(Boolean(args.quiet));
    const inputs = args._.map(String);
    if (inputs.length > 1) throw new UsageError(`one input expected, got ${inputs.length}`);
    const input = inputs[0] ?? '-';
    const fromUs = parseSeconds(args.from, '--from');
    const toUs = parseSeconds(args.to, '--to');
    const alloc = Boolean(args.alloc) || fromUs !== null || toUs !== null;
    if (fromUs !== null && toUs !== null && toUs <= fromUs) throw new UsageError('--to must be after --from');
    if (args.output === undefined && process.stdout.isTTY) throw new UsageError('refusing to write binary output to a terminal: use -o FILE or a pipe');

    let set: StackSet;
    if (input === '-' && !alloc && args.at === undefined) {
      set = await readSnapshotNdjson('-');
      if (set.ignored) warn(`ignored ${set.ignored} lines that are not snapshot sites`);
    } else {
      const { opts, done } = commandReadOptions({ strict: Boolean(args.strict), ...(alloc && fromUs !== null ? { fromUs } : {}) });
      const source = await openSource(input, opts);
      try {
        set = alloc ? await allocationStacks(source, fromUs ?? 0, toUs ?? Infinity) : await snapshotStacks(source, parseAt(args.at ?? 'end'));
      } finally {
        done();
        await source.close();
      }
    }
    const data = encodePprof(set, { comments: [`${NAME} ${argv.join(' ')}`] });
    await writeResult(args.output, data, true);
    const [, space] = sampleTypeNames(set.kind);
    warn(`${set.label}: ${set.stacks.length} stacks, ${space} ${formatBytes(set.total.bytes)}`);
  });
}
