// Subinterpreters under hp-record: nothing printed (the private sitecustomize does nothing in a
// subinterpreter and never re-imports itself), no slowdown, no memory kept (their code objects are never
// pinned), and their allocations recorded under the "<subinterpreter>" site while the main interpreter's
// keep their own stacks; on 3.12+ with shared and per-interpreter GILs (PEP 684), including two threads
// running two subinterpreters at once.

import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, run, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const env = { PYTHONDONTWRITEBYTECODE: '1' };
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built');
if (skip) t.plan(0, skip);
const installed = skip ? [] : pythons();
const COUNT = '8';

interface Outcome {
  unsupported?: boolean;
  count: number;
  seconds: number;
  rss_growth_mb: number;
  main_blocks: number;
}

for (const py of installed) {
  const minor = Number(py.version.split('.')[1]);
  t.test(`CPython ${py.version}`, async (t) => {
    const DEFAULT = '{128: 1e-4, 8192: 0.1}';
    // Shared GIL, and (3.12+) per-interpreter GILs; two threads running two subinterpreters at once; the
    // default table and, where it costs the most, recording everything.
    const cases: Array<[string, boolean, string]> =
      minor >= 12
        ? [['legacy', false, DEFAULT], ['legacy', true, '{}'], ['isolated', false, DEFAULT], ['isolated', true, '{}']]
        : [['legacy', false, DEFAULT]];
    for (const [config, threads, sample] of cases) {
      {
        const args = ['subinterp.py', COUNT, config, ...(threads ? ['threads'] : [])];
        await t.test(`${args.slice(2).join(' ')} --sample ${sample}`, async (t) => {
          const plain = await run(py.exe, args, { cwd: SCRIPTS, env });
          t.equal(plain.code, 0, plain.stderr);
          const base = join(scratch(), 'sub');
          {
            const r = await hpRecord(['--python', py.exe, '-o', base, '--force', '--sample', sample, '--', ...args], { cwd: SCRIPTS, env });
            t.equal(r.code, 0, r.stderr);
            t.notMatch(r.stderr, /sitecustomize|RecursionError|Traceback/, 'nothing printed');
            const before = JSON.parse(plain.stdout) as Outcome;
            const after = JSON.parse(r.stdout) as Outcome;
            if (before.unsupported) return;
            t.ok(after.seconds < before.seconds * 3 + 3, `no slowdown per subinterpreter: ${after.seconds} s against ${before.seconds} s`);
            const allowance = sample === '{}' ? 40 : 15; // recording everything: the pointer table grows
            t.ok(after.rss_growth_mb <= before.rss_growth_mb + allowance,
              `no memory kept: RSS +${after.rss_growth_mb} MB against +${before.rss_growth_mb} MB without the recorder`);
            const p = await readAll(base, { strict: true });
            t.ok(p.complete);
            t.same(p.issues, []);
            const names = (trace: number): string[] => (p.traces.get(trace)?.frames ?? []).map((f) => f.function);
            const allocs = p.events.filter((e) => e.op === 'alloc');
            const inSub = allocs.filter((e) => names(e.trace)[0] === '<subinterpreter>');
            const mainBlocks = allocs.filter((e) => e.size >= 50000 && e.size < 50100 && names(e.trace).includes('main'));
            t.ok(mainBlocks.length >= Math.min(after.main_blocks, 10), `the main interpreter's blocks keep their stacks (${mainBlocks.length})`);
            if (minor >= 12 || !threads) {
              // 3.12+: every subinterpreter allocation is found; before, on the main thread they are stackless.
              if (minor >= 12) t.ok(inSub.length > 0, `subinterpreter allocations under <subinterpreter> (${inSub.length})`);
              // A subinterpreter's code (CODE in subinterp.py) runs at the bottom of its own stack: a
              // trace ending in a <module> of '<string>'. The main interpreter has such frames too,
              // but above the program's own (namedtuple's eval while subinterp.py imports json).
              const leaked = allocs.filter((e) => {
                const frames = p.traces.get(e.trace)?.frames ?? [];
                const outermost = frames[frames.length - 1];
                return outermost?.function === '<module>' && outermost.file === '<string>';
              });
              t.equal(leaked.length, 0, 'no subinterpreter frame was walked');
            }
          }
        });
      }
    }
  });
}
