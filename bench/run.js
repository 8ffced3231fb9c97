#!/usr/bin/env node
// heapprof benchmarks (`npm run bench`): recording overhead against plain Python and
// tracemalloc, file size per event, reading throughput of hp-history against the C reference
// decoder on a >= 1 GB profile, snapshot seeks through the index, and start-up (bench/startup.js).
// Every ratio is measured side by side in one run (runs interleaved, medians), because these
// machines are noisy.
// Prints a table on stdout and writes the figures to bench/out/bench-<time>.json.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median, medianInterval } from './median.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// How bin/'s shell line starts Node (doc/internals.md): the commands are timed as users run them.
const NODE_FLAGS = ['--no-concurrent-recompilation'];
const WORKLOADS = join(ROOT, 'bench', 'workloads');

const USAGE = `Usage: node bench/run.js [--quick] [--python EXE] [--reps N] [--only record,read,seek,pytest,startup,perevent,big-read]
                        [--read-mb MB] [--big-gb GB] [--big-traces N] [--out DIR] [--keep] [--no-pin]

  --quick      CI-sized: smaller workloads, 3 runs each, a 128 MB read file
  --python     CPython to benchmark (default: python3 on PATH)
  --reps       runs per configuration (default 9 for churn, 5 for the other workloads)
  --only       sections to run (default: record,read,seek,pytest,startup,perevent; big-read only when named)
  --workloads  recording workloads to run, e.g. arrays,churn (default: all)
  --configs    recording configurations besides plain, e.g. poisson512K,native512K,heaptrack (default: all)
  --read-mb    size of the synthetic .hpd for the reading benchmarks (default 1100)
  --big-gb     big-read: size of the stdlib-suite-shaped .hpd (default 3.5; needs that much disk)
  --big-traces big-read: its distinct traces (default 100000)
  --out        where to write JSON and temporary profiles (default bench/out)
  --keep       keep the generated profiles
  --no-pin     do not pin the single-threaded recording workloads to one CPU (default: pinned
               with taskset when it is installed; moving between CPUs made runs here up to 2x slower)
  --no-build   use dist/ as it is (default: run tsc first)`;

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    python: { type: 'string', default: 'python3' },
    reps: { type: 'string' },
    only: { type: 'string', default: 'record,read,seek,pytest,startup,perevent' },
    workloads: { type: 'string' },
    configs: { type: 'string' },
    'read-mb': { type: 'string' },
    'big-gb': { type: 'string' },
    'big-traces': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench', 'out') },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const sections = new Set(opt.only.split(',').map((s) => s.trim()));
const outDir = opt.out;
mkdirSync(outDir, { recursive: true });
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
const results = { started: new Date().toISOString(), quick: opt.quick, host: {}, record: [], size: [], read: null, seek: null, bigRead: null, notes: [] };

// ---- setup ----

function build() {
  // The benchmarks run the built commands (bin/ -> dist/).
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { encoding: 'utf8' });
  if (r.status !== 0) log(`tsc reported errors (using what it emitted):\n${r.stdout.split('\n').slice(0, 5).join('\n')}`);
  if (!existsSync(join(ROOT, 'dist', 'format', 'index.js'))) throw new Error('dist/ is missing after the build: run `npm run build`');
}

