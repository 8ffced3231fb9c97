// The person at the terminal: human views on a terminal (a real pseudo-terminal from script(1))
// and NDJSON into a pipe, the one option vocabulary checked across every command's --help,
// number and time errors that name the option, value and span, and `cmd 2>&1 | head` exiting 0.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fixtures, root, sh } from '../fixtures/analysis/run.js';

const COMMANDS = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin as Record<string, string>);
const READERS_WITH_VIEWS = ['hp-snapshot', 'hp-history', 'hp-diff', 'hp-events', 'hp-stats'];

/** Run a shell command under a pseudo-terminal (util-linux script(1)); the output as the terminal got it. */
function onTerminal(command: string): { out: string; status: number | null } {
  const bin = join(root, 'bin');
  const line = command.replace(/\bhp-([a-z]+)/g, (_, v: string) => `node ${join(bin, `hp-${v}.js`)}`);
  const env: NodeJS.ProcessEnv = { ...process.env, COLUMNS: '100', NO_COLOR: '1', TZ: 'UTC' };
  delete env.NODE_OPTIONS;
  const r = spawnSync('script', ['-qec', `${line} 2>/dev/null`, '/dev/null'], { cwd: fixtures, encoding: 'utf8', env });
  return { out: r.stdout.replace(/\r\n/g, '\n'), status: r.status };
}

const hasScript = spawnSync('script', ['--version']).status === 0;

