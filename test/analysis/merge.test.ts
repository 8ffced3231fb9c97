// Several profiles read as one: a --follow-fork run of a parent and 3 workers with known live
// sizes, read with a quoted glob; the sum, the split by process, the wall-clock alignment.

import { spawnSync } from 'node:child_process';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { NATIVE_LIB, REPO, readRecording, supportedPythons } from '../helpers/python.js';
import { profileBases } from '../../lib/profile-inputs.js';

const FIXTURES = join(REPO, 'test', 'fixtures', 'attach');
const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1', PYTHONDONTWRITEBYTECODE: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

const hp = (cmd: string, args: string[], cwd: string) =>
  spawnSync(process.execPath, [join(REPO, 'bin', `hp-${cmd}.js`), ...args], { cwd, env: childEnv, encoding: 'utf8' });
const ndjson = (text: string): Array<Record<string, any>> => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

const py = supportedPythons().find((p) => p.minor === 11) ?? supportedPythons()[0];
const skip = !existsSync(NATIVE_LIB) ? 'native hook not built' : !py ? 'no CPython 3.9-3.13' : null;
if (skip) t.plan(0, skip);

t.test('profileBases: globs, companions, order', async (t) => {
  const dir = t.testdir({ 'run.hpm': '', 'run.hpd': '', 'run.123.hpm': '', 'run.123.hpd': '', 'run.45.hpm': '', 'run.45.hpd': '', 'run.hpi': '', 'other.hpm': '' });
  t.same(profileBases([join(dir, 'run.*')]), [join(dir, 'run'), join(dir, 'run.45'), join(dir, 'run.123')]);
  t.same(profileBases([join(dir, 'run.hpm'), join(dir, 'run.hpd'), join(dir, 'run.hpi'), join(dir, 'run.45.hpm')]), [join(dir, 'run'), join(dir, 'run.45')]);
  t.throws(() => profileBases([join(dir, 'nothing.*')]), /matches no profile/);
});

t.test('profileBases: names of the same profile count once (by the real path of its .hpm)', async (t) => {
  const dir = t.testdir({ 'run.hpm': '', 'run.hpd': '', sub: {} });
  symlinkSync(join(dir, 'run.hpm'), join(dir, 'sub', 'alias.hpm'));
  const dotted = `${dir}/./run`;
  t.same(profileBases([join(dir, 'run'), dotted]), [join(dir, 'run')], 'run and ./run');
  t.same(profileBases([join(dir, 'run.hpd'), join(dir, 'sub', 'alias')]), [join(dir, 'run')], 'a link to the same .hpm');
  t.same(profileBases([join(dir, 'run'), join(dir, 'other')]), [join(dir, 'other'), join(dir, 'run')], 'two profiles stay two');
});

