// What one sampled event costs in the hook (`node bench/run.js --only perevent`, issue 19).
// bench/workloads/perevent.py allocates and frees N 183-byte blocks under a seven-frame stack;
// recorded with sizes 128..255 sampled at 1 and at 0 (the same fast path, the same countdowns),
// the CPU difference over N is the cost of one sampled allocation with its free. The same is
// measured with a build of the hook that returns right after the stack walk and its hash
// (-DHP_MEASURE_WALK_ONLY, compiled here with cc): the difference between the two is what a
// sampled pair costs above the walk (interning, the lock, the clock, the pointer table and
// filter, the event encoding, the free's lookup). Rounds interleave both builds, pinned to one
// CPU; medians of per-round figures.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './median.js';


function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The walk-only build of the hook into dir, or null (no C compiler) with the reason. */
function buildWalkOnly(root, dir) {
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'heapprof_hook_walkonly.so');
  const src = ['hook', 'pyrt', 'hpxw', 'tables', 'attach'].map((f) => join(root, 'native', `${f}.c`));
  const r = spawnSync('cc', ['-O2', '-std=gnu11', '-fPIC', '-shared', '-fvisibility=hidden', '-DHP_MEASURE_WALK_ONLY', '-o', out, ...src, '-lm', '-lpthread', '-ldl', '-lz'], { encoding: 'utf8' });
  if (r.status !== 0) return { lib: null, why: r.error ? r.error.message : r.stderr.trim().split('\n')[0] };
  return { lib: out };
}

export async function benchPerEvent({ root, python, outDir, reps, millions, pin, log }) {
  const real = join(root, 'build', 'Release', 'heapprof_hook.so');
  if (!existsSync(real)) throw new Error(`${real} is missing: run npx node-gyp rebuild`);
  const walk = buildWalkOnly(root, join(outDir, 'perevent'));
  const libs = [{ name: 'hook', lib: real }];
  if (walk.lib) libs.push({ name: 'walk only', lib: walk.lib });
  const script = join(root, 'bench', 'workloads', 'perevent.py');
  const base = join(outDir, 'perevent', 'rec');
  const once = async (lib, p) => {
    const args = [join(root, 'bin', 'hp-record.js'), '--python', python, '-o', base, '--force', '--sample', `{128: 0, 256: ${p}, 1073741824: 0}`, '--', script, String(millions)];
    const [cmd, argv] = pin ? [pin[0], [...pin.slice(1), process.execPath, ...args]] : [process.execPath, args];
    const r = await run(cmd, argv, { ...process.env, HEAPPROF_NATIVE_LIB: lib });
    const line = r.out.trim().split('\n').filter((l) => l.startsWith('{"work_s"')).pop();
    if (!line) throw new Error(`perevent: no timing line (exit ${r.code}): ${r.err.trim().split('\n').slice(-2).join(' | ')}`);
    const { work_cpu_s: cpu, n } = JSON.parse(line);
    return { cpu, n };
  };
  const ns = Object.fromEntries(libs.map((l) => [l.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    log(`perevent: round ${rep + 1}/${reps}`);
    const order = libs.map((_, i) => libs[(i + rep) % libs.length]);
    for (const l of order) {
      const on = await once(l.lib, 1);
      const off = await once(l.lib, 0);
      ns[l.name].push(((on.cpu - off.cpu) / on.n) * 1e9);
    }
  }
  const res = { reps, events: millions * 1e6, pinnedCpu: pin ? Number(pin[2]) : null, perPairNs: {}, walkOnlyWhy: walk.why ?? null };
  for (const l of libs) res.perPairNs[l.name] = { median: median(ns[l.name]), runs: ns[l.name] };
  if (walk.lib) res.aboveWalkNs = median(ns['hook'].map((x, i) => x - ns['walk only'][i]));
  return res;
}