t.test('on a terminal a table, into a pipe the NDJSON, --json and --no-json force either', { skip: !hasScript && 'script(1) not installed' }, async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['hp-snapshot app --top 3', /│ # │ +size │ +95% interval │ share │ +count │ site/],
    ['hp-history app --height 5', /live heap \(estimated\)/],
    ['hp-diff app --at 2 --at 9', /│ +# │ +change │ +95% interval │ +share │ +count │ site/],
    ['hp-events app --from 4 --to 4.01', /t \(s\) +op +size +weight +site/],
    ['hp-stats app', /│ size \(bytes\) +│ sampled/],
  ];
  for (const [command, human] of cases) {
    const tty = onTerminal(command);
    t.equal(tty.status, 0, `${command}: exit status on a terminal`);
    t.match(tty.out, human, `${command}: human view on a terminal`);
    t.notMatch(tty.out.split('\n')[0] ?? '', /^\{/, `${command}: no NDJSON on a terminal`);
    const piped = sh(command);
    t.equal(piped.status, 0, `${command}: exit status into a pipe`);
    const lines = piped.stdout.trim().split('\n');
    t.ok(lines.length > 0 && lines.every((l) => l.startsWith('{') && JSON.parse(l) !== null), `${command}: NDJSON into a pipe`);
    t.equal(onTerminal(`${command} --json`).out.trim().split('\n').every((l) => l.startsWith('{')), true, `${command} --json: NDJSON on a terminal`);
    t.match(sh(`${command} --no-json`).stdout, human, `${command} --no-json: the human view into a pipe`);
  }
});

t.test('the human snapshot fits $COLUMNS and shows rank, size with interval, share, count, site', async (t) => {
  for (const columns of [60, 100, 140]) {
    const r = sh(`COLUMNS=${columns} hp-snapshot app --at 5.5 --no-json`);
    t.equal(r.status, 0);
    const widths = r.stdout.split('\n').filter((l) => l.startsWith('│') || l.startsWith('┌')).map((l) => [...l].length);
    t.ok(widths.length > 2 && widths.every((w) => w <= columns), `every table line within ${columns} columns (${Math.max(...widths)})`);
  }
  // A wide terminal does not pad every row out to its width: the site column fits its longest label.
  for (const cmd of ['hp-snapshot app --at 5.5 --no-json', 'hp-diff app --at 2 --at 9 --no-json']) {
    const lines = (w: number): string[] => sh(`COLUMNS=${w} ${cmd}`).stdout.split('\n').filter((l) => l.startsWith('│'));
    const wide = lines(300);
    t.same(wide, lines(200), `${cmd}: the same table at 200 and 300 columns`);
    t.ok(wide.some((l) => / \S+ │$/.test(l)), `${cmd}: the longest site ends next to the border`);
  }
  const r = sh('hp-snapshot app --at 5.5 --no-json');
  t.match(r.stdout, /^live at 5\.5 s: [\d.]+ MiB \(95%: [\d.]+ \.\. [\d.]+ MiB\) live/);
  t.match(r.stdout, /│ +1 │ +[\d.]+ MiB │ +exact │ +[\d.]+% │ +[\d,]+ │ \S/);
  t.match(r.stdout, /│ +3 │ +[\d.]+ MiB │ +[\d.]+ \.\. [\d.]+ MiB │ +[\d.]+% │ +[\d,]+ │ \S/);
});

t.test("hp-diff's table: rank, change with interval, share of the total change, count change, site, within $COLUMNS", async (t) => {
  for (const columns of [60, 100, 140]) {
    const r = sh(`COLUMNS=${columns} hp-diff app --at 2 --at 9 --no-json`);
    t.equal(r.status, 0);
    const widths = r.stdout.split('\n').filter((l) => l.startsWith('│') || l.startsWith('┌')).map((l) => [...l].length);
    t.ok(widths.length > 2 && widths.every((w) => w <= columns), `every table line within ${columns} columns (${Math.max(...widths)})`);
    t.match(r.stdout, columns >= 100 ? /│ +change │ +95% interval │/ : /│ +change │ +share │/, 'the intervals when they fit');
  }
  const r = sh('hp-diff app --at 2 --at 9 --no-json');
  t.match(r.stdout, /^t=2s -> t=9s: (site 1|sites 1-\d+) changed beyond the noise/);
  const rows = r.stdout.split('\n').filter((l) => /^│ +(\d+|TOTAL) │/.test(l));
  const cells = rows.map((l) => l.split('│').slice(1, -1).map((c) => c.trim()));
  t.ok(cells.length >= 3, 'site rows and the total');
  t.same(cells.slice(0, -1).map((c) => c[0]), cells.slice(0, -1).map((_, i) => String(i + 1)), 'ranked 1, 2, ...');
  t.match(cells[0]![1], /^\+[\d.]+ [KM]iB$/, 'a change');
  t.match(cells[0]![2], /^[+-]?[\d.]+( [KM]?i?B)? \.\. [+-][\d.]+ [KM]?i?B$|^exact$/, 'its interval');
  t.match(cells[0]![4], /^[+-][\d,]+$/, 'a signed count change');
  const total = cells[cells.length - 1]!;
  t.equal(total[0], 'TOTAL');
  t.equal(total[3], '+100.0%', "the total is all of the change");
  const shares = cells.slice(0, -1).map((c) => Number(c[3]!.replace('%', '')));
  t.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 1, `site shares add up to the total change (${shares.join(', ')})`);
  // The same numbers as the NDJSON: the first site's change and count change.
  const first = JSON.parse(sh('hp-diff app --at 2 --at 9 --json').stdout.split('\n')[1]!);
  t.equal(cells[0]![5], first.site);
  t.equal(cells[0]![4], `+${first.count_change.toLocaleString('en-US')}`);
});

