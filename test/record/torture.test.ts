// A short subset of `npm run torture` (scripts/torture.mjs): a few of CPython's own regression test
// modules run under hp-record on the newest CPython found, with the default table, recording
// everything, and with --native; each must end as it does without the recorder, print no
// recorder error, and leave a profile that hp-events --strict reads. The full set
// (doc/torture.md) is opt-in: it takes hours.

import t from 'tap';
// @ts-expect-error: a plain ES module script without type declarations
import { hasModule, tortureOne, torturePythons } from '../../scripts/torture.mjs';
import { hookLibrary, missingBuild } from '../fixtures/record/harness.js';

interface Row {
  python: string;
  module: string;
  sample: string;
  ok: boolean;
  why: string;
}

const found = torturePythons() as Array<{ version: string; exe: string; testDir: string }>;
const skip = missingBuild() ?? (hookLibrary() ? null : 'the native hook is not built') ?? (found.length === 0 ? 'no CPython with its test package under ~/.pyenv' : null);
if (skip) t.plan(0, skip);
const py = found[found.length - 1];

// About two minutes: exit handlers recording everything, tracemalloc's hooks stacked on ours, and
// subinterpreters (which printed "Error in sitecustomize" under every earlier recorder).
const RUNS: Array<[string, string]> = [
  ['test_atexit', 'all'],
  ['test_tracemalloc', 'default'],
  ['test__interpreters', 'default'],
  ['test__xxsubinterpreters', 'default'],
  // Native recording (C allocations and anonymous mappings too) under ctypes' and mmap's tests.
  ['test_ctypes', 'native'],
  ['test_mmap', 'native'],
];

if (py) {
  for (const [module, sample] of RUNS.filter(([module]) => hasModule(py, module))) {
    t.test(`CPython ${py.version} ${module} (${sample === 'all' ? "--sample '{}'" : sample === 'native' ? '--native' : 'default table'})`, async (t) => {
      const row = (await tortureOne({ py, module, sample, timeoutSeconds: 300 })) as Row;
      t.ok(row.ok, row.why || 'passed, profile reads');
    });
  }
}