function resolvePython(exe) {
  // pyenv shims are shell scripts that cost a second under load: time the real interpreter.
  const r = spawnSync(exe, ['-c', 'import sys; print(sys.executable); print(sys.version.split()[0])'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${exe}: cannot run (${r.stderr.trim() || r.error?.message})`);
  const [path, version] = r.stdout.trim().split('\n');
  return { path, version };
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
// A median's 95% interval (medianInterval), as " [lo-hi]"; nothing when the runs are too few.
const span = (iv) => (iv ? ` [${fmt(iv.lo)}-${fmt(iv.hi)}]` : '');

/** Run a command, collect stdout/stderr, wall time and (via /usr/bin/time) peak RSS. */
function run(cmd, args, { cwd = ROOT, stdout = 'pipe', env = process.env, timeRss = false } = {}) {
  return new Promise((resolve, reject) => {
    const useTime = timeRss && existsSync('/usr/bin/time');
    const argv = useTime ? ['-f', '%M %U %S', cmd, ...args] : args;
    const t0 = process.hrtime.bigint();
    const child = spawn(useTime ? '/usr/bin/time' : cmd, argv, { cwd, env, stdio: ['ignore', stdout === 'ignore' ? 'ignore' : 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let maxRssKb = null;
      let cpu = null;
      if (useTime) {
        const lines = err.trimEnd().split('\n');
        const [rss, user, sys] = lines.pop().split(' ').map(Number);
        maxRssKb = rss;
        cpu = user + sys;
        err = lines.join('\n');
      }
      resolve({ code, signal, out, err, wall, cpu, maxRssKb });
    });
  });
}

// ---- recording overhead and file size ----

const ARRAYS_TUNABLES = 'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824';

const CONFIGS = [
  { name: 'plain', kind: 'python', args: [] },
  // Stats mode samples nothing: the hook's per-allocation cost alone (exact counting and the
  // countdowns' fast path), the floor under every sampled configuration in the same run.
  { name: 'stats', kind: 'record', args: ['--mode', 'stats'], events: false },
  { name: 'default', kind: 'record', args: [] },
  { name: 'poisson512K', kind: 'record', args: ['--sample-bytes', '512K'] },
  { name: 'everything', kind: 'record', args: ['--sample', '{}'] },
  // Native recording (--native, issue 13): the C allocator too, at the same sampler.
  { name: 'native512K', kind: 'record', args: ['--native', '--sample-bytes', '512K'] },
  // heaptrack (LD_PRELOAD, every malloc with a native backtrace, no Python stacks), where installed.
  { name: 'heaptrack', kind: 'heaptrack', args: [] },
  { name: 'tracemalloc1', kind: 'python', args: ['-X', 'tracemalloc=1'] },
  { name: 'tracemalloc25', kind: 'python', args: ['-X', 'tracemalloc=25'] },
];

async function profileEvents(base) {
  const { nativeDecoder } = await import('../dist/native.js');
  const dec = nativeDecoder();
  if (dec) return dec.scanHpd(`${base}.hpd`).events;
  const { openProfile } = await import('../dist/format/profile.js');
  const p = await openProfile(base);
  let n = 0;
  for await (const b of p.batches()) n += b.length;
  await p.close();
  return n;
}

/** taskset -c CPU, for single-threaded workloads: the CPU this process may run on last in its list. */
function pinPrefix() {
  if (opt['no-pin']) return null;
  const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p));
  if (!taskset) return null;
  const cpus = spawnSync(taskset, ['-pc', String(process.pid)], { encoding: 'utf8' });
  const list = /:\s*([\d,-]+)\s*$/.exec(cpus.stdout ?? '')?.[1];
  const last = list?.split(',').pop()?.split('-').pop();
  return last ? [taskset, '-c', last] : null;
}

async function recordSection(py) {
  const scale = opt.quick ? 0.35 : 1;
  const workloads = ['churn', 'growth', 'spike', 'threads', 'stdlib'];
  // numpy arrays: only where the benchmarked Python has numpy.
  if (spawnSync(py.path, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0) workloads.push('arrays');
  else results.notes.push(`arrays workload skipped: ${py.path} has no numpy`);
  const heaptrack = ['/usr/bin/heaptrack', '/usr/local/bin/heaptrack'].find((p) => existsSync(p)) ?? null;
  if (!heaptrack) results.notes.push('heaptrack not installed: its configuration is skipped');
  const wanted = opt.configs ? new Set(['plain', ...opt.configs.split(',').map((x) => x.trim())]) : null;
  const configs = CONFIGS.filter((c) => (c.kind !== 'heaptrack' || heaptrack) && (!wanted || wanted.has(c.name)));
  if (opt.workloads) {
    const only = new Set(opt.workloads.split(',').map((x) => x.trim()));
    workloads.splice(0, workloads.length, ...workloads.filter((x) => only.has(x)));
  }
  const pin = pinPrefix();
  results.host.pinnedCpu = pin ? Number(pin[2]) : null;
  const profDir = join(outDir, 'rec');
  mkdirSync(profDir, { recursive: true });
  for (const w of workloads) {
    const reps = opt.reps ? Number(opt.reps) : opt.quick ? 3 : w === 'churn' ? 9 : 5;
    const script = join(WORKLOADS, `${w}.py`);
    const times = Object.fromEntries(configs.map((c) => [c.name, []]));
    const cpus = Object.fromEntries(configs.map((c) => [c.name, []]));
    const walls = Object.fromEntries(configs.map((c) => [c.name, []]));
    // CPU of every process of the run, launch to exit (from /usr/bin/time): what the whole
    // tool costs, including what it does outside the program (hp-record's node wrapper,
    // heaptrack's heaptrack_interpret, which runs beside the program on another CPU).
    const totals = Object.fromEntries(configs.map((c) => [c.name, []]));
    const sizes = {};
    // The threads workload runs free: pinned, its threads could not overlap outside the GIL.
    const prefix = pin && w !== 'threads' ? pin : [];
    const launch = (cmd, args) => (prefix.length > 0 ? [prefix[0], [...prefix.slice(1), cmd, ...args]] : [cmd, args]);
    // arrays: glibc's malloc thresholds fixed for every configuration. Left dynamic, glibc moves
    // its mmap threshold as big blocks are freed, so whether each 8 KB-8 MB array is a fresh
    // mapping (page faults: on this VM 95% of the run, 7.7 s against 0.4 s) or heap memory
    // reused depended on the allocation history, and runs of one configuration differed 2x
    // (bimodal) whatever the profiler did. Fixed, every configuration reuses heap memory and the
    // ratios measure the profilers, not the kernel's page faults.
    const env = w === 'arrays' ? { ...process.env, GLIBC_TUNABLES: ARRAYS_TUNABLES } : process.env;
    log(`record: ${w} (${reps} interleaved runs of ${configs.length} configurations${prefix.length > 0 ? `, on CPU ${prefix[2]}` : ''})`);
    for (let rep = 0; rep < reps; rep++) {
      // Rotate the order each round so no configuration always runs right after another.
      const order = configs.map((_, i) => configs[(i + rep) % configs.length]);
      for (const c of order) {
        const base = join(profDir, `${w}-${c.name}`);
        const r =
          c.kind === 'python'
            ? await run(...launch(py.path, [...c.args, script, String(scale)]), { cwd: WORKLOADS, timeRss: true, env })
            : c.kind === 'heaptrack'
            ? await run(...launch(heaptrack, ['-o', base, py.path, script, String(scale)]), { cwd: WORKLOADS, timeRss: true, env })
            : await run(...launch(process.execPath, [...NODE_FLAGS, join(ROOT, 'bin', 'hp-record.js'), '--python', py.path, '-o', base, '--force', ...c.args, '--', script, String(scale)]), { cwd: WORKLOADS, timeRss: true, env });
        if (c.kind === 'heaptrack') for (const f of readdirSync(profDir)) if (f.startsWith(`${w}-${c.name}.`)) rmSync(join(profDir, f), { force: true });
        // heaptrack prints its own lines after the program's: the timing line is the JSON one.
        const line = r.out.trim().split('\n').filter((l) => l.startsWith('{"work_s"')).pop() ?? '';
        let work;
        let workCpu;
        try {
          ({ work_s: work, work_cpu_s: workCpu } = JSON.parse(line));
        } catch {
          throw new Error(`${w}/${c.name}: no timing line (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.err.trim().split('\n').slice(-3).join(' | ')}`);
        }
        times[c.name].push(work);
        cpus[c.name].push(workCpu);
        walls[c.name].push(r.wall);
        totals[c.name].push(r.cpu);
        if (c.kind === 'record') {
          if (rep === 0 && c.events !== false) {
            const hpd = statSync(`${base}.hpd`).size;
            const hpm = statSync(`${base}.hpm`).size;
            const events = await profileEvents(base);
            sizes[c.name] = { hpdBytes: hpd, hpmBytes: hpm, events, bytesPerEvent: events > 0 ? (hpd + hpm) / events : null };
          }
          rmSync(`${base}.hpd`, { force: true });
          rmSync(`${base}.hpm`, { force: true });
        }
      }
    }
    const plain = median(times.plain);
    const plainCpu = median(cpus.plain);
    const row = { workload: w, reps, scale, plainWorkS: plain, plainWorkCpuS: plainCpu, configs: {} };
    for (const c of configs) {
      row.configs[c.name] = {
        medianWorkS: median(times[c.name]),
        ratio: median(times[c.name]) / plain,
        // Each round's ratio to plain python in the same round, then their median: the machine's
        // slow phases (seen here: everything 2x slower for minutes) hit a round's runs alike.
        pairedCpuRatio: median(cpus[c.name].map((x, i) => x / cpus.plain[i])),
        // Where the median of such rounds lies, at 95% whatever their distribution: what a
        // target can be judged against on a noisy machine (null under 6 rounds).
        pairedCpuRatioInterval: medianInterval(cpus[c.name].map((x, i) => x / cpus.plain[i])),
        medianWorkCpuS: median(cpus[c.name]),
        cpuRatio: median(cpus[c.name]) / plainCpu,
        // Noise on a shared machine only ever adds time: the best run of each is the steadier
        // comparison when the medians are disturbed.
        minCpuRatio: Math.min(...cpus[c.name]) / Math.min(...cpus.plain),
        medianProcessWallS: median(walls[c.name]),
        // Per round, the whole run's CPU (all processes) over plain python's whole run.
        pairedTotalCpuRatio: totals.plain.every((x) => x != null) ? median(totals[c.name].map((x, i) => x / totals.plain[i])) : null,
        totalCpuRuns: totals[c.name],
        runs: times[c.name],
        cpuRuns: cpus[c.name],
      };
    }
    results.record.push(row);
    for (const [cfg, s] of Object.entries(sizes)) results.size.push({ workload: w, config: cfg, ...s });
    log(`  ${configs.map((c) => `${c.name} ${fmt(row.configs[c.name].pairedCpuRatio)}x${span(row.configs[c.name].pairedCpuRatioInterval)} (median wall ${fmt(row.configs[c.name].ratio)}x, cpu ${fmt(row.configs[c.name].cpuRatio)}x, best ${fmt(row.configs[c.name].minCpuRatio)}x)`).join(', ')}`);
  }
  rmSync(profDir, { recursive: true, force: true });
}

// ---- reading ----

function topSelfTime(profilePath, n = 8) {
  const p = JSON.parse(readFileSync(profilePath, 'utf8'));
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]);
    const cf = node.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : ''}`.trim();
    const dt = p.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), share: us / total }));
}