t.test('hp-history without --granularity: a nice bucket, at most one per chart column on a terminal, 60 to 150 into a pipe', async (t) => {
  const piped = sh('hp-history app --top 0');
  t.equal(piped.status, 0);
  const lines = piped.stdout.trim().split('\n');
  t.ok(lines.length >= 60 && lines.length <= 150, `into a pipe: ${lines.length} buckets`);
  t.match(piped.stderr, new RegExp(`${lines.length} buckets of 0\\.1 s`));
  for (const columns of [40, 60, 100, 200]) {
    const r = sh(`COLUMNS=${columns} hp-history app --no-json`);
    t.equal(r.status, 0);
    const m = /(\d+) buckets of ([\d.]+) s/.exec(r.stderr);
    t.ok(m, r.stderr);
    const [buckets, seconds] = [Number(m![1]), Number(m![2])];
    const chartColumns = columns - 14;
    t.ok(buckets <= chartColumns && buckets >= chartColumns / 2.5, `COLUMNS=${columns}: ${buckets} buckets of ${seconds} s for ${chartColumns} chart columns`);
    t.match(String(seconds), /^(0\.0*)?[125]$|^[125]0*$|^30$/, 'a nice length');
    const widest = Math.max(...r.stdout.split('\n').map((l) => [...l].length));
    t.ok(widest <= columns, `the chart fits (${widest} <= ${columns})`);
  }
});

