// hp-record with the real native hook, on every CPython 3.9–3.13 found: the profile is complete and
// readable with openProfile, private (0600), holds the program's known allocations under the program's
// own stacks (no bootstrap frame), and the summary line agrees with what was written.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built (npm ci or npx node-gyp rebuild)');
if (skip) t.plan(0, skip);

const installed = skip ? [] : pythons();
const newest = installed[installed.length - 1];

const mode = (path: string): number => statSync(path).mode & 0o777;

t.test('everything sampled: nothing between the recorder\'s start and the program is recorded with the start-up\'s stack', { skip: skip ?? false }, async (t) => {
  // Work left after hp_start (an os.path.abspath in heapprof's _start, a function call in the
  // bootstrap, whose frame 3.9 and 3.10 allocate) was recorded with the bootstrap's frames: 1 in
  // 10 runs of the default table drew one, so the test above failed now and then. With every
  // allocation drawn, each such allocation is there every time.
  const oldest = installed[0]!;
  const base = join(scratch(), 'all');
  const r = await hpRecord(['--python', oldest.exe, '--sample', '{}', '-o', base, '--', 'known.py', 'x'], { cwd: SCRIPTS, env });
  t.equal(r.code, 0, r.stderr);
  const p = await readAll(base, { strict: true });
  const startUp = [...p.traces.values()].filter((tr) => tr.frames.some((f) => /heapprof[/\\](_run|__init__)\.py$|sitecustomize/.test(f.file) && /^(_bootstrap|_start_recorder|start|_start|<module>)$/.test(f.function)));
  t.same(startUp.map((tr) => tr.frames.map((f) => `${f.function} (${f.file}:${f.line})`)), [], `CPython ${oldest.version}: no trace of the start-up's own work`);
});

for (const py of installed) {
  t.test(`CPython ${py.version}`, async (t) => {
    const out = scratch();

    await t.test('a recorded run: complete, private, the known allocations, the summary line', async (t) => {
      const base = join(out, 'run');
      const r = await hpRecord(['--python', py.exe, '-o', base, '--', 'known.py', 'x'], { cwd: SCRIPTS, env });
      t.equal(r.code, 0);
      t.equal(r.stdout, "done ['x']\n", 'the program\'s stdout is untouched');
      t.equal(mode(`${base}.hpm`), 0o600, '.hpm is 0600');
      t.equal(mode(`${base}.hpd`), 0o600, '.hpd is 0600');

      const p = await readAll(base, { strict: true });
      t.ok(p.complete, 'ends with the END marker');
      t.same(p.issues, []);
      t.same(p.header.argv, ['known.py', 'x'], 'the header has the program\'s argv, not the bootstrap\'s');
      t.equal(p.header.mode, 'profile');
      t.same(p.header.sampling, { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] }, 'the default sampling table');
      t.ok(p.header.stackCapture, 'stacks captured');
      t.match(p.header.pythonVersion ?? '', new RegExp(`^${py.version.replace('.', '\\.')}\\.`));

      const fromGrow = (id: number): boolean => (p.traces.get(id)?.frames ?? []).some((f) => f.function === 'grow' && f.file === join(SCRIPTS, 'known.py'));
      const big = p.events.filter((e) => e.size >= 50000 && fromGrow(e.trace));
      t.equal(big.filter((e) => e.op === 'alloc').length, 200, 'every 50000-byte buffer allocated in grow() is there');
      t.equal(big.filter((e) => e.op === 'free').length, 100, 'and the 100 released ones are freed');
      const outermost = p.traces.get(big[0]!.trace)!.frames.at(-1)!;
      t.same([outermost.function, outermost.file], ['<module>', join(SCRIPTS, 'known.py')], 'the program\'s <module> is the outermost frame');
      const bootstrapFrames = [...p.traces.values()].flatMap((tr) => tr.frames).filter((f) => /sitecustomize|heapprof[/\\]_run\.py/.test(f.file));
      t.same(bootstrapFrames, [], 'no trace has a bootstrap frame');

      // stderr: the start line, the summary line, the next-step line, and nothing else.
      const stderrLines = r.stderr.split('\n').filter((l) => l !== '');
      t.same(stderrLines.map((l) => /^hp-record: (recording|next:)/.exec(l)?.[1] ?? 'summary'), ['recording', 'summary', 'next:'], 'start, summary and next-step lines');
      const m = /^hp-record: (.+)\.hpm, (.+)\.hpd: ([\d,]+) events, ([\d,]+) traces, ([\d,]+) allocations seen, ([\d.]+ (?:B|KiB|MiB)) written, ([\d.]+)% of allocations sampled, recorder peak memory [\d.]+ (?:B|KiB|MiB)$/m.exec(r.stderr);
      t.ok(m, `one summary line on stderr: ${r.stderr}`);
      if (m) {
        t.equal(m[1], base);
        const n = (s: string): number => Number(s.replace(/,/g, ''));
        t.equal(n(m[3]!), p.events.filter((e) => e.op === 'alloc' || e.op === 'free').length, 'summary events = alloc + free events in the file');
        t.equal(n(m[4]!), [...p.traces.keys()].filter((id) => id !== 0).length, 'summary traces = traces defined in the file (trace 0 is predefined)');
        t.ok(n(m[5]!) >= 200, 'allocations seen');
      }
    });

    await t.test('--mode stats prints the HEAP USAGE SUMMARY and saves it', async (t) => {
      const base = join(out, 'stats');
      const r = await hpRecord(['-q', '--python', py.exe, '--mode', 'stats', '-o', base, '--', 'known.py'], { cwd: SCRIPTS, env });
      t.equal(r.code, 0);
      t.match(r.stderr, /HEAP USAGE SUMMARY\n\s*Size range\s+Count\s+Bytes\n/);
      t.match(r.stderr, /32768 - 65535\s+(\d+)\s+\d+\n/, 'the 50000-byte buffers are in their power-of-two row');
      t.notMatch(r.stderr, /^hp-record:/m, '-q: no summary line');
      const p = await readAll(base);
      t.equal(p.header.mode, 'stats');
      t.same(p.events.filter((e) => e.op === 'alloc'), [], 'no events in stats mode');
    });
  });
}

