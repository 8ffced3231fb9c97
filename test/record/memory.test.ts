// The recorder's own memory when recording everything (--sample '{}'): at most 32 bytes per live sampled
// block while the live set grows (16-byte slots, table 1/2 to 3/4 full), the table shrinking when the
// live set does, and the summary line reporting the recorder's peak. One million live objects.

import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const SCRIPT = join(FIXTURES, 'scripts', 'million.py');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();
const chosen = installed.length > 1 ? [installed[0]!, installed[installed.length - 1]!] : installed;
const MiB = 2 ** 20;

interface Figures {
  live: number;
  base: number;
  peak: number;
  after: number;
}

for (const py of chosen) {
  t.test(`CPython ${py.version}: one million live objects, recording everything`, async (t) => {
    const plainRun = await run(py.exe, [SCRIPT], { env, timeoutMs: 120000 });
    t.equal(plainRun.code, 0, plainRun.stderr);
    const plain = JSON.parse(plainRun.stdout) as Figures;
    const base = join(scratch(), 'm');
    const r = await hpRecord(['--python', py.exe, '-o', base, '--sample', '{}', '--', SCRIPT, 'big'], { env, timeoutMs: 180000 });
    t.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as Figures;

    const live = rec.live;
    const extraAtPeak = (rec.peak - rec.base - (plain.peak - plain.base)) * MiB;
    t.ok(extraAtPeak <= live * 32 + 12 * MiB, `RSS the recorder adds with ${live} live objects: ${(extraAtPeak / live).toFixed(1)} B per live object (bound 32 B + 12 MiB)`);
    const extraAfter = (rec.after - rec.base - (plain.after - plain.base)) * MiB;
    t.ok(extraAfter <= 12 * MiB, `the pointer table shrank once they were freed: ${(extraAfter / MiB).toFixed(1)} MiB left (bound 12 MiB)`);

    const m = /recorder peak memory ([\d.]+) (KiB|MiB|GiB)/.exec(r.stderr);
    t.ok(m, 'the summary line reports the recorder\'s peak memory');
    if (m) {
      const peak = Number(m[1]) * (m[2] === 'KiB' ? 1024 : m[2] === 'MiB' ? MiB : 1024 * MiB);
      // The peak includes a growth step, when the old table (3/4 full) and the new one (1/2 full) coexist.
      t.ok(peak >= live * 16 && peak <= live * 54 + 8 * MiB, `peak ${m[1]} ${m[2]}: between 16 and 54 B per live block`);
    }

    const p = await readAll(base, { strict: true });
    t.ok(p.complete);
    const wide = p.events.filter((e) => e.size === 5 * 2 ** 30 + 33 || (e.size >= 5 * 2 ** 30 && e.size < 5 * 2 ** 30 + 64));
    t.same(wide.map((e) => e.op), ['alloc', 'free'], 'a 5 GiB block keeps its exact size from allocation to free');
  });
}
