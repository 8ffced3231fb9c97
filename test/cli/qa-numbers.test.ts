// Numbers that must agree between commands and between ways of reading one profile
// (QA of wrong numbers): each test reproduces one defect that was found.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { buildFlowGraph, renderDot } from '../../lib/export/flow.js';
import { emptyEstimate } from '../../lib/model/estimate.js';
import { formatShare } from '../../lib/cmd/human.js';
import type { StackSet } from '../../lib/export/stacks.js';
import { tmpDir } from '../helpers/profiles.js';
import { REPO } from '../helpers/python.js';

const trace = { id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 };

function hp(cmd: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(REPO, 'bin', `hp-${cmd}.js`), ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
}

function lines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('hp-history lists the marks of piped events as it does those of the profile', async (t) => {
  const base = join(tmpDir(), 'm');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [trace],
    eventsPerBlock: 2,
    events: [
      { op: 'alloc', timeUs: 100_000, trace: 1, size: 100 },
      { op: 'mark', timeUs: 250_000, size: 0, label: 'loaded' },
      { op: 'alloc', timeUs: 300_000, trace: 1, size: 50 },
      { op: 'mark', timeUs: 700_000, size: 0, label: 'done' },
      { op: 'free', timeUs: 900_000, trace: 1, size: 100 },
    ],
  });
  const events = hp('events', [base]);
  t.equal(events.status, 0, events.stderr);
  for (const gran of [['--granularity', '0.1'], []]) {
    const file = hp('history', [base, '--json', '-q', ...gran]);
    const piped = hp('history', ['-', '--json', '-q', ...gran], events.stdout);
    t.equal(piped.status, 0, piped.stderr);
    const marksOf = (out: string): unknown[] => lines(out).flatMap((l) => (Array.isArray(l.marks) ? l.marks : []));
    t.same(marksOf(file.stdout), [{ t: 0.25, label: 'loaded' }, { t: 0.7, label: 'done' }], `profile ${gran.join(' ')}`);
    t.equal(piped.stdout, file.stdout, `piped events give the same lines ${gran.join(' ')}`);
  }
  const chart = hp('history', ['-', '--no-json', '-q', '--granularity', '0.1'], events.stdout);
  t.match(chart.stdout, /marks:\n.*loaded\n.*done\n/, 'the chart lists them under it');
});

t.test('hp-history --by pid: a process that has not started yet holds exactly 0, with no interval', async (t) => {
  const dir = tmpDir();
  const sampling = { kind: 'table' as const, bounds: [128], probs: [0.01, 1] };
  const histogram = [{ count: 10, bytes: 640, sampled: 1 }];
  for (const [name, pid, startTimeUs] of [['run', 100, 1_000_000_000], ['run.200', 200, 1_000_500_000]] as const) {
    await writeProfile(join(dir, name), {
      header: { sampling, pid, startTimeUs },
      traces: [trace],
      histogram,
      events: [
        { op: 'alloc', timeUs: 50_000, trace: 1, size: 64 },
        { op: 'alloc', timeUs: 60_000, trace: 1, size: 1000 },
      ],
    });
  }
  const hist = hp('history', [join(dir, 'run'), join(dir, 'run.200'), '--by', 'pid', '--granularity', '0.1', '--json', '-q']);
  t.equal(hist.status, 0, hist.stderr);
  const child = lines(hist.stdout).filter((l) => l.pid === 200);
  const before = child.filter((l) => (l.t as number) < 0.5);
  t.ok(before.length >= 4, 'buckets before the second process started');
  for (const l of before) {
    t.equal(l.live_bytes, 0);
    t.notOk('live_bytes_hi' in l, `t=${String(l.t)}: no interval before the process started`);
    t.notOk('live_count_hi' in l);
  }
  const after = child.find((l) => l.t === 0.6)!;
  t.equal(after.live_bytes, 6400 + 1000);
  t.ok((after.live_bytes_hi as number) > 7400, 'an interval once it runs');
});