/** The option lines of a --help page, by option name. */
function helpOptions(help: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of help.split('\n')) {
    const m = /^\s+(?:-\w, )?--([\w-]+)\b(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

t.test('one vocabulary: every --help has -q, --version, --completion and ends with 2 or 3 examples; shared options read the same', async (t) => {
  const pages = new Map<string, string>();
  for (const cmd of COMMANDS) {
    const r = sh(`${cmd} --help`);
    t.equal(r.status, 0, `${cmd} --help exits 0`);
    pages.set(cmd, r.stdout);
    const opts = helpOptions(r.stdout);
    for (const o of ['quiet', 'version', 'completion', 'help']) t.ok(opts.has(o), `${cmd} --help lists --${o}`);
    const examples = r.stdout.split(/\nExamples:\n/)[1];
    t.ok(examples, `${cmd} --help has an Examples section`);
    const exampleLines = (examples ?? '').trimEnd().split('\n').filter((l) => l.trim() !== '');
    t.ok(exampleLines.length >= 2 && exampleLines.length <= 3, `${cmd} --help ends with 2 or 3 examples (${exampleLines.length})`);
    t.ok(exampleLines.every((l) => /^\s+(hp-|\$ )?\S/.test(l)), `${cmd}: the examples are the last thing on the page`);
    const v = sh(`${cmd} --version`);
    t.equal(v.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version, `${cmd} --version`);
    const c = sh(`${cmd} --completion`);
    t.match(c.stdout, new RegExp(`^complete .*--help.* ${cmd}$`, 'm'), `${cmd} --completion prints a completion script`);
  }
  // A shared option means the same everywhere: same value list, and the same help text unless a
  // command narrows it (then it still names the same values).
  const groupBy = new Set<string>();
  for (const [cmd, page] of pages) {
    const opts = helpOptions(page);
    // hp-diff narrows it: the threads of two runs are not the same threads, so it has no thread grouping.
    if (opts.has('group-by') && cmd === 'hp-diff') t.match(opts.get('group-by')!, /\[choices: "trace", "line", "function", "file", "stack"\] \[default: "trace"\]/, 'hp-diff --group-by: the shared values less thread');
    else if (opts.has('group-by')) groupBy.add(opts.get('group-by')!);
    if (opts.has('json')) t.match(opts.get('json')!, /NDJSON/, `${cmd} --json`);
    if (opts.has('at')) t.match(opts.get('at')!, /seconds since start, 'peak'.*'end'/, `${cmd} --at names its values`);
    // hp-history --chart and hp-diff --table, older names kept for scripts, are listed as such (the
    // man pages' examples use --chart, and an option they use must be in --help).
    for (const alias of ['table', 'chart']) if (opts.has(alias)) t.match(opts.get(alias)!, /an older name for --no-json/, `${cmd} --${alias}: said to be --no-json`);
  }
  t.equal(groupBy.size, 1, `--group-by is the same in every command: ${[...groupBy].join(' / ')}`);
  t.match([...groupBy][0], /\[choices: "trace", "line", "function", "file", "thread", "stack"\] \[default: "trace"\]/);
  for (const cmd of READERS_WITH_VIEWS) t.ok(helpOptions(pages.get(cmd)!).has('json'), `${cmd} has --json`);
});

t.test('numbers and unknown options: the message names the option and the value, and suggests', async (t) => {
  for (const cmd of ['hp-snapshot app', 'hp-history app', 'hp-diff app --at 1 --at 2', 'hp-report app -o /dev/null']) {
    const r = sh(`${cmd} --top abc`);
    t.equal(r.status, 2, `${cmd} --top abc: usage error`);
    t.match(r.stderr, /--top 'abc': expected a whole number >= 0/);
    t.notMatch(r.stderr, /NaN/);
  }
  const h = sh('hp-history app --height abc');
  t.match(h.stderr, /--height 'abc': expected a whole number from 1 to 500/);
  const u = sh('hp-snapshot app --tpo 3');
  t.equal(u.status, 2);
  t.match(u.stderr, /unknown option: --tpo; did you mean --top\?/);
  const g = sh('hp-history app --group-bi line');
  t.match(g.stderr, /unknown option: --group-bi; did you mean --group-by\?/);
});

t.test('times beyond the profile are errors that print its span; warnings for empty --sites and long buckets', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['hp-snapshot app --at 1e9', /--at 1000000000: after the end of the profile, which spans 0 \.\. 11\.999997 s/],
    ['hp-history app --from 20', /--from 20: after the end of the profile, which spans 0 \.\. 11\.999997 s/],
    ['hp-diff app --at 1 --at 99', /--at 99: after the end of the profile, which spans 0 \.\. 11\.999997 s/],
    ['hp-pprof app --from 10 --to 20 -o /dev/null', /^hp-pprof: --to 20: after the end of the profile, which spans 0 \.\. 11\.999997 s\n$/],
    ['hp-pprof app --from 30 --to 40 -o /dev/null', /--from 30: after the end of the profile/],
    ['hp-flow app --at 50', /--at 50: after the end/],
    // Every command that takes --at/--from/--to checks them the same way.
    ['hp-report app -o /dev/null --at 99', /^hp-report: --at 99: after the end of the profile, which spans 0 \.\. 11\.999997 s\n$/],
    ['hp-events app --from 20', /^hp-events: --from 20: after the end of the profile, which spans 0 \.\. 11\.999997 s\n$/],
    ['hp-events app --to 20 --no-json', /^hp-events: --to 20: after the end of the profile, which spans 0 \.\. 11\.999997 s\n$/],
    ['hp-events app --from 2 --to 1', /^hp-events: --to 1: before --from 2\n$/],
    ['hp-events app --from 2 --to 2', /^hp-events: --to 2: not after --from 2, so the window is empty\n$/],
    ['hp-history app --from 2 --to 1', /^hp-history: --to 1: before --from 2\n$/],
    ['hp-pprof app --from 2 --to 1 -o /dev/null', /^hp-pprof: --to 1: before --from 2\n$/],
    // A time too large for microseconds is reported as typed, not as Infinity.
    ['hp-snapshot app --at 1e308', /^hp-snapshot: --at 1e308: after the end of any profile \(times are at most 9007199254 s\)\n$/],
    ['hp-history app --to 1e308', /--to 1e308: after the end of any profile/],
    ['hp-pprof app --at 1e308 -o /dev/null', /--at 1e308: after the end of any profile/],
    ['hp-report app -o /dev/null --at 1e308', /--at 1e308: after the end of any profile/],
    // Seconds are decimal: Number() would read '0x10' as 16 s and '0b1' as 1 s.
    ['hp-snapshot app --at 0x10', /^hp-snapshot: --at '0x10': expected seconds since start, 'peak', 'end' or mark:LABEL\n$/],
    ['hp-history app --from 0b1', /--from '0b1': expected seconds/],
    ['hp-pprof app --at 0o7 -o /dev/null', /--at '0o7': expected seconds/],
    ['hp-events app --to 0x1', /--to '0x1': expected seconds/],
  ];
  for (const [command, message] of cases) {
    const r = sh(command);
    t.equal(r.status, 2, `${command}: usage error`);
    t.match(r.stderr, message, command);
    t.notMatch(r.stderr, /Infinity/, `${command}: the value as typed`);
  }
  // hp-history's last bucket ends after the last event (at 12 s with 1 s buckets): its t names a
  // bucket hp-history writes, so --from and --to take it.
  const last = JSON.parse(sh('hp-history app --granularity 1 --top 0').stdout.trim().split('\n').pop()!) as { t: number };
  t.equal(last.t, 12);
  for (const option of ['--from', '--to']) {
    const r = sh(`hp-history app --granularity 1 --top 0 ${option} ${last.t}`);
    t.equal(r.status, 0, `hp-history ${option} ${last.t}: ${r.stderr}`);
    t.match(r.stdout, /"t":12,/);
  }
  t.equal(sh('hp-history app --granularity 1 --from 12.5').status, 2, 'past the last bucket it is an error');
  const inside = sh('hp-events app --from 11 --to 11.999997');
  t.equal(inside.status, 0, 'a window that ends on the last event is fine');
  const s = sh('hp-history app --sites app.py:999,app.py:30 --json');
  t.equal(s.status, 0);
  t.match(s.stderr, /--sites app\.py:999: no allocation on this line/);
  t.notMatch(s.stderr, /--sites app\.py:30:/);
  const g = sh('hp-history app --granularity 60 --json');
  t.match(g.stderr, /--granularity 60: longer than the profile \(11\.999997 s\).*try --granularity 0\.1/);
  t.equal(g.stdout.trim().split('\n').length, 1);
});