async function readSection() {
  const { generateProfile } = await import('./gen.js');
  const { nativeDecoder, nativeDecoderStatus } = await import('../dist/native.js');
  const mb = opt['read-mb'] ? Number(opt['read-mb']) : opt.quick ? 128 : 1100;
  const base = join(outDir, 'big');
  log(`read: generating a ${mb} MB .hpd`);
  let t0 = performance.now();
  const gen = await generateProfile(base, { targetBytes: mb * 1e6 });
  const genS = (performance.now() - t0) / 1000;
  const bytes = gen.hpdBytes;
  const read = { hpdBytes: bytes, events: gen.events, generator: { seconds: genS, eventsPerS: gen.events / genS, mbPerS: bytes / genS / 1e6 }, lastUs: gen.lastUs };
  results.read = read;

  // Interleaved rounds (these machines are noisy): the C reference decoder (it decodes and keeps
  // live bytes by trace, on one thread), hp-history as a user runs it (decoding on a worker
  // thread beside the model, both with the addon's kernels), hp-history on one thread, and
  // hp-history in TypeScript only (HEAPPROF_NATIVE_READ=0: what a build without the addon
  // gets). Medians of each.
  const dec = nativeDecoder();
  if (!dec) results.notes.push(`C decoder unavailable: ${nativeDecoderStatus()}`);
  else dec.scanHpd(`${base}.hpd`); // warm the page cache like the others get it
  const rounds = opt.quick ? 1 : 3;
  const cRuns = [];
  const hRuns = [];
  const h1Runs = [];
  const hTsRuns = [];
  for (let round = 0; round < rounds; round++) {
    if (dec) {
      log(`read: C decoder (round ${round + 1}/${rounds})`);
      const c0 = cpuSeconds();
      const s = dec.scanHpd(`${base}.hpd`);
      cRuns.push({ seconds: s.seconds, cpuSeconds: cpuSeconds() - c0 });
      if (s.events !== gen.events) results.notes.push(`C decoder read ${s.events} events, generator wrote ${gen.events}`);
    }
    for (const [runs, what, extra] of [
      [hRuns, '', {}],
      [h1Runs, ' on one thread', { HEAPPROF_READ_WORKER: '0' }],
      [hTsRuns, ' in TypeScript only', { HEAPPROF_NATIVE_READ: '0' }],
    ]) {
      log(`read: hp-history${what} (round ${round + 1}/${rounds})`);
      const env = { ...process.env, ...extra };
      const h = await run(process.execPath, [...NODE_FLAGS, join(ROOT, 'bin', 'hp-history.js'), base], { stdout: 'ignore', timeRss: true, env });
      if (h.code !== 0) throw new Error(`hp-history failed: ${h.err.trim()}`);
      runs.push({ seconds: h.wall, cpuSeconds: h.cpu, maxRssMb: h.maxRssKb / 1024 });
    }
  }
  const summary = (runs) => {
    const seconds = median(runs.map((r) => r.seconds));
    const cpu = median(runs.map((r) => r.cpuSeconds));
    const out = { seconds, mbPerS: bytes / seconds / 1e6, cpuSeconds: cpu, mbPerCpuS: bytes / cpu / 1e6, runs: runs.map((r) => r.seconds) };
    if (runs[0]?.maxRssMb !== undefined) out.maxRssMb = Math.max(...runs.map((r) => r.maxRssMb));
    return out;
  };
  read.c = dec ? { ...summary(cRuns), events: gen.events, blockCrc32: dec.blockCrc32 } : null;
  read.history = summary(hRuns);
  read.historyOneThread = summary(h1Runs);
  read.historyTs = summary(hTsRuns);
  read.historyOverC = read.c ? read.history.mbPerS / read.c.mbPerS : null;
  read.historyOverCByCpu = read.c ? read.history.mbPerCpuS / read.c.mbPerCpuS : null;

  // The readers' decoding alone (blocks, checksums, events into batches, the tally), on one
  // thread in a child process each: with the addon's decoder, and in TypeScript only.
  for (const [key, extra] of [['decode', {}], ['tsDecode', { HEAPPROF_NATIVE_READ: '0' }]]) {
    log(`read: decoding only${key === 'tsDecode' ? ', TypeScript' : ''}`);
    const script = `import { openProfile } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/format/profile.js')).href)};
const p = await openProfile(${JSON.stringify(base)}); let n = 0; for await (const b of p.batches()) n += b.length; await p.close(); console.log(n);`;
    const d = await run(process.execPath, ['--input-type=module', '-e', script], { timeRss: true, env: { ...process.env, HEAPPROF_READ_WORKER: '0', ...extra } });
    if (d.code !== 0) throw new Error(`decoding failed: ${d.err.trim()}`);
    read[key] = { seconds: d.wall, mbPerS: bytes / d.wall / 1e6, cpuSeconds: d.cpu, mbPerCpuS: bytes / d.cpu / 1e6, events: Number(d.out.trim()) };
  }
  read.tsOverC = read.c ? read.tsDecode.mbPerS / read.c.mbPerS : null;

  // hp-events, whose cost is writing a line per event: over the first tenth of the profile (the
  // whole would be tens of GB of NDJSON), to /dev/null.
  const eventsTo = (gen.lastUs / 1e6 / 10).toFixed(3);
  log(`read: hp-events --to ${eventsTo}`);
  const ev = await run(process.execPath, [...NODE_FLAGS, join(ROOT, 'bin', 'hp-events.js'), base, '--to', eventsTo, '-q'], { stdout: 'ignore', timeRss: true });
  if (ev.code !== 0) throw new Error(`hp-events failed: ${ev.err.trim()}`);
  read.hpEvents = { toSeconds: Number(eventsTo), seconds: ev.wall, cpuSeconds: ev.cpu, maxRssMb: ev.maxRssKb == null ? null : ev.maxRssKb / 1024 };

  // Where hp-history spends its time.
  log('read: hp-history under --cpu-prof');
  const profDir = join(outDir, 'cpuprof');
  rmSync(profDir, { recursive: true, force: true });
  const prof = await run(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, ...NODE_FLAGS, join(ROOT, 'bin', 'hp-history.js'), base], { stdout: 'ignore' });
  if (prof.code === 0) {
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) read.historyProfile = topSelfTime(join(profDir, file));
  }
  return base;
}