t.test('a sampled range that held only 0-byte allocations neither voids the bytes allowance nor claims bytes', async (t) => {
  // Table {1: 0.5, 128: 0.01}: the range [0, 1) holds malloc(0)s only (the histogram's first
  // bucket: 5 allocations, 0 bytes). Its size-biased mean size was 0/0: the allowance's weight
  // became NaN (null in the snapshot line), and the heavier range [1, 128) was then never
  // allowed for, so the total's upper limit lost it.
  const base = join(tmpDir(), 'z');
  const histogram = [{ count: 5, bytes: 0, sampled: 2 }, { count: 0, bytes: 0, sampled: 0 }, { count: 0, bytes: 0, sampled: 0 }, { count: 0, bytes: 0, sampled: 0 }, { count: 0, bytes: 0, sampled: 0 }, { count: 0, bytes: 0, sampled: 0 }, { count: 1000, bytes: 100_000, sampled: 10 }];
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [1, 128], probs: [0.5, 0.01, 1] } },
    traces: [trace],
    histogram,
    events: [
      { op: 'alloc', timeUs: 10, trace: 1, size: 0 },
      { op: 'alloc', timeUs: 20, trace: 1, size: 100 },
      { op: 'alloc', timeUs: 30, trace: 1, size: 100 },
      { op: 'alloc', timeUs: 40, trace: 1, size: 5000 },
    ],
  });
  const snap = hp('snapshot', [base, '--at', 'end', '--json', '-q']);
  t.equal(snap.status, 0, snap.stderr);
  const head = lines(snap.stdout)[0]!;
  const unseen = head.unseen as { bytes: { weight: unknown }; count: { weight: unknown } };
  t.equal(typeof unseen.bytes.weight, 'number', 'the bytes allowance is a number');
  t.equal(unseen.bytes.weight, 100 / 0.01, "the range [1, 128)'s typical allocation (100 bytes at p = 0.01)");
  t.equal(unseen.count.weight, 100, 'blocks of either range may hide: 1/p of the sparser');
  t.equal(head.bytes, 25000);
  // With nothing else uncertain but two draws of weight 10,000, the upper limit is at least
  // half an allocation of that weight above the estimate.
  t.ok((head.bytes_hi as number) > 25000 + 5000, `upper limit ${String(head.bytes_hi)}`);
  // hp-diff reading that line bounds the total as hp-snapshot did.
  const saved = `${base}.snap.ndjson`;
  writeFileSync(saved, snap.stdout);
  const diff = hp('diff', [saved, saved, '--json', '-q']);
  t.equal(diff.status, 0, diff.stderr);
  const total = lines(diff.stdout).find((l) => l.type === 'total')!;
  t.equal(total.before_hi, head.bytes_hi);
  // hp-stats: the range of 0-byte allocations has blocks to estimate, and exactly 0 bytes.
  const stats = hp('stats', [base, '--json', '-q']);
  const first = lines(stats.stdout).find((l) => l.type === 'range' && l.min === 0)!;
  t.equal(first.bytes, 0);
  t.notOk('bytes_hi' in first, 'no bytes interval where the recorder counted 0 bytes');
  t.ok('count_hi' in first, 'blocks still have their interval');
});

