// The real built commands (node bin/hp-*.js, after `npm run build`) on committed fixture
// profiles. Golden outputs are compared byte for byte; regenerate them on purpose with
//     HP_UPDATE_GOLDEN=1 npx tap test/analysis/commands.test.ts
// and review the diff. Also: the NDJSON pipe gives the numbers the files give, heapprof
// 1.0.x profiles work with every command, bad NDJSON is reported by line, and a closed
// pipe ends hp-events quietly.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'analysis');
const goldenDir = join(fixtures, 'golden');
const update = process.env.HP_UPDATE_GOLDEN === '1';

// The children are plain node running dist/: none of tap's loaders (NODE_OPTIONS), fixed
// zone, locale and width, no colour.
const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1', LC_ALL: 'C', COLUMNS: '100' };
delete childEnv.NODE_OPTIONS;
delete childEnv.HP_DEBUG;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

/** Run a shell pipeline in the fixtures directory with hp-* resolving to the built commands. */
function sh(command: string, input?: string): { stdout: string; stderr: string; status: number | null } {
  const bin = join(root, 'bin');
  const script = command.replace(/\bhp-([a-z]+)/g, (_, v: string) => `node ${join(bin, `hp-${v}.js`)}`);
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', script], {
    cwd: fixtures,
    encoding: 'utf8',
    input: input ?? '',
    env: childEnv,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const GOLDEN: Array<[string, string]> = [
  ['events-window', 'hp-events app --from 4 --to 4.2'],
  ['events-v1', 'hp-events ../format/v1'],
  ['stats', 'hp-stats app'],
  ['stats-json-suggest', 'hp-stats app --json --suggest --budget 2%'],
  ['stats-suggest', 'hp-stats app --suggest --budget 50/s'],
  ['stats-poisson', 'hp-stats poisson --json'],
  ['history-1s', 'hp-history app --granularity 1 --top 3 --sites app.py:30,names.py:8'],
  ['history-auto', 'hp-history app --top 1 --group-by file'],
  ['history-window', 'hp-history app --granularity 0.5 --from 3.5 --to 6.5 --top 2'],
  ['history-chart', 'hp-history app --granularity 0.25 --chart --height 8 --width 80'],
  ['history-poisson', 'hp-history poisson --granularity 2 --top 2'],
  ['snapshot-peak', 'hp-snapshot app --at peak'],
  ['snapshot-5.5-line', 'hp-snapshot app --at 5.5 --group-by line'],
  ['snapshot-end-function', 'hp-snapshot app --at end --group-by function --top 3'],
  ['snapshot-poisson-file', 'hp-snapshot poisson --at 9 --group-by file'],
  ['collapse-peak', 'hp-snapshot app --at peak | hp-collapse'],
  ['collapse-end', 'hp-collapse app'],
  ['collapse-alloc', 'hp-events app | hp-collapse --alloc'],
  ['chart-rss', 'hp-history app --granularity 0.5 --top 0 | hp-chart --field rss --height 6 --width 60'],
  ['v1-snapshot', 'hp-snapshot ../format/v1 --at peak'],
  ['v1-history', 'hp-history ../format/v1 --granularity 1'],
  ['v1-stats', 'hp-stats ../format/v1'],
  ['v1-collapse', 'hp-collapse ../format/v1'],
];

t.test('golden outputs', async (t) => {
  if (!existsSync(join(root, 'dist', 'cmd', 'snapshot.js'))) {
    t.fail('dist/ is missing: run npm run build first');
    return;
  }
  if (update) mkdirSync(goldenDir, { recursive: true });
  for (const [name, command] of GOLDEN) {
    const r = sh(command);
    t.equal(r.status, 0, `${name}: exit status (stderr: ${r.stderr.trim()})`);
    const file = join(goldenDir, `${name}.out`);
    if (update) writeFileSync(file, r.stdout);
    const expected = existsSync(file) ? readFileSync(file, 'utf8') : '(missing golden file)';
    t.equal(r.stdout, expected, `${name}: ${command}`);
  }
});

t.test('the folded output of a fixture, exactly', async (t) => {
  const r = sh('hp-snapshot app --at peak -q | hp-collapse');
  // Root first, merged, sorted in byte order; the two buffer sites are recorded at p = 1 and exact.
  t.equal(
    r.stdout,
    '<module> (app.py:1) 2308720\n' +
      '[no Python stack] 248470\n' +
      'main (app.py:40);load_buffers (app.py:12) 3000990\n' +
      'main (app.py:40);spike (app.py:20);<listcomp> (app.py:20) 5001650\n',
  );
});

t.test('the NDJSON pipe gives the numbers the files give', async (t) => {
  const cases = [
    'hp-snapshot %s --at peak',
    'hp-snapshot %s --at 5.5 --group-by line',
    'hp-snapshot %s --at end --group-by function',
    'hp-history %s --granularity 0.5 --sites app.py:20',
    'hp-history %s',
    'hp-stats %s --json --suggest',
    'hp-collapse %s',
  ];
  // Every case on the main fixture, a few on the others (each pipeline costs two node starts).
  const runs: Array<[string, string[]]> = [
    ['app', cases],
    ['poisson', [cases[0]!, cases[3]!, cases[5]!]],
    ['../format/v1', [cases[0]!, cases[4]!, cases[6]!]],
  ];
  for (const [profile, list] of runs) {
    for (const c of list) {
      const direct = sh(c.replace('%s', profile));
      const piped = sh(`hp-events ${profile} | ${c.replace('%s', '-')}`);
      t.equal(direct.status, 0, `${c} ${profile}: ${direct.stderr}`);
      t.ok(direct.stdout.length > 0);
      t.equal(piped.stdout, direct.stdout, `${c.replace('%s', profile)} vs the pipe`);
    }
  }
  // And through a file of events, windowed at the end (--to keeps everything before it).
  const file = join(t.testdir(), 'events.ndjson');
  const all = sh(`hp-events app > ${file} && hp-snapshot ${file} --at 7 -q`);
  t.equal(all.stdout, sh('hp-snapshot app --at 7 -q').stdout);
  const windowed = sh('hp-events app --to 7.000001 | hp-snapshot - --at 7 -q');
  t.equal(windowed.stdout.split('\n').slice(1).join('\n'), sh('hp-snapshot app --at 7 -q').stdout.split('\n').slice(1).join('\n'), 'sites identical');
});

t.test('hp-events | head -1 exits 0 with nothing on stderr', async (t) => {
  const r = sh('hp-events app | head -1');
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, /^\{"type":"meta","schema":1,/);
  t.equal(r.stdout.split('\n').length, 2);
});

t.test('malformed NDJSON names the line; foreign lines are counted once', async (t) => {
  const meta = sh('hp-events app | head -1').stdout;
  const bad = sh('hp-snapshot -', `${meta}{"type":"event","t":1,"op":"alloc","trace":0,"size":5}\n{"type":"event", oops\n`);
  t.equal(bad.status, 1);
  t.equal(bad.stderr, 'hp-snapshot: stdin: line 3: not valid JSON\n');
  const foreign = sh('hp-history - --granularity 1 -q', `{"hello":1}\n${meta}{"x":2}\n{"type":"event","t":0.5,"op":"alloc","trace":0,"size":50000}\n`);
  t.equal(foreign.status, 0);
  t.match(foreign.stdout, /"live_bytes":50000/);
  const loud = sh('hp-history - --granularity 1', `{"hello":1}\n${meta}{"x":2}\n[3]\n{"type":"event","t":0.5,"op":"alloc","trace":0,"size":50000}\n`);
  t.match(loud.stderr, /hp-history: stdin: ignored 3 foreign lines/);
  t.equal(loud.stderr.match(/foreign/g)?.length, 1, 'reported once');
  const collapse = sh('hp-collapse', '{"type":"site","frames":[{"function":"f","file":"a.py","line":1}],"bytes":10}\n{"x":1}\nnope\n');
  t.equal(collapse.status, 1);
  t.equal(collapse.stderr, 'hp-collapse: stdin: line 3: not valid JSON\n');
  const notOurs = sh('hp-snapshot -', '{"a":1}\n');
  t.equal(notOurs.status, 1);
  t.match(notOurs.stderr, /no hp-events meta line/);
});

t.test('usage errors exit 2 with one line', async (t) => {
  for (const c of ['hp-snapshot app --at soon', 'hp-history app --granularity 0', 'hp-stats app --budget 5%', 'hp-history app --sites app.py', 'hp-events app extra', 'hp-chart --height 0']) {
    const r = sh(c);
    t.equal(r.status, 2, c);
    t.notMatch(r.stderr, /at .*\.js:\d+/, `${c}: no stack trace`);
  }
  const missing = sh('hp-snapshot nosuch');
  t.equal(missing.status, 1);
  t.match(missing.stderr, /^hp-snapshot: nosuch\.hpm: no such file/);
});