// ---- seeking ----

async function seekSection(base) {
  const { openProfile } = await import('../dist/format/profile.js');
  const { indexPath } = await import('../dist/format/index.js');
  rmSync(indexPath(base), { force: true });
  log('seek: building the index');
  const b = await run(process.execPath, [join(ROOT, 'bench', 'seek.js'), 'build', base], { timeRss: true });
  if (b.code !== 0) throw new Error(`index build failed: ${b.err.trim()}`);
  const built = JSON.parse(b.out);
  const seek = { build: { seconds: b.wall, maxRssMb: b.maxRssKb / 1024, indexBytes: statSync(indexPath(base)).size, checkpoints: built.checkpoints, blocks: built.blocks }, at: [] };
  results.seek = seek;
  const p = await openProfile(base);
  await p.close();
  const lastS = built.lastUs / 1e6;
  const points = [0.05, 0.25, 0.5, 0.75, 0.95].map((f) => (lastS * f).toFixed(3)).concat(['peak', 'end']);
  // The real command, as a user runs it (it reads through the index it finds next to the profile).
  for (const at of points) {
    const r = await run(process.execPath, [...NODE_FLAGS, join(ROOT, 'bin', 'hp-snapshot.js'), base, '--at', at, '-q'], { timeRss: true });
    if (r.code !== 0) throw new Error(`hp-snapshot --at ${at} failed: ${r.err.trim()}`);
    const head = JSON.parse(r.out.split('\n')[0]);
    seek.at.push({ at, seconds: r.wall, cpuSeconds: r.cpu, maxRssMb: r.maxRssKb / 1024, liveBytes: head.bytes, sites: head.sites });
    log(`  hp-snapshot --at ${at}: ${fmt(r.wall, 3)} s`);
  }
  seek.maxSeconds = Math.max(...seek.at.map((a) => a.seconds));
}