if (newest) {
  t.test(`CPython ${newest.version}: options and endings`, async (t) => {
    const out = scratch();

    await t.test('-q: nothing on stderr; --sample-bytes goes into the header', async (t) => {
      const base = join(out, 'poisson');
      const r = await hpRecord(['-q', '--python', newest.exe, '--sample-bytes', '64K', '-o', base, 'known.py'], { cwd: SCRIPTS, env });
      t.equal(r.code, 0);
      t.equal(r.stderr, '', 'nothing on stderr');
      const p = await readAll(base, { strict: true });
      t.same(p.header.sampling, { kind: 'poisson', meanBytes: 65536 });
    });

    await t.test("--sample '{}' records every allocation", async (t) => {
      const base = join(out, 'all');
      const r = await hpRecord(['--python', newest.exe, '--sample', '{}', '-o', base, 'known.py'], { cwd: SCRIPTS, env });
      t.equal(r.code, 0);
      t.match(r.stderr, / 100% of allocations sampled, recorder peak memory [\d.]+ (?:B|KiB|MiB)$/m);
      const p = await readAll(base, { strict: true });
      t.same(p.header.sampling, { kind: 'table', bounds: [], probs: [] });
    });

    await t.test('the default base is heapprof.PID in the working directory', async (t) => {
      const dir = scratch();
      const r = await hpRecord(['-q', '--python', newest.exe, join(SCRIPTS, 'known.py')], { cwd: dir, env });
      t.equal(r.code, 0);
      const files = readdirSync(dir).sort();
      t.equal(files.length, 2);
      const m = /^heapprof\.(\d+)\.hpd$/.exec(files[0]!);
      t.ok(m, `named heapprof.PID: ${files.join(' ')}`);
      t.equal(files[1], files[0]!.replace(/\.hpd$/, '.hpm'));
      const p = await readAll(join(dir, `heapprof.${m![1]}`));
      t.equal(p.header.pid, Number(m![1]), 'PID is the Python process id');
    });

    await t.test('SIGINT during a run: KeyboardInterrupt, hp-record dies of SIGINT, the profile is complete', async (t) => {
      const base = join(out, 'interrupted');
      const r = await hpRecord(['--python', newest.exe, '-o', base, '--', 'signals.py', 'wait'], {
        cwd: SCRIPTS,
        env,
        onStdout: (text, child) => {
          if (text === 'ready\n') child.kill('SIGINT');
        },
      });
      t.equal(r.signal, 'SIGINT');
      t.match(r.stderr, /KeyboardInterrupt\n/);
      t.match(r.stderr, /^hp-record: .*interrupted\.hpm, .*interrupted\.hpd: [\d,]+ events/m, 'summary after the interrupt');
      const p = await readAll(base, { strict: true });
      t.ok(p.complete, 'stopped cleanly at exit');
    });

    await t.test('--follow-fork: the child records to BASE.CHILDPID', async (t) => {
      const base = join(out, 'forked');
      const r = await hpRecord(['-q', '--python', newest.exe, '--follow-fork', '-o', base, 'forks.py'], { cwd: SCRIPTS, env });
      t.equal(r.code, 0);
      const child = /^child (\d+)$/m.exec(r.stdout)?.[1];
      t.ok(child, 'the child ran');
      t.ok(existsSync(`${base}.${child}.hpd`), 'the child has its own profile');
      const parent = await readAll(base, { strict: true });
      const kid = await readAll(`${base}.${child}`);
      t.ok(parent.complete, 'the parent\'s profile is complete');
      t.equal(kid.header.pid, Number(child));
      t.equal(kid.header.ppid, parent.header.pid);
      t.equal(mode(`${base}.${child}.hpm`), 0o600);
    });
  });
}
