// Interval coverage end to end on real CPython programs, at three moments of a program with
// phases (marked with heapprof.mark): "growth" (part of the data built), "peak" (all of it
// live) and "freed" (a few large buffers and ~150 small objects of its own left, the case where
// the old normal interval collapsed to zero width and called the total exact). The exact truth
// is the same program recorded with --sample '{}' (every allocation, weight 1); the program is
// deterministic (PYTHONHASHSEED=0), so its live heap at each mark is the same in every run up
// to a few bytes. Then RUNS recordings with the default table, on each of two CPythons, must
// cover that truth in their 95% interval of live bytes (and of live blocks) at every mark:
// at most 4 misses in 12 runs, and at most 7 of the 36 intervals per CPython and quantity.
// The peak's bytes on 3.13 cover 93-95% (56 and 57 of 60 runs, with this session's bootstrap
// and the one before it), where 4 misses in 12 happen 0.75% of the time: twelve such checks
// made a CI run fail by chance (8 of 12, once). At 93%, 5 misses in 12 happen 0.09% of the time
// and 8 in 36 0.3%; an interval that covered 80% would miss 8 of 36 43% of the time (the
// simulator, test/analysis/coverage.test.ts, holds the coverage itself to 93-97%). The profiles
// are read in-process with the readers' own code (liveHeapAt, unseenOf, putEstimates: what
// hp-snapshot writes); hp-snapshot itself reads the exact profile and the last sampled one.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openProfile } from '../../lib/format/profile.js';
import { readMarks } from '../../lib/format/marks.js';
import { putEstimates, unseenOf } from '../../lib/model/estimate.js';
import { liveHeapAt } from '../../lib/model/snapshot.js';
import { tmpDir } from '../helpers/profiles.js';
import { REPO, supportedPythons, pythonEnv } from '../helpers/python.js';

const RUNS = 12;
const MARKS = ['growth', 'peak', 'freed'];
const PROGRAM = `
import heapprof
keep = [bytearray(100_000) for _ in range(20)]           # drawn at p = 1: exact
small = [('k%d' % i) * 3 for i in range(150)]             # ~150 small strings, drawn at 1e-4
medium = [bytearray(500 + 13 * i) for i in range(40)]     # drawn at 0.1
table = {i: ('v%d' % i) * 2 for i in range(4000)}         # ~12,000 small blocks
rows = [bytearray(200 + (i % 50) * 37) for i in range(600)]
heapprof.mark('growth')
more = [[i, i + 1] for i in range(8000)]                  # ~8,000 small lists
bufs = [bytearray(1000 + (i % 20) * 300) for i in range(300)]
heapprof.mark('peak')
del table, more, rows, bufs
heapprof.mark('freed')
`;

// Two CPythons, as far apart as installed (the oldest and the newest).
const all = supportedPythons();
const pythons = all.length > 2 ? [all[0]!, all[all.length - 1]!] : all;
const skip = pythons.length === 0 ? 'no CPython 3.9-3.13 found' : false;

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = pythonEnv({ PYTHONHASHSEED: '0', TZ: 'UTC' });
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
  const r = spawnSync(process.execPath, args, { cwd: REPO, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Total = Record<string, number>;

/** The snapshot head's totals (bytes, count and their intervals) at each mark. */
async function totalsAtMarks(base: string): Promise<Total[]> {
  const marks = await readMarks(base);
  const out: Total[] = [];
  for (const label of MARKS) {
    const mark = marks.find((m) => m.label === label);
    if (!mark) throw new Error(`${base}: no mark ${label}`);
    const source = await openProfile(base, {});
    try {
      const snap = await liveHeapAt(source, { kind: 'time', us: mark.timeUs });
      const head: Total = {};
      putEstimates(head, snap.heap.total(), unseenOf(source.header.sampling, source.histogram));
      out.push(head);
    } finally {
      await source.close();
    }
  }
  return out;
}

function snapshotCli(base: string, label: string): Total {
  const r = run([join(REPO, 'bin', 'hp-snapshot.js'), base, '--at', `mark:${label}`, '--json', '-q']);
  if (r.status !== 0) throw new Error(`hp-snapshot ${base}: ${r.stderr}`);
  return JSON.parse(r.stdout.split('\n')[0]!);
}

for (const py of pythons.length ? pythons : [null]) {
  t.test(`default table, CPython ${py?.version ?? '?'}: 95% intervals at ${MARKS.join(', ')} cover the exact totals`, { skip }, async (t) => {
    const dir = tmpDir('hp-e2e-cov-');
    const script = join(dir, 'prog.py');
    writeFileSync(script, PROGRAM);
    const record = (base: string, extra: string[]): void => {
      const r = run([join(REPO, 'bin', 'hp-record.js'), '--python', py!.exe, ...extra, '-o', base, '-q', '--', script]);
      if (r.status !== 0) throw new Error(`hp-record: ${r.stderr}`);
    };
    record(join(dir, 'exact'), ['--sample', '{}']);
    const exact = await totalsAtMarks(join(dir, 'exact'));
    exact.forEach((e, i) => {
      t.notOk('bytes_hi' in e || 'count_hi' in e, `${MARKS[i]}: every allocation recorded, the totals are exact`);
      t.comment(`${MARKS[i]}: truth ${e.bytes} bytes, ${e.count} blocks`);
    });
    t.ok(exact[1]!.bytes > exact[0]!.bytes && exact[1]!.bytes > exact[2]!.bytes, 'the peak mark holds the most');
    t.same(snapshotCli(join(dir, 'exact'), 'freed').bytes, exact[2]!.bytes, 'hp-snapshot reads the same exact total');
    const covered = { bytes: MARKS.map(() => 0), count: MARKS.map(() => 0) };
    let exactClaims = 0;
    let last: Total[] = [];
    for (let r = 0; r < RUNS; r++) {
      const base = join(dir, `s${r}`);
      record(base, []);
      last = await totalsAtMarks(base);
      last.forEach((s, i) => {
        if (s.bytes_lo === undefined || s.count_lo === undefined) exactClaims++;
        for (const what of ['bytes', 'count'] as const) {
          const [lo, hi] = [s[`${what}_lo`] ?? s[what]!, s[`${what}_hi`] ?? s[what]!];
          const truth = exact[i]![what]!;
          if (truth >= lo && truth <= hi) covered[what][i]!++;
          else t.comment(`run ${r}, ${MARKS[i]}: ${what} ${s[what]} [${lo}, ${hi}] misses ${truth}`);
        }
      });
    }
    const cli = snapshotCli(join(dir, `s${RUNS - 1}`), 'freed');
    t.same([cli.bytes, cli.bytes_lo, cli.bytes_hi], [last[2]!.bytes, last[2]!.bytes_lo, last[2]!.bytes_hi], 'hp-snapshot writes the same interval');
    t.equal(exactClaims, 0, 'no sampled total is called exact: small blocks may hide undrawn');
    for (const what of ['bytes', 'count'] as const) {
      t.comment(`${what}: ${MARKS.map((m, i) => `${m} ${covered[what][i]}/${RUNS}`).join(', ')} cover (CPython ${py!.version})`);
      covered[what].forEach((c, i) => t.ok(c >= RUNS - 4, `${what} at ${MARKS[i]}: ${c} of ${RUNS} cover`));
      const sum = covered[what].reduce((a, b) => a + b, 0);
      t.ok(sum >= 3 * RUNS - 7, `${what}: ${sum} of ${3 * RUNS} cover`);
    }
  });
}