t.test('sizes that cost time and memory have a range: a usage error naming the option, the value and the range, never a hang', async (t) => {
  // `timeout` turns a hang (the old behaviour: --width 14 looped, growing memory) into a failure.
  const cases: Array<[string, RegExp]> = [
    ['hp-history app --width 14 --no-json', /^hp-history: --width '14': expected a whole number from 24 to 1000\n/],
    ['hp-history app --width 10 --no-json', /--width '10': expected a whole number from 24 to 1000/],
    ['hp-history app --height 1e9 --no-json', /--height '1e9': expected a whole number from 1 to 500/],
    ['hp-chart --height 1e9', /^hp-chart: --height '1e9': expected a whole number from 1 to 500\n/],
    ['hp-chart --width 2000', /--width '2000': expected a whole number from 24 to 1000/],
    ['hp-history app --granularity 1e-6 --json', /^hp-history: --granularity 0\.000001: more than 100000 buckets \(events reach [\d.]+ s\): use --granularity 0\.\d+ or more, or narrow with --from\/--to\n$/],
    ['hp-history app --granularity 1e-5 --no-json', /--granularity 0\.00001: more than 100000 buckets/],
    ['hp-history app --granularity 1e308 --json', /--granularity: expected seconds > 0 and at most 1000000000, got '1e\+308'/],
    ['hp-report app -o /dev/null --points 1e9', /--points 1000000000: expected a whole number from 2 to 5000/],
  ];
  for (const [command, message] of cases) {
    const r = sh(`timeout 20 ${command}`, '{"live_bytes":1}\n');
    t.equal(r.status, 2, `${command}: usage error`);
    t.match(r.stderr, message, command);
  }
  // The bounds themselves work, and a narrow terminal still gets a chart.
  const wide = sh('timeout 20 hp-history app --width 1000 --height 500 --no-json');
  t.equal(wide.status, 0, '--width 1000 --height 500');
  t.ok(wide.stdout.split('\n').some((l) => [...l].length > 900), 'a line as wide as asked');
  const narrow = sh('COLUMNS=20 timeout 20 hp-history app --no-json');
  t.equal(narrow.status, 0, 'a 20-column terminal');
  const fine = sh('timeout 20 hp-history app --granularity 0.001 --top 0 --json');
  t.equal(fine.status, 0, 'a millisecond over 12 s is within the limit');
  t.equal(fine.stdout.trim().split('\n').length, 12000);
});

