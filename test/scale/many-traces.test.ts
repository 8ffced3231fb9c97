// Readers' memory grows with the number of distinct traces by a stated bound (man/hpx.5,
// LIMITS): every command reads a profile with 200,000 distinct traces, all of them used, and
// its peak RSS above that of the same-size profile with 3,000 traces is divided by the extra
// traces. Before traces were pooled and hp-history stopped labelling every trace, hp-history
// took about 1.3 KB per trace (2.16 GB for a million).

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import * as hpx from '../../lib/format/hpx.js';
import { tmpDir } from '../helpers/profiles.js';
// @ts-ignore: a plain JS module of the benchmark harness (no types)
import { generateProfile } from '../../bench/gen.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MANY = 200_000;
const FEW = 3_000;
/**
 * Bytes of peak RSS per extra distinct trace allowed per command: about 1.4 times what was
 * measured (hpx(5) LIMITS). On edd4dd1 hp-history took 917 B (477 B by
 * function), hp-collapse 1201 B, hp-pprof 849 B.
 */
const BOUND: Record<string, number> = {
  'hp-events': 1400, // measured 893-1123 B: its output, not its state, varies
  'hp-stats': 400,
  'hp-history': 700,
  'hp-history --group-by function': 460,
  'hp-snapshot': 880,
  'hp-collapse': 900,
  'hp-pprof': 1050, // 571 B once; 688-752 B on idle machines (800 came within 6% in CI)
  'hp-flow': 880,
  // 582-674 B in two loaded runs, 796-955 B on an idle machine (whose collector runs later) with
  // the code of fdffcbe, where 900 was set, as with today's: 900 failed by chance (909 before it
  // keyed frames by index).
  'hp-report': 1300,
  'hp-diff': 1400, // measured 693-999 B (its two sides' per-site estimates and intervals)
};

function maxRss(dir: string, cmd: string, args: string[]): { kb: number; code: number | null; err: string } {
  const preload = join(dir, 'maxrss.cjs');
  if (!existsSync(preload)) writeFileSync(preload, "process.on('exit', () => process.stderr.write(`\\nMAXRSS ${process.resourceUsage().maxRSS}\\n`));\n");
  const r = spawnSync(process.execPath, ['-r', preload, join(ROOT, 'bin', `${cmd}.js`), ...args], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC', NO_COLOR: '1', HEAPPROF_INDEX_MIN_BYTES: '1e15' },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const m = /MAXRSS (\d+)/.exec(r.stderr);
  return { kb: m ? Number(m[1]) : NaN, code: r.status, err: r.stderr.slice(0, 400) };
}

t.test('every reader stays within its per-trace memory bound', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'format', 'hpx.js'))) {
    t.skip('dist/ not built (npm run build)');
    return;
  }
  const dir = tmpDir('hp-scale-');
  const many = join(dir, 'many');
  const few = join(dir, 'few');
  await generateProfile(many, { targetBytes: 4_000_000, traces: MANY, uniform: true, hpx });
  await generateProfile(few, { targetBytes: 4_000_000, traces: FEW, uniform: true, hpx });
  const commands: Array<[string, string[]]> = [
    ['hp-events', []],
    ['hp-stats', []],
    ['hp-history', []],
    ['hp-history', ['--group-by', 'function']],
    ['hp-snapshot', []],
    ['hp-collapse', []],
    ['hp-pprof', ['-o', join(dir, 'out.pb.gz')]],
    ['hp-flow', []],
    ['hp-diff', [few]],
    ['hp-report', ['-o', join(dir, 'out.html')]],
  ];
  for (const [cmd, extra] of commands) {
    const key = cmd === 'hp-history' && extra.length > 0 ? 'hp-history --group-by function' : cmd;
    const measure = () => {
      const a = maxRss(dir, cmd, [many, ...extra]);
      const b = maxRss(dir, cmd, [few, ...extra]);
      return { a, b, perTrace: ((a.kb - b.kb) * 1024) / (MANY - FEW) };
    };
    // Peak RSS also depends on when the collector runs, which a loaded machine delays (hp-events
    // measured 546-1417 B, all garbage from its output): a figure over the bound is measured
    // once more and the lower kept. State that grows with the traces exceeds it both times.
    let m = measure();
    if (!(m.perTrace <= BOUND[key]!)) {
      const again = measure();
      if (again.perTrace < m.perTrace) m = again;
    }
    const { a, b, perTrace } = m;
    t.equal(a.code, 0, `${cmd} ${extra.join(' ')} reads ${MANY} traces: ${a.err}`);
    t.ok(perTrace <= BOUND[key]!, `${cmd} ${extra.join(' ')}: ${Math.round(perTrace)} B per distinct trace (${Math.round(a.kb / 1024)} MB vs ${Math.round(b.kb / 1024)} MB; bound ${BOUND[key]})`);
  }
});