// ---- reading a big profile of the stdlib-suite shape ----

/**
 * The readers' memory on a profile like a CPython regression-test run recorded with every
 * allocation sampled (issue 18: <= 500 MB RSS on a 3.5 GB one): generate it (bench/gen.js,
 * shape 'stdlib'), then run each reader once on it as a user would, in an order where the index
 * is built by the first command that wants it (hp-snapshot) and used by the next (hp-report).
 * Peak RSS from /usr/bin/time, MB/s of .hpd per wall second.
 */
async function bigReadSection() {
  const { generateProfile } = await import('./gen.js');
  const gb = opt['big-gb'] ? Number(opt['big-gb']) : opt.quick ? 0.25 : 3.5;
  const traces = opt['big-traces'] ? Number(opt['big-traces']) : 100000;
  const base = join(outDir, 'big-stdlib');
  const html = join(outDir, 'big-stdlib.html');
  log(`big-read: generating a ${gb} GB .hpd of the stdlib-suite shape, ${traces} traces`);
  const t0 = performance.now();
  const gen = await generateProfile(base, { targetBytes: gb * 1e9, traces, shape: 'stdlib' });
  const big = { hpdBytes: gen.hpdBytes, hpmBytes: gen.hpmBytes, events: gen.events, traces, lastUs: gen.lastUs, generateSeconds: (performance.now() - t0) / 1000, loadavg: null, commands: [] };
  results.bigRead = big;
  try {
    big.loadavg = (await import('node:os')).loadavg();
    const commands = [
      ['hp-history', [base]],
      ['hp-collapse', [base]],
      ['hp-stats', [base]],
      ['hp-snapshot', [base, '--at', 'peak']],
      ['hp-report', [base, '-o', html]],
    ];
    for (const [name, args] of commands) {
      const hadIndex = existsSync(`${base}.hpi`);
      log(`big-read: ${name} ${args.slice(1).join(' ')}`);
      const r = await run(process.execPath, [...NODE_FLAGS, join(ROOT, 'bin', `${name}.js`), ...args, '-q'], { stdout: 'ignore', timeRss: true });
      if (r.code !== 0) throw new Error(`${name} failed (exit ${r.code ?? r.signal}): ${r.err.trim().split('\n').pop()}`);
      const row = { command: [name, ...args.slice(1)].join(' '), seconds: r.wall, cpuSeconds: r.cpu, mbPerS: gen.hpdBytes / r.wall / 1e6, maxRssMb: r.maxRssKb / 1024, index: hadIndex ? 'used' : existsSync(`${base}.hpi`) ? 'built' : 'none' };
      big.commands.push(row);
      log(`  ${fmt(row.seconds, 1)} s, ${fmt(row.mbPerS, 0)} MB/s, peak RSS ${fmt(row.maxRssMb, 0)} MB`);
    }
    big.maxRssMb = Math.max(...big.commands.map((c) => c.maxRssMb));
  } finally {
    if (!opt.keep) for (const f of [`${base}.hpd`, `${base}.hpm`, `${base}.hpi`, html]) rmSync(f, { force: true });
  }
}

