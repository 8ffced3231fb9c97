// The 95% intervals the terminal views show are the ones the NDJSON carries (`_lo`, `_hi`: the
// gamma interval of man/hp-estimates.7, rounded outwards), written by one function, and no
// heading or caption promises an interval that is not shown.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeProfile } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';
import { sh } from '../fixtures/analysis/run.js';
import { formatByteInterval, formatCountInterval } from '../../lib/cmd/human.js';
import { interval95, putEstimate, wholeInterval95 } from '../../lib/model/estimate.js';

type Line = Record<string, number | string | undefined>;
const ndjson = (text: string): Line[] => text.trim().split('\n').map((l) => JSON.parse(l) as Line);
/** The cells of a cli-table3 table's rows whose first cell matches `first`. */
const rowsOf = (text: string, first: RegExp): string[][] =>
  text
    .split('\n')
    .map((l) => l.split('│').slice(1, -1).map((c) => c.trim()))
    .filter((c) => c.length > 0 && first.test(c[0]!));

t.test('formatByteInterval: one unit when both limits share it, more decimals when one would not tell them apart, signs for changes', async (t) => {
  t.equal(formatByteInterval(10062512, 25909183), '9.6 .. 24.7 MiB');
  t.equal(formatByteInterval(0, 241755), '0 B .. 236.1 KiB');
  t.equal(formatByteInterval(3, 900), '3 .. 900 B');
  t.equal(formatByteInterval(52426875, 52442346), '50.00 .. 50.01 MiB', 'a narrow interval still reads as one');
  t.equal(formatByteInterval(-350_100, 470_100, true), '-341.9 .. +459.1 KiB');
  t.equal(formatByteInterval(0, 2 ** 20, true), '0 B .. +1.0 MiB');
  t.equal(formatCountInterval(91457, 259825), '91,457 .. 259,825');
  // The unit is the one formatBytes writes each limit in: 1,048,575 bytes is 1.0 MiB, not 1024.0 KiB.
  t.equal(formatByteInterval(1000000, 1048575), '976.6 KiB .. 1.0 MiB');
  t.equal(formatByteInterval(1048575, 2097152), '1.0 .. 2.0 MiB');
});

t.test('wholeInterval95 is what putEstimate writes: the interval rounded outwards', async (t) => {
  for (const [value, variance] of [
    [16644000.4, 1.1e13],
    [1234.5, 99.9],
    [7, 0.02],
  ] as const) {
    const rec: Record<string, unknown> = {};
    putEstimate(rec, 'bytes', value, variance);
    const ci = interval95(value, variance)!;
    t.same(wholeInterval95(value, variance), [rec.bytes_lo, rec.bytes_hi]);
    t.ok((rec.bytes_lo as number) <= ci[0] && (rec.bytes_hi as number) >= ci[1], `outwards: ${ci.join(', ')}`);
  }
  t.equal(wholeInterval95(5, 0), null, 'exact');
});