t.test('a parent and 3 forked workers as one', { skip: skip ?? false }, async (t) => {
  const dir = t.testdir();
  const rec = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '--python', py!.exe, '--sample', '{65536: 0}', '--follow-fork', '-o', join(dir, 'base'), '--', join(FIXTURES, 'forking.py')], { cwd: dir, env: childEnv, encoding: 'utf8' });
  t.equal(rec.status, 0, rec.stderr);
  const bases = profileBases([join(dir, 'base.*')]);
  t.equal(bases.length, 4, 'parent + 3 workers');
  const recs = await Promise.all(bases.map((b) => readRecording(b)));
  const parent = recs.find((r) => r.header.argv.length > 0 && !bases[recs.indexOf(r)]!.match(/base\.\d+$/))!;
  const start0 = Math.min(...recs.map((r) => r.header.startTimeUs));
  t.equal(parent.header.startTimeUs, start0, 'the parent started first');
  const childStarts = recs.filter((r) => r !== parent).map((r) => (r.header.startTimeUs - start0) / 1e6);
  // Workers allocate right after the fork and hold for 2 s: 1 s after the last fork all are live.
  const T = Math.max(...childStarts) + 1;

  const sum = hp('snapshot', ["base.*", '--at', String(T)], dir);
  t.equal(sum.status, 0, sum.stderr);
  const head = ndjson(sum.stdout)[0]!;
  t.equal(head.bytes, 4000001 + 1000001 + 2000001 + 3000001, 'the sum of the four processes');

  const split = hp('snapshot', ["base.*", '--at', String(T), '--by', 'pid'], dir);
  t.equal(split.status, 0, split.stderr);
  const sites = ndjson(split.stdout).filter((l) => l.type === 'site');
  const byPid = new Map<string, number>();
  for (const s of sites) {
    const root = s.frames.at(-1);
    byPid.set(root.file, (byPid.get(root.file) ?? 0) + s.bytes);
  }
  t.equal(byPid.get(`pid ${parent.header.pid}`), 4000001, 'the parent: its 4 MB');
  const workers = recs.filter((r) => r !== parent).map((r) => byPid.get(`pid ${r.header.pid}`)).sort();
  t.same(workers, [1000001, 2000001, 3000001], 'each worker its own');

  // --by pid with a coarser grouping: each process's sites stay its own.
  for (const by of ['line', 'function', 'file']) {
    const grouped = hp('snapshot', ["base.*", '--at', String(T), '--by', 'pid', '--group-by', by, '--json'], dir);
    t.equal(grouped.status, 0, grouped.stderr);
    const perPid = new Map<string, number>();
    for (const s of ndjson(grouped.stdout).filter((l) => l.type === 'site')) {
      const root = s.frames.at(-1);
      t.ok(s.site.startsWith(`${root.file}: `), `--group-by ${by}: ${s.site} names its process`);
      perPid.set(root.file, (perPid.get(root.file) ?? 0) + s.bytes);
    }
    t.same([...perPid.values()].sort(), [1000001, 2000001, 3000001, 4000001], `--by pid --group-by ${by}: each process its own sites`);
  }

  // hp-diff: a quoted glob is one side; the same moment against itself changes nothing, and
  // the workers' 6 MB are gone by the end.
  const same = hp('diff', ["base.*", "base.*", '--at', String(T), '--json'], dir);
  t.equal(same.status, 0, same.stderr);
  const totalOf = (out: string) => ndjson(out).find((l) => l.type === 'total')!;
  t.equal(totalOf(same.stdout).change, 0, 'hp-diff of a merged side against itself: no change');
  const gone = hp('diff', ["base.*", '--at', String(T), '--at', 'end', '--json'], dir);
  t.equal(gone.status, 0, gone.stderr);
  t.equal(totalOf(gone.stdout).before, 10000004, 'hp-diff before: the four processes summed');

  // hp-flow reads several profiles as one: the workers' lines are in the graph.
  const flow = hp('flow', ["base.*", '--at', String(T)], dir);
  t.equal(flow.status, 0, flow.stderr);
  t.match(flow.stdout, /^digraph /, 'a dot graph');
  t.match(flow.stdout, /9\.5 MiB|9\.54 MiB|10\.0 MB|100(\.0)?%/, 'its total is the four processes');

  const folded = hp('collapse', ["base.*", '--by', 'pid'], dir);
  t.equal(folded.status, 0, folded.stderr);
  t.ok(folded.stdout.trim().split('\n').every((l) => /^pid \d+;/.test(l)), 'collapse: the pid is every stack\'s root');

  // Timeline: each worker's series rises in the 0.1 s bucket holding the wall-clock moment it
  // printed just after allocating (within 0.05 s for the print itself).
  const hist = hp('history', ["base.*", '--by', 'pid', '--granularity', '0.1', '--top', '0'], dir);
  t.equal(hist.status, 0, hist.stderr);
  const lines = ndjson(hist.stdout);
  const printed = new Map([...rec.stdout.matchAll(/worker (\d+) allocated between ([\d.]+) and ([\d.]+)/g)].map((m) => [Number(m[1]), [Number(m[2]), Number(m[3])]]));
  t.equal(printed.size, 3, `three workers printed: ${JSON.stringify(rec.stdout)}`);
  for (const r of recs.filter((x) => x !== parent)) {
    const got = printed.get(r.header.pid!);
    if (!got) {
      t.fail(`pid ${r.header.pid} printed no allocation time`);
      continue;
    }
    const [before, after] = got.map((w) => w - start0 / 1e6) as [number, number];
    const first = lines.find((l) => l.pid === r.header.pid && l.live_bytes > 0)!;
    // The bucket (first.t - 0.1, first.t] must overlap [before, after] (1 ms for clock rounding).
    t.ok(first.t - 0.1 < after + 0.001 && first.t > before - 0.001, `pid ${r.header.pid}: allocated in [${before.toFixed(3)}, ${after.toFixed(3)}] s (wall clock), first live bucket ends at ${first.t} s`);
  }
  const total = ndjson(hp('history', ["base.*", '--granularity', '0.1', '--top', '0'], dir).stdout);
  const atT = total.find((l) => l.t >= T)!;
  t.equal(atT.live_bytes, 10000004, 'the summed history agrees with the snapshot');
  // The per-process series add up to the summed one at every bucket (a worker that has
  // exited keeps its never-freed block and holds no RSS), and the parent's series is the
  // parent's profile read alone: the same intervals (its own unseen allowance) and RSS.
  t.equal(lines.length, total.length * bases.length, 'every process has a line in every bucket');
  for (const sum of total) {
    const at = lines.filter((l) => l.t === sum.t);
    t.equal(at.reduce((a, l) => a + l.live_bytes, 0), sum.live_bytes, `live bytes at ${sum.t} s add up`);
    t.equal(at.reduce((a, l) => a + (l.rss ?? 0), 0), sum.rss ?? 0, `RSS at ${sum.t} s adds up`);
  }
  const alone = ndjson(hp('history', [bases[0]!, '--granularity', '0.1', '--top', '0'], dir).stdout);
  const parentLines = lines.filter((l) => l.pid === parent.header.pid).map(({ pid: _, ...l }) => l);
  t.same(parentLines.slice(0, alone.length), alone, 'the parent\'s series is its profile read alone');
  t.ok(alone[alone.length - 1]!.rss > 0 && total[total.length - 1]!.rss > 0, 'the last bucket holds the last RSS sample, not 0');

  const report = hp('report', ["base.*", '--by', 'pid', '-o', join(dir, 'r.html')], dir);
  t.equal(report.status, 0, report.stderr);

  // A profile sampled differently cannot be summed with these.
  writeFileSync(join(dir, 'tiny.py'), 'x = bytearray(100000)\n');
  const other = spawnSync(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '--python', py!.exe, '--sample-bytes', '1M', '-o', join(dir, 'other'), '--', 'tiny.py'], { cwd: dir, env: childEnv, encoding: 'utf8' });
  t.equal(other.status, 0, other.stderr);
  const mixed = hp('snapshot', ['base', 'other'], dir);
  t.equal(mixed.status, 1);
  t.match(mixed.stderr, /^hp-snapshot: other: sampled differently from base \(byte-Poisson 1048576 B vs table \{65536: 0\}\)/m);
  const none = hp('history', ["nothing.*"], dir);
  t.equal(none.status, 2);
  t.equal(none.stderr, "hp-history: nothing.*: matches no profile\n");
});
