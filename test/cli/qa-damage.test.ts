// Damaged input to the readers (a killed recorder's profile, bad option values): each is said
// once, on one line, with the documented exit status, and no reader answers as if nothing were wrong.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { smallProfile } from '../fixtures/format/killed.js';
import { root } from '../fixtures/analysis/run.js';

const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(root, 'bin', `${cmd}.js`), ...args], { env: childEnv, encoding: 'utf8' });
}

t.test('every reader of a killed recorder\'s profile says it is incomplete, once', async (t) => {
  const dir = t.testdir();
  const killed = join(dir, 'killed');
  const whole = join(dir, 'whole');
  await smallProfile(killed, false);
  await smallProfile(whole, true);
  const cases: Array<[string, string[]]> = [
    ['hp-flow', ['-o', join(dir, 'f.dot')]],
    ['hp-flow', ['--at', '0.1', '--at', 'peak', '-o', join(dir, 'f.dot')]],
    ['hp-pprof', ['-o', join(dir, 'p.pb.gz')]],
    ['hp-pprof', ['--alloc', '-o', join(dir, 'p.pb.gz')]],
    ['hp-diff', ['--at', '0.1', '--at', 'end']],
    ['hp-diff', ['--at', 'peak', '--at', 'end']],
    ['hp-report', ['-o', join(dir, 'r.html')]],
  ];
  for (const [cmd, args] of cases) {
    const what = `${cmd} ${args.join(' ')}`;
    const r = run(cmd, [killed, ...args]);
    t.equal(r.status, 0, `${what}: ${r.stderr}`);
    const warnings = r.stderr.split('\n').filter((l) => /incomplete profile/.test(l));
    t.equal(warnings.length, 1, `${what}: said once`);
    t.match(warnings[0], `${cmd}: ${killed}: incomplete profile (no end marker`, what);
    const ok = run(cmd, [whole, ...args]);
    t.equal(ok.status, 0, `${what} (whole): ${ok.stderr}`);
    t.notMatch(ok.stderr, /incomplete/, `${what}: not for a profile with its end marker`);
  }
  // A moment or window before the last flush is whole: nothing to say.
  for (const [cmd, args] of [['hp-diff', ['--at', '0.1', '--at', '0.2']], ['hp-pprof', ['--alloc', '--to', '0.2', '-o', join(dir, 'p.pb.gz')]], ['hp-flow', ['--at', '0.2', '-o', join(dir, 'f.dot')]]] as Array<[string, string[]]>) {
    const r = run(cmd, [killed, ...args]);
    t.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    t.notMatch(r.stderr, /incomplete/, `${cmd} ${args.join(' ')}: read before the cut`);
  }
});

t.test('a value outside an option\'s choices is said on one line, as every usage error', async (t) => {
  const dir = t.testdir();
  const base = join(dir, 'run');
  await smallProfile(base, true);
  for (const [cmd, args] of [['hp-snapshot', ['--group-by', 'foo']], ['hp-history', ['--group-by', 'foo']], ['hp-diff', ['--at', '0.1', '--at', 'end', '--group-by', 'foo']], ['hp-collapse', ['--by', 'tid']]] as Array<[string, string[]]>) {
    const r = run(cmd, [base, ...args]);
    const what = `${cmd} ${args.join(' ')}`;
    t.equal(r.status, 2, `${what}: bad usage`);
    t.equal(r.stdout, '', what);
    t.match(r.stderr, new RegExp(`^${cmd}: Invalid values: Argument: [\\w-]+, Given: "(foo|tid)", Choices: "[^\\n]+"\\nTry '${cmd} --help'\\.\\n$`), `${what}: the message on one line, then where to look`);
  }
});

