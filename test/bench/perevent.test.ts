// What bench/perevent.js measures is what it says: with sizes 128..255 sampled at 1, every
// iteration of bench/workloads/perevent.py is exactly one sampled 183-byte allocation and its
// free (so the difference to the run sampled at 0 is N pairs); at 0 there are none; and the
// walk-only build the bench compiles records no events at all.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { readRecording, REPO, supportedPythons } from '../helpers/python.js';

const pythons = supportedPythons();
const py = pythons[pythons.length - 1];
if (!py) t.plan(0, 'no CPython 3.9-3.13 found');

const N = 5000;
const record = (base: string, p: number, lib?: string) =>
  spawnSync(process.execPath, [join(REPO, 'bin', 'hp-record.js'), '--python', py!.exe, '-o', base, '--force', '--sample', `{128: 0, 256: ${p}, 1073741824: 0}`, '--', join(REPO, 'bench', 'workloads', 'perevent.py'), String(N / 1e6)], {
    encoding: 'utf8',
    env: { ...process.env, ...(lib ? { HEAPPROF_NATIVE_LIB: lib } : {}) },
  });

if (py) {
  t.test(`CPython ${py.version}: the per-event workload samples exactly N pairs at 1, none at 0`, async (t) => {
    for (const p of [1, 0]) {
      const base = join(tmpDir(), `pe${p}`);
      const r = record(base, p);
      t.equal(r.status, 0, r.stderr);
      t.equal(JSON.parse(r.stdout.trim().split('\n').pop()!).n, N);
      const rec = await readRecording(base);
      const ours = (op: string) => rec.events.filter((e) => e.op === op && e.size === 183 && rec.traces.get(e.trace)?.frames.some((f) => f.function === 'f7')).length;
      t.equal(ours('alloc'), p * N, `p=${p}: allocations`);
      t.equal(ours('free'), p * N, `p=${p}: frees`);
    }
  });

  t.test(`CPython ${py.version}: the walk-only build records nothing`, async (t) => {
    const dir = tmpDir();
    const lib = join(dir, 'walkonly.so');
    const src = ['hook', 'pyrt', 'hpxw', 'tables', 'attach'].map((f) => join(REPO, 'native', `${f}.c`));
    const cc = spawnSync('cc', ['-O2', '-std=gnu11', '-fPIC', '-shared', '-fvisibility=hidden', '-DHP_MEASURE_WALK_ONLY', '-o', lib, ...src, '-lm', '-lpthread', '-ldl', '-lz'], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) {
      t.skip(`no C compiler: ${cc.error?.message ?? cc.stderr}`);
      return;
    }
    const base = join(dir, 'walk');
    const r = record(base, 1, lib);
    t.equal(r.status, 0, r.stderr);
    const rec = await readRecording(base);
    t.equal(rec.events.filter((e) => e.op === 'alloc' || e.op === 'free').length, 0);
  });
}