// ---- report ----

// Each recording target judged by the interval of its median, not the median alone: met when
// the whole interval is within it, missed when the whole interval is beyond it, else not
// decided by these rounds (more rounds, or a quieter machine, would tell).
function targetVerdicts(record) {
  const verdict = (iv, ok) => (!iv ? 'too few rounds to judge' : ok(iv.hi) ? 'met' : !ok(iv.lo) ? 'not met' : 'not decided at this noise');
  const out = [];
  const churn = record.find((r) => r.workload === 'churn');
  for (const [name, target] of [['default', 1.1], ['poisson512K', 1.06]]) {
    const c = churn?.configs[name];
    if (c) out.push(`Target churn ${name} <= ${fmt(target)}x: ${fmt(c.pairedCpuRatio)}x${span(c.pairedCpuRatioInterval)}, ${verdict(c.pairedCpuRatioInterval, (x) => x <= target)}`);
  }
  return out.length > 0 ? ['', ...out] : [];
}

async function report() {
  const { default: Table } = await import('cli-table3');
  const lines = [];
  const style = { head: [], border: [] };
  if (results.record.length > 0) {
    const t = new Table({ head: ['workload (median)', 'plain wall s', ...CONFIGS.slice(1).map((c) => `${c.name} ×`)], style });
    for (const r of results.record) t.push([`${r.workload} (${r.reps} runs)`, fmt(r.plainWorkS, 3), ...CONFIGS.slice(1).map((c) => (r.configs[c.name] ? `${fmt(r.configs[c.name].pairedCpuRatio)}${span(r.configs[c.name].pairedCpuRatioInterval)} / ${fmt(r.configs[c.name].ratio)} / ${fmt(r.configs[c.name].minCpuRatio)}` : '-'))]);
    const pinned = results.host.pinnedCpu == null ? 'not pinned' : `pinned to CPU ${results.host.pinnedCpu} except threads`;
    lines.push(
      `Recording overhead: time of the work inside Python relative to plain python (${pinned}): median of the per-round CPU ratios [its 95% interval, from 6 rounds] / median by wall / best run by CPU (targets on churn: default <= 1.10, poisson512K <= 1.06; everywhere: everything <= tracemalloc1)`,
      t.toString(),
      ...targetVerdicts(results.record),
      '',
    );
    const whole = results.record.filter((r) => Object.values(r.configs).some((c) => c.pairedTotalCpuRatio != null));
    if (whole.length > 0) {
      const w = new Table({ head: ['workload (median)', ...CONFIGS.slice(1).map((c) => `${c.name} ×`)], style });
      for (const r of whole) w.push([r.workload, ...CONFIGS.slice(1).map((c) => fmt(r.configs[c.name]?.pairedTotalCpuRatio))]);
      lines.push(
        'Whole run: CPU of every process from launch to exit (the program, hp-record\'s node wrapper, heaptrack\'s interpreter process beside it) relative to plain python, median of the per-round ratios',
        w.toString(),
        '',
      );
    }
  }
  if (results.size.length > 0) {
    const t = new Table({ head: ['workload', 'config', 'events', '.hpd + .hpm bytes', 'bytes/event'], style });
    for (const s of results.size) t.push([s.workload, s.config, s.events, s.hpdBytes + s.hpmBytes, fmt(s.bytesPerEvent)]);
    lines.push('File size (target <= 6 bytes per event, block and trace overhead included)', t.toString(), '');
  }
  if (results.read) {
    const r = results.read;
    const t = new Table({ head: ['reader', 'wall s', 'MB/s (wall)', 'CPU s', 'MB/s (CPU)', 'peak RSS MB'], style });
    if (r.c) t.push([`C reference decoder (decode + live bytes by trace; ${r.c.blockCrc32} CRC; median of ${r.c.runs.length})`, fmt(r.c.seconds), fmt(r.c.mbPerS, 0), fmt(r.c.cpuSeconds), fmt(r.c.mbPerCpuS, 0), '-']);
    if (r.decode) t.push(['readers\' decoding only (one thread, the addon\'s decoder)', fmt(r.decode.seconds), fmt(r.decode.mbPerS, 0), fmt(r.decode.cpuSeconds), fmt(r.decode.mbPerCpuS, 0), '-']);
    t.push(['readers\' decoding only, HEAPPROF_NATIVE_READ=0 (TypeScript)', fmt(r.tsDecode.seconds), fmt(r.tsDecode.mbPerS, 0), fmt(r.tsDecode.cpuSeconds), fmt(r.tsDecode.mbPerCpuS, 0), '-']);
    if (r.history) t.push([`hp-history (whole command, median of ${r.history.runs.length})`, fmt(r.history.seconds), fmt(r.history.mbPerS, 0), fmt(r.history.cpuSeconds), fmt(r.history.mbPerCpuS, 0), fmt(r.history.maxRssMb, 0)]);
    if (r.historyTs) t.push(['hp-history, HEAPPROF_NATIVE_READ=0 (TypeScript only)', fmt(r.historyTs.seconds), fmt(r.historyTs.mbPerS, 0), fmt(r.historyTs.cpuSeconds), fmt(r.historyTs.mbPerCpuS, 0), fmt(r.historyTs.maxRssMb, 0)]);
    if (r.historyOneThread) t.push(['hp-history, HEAPPROF_READ_WORKER=0 (one thread)', fmt(r.historyOneThread.seconds), fmt(r.historyOneThread.mbPerS, 0), fmt(r.historyOneThread.cpuSeconds), fmt(r.historyOneThread.mbPerCpuS, 0), fmt(r.historyOneThread.maxRssMb, 0)]);
    if (r.hpEvents) t.push([`hp-events --to ${r.hpEvents.toSeconds} (the first tenth, NDJSON to /dev/null)`, fmt(r.hpEvents.seconds), '-', fmt(r.hpEvents.cpuSeconds), '-', fmt(r.hpEvents.maxRssMb, 0)]);
    lines.push(
      `Reading a ${(r.hpdBytes / 1e6).toFixed(0)} MB .hpd (${(r.events / 1e6).toFixed(1)}M events, generated at ${fmt(r.generator.mbPerS, 0)} MB/s; targets: hp-history >= 300 MB/s, RSS <= 300 MB)`,
      t.toString(),
      `hp-history / C = ${fmt(r.historyOverC)} by wall time (the target's measure: hp-history decodes on a second thread, so it uses more CPU than wall time), ${fmt(r.historyOverCByCpu)} by CPU time; load average at start ${results.host.loadavg.map((x) => x.toFixed(1)).join(' ')}`,
      '',
    );
    if (r.historyProfile) {
      lines.push('hp-history CPU profile, top self time:');
      for (const f of r.historyProfile) lines.push(`  ${String(Math.round(f.share * 100)).padStart(3)}%  ${f.fn}`);
      lines.push('');
    }
  }
  if (results.startup) {
    const s = results.startup;
    const t = new Table({ head: ['command', 'wall s', 'CPU s', '× node -e "" (wall / CPU)'], style });
    t.push([`${s.node.name} (without NODE_EXTRA_CA_CERTS)`, fmt(s.node.wallS, 3), fmt(s.node.cpuS, 3), '1']);
    if (s.nodeWithCerts) t.push([s.nodeWithCerts.name, fmt(s.nodeWithCerts.wallS, 3), fmt(s.nodeWithCerts.cpuS, 3), `${fmt(s.nodeWithCerts.wallRatio)} / ${fmt(s.nodeWithCerts.cpuRatio)}`]);
    for (const r of s.readers) t.push([r.name, fmt(r.wallS, 3), fmt(r.cpuS, 3), `${fmt(r.wallRatio)} / ${fmt(r.cpuRatio)}`]);
    lines.push(`Start-up, median of ${s.reps} interleaved rounds, ratios per round (target: every reader <= 1.5x node -e ""; worst here ${fmt(s.worstReaderWallRatio)}x by wall)`, t.toString());
    const r = s.record;
    lines.push(
      `hp-record on an empty script: ${fmt(r.wallS, 3)} s against ${fmt(s.python.wallS, 3)} s for python on it: +${fmt(r.wallOverS, 3)} s wall, +${fmt(r.cpuOverS, 3)} s CPU (target <= +0.12 s)`,
      ...(s.wrapper
        ? [
            `a bare Node wrapper (start Node without NODE_EXTRA_CA_CERTS, spawn python, wait): +${fmt(s.wrapper.wallOverS, 3)} s wall, +${fmt(s.wrapper.cpuOverS, 3)} s CPU over python; hp-record over that wrapper: +${fmt(s.recordOverWrapperS, 3)} s wall`,
          ]
        : []),
      ...(s.modules ?? []).map((m) => `${m.name} (HP_NO_BUNDLE=1): ${fmt(m.wallS, 3)} s wall, ${fmt(m.wallRatio)} / ${fmt(m.cpuRatio)} x node -e "" (wall / CPU)`),
      '',
    );
  }
  if (results.perevent) {
    const p = results.perevent;
    const walk = p.perPairNs['walk only'];
    lines.push(
      `One sampled allocation with its free (bench/perevent.js: ${(p.events / 1e6).toFixed(1)}M 183-byte blocks under a 7-frame stack, sampled at 1 minus at 0, median of ${p.reps} rounds): ${fmt(p.perPairNs.hook.median, 0)} ns` +
        (walk ? `; the stack walk alone ${fmt(walk.median, 0)} ns, above it ${fmt(p.aboveWalkNs, 0)} ns (target: ~100 ns above the walk per sampled event)` : `; walk-only build not measured: ${p.walkOnlyWhy}`),
      '',
    );
  }
  if (results.seek) {
    const s = results.seek;
    const t = new Table({ head: ['--at', 'wall s (whole process)', 'CPU s', 'peak RSS MB', 'live bytes'], style });
    for (const a of s.at) t.push([a.at, fmt(a.seconds, 3), fmt(a.cpuSeconds, 3), fmt(a.maxRssMb, 0), a.liveBytes]);
    lines.push(
      `hp-snapshot --at T once indexed (target <= 1 s for any T); the index (one full read, done by the first seek) took ${fmt(s.build.seconds)} s: ${(s.build.indexBytes / 1e6).toFixed(1)} MB, ${s.build.checkpoints} checkpoints`,
      t.toString(),
      '',
    );
  }
  if (results.bigRead) {
    const b = results.bigRead;
    const t = new Table({ head: ['command', 'wall s', 'MB/s (wall)', 'CPU s', 'peak RSS MB', 'index'], style });
    for (const c of b.commands) t.push([c.command, fmt(c.seconds, 1), fmt(c.mbPerS, 0), fmt(c.cpuSeconds, 1), fmt(c.maxRssMb, 0), c.index]);
    lines.push(
      `Readers on a ${(b.hpdBytes / 1e9).toFixed(2)} GB .hpd of the stdlib-suite shape (${b.traces} traces, ${(b.events / 1e6).toFixed(0)}M events, .hpm ${(b.hpmBytes / 1e6).toFixed(1)} MB; target: peak RSS <= 500 MB each); load average ${b.loadavg ? b.loadavg.map((x) => x.toFixed(1)).join(' ') : '-'}`,
      t.toString(),
      '',
    );
  }
  for (const n of results.notes) lines.push(`note: ${n}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main() {
  if (!opt['no-build']) build();
  const py = resolvePython(opt.python);
  results.host = { node: process.version, python: py.version, pythonPath: py.path, cpus: (await import('node:os')).cpus().length, loadavg: (await import('node:os')).loadavg() };
  log(`python ${py.version} (${py.path}), node ${process.version}`);
  let base = null;
  try {
    if (sections.has('record')) await recordSection(py);
    if (sections.has('read') || sections.has('seek')) base = await readSection();
    if (sections.has('seek')) await seekSection(base);
    if (sections.has('big-read')) await bigReadSection();
    if (sections.has('startup')) {
      const { benchStartup } = await import('./startup.js');
      results.startup = await benchStartup({ root: ROOT, python: py.path, outDir, reps: opt.quick ? 5 : 15, log });
    }
    if (sections.has('perevent')) {
      const { benchPerEvent } = await import('./perevent.js');
      results.perevent = await benchPerEvent({ root: ROOT, python: py.path, outDir, reps: opt.quick ? 3 : 9, millions: opt.quick ? 1 : 3, pin: pinPrefix(), log });
    }
    if (sections.has('pytest')) {
      // pytest --heapprof on 500 small tests against plain pytest (bench/pytest.js; target <= 1.15x).
      const { benchPytest } = await import('./pytest.js');
      results.pytest = benchPytest({ python: py.path, tests: 500, reps: opt.quick ? 3 : 5, log });
      results.notes.push(`pytest --heapprof, 500 small tests: ${results.pytest.ratio.toFixed(2)}x plain pytest by ${results.pytest.measure} time (target <= 1.15x)`);
    }
  } finally {
    if (base && !opt.keep) {
      for (const ext of ['.hpd', '.hpm', '.hpi']) rmSync(`${base}${ext}`, { force: true });
    }
    rmSync(join(outDir, 'cpuprof'), { recursive: true, force: true });
  }
  results.finished = new Date().toISOString();
  const stamp = results.started.replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const jsonPath = join(outDir, `bench-${stamp}.json`);
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  await report();
  log(`figures written to ${jsonPath}`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.message}\n`);
  if (process.env.HP_DEBUG) process.stderr.write(`${e.stack}\n`);
  process.exitCode = 1;
});