t.test("hp-snapshot's caption and table show the snapshot's NDJSON intervals", async (t) => {
  // --at 0: nothing live, but the interval allows for what could be live undrawn (it used to read "0 B live (95% interval)").
  for (const at of ['0', '0.5', '5.5', 'end']) {
    const json = ndjson(sh(`hp-snapshot app --at ${at} --json`).stdout);
    const head = json[0]!;
    const table = sh(`COLUMNS=140 hp-snapshot app --at ${at} --no-json`).stdout;
    const caption = table.split('\n')[0]!;
    t.ok(head.bytes_hi !== undefined, `--at ${at}: the total has an interval`);
    t.ok(caption.includes(`(95%: ${formatByteInterval(head.bytes_lo as number, head.bytes_hi as number)}) live`), `--at ${at}: ${caption}`);
    const rows = rowsOf(table, /^\d+$/);
    t.equal(rows.length, json.length - 1, `--at ${at}: a row per site`);
    rows.forEach((cells, i) => {
      const site = json[i + 1]!;
      const want = site.bytes_lo === undefined ? 'exact' : formatByteInterval(site.bytes_lo as number, site.bytes_hi as number);
      t.equal(cells[2], want, `--at ${at}, site ${i + 1}: the interval of its NDJSON line`);
    });
    // The summary on stderr says the same.
    t.match(sh(`hp-snapshot app --at ${at} --json`).stderr, `(95%: ${formatByteInterval(head.bytes_lo as number, head.bytes_hi as number)})`);
  }
  const narrow = sh('COLUMNS=50 hp-snapshot app --no-json').stdout;
  t.notMatch(narrow, /95%[^:]/, 'too narrow for the interval column: no heading that promises one');
  t.match(narrow, /│ +# │ +size │ share │/);
});

t.test("hp-diff's table shows change_lo .. change_hi", async (t) => {
  const json = ndjson(sh('hp-diff app --at 2 --at 9 --json').stdout).slice(1);
  const rows = rowsOf(sh('COLUMNS=140 hp-diff app --at 2 --at 9 --no-json').stdout, /^(\d+|TOTAL)$/);
  t.equal(rows.length, json.length);
  rows.forEach((cells, i) => {
    const r = json[i]!;
    const want = r.change_lo === r.change_hi ? 'exact' : formatByteInterval(r.change_lo as number, r.change_hi as number, true);
    t.equal(cells[2], want, `${cells[0]}: ${r.change_lo} .. ${r.change_hi}`);
  });
});

t.test("hp-stats's table shows each range's count and bytes intervals", async (t) => {
  for (const input of ['app', 'poisson']) {
    const json = ndjson(sh(`hp-stats ${input} --json`).stdout).filter((l) => l.type === 'range' || l.type === 'total');
    const rows = rowsOf(sh(`COLUMNS=200 hp-stats ${input} --no-json`).stdout, /^(\d|total)/);
    t.equal(rows.length, json.length);
    rows.forEach((cells, i) => {
      const r = json[i]!;
      const none = (r.sampled as number) > 0 ? 'exact' : '';
      t.equal(cells[3], r.count_lo === undefined ? none : formatCountInterval(r.count_lo as number, r.count_hi as number), `${input} ${cells[0]}: count`);
      t.equal(cells[5], r.bytes_lo === undefined ? none : formatByteInterval(r.bytes_lo as number, r.bytes_hi as number), `${input} ${cells[0]}: bytes`);
    });
  }
});

t.test("hp-stats writes a p below 1 as below 1, and one value only where p is one value", async (t) => {
  const { fmtP } = await import('../../lib/cmd/stats.js');
  t.equal(fmtP(0.1), '0.1');
  t.equal(fmtP(1), '1');
  t.equal(fmtP(1.53e-5), '1.53e-5');
  t.equal(fmtP(1 - Math.exp(-524287 / 65536)), '1-3.4e-4', 'not "1"');
  t.equal(fmtP(1 - Math.exp(-16)), '1-1.1e-7');
  // A byte-Poisson profile with the recorder's histogram, up to 8 MiB blocks: no "1..1", no range whose two ends read alike.
  const base = join(tmpDir('stats-'), 'pb'); // (sh would take an 'hp-' in the path for a command)
  const sizes = [100, 2000, 40_000, 300_000, 600_000, 1_500_000, 3_000_000, 6_000_000];
  const histogram = Array.from({ length: 24 }, (_, i) => {
    const inRange = sizes.filter((s) => s >= (i === 0 ? 0 : 2 ** i) && s < 2 ** (i + 1));
    return { count: inRange.length, bytes: inRange.reduce((a, b) => a + b, 0), sampled: inRange.length };
  });
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'poisson', meanBytes: 65536 } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events: sizes.map((size, i) => ({ op: 'alloc' as const, timeUs: 10 * (i + 1), trace: 1, size })),
    histogram,
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  const rows = rowsOf(sh(`COLUMNS=200 hp-stats ${base} --no-json`).stdout, /^\d/);
  const ps = rows.map((c) => c[9]!).filter((p) => p !== '');
  t.ok(ps.length > 3, `p column: ${ps.join(' | ')}`);
  for (const p of ps) {
    const ends = p.split('..');
    t.ok(ends.length === 1 || ends[0] !== ends[1], `${p}: a range's two ends differ`);
  }
});

