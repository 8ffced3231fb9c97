// A range recorded at p = 0 (hp-record accepts it, to leave sizes out on purpose) that held
// allocations: no estimate includes them and no interval can bound them, so every reader says
// so once instead of printing totals that read as exact (found by an audit: `--sample '{128: 0}'`
// gave "20.7 MiB live" with no interval for a program holding 37.4 MB).

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx.js';
import type { HistogramBucket } from '../../lib/format/types.js';
import { unsampledRanges } from '../../lib/format/weights.js';
import { tmpDir } from '../helpers/profiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A histogram with `count` allocations of `size` bytes in its bucket, per pair. */
function histogram(...pairs: Array<[size: number, count: number]>): HistogramBucket[] {
  const h = Array.from({ length: 40 }, () => ({ count: 0, bytes: 0, sampled: 0 }));
  for (const [size, count] of pairs) {
    const b = 31 - Math.clz32(size | 1);
    h[b]!.count += count;
    h[b]!.bytes += size * count;
  }
  return h;
}

t.test('unsampledRanges: the p = 0 ranges that held allocations, with what the histogram counted', async (t) => {
  const table = { kind: 'table' as const, bounds: [128, 8192], probs: [0, 0.1] };
  t.same(unsampledRanges(table, histogram([40, 1000], [64, 10], [1000, 5])), [{ lo: 0, hi: 128, count: 1010, bytes: 40640 }]);
  t.same(unsampledRanges(table, histogram([1000, 5])), [], 'nothing allocated below 128 bytes');
  t.same(unsampledRanges(table, null), [], 'no histogram: nothing known');
  t.same(unsampledRanges({ kind: 'table', bounds: [128], probs: [1e-4] }, histogram([40, 1000])), [], 'p > 0 everywhere');
  t.same(unsampledRanges({ kind: 'poisson', meanBytes: 4096 }, histogram([40, 1000])), [], 'byte-Poisson samples every size');
  // A range whose bound splits a bucket: its share by the overlap (sizes 96..127 of 64..127).
  const split = unsampledRanges({ kind: 'table', bounds: [96, 128], probs: [1, 0] }, histogram([100, 64]));
  t.same(split, [{ lo: 96, hi: 128, count: 32, bytes: 3200 }]);
});

t.test('every reader says once that sizes recorded at p = 0 are in no estimate', async (t) => {
  const dir = tmpDir('hp-unsampled-');
  const write = (base: string, hist: HistogramBucket[]) =>
    writeProfile(base, {
      header: { sampling: { kind: 'table', bounds: [128], probs: [0] }, startTimeUs: 0, argv: ['a.py'] },
      traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
      events: [
        { op: 'alloc', timeUs: 1000, trace: 1, size: 4096 },
        { op: 'alloc', timeUs: 2000, trace: 1, size: 4096 },
      ],
      histogram: hist,
    });
  const left = join(dir, 'left');
  const none = join(dir, 'none');
  await write(left, histogram([48, 500000], [4096, 2]));
  await write(none, histogram([4096, 2]));
  const run = (cmd: string, args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', `${cmd}.js`), ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const notice = /left\.hpm: sampled with p = 0 \(--sample\): 500,000 allocations of 0\.\.127 bytes \(24,000,000 bytes\) are in no estimate; totals leave them out/;
  for (const [cmd, args] of [
    ['hp-snapshot', ['--json']],
    ['hp-history', ['--json']],
    ['hp-stats', ['--json']],
    ['hp-collapse', []],
    ['hp-snapshot', ['--json', '--strict']],
  ] as Array<[string, string[]]>) {
    const r = run(cmd, [left, ...args]);
    t.equal(r.status, 0, `${cmd} ${args.join(' ')}: exit 0 (a notice, not a problem with the file)`);
    t.match(r.stderr, notice, `${cmd} ${args.join(' ')}: the notice`);
    t.equal(r.stderr.split('\n').filter((l) => notice.test(l)).length, 1, `${cmd}: once`);
    t.equal(run(cmd, [none, ...args]).stderr.includes('p = 0'), false, `${cmd}: no notice when nothing was allocated at those sizes`);
  }
  t.equal(run('hp-snapshot', [left, '--json', '-q']).stderr, '', '-q silences it');
  // Piped events carry the histogram: the reader of the pipe says it too.
  const events = run('hp-events', [left, '-q']).stdout;
  const piped = spawnSync(process.execPath, [join(ROOT, 'bin', 'hp-snapshot.js'), '-', '--json'], { encoding: 'utf8', input: events });
  t.equal(piped.status, 0);
  t.match(piped.stderr, /^hp-snapshot: stdin: sampled with p = 0 \(--sample\): 500,000 allocations of 0\.\.127 bytes/m, 'from a pipe');
  // hp-stats' table: no estimate for the range (not an estimate of 0), and the check says why.
  const table = run('hp-stats', [left, '--no-json']).stdout.split('\n').find((l) => l.includes('32..63')) ?? '';
  t.match(table, /│\s+0 │\s+- │\s+│\s+- │.*not sampled/, `hp-stats: ${table}`);
});