t.test('a filtered NDJSON stream reads, with one warning, as unknown sites', async (t) => {
  const r = sh("hp-events app | grep -v 'names.py' | hp-snapshot - --json");
  t.equal(r.status, 0);
  const warnings = r.stderr.split('\n').filter((l) => /undefined trace/.test(l));
  t.equal(warnings.length, 1, 'one warning line');
  t.match(warnings[0], /filtered out/);
  const full = JSON.parse(sh('hp-snapshot app --json').stdout.split('\n')[0]!);
  t.equal(JSON.parse(r.stdout.split('\n')[0]!).bytes, full.bytes, 'the events still count');
});

t.test('cmd 2>&1 | head exits 0, every time', async (t) => {
  for (const command of ['hp-snapshot app --at peak --json', 'hp-history app --json', 'hp-events app']) {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      // The command as installed (its shell line: the bundle, and no concurrent recompilation, whose
      // exit-time deadlock in Node, nodejs/node#54918, once hung `node bin/hp-events.js | head` here).
      const r = spawnSync('bash', ['-c', `${join(root, 'bin', command.replace(/^hp-(\w+)/, 'hp-$1.js'))} 2>&1 | head -1 >/dev/null; echo \${PIPESTATUS[0]}`], { cwd: fixtures, encoding: 'utf8' });
      statuses.push(Number(r.stdout.trim()));
    }
    t.same(statuses, statuses.map(() => 0), `${command} 2>&1 | head -1`);
  }
});

t.test('no input named on a terminal: a usage error at once, not a silent wait for typed NDJSON', { skip: !hasScript && 'script(1) not installed' }, async (t) => {
  const bin = join(root, 'bin');
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.NODE_OPTIONS;
  for (const cmd of ['hp-snapshot', 'hp-history', 'hp-stats', 'hp-events', 'hp-collapse', 'hp-chart']) {
    // script(1) gives the command a pseudo-terminal as its standard input (and output).
    const r = spawnSync('script', ['-qec', `node ${join(bin, `${cmd}.js`)}`, '/dev/null'], { cwd: fixtures, encoding: 'utf8', env, timeout: 20_000 });
    t.equal(r.status, 2, `${cmd}: exit 2`);
    t.match(r.stdout, new RegExp(`${cmd}: no input: standard input is a terminal; name a profile or file, or pipe NDJSON in`), cmd);
  }
});

t.test('hp-chart: a caption it cannot draw is said when -x was given, and left out quietly by default', async (t) => {
  const some = '{"t":1,"v":3}\n{"v":5}\n{"t":3,"v":4}\n';
  const given = sh('hp-chart --field v -x t --height 3 --width 40', some);
  t.equal(given.status, 0, given.stderr);
  t.notMatch(given.stdout, /\bt 1\b/, 'no caption');
  t.equal(given.stderr, "hp-chart: stdin: no x caption: 1 of 3 charted lines has no numeric 't'\n");
  const other = sh('hp-chart --field v -x elapsed --height 3 --width 40', '{"t":1,"v":3}\n{"t":2,"v":5}\n');
  t.match(other.stderr, /no x caption: 2 of 2 charted lines have no numeric 'elapsed'/);
  const quiet = sh('hp-chart --field v --height 3 --width 40', some);
  t.equal(quiet.stderr, '', 'the default t, missing: no note (hp-stats and other streams have no t)');
  const all = sh('hp-chart --field v -x t --height 3 --width 40', '{"t":1,"v":3}\n{"t":3,"v":4}\n');
  t.equal(all.stderr, '');
  t.match(all.stdout, /t 1 +t 3/, 'the caption runs from the first x to the last');
});