t.test('hp-chart: values at the ends of the doubles neither hang nor crash it', async (t) => {
  const dir = t.testdir();
  const chart = (name: string, lines: string[]): ReturnType<typeof run> => {
    const file = join(dir, name);
    writeFileSync(file, `${lines.join('\n')}\n`);
    // One process (no run-again child) killed outright: a hang fails the test instead of holding it.
    return spawnSync(process.execPath, [join(root, 'bin', 'hp-chart.js'), file, '--field', 'v', '--width', '40', '--height', '4'], { env: { ...childEnv, HP_RUN_AGAIN: '0' }, encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  };
  // The smallest double (the axis' step search started at 10 ** -Infinity and never ended) and a
  // subnormal one (asciichart was given an infinite row count): drawn as 0 on an axis of 0..1.
  for (const v of ['5e-324', '-5e-324', '1e-310']) {
    const r = chart(`tiny${v}.ndjson`, [`{"t":0,"v":${v}}`, '{"t":1,"v":0}']);
    t.equal(r.status, 0, `${v}: ${r.stderr}`);
    t.match(r.stdout, /^v\n +1 ┼/, `${v}: an axis of 0..1`);
    t.equal(r.stderr, '', v);
  }
  // Past 1e300 every round top overflows: 'internal error: Invalid array length', or -Infinity labels.
  for (const [name, lines, line, v] of [
    ['both', ['{"t":0,"v":-1e308}', '{"t":1,"v":1e308}'], 1, '-1e+308'],
    ['top', ['{"t":0,"v":0}', '{"t":1,"v":1.7976931348623157e308}'], 2, '1.7976931348623157e+308'],
  ] as Array<[string, string[], number, string]>) {
    const r = chart(`${name}.ndjson`, lines);
    t.equal(r.status, 1, `${name}: bad data`);
    t.equal(r.stdout, '', name);
    t.equal(r.stderr, `hp-chart: ${join(dir, `${name}.ndjson`)}: line ${line}: 'v' ${v}: too large to chart (at most 1e+300 either side of 0)\n`, name);
  }
  const r = chart('edge.ndjson', ['{"t":0,"v":-1e300}', '{"t":1,"v":1e300}']);
  t.equal(r.status, 0, `1e300 either side: ${r.stderr}`);
  t.notMatch(r.stdout, /Infinity|NaN/, 'labels are numbers');
});

t.test('an error quoting a name with a newline in it stays on one line', async (t) => {
  const dir = t.testdir();
  const base = join(dir, 'run');
  await smallProfile(base, true);
  const cases: Array<[string, string[], number, string]> = [
    ['hp-snapshot', [join(dir, 'a\nb')], 1, `${join(dir, 'a\\x0ab')}.hpm: no such file`],
    ['hp-pprof', [base, '-o', join(dir, 'no\nsuch', 'x.pb.gz')], 1, `-o ${join(dir, 'no\\x0asuch', 'x.pb.gz')}: no such directory`],
    ['hp-history', [base, '--sites', 'a\nb:1'], 2, "--sites: 'a\\x0ab:1': expected FILE:LINE"],
    ['hp-snapshot', [base, '--at', 'mark:a\nb'], 2, "--at: no mark 'a\\x0ab'"],
  ];
  for (const [cmd, args, status, message] of cases) {
    const r = run(cmd, args);
    const what = `${cmd} ${JSON.stringify(args.slice(-1)[0])}`;
    t.equal(r.status, status, what);
    t.match(r.stderr, /^[^\n]+\n$/, `${what}: one line`);
    t.ok(r.stderr.startsWith(`${cmd}: `) && r.stderr.includes(message), `${what}: ${r.stderr}`);
  }
  // A usage error's advice keeps its own line.
  const usage = run('hp-snapshot', [base, '--top', 'x']);
  t.equal(usage.stderr, "hp-snapshot: --top 'x': expected a whole number >= 0\nTry 'hp-snapshot --help'.\n");
  const field = spawnSync(process.execPath, [join(root, 'bin', 'hp-chart.js'), '--field', 'a\nb'], { env: childEnv, encoding: 'utf8', input: '{"t":0,"v":1}\n' });
  t.equal(field.status, 1);
  t.equal(field.stderr, "hp-chart: stdin: no line has a numeric 'a\\x0ab' (1 lines without it)\n");
});

t.test('hp-collapse refuses a stream with no snapshot or events line, as hp-flow and hp-pprof do', async (t) => {
  const dir = t.testdir();
  const collapse = (input: string, args: string[] = []): ReturnType<typeof run> =>
    spawnSync(process.execPath, [join(root, 'bin', 'hp-collapse.js'), ...args], { env: childEnv, encoding: 'utf8', input });
  // hp-history output piped in by mistake: an empty flame graph and exit 0, silent with -q.
  const history = '{"t":0.5,"live_bytes":1000,"top":[]}\n{"t":1,"live_bytes":2000,"top":[]}\n';
  for (const args of [[], ['-q']]) {
    const r = collapse(history, args);
    t.equal(r.status, 1, `hp-history output ${args.join(' ')}: bad data`);
    t.equal(r.stdout, '');
    t.equal(r.stderr, 'hp-collapse: stdin: no hp-snapshot or hp-events line (2 other lines): expected hp-snapshot or hp-events NDJSON\n');
  }
  t.equal(collapse('[1,2,3]\n').status, 1, 'a JSON array');
  // A snapshot of an empty heap is a snapshot: nothing to fold, and no error.
  const empty = collapse('{"type":"snapshot","schema":1,"sites":0}\n');
  t.equal(empty.status, 0, empty.stderr);
  t.equal(empty.stdout, '');
});