t.test("hp-stats: a range with nothing drawn and the total allow for what no draw saw, and cover the recorder's counts", async (t) => {
  // The default table; 2,000 blocks of 40 bytes (p = 1e-4: none drawn) and 30 of 200 bytes (p =
  // 0.1: 3 drawn), and 2 of 20 KiB (p = 1). The estimate of 40-byte blocks is 0: its interval
  // must reach the 2,000 the recorder counted, and so must the total's.
  const base = join(tmpDir('stats-'), 'unseen');
  const hist = Array.from({ length: 16 }, () => ({ count: 0, bytes: 0, sampled: 0 }));
  hist[5] = { count: 2000, bytes: 80_000, sampled: 0 };
  hist[7] = { count: 30, bytes: 6000, sampled: 3 };
  hist[14] = { count: 2, bytes: 40_960, sampled: 2 };
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events: [200, 200, 200, 20_480, 20_480].map((size, i) => ({ op: 'alloc' as const, timeUs: 10 * (i + 1), trace: 1, size })),
    histogram: hist,
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  const lines = ndjson(sh(`hp-stats ${base} --json`).stdout);
  const range = lines.find((l) => l.type === 'range' && l.min === 32)!;
  t.equal(range.count, 0, 'nothing of 32..63 drawn');
  t.ok((range.count_hi as number) >= 2000, `32..63: count up to ${range.count_hi}, covering the 2,000 counted`);
  t.ok((range.bytes_hi as number) >= 80_000, `32..63: bytes up to ${range.bytes_hi}`);
  const empty = lines.find((l) => l.type === 'range' && l.min === 64)!;
  t.equal(empty.count_hi, undefined, 'a range the histogram shows empty is exactly 0');
  const exact = lines.find((l) => l.type === 'range' && l.min === 16384)!;
  t.equal(exact.count_hi, undefined, 'a range drawn at p = 1 is exact');
  const total = lines.find((l) => l.type === 'total')!;
  t.ok((total.count_lo as number) <= 2032 && (total.count_hi as number) >= 2032, `total count ${total.count_lo} .. ${total.count_hi} covers 2,032`);
  t.ok((total.bytes_lo as number) <= 126_960 && (total.bytes_hi as number) >= 126_960, `total bytes ${total.bytes_lo} .. ${total.bytes_hi} covers 126,960`);
  t.ok((total.bytes_lo as number) >= 40_960, 'the blocks drawn at p = 1 are in the lower limit');
  // The table shows the same intervals.
  const rows = rowsOf(sh(`COLUMNS=200 hp-stats ${base} --no-json`).stdout, /^(32\.\.63|total)/);
  t.equal(rows[0]![3], formatCountInterval(range.count_lo as number, range.count_hi as number));
  t.equal(rows[1]![3], formatCountInterval(total.count_lo as number, total.count_hi as number));
});

t.test("hp-stats on events of a window leaves out the recorder's whole-run histogram, and says so", async (t) => {
  const whole = ndjson(sh('hp-stats app --json').stdout);
  t.ok(whole.some((l) => l.type === 'total' && l.recorder !== undefined), 'the whole profile has the recorder columns');
  const r = sh('hp-events app --from 2 --to 4 | hp-stats - --json');
  t.equal(r.status, 0, r.stderr);
  const lines = ndjson(r.stdout);
  t.notOk(lines.some((l) => l.recorder !== undefined || l.check !== undefined), 'no whole-run counts beside the window estimates');
  t.match(r.stderr, /window of the run .*histogram counts the whole run/);
  const table = sh('hp-events app --from 2 --to 4 | COLUMNS=200 hp-stats - --no-json -q').stdout;
  t.notMatch(table, /sampled\/count|check/, 'nor in the table');
  // The duration is the window's, not the run's (which the stream's END marker still gives).
  const runS = whole.find((l) => l.type === 'total')!.duration as number;
  t.ok(runS > 4, `the run lasts ${runS} s`);
  const total = lines.find((l) => l.type === 'total')!;
  t.equal(total.duration, 2, 'a 2..4 s window covers 2 s');
  t.same(total.window, { from: 2, to: 4 });
  const from = ndjson(sh('hp-events app --from 2 | hp-stats - --json -q').stdout).find((l) => l.type === 'total')!;
  t.ok(Math.abs((from.duration as number) - (runS - 2)) < 1e-9, `from 2 s to the end: ${from.duration} s`);
  t.same(from.window, { from: 2, to: null });
  const to = ndjson(sh('hp-events app --to 3 | hp-stats - --json -q').stdout).find((l) => l.type === 'total')!;
  t.equal(to.duration, 3);
  t.notOk('window' in whole.find((l) => l.type === 'total')!, 'no window on a whole profile');
});