t.test("hp-flow: a line that is also a stack's outermost frame is not folded into its one caller's chain", async (t) => {
  // As CPython's startup imports: _find_and_load (R) is the outermost frame of both stacks, and
  // is reached again from site's execusercustomize (Y) in the first. Y's only callee is R and
  // R's only caller is Y, but R holds 343 bytes and Y 191: folding R into Y's box drew it as
  // "cum 191 B" with an edge of 343 B leaving it.
  const f = (fn: string, line: number) => ({ function: fn, file: '<frozen>', line });
  const R = f('_find_and_load', 1176);
  const X = f('_find_and_load_unlocked', 1147);
  const Y = f('execusercustomize', 568);
  const Z = f('_find_and_load_unlocked', 1138);
  const est = (bytes: number) => ({ ...emptyEstimate(), bytes, count: 1, sampled: 1, exactBytes: bytes, exactCount: 1 });
  const set: StackSet = {
    label: 't=1s',
    kind: 'inuse',
    atUs: 1_000_000,
    toUs: null,
    header: null,
    total: est(343),
    stacks: [
      { frames: [f('find_spec', 95), Z, R, Y, X, R], dropped: 0, est: est(191) },
      { frames: [f('<module>', 618), X, R], dropped: 0, est: est(152) },
    ],
  };
  const dot = renderDot(buildFlowGraph([set]), { threshold: 0 });
  const boxes = new Map<string, string>();
  for (const m of dot.matchAll(/^ {2}(n\d+) \[label="([^"]*)"/gm)) boxes.set(m[1]!, m[2]!);
  const boxOf = (text: string): string | undefined => [...boxes].find(([, label]) => label.includes(text))?.[0];
  const r = boxOf('_find_and_load\\l');
  t.ok(r, 'R has a box of its own');
  if (!r) return;
  t.match(boxes.get(r)!, /cum 343 B/, 'R has its own box with everything under it');
  t.notMatch(boxes.get(boxOf('execusercustomize')!)!, /_find_and_load\\l|:1176/, "R is not in Y's box");
  // No edge leaves a box with more than the box holds.
  const cum = (id: string): number => Number(/cum (\d+) B/.exec(boxes.get(id)!)![1]);
  for (const m of dot.matchAll(/^ {2}(n\d+) -> (n\d+) \[label="(\d+) B"/gm)) t.ok(Number(m[3]) <= cum(m[1]!), `${m[1]!} -> ${m[2]!}: ${m[3]!} B <= its box's cum`);
});

t.test('a site beside others is not 100.0% of the heap: the tables and the report say >99.9%', async (t) => {
  // A 200 MB bytearray beside 10 KiB of start-up blocks: hp-snapshot's table gave it 100.0%,
  // with the other sites under it at <0.1%.
  const src = readFileSync(join(REPO, 'lib', 'export', 'report-page.ts'), 'utf8');
  const body = /function pct\(part, whole\) \{[\s\S]*?\n  \}/.exec(src);
  t.ok(body, "the report page's pct found in its script");
  const pct = new Function(`${body![0]}; return pct;`)() as (part: number, whole: number) => string;
  for (const [name, share] of [['formatShare', formatShare], ["the report page's pct", pct]] as const) {
    t.equal(share(200_000_057, 200_009_966), '>99.9%', `${name}: 99.995% of the heap`);
    t.equal(share(5, 5), '100.0%', `${name}: all of it`);
    t.equal(share(9_990, 10_000), '99.9%', `${name}: 99.9% as it is`);
    t.equal(share(0, 5), '0.0%', `${name}: none of it`);
    t.equal(share(1, 1e6), '<0.1%', `${name}: a sliver`);
  }
});

t.test("hp-stats on a stats-mode profile: a range that held allocations is never 0.0% of them", async (t) => {
  // One 5 MB allocation beside 9,999 small ones was 0.0% of the count, as the empty ranges
  // around it: the summary's shares now follow the other tables' (<0.1%).
  const base = join(tmpDir(), 'st');
  const histogram = Array.from({ length: 23 }, () => ({ count: 0, bytes: 0, sampled: 0 }));
  histogram[5] = { count: 9_999, bytes: 400_000, sampled: 0 };
  histogram[22] = { count: 1, bytes: 5_000_000, sampled: 0 };
  await writeProfile(base, { header: { mode: 'stats', sampling: { kind: 'table', bounds: [], probs: [] } }, traces: [], histogram, events: [] });
  const r = hp('stats', [base, '--no-json', '-q']);
  t.equal(r.status, 0, r.stderr);
  const row = (label: string): string[] => r.stdout.split('\n').find((l) => l.startsWith(`│ ${label} `))!.split('│').map((c) => c.trim());
  t.same(row('4 MiB..<8 MiB').slice(2), ['1', '4.8 MiB', '<0.1%', '92.6%', ''], 'the one large allocation');
  t.same(row('32..63').slice(2), ['9,999', '390.6 KiB', '>99.9%', '7.4%', '']);
  t.same(row('64..127').slice(2), ['0', '0 B', '0.0%', '0.0%', ''], 'an empty range');
});
