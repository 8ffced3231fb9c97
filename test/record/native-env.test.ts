// --native names the hook in HEAPPROF_NATIVE_LIB for the heapprof package inside the program; the
// program and its subprocesses must still see the environment they were given (hp-record(1)): the
// variable is set back to the user's value, or removed, once the hook is loaded.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_LIB, REPO, supportedPythons } from '../helpers/python.js';

const SCRIPT = join(REPO, 'test/fixtures/record/scripts/nativeenv.py');
const pythons = supportedPythons();
if (!existsSync(NATIVE_LIB)) t.plan(0, `native hook not built (${NATIVE_LIB})`);
else if (pythons.length === 0) t.plan(0, 'no CPython 3.9-3.13 installed');

function run(args: string[], extra: Record<string, string | undefined>): { code: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  for (const k of ['HEAPPROF_NATIVE_LIB', 'HEAPPROF_NATIVE', 'LD_PRELOAD', 'PYTHONPATH']) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The native block of 3,000,000 bytes (under [no Python stack] on 3.9 and 3.10: ctypes drops the GIL). */
const nativeBlocks = (base: string): number => {
  const r = run([join(REPO, 'bin/hp-snapshot.js'), base, '--at', 'end', '--group-by', 'line', '--json'], {});
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((s) => s.type === 'site' && s.domain === 'native' && s.bytes === 3_000_000).length;
};

for (const py of [pythons[0]!, pythons[pythons.length - 1]!].filter((p, i, a) => a.indexOf(p) === i)) {
  t.test(`CPython ${py.version}`, async (t) => {
    const none = { HEAPPROF_NATIVE_LIB: null, HEAPPROF_RECORD_CONFIG: null, LD_PRELOAD: null };
    for (const [what, extra, seen] of [
      ['HEAPPROF_NATIVE_LIB unset: the program does not see it', {}, none],
      ['HEAPPROF_NATIVE_LIB set by the user: the program sees the same value', { HEAPPROF_NATIVE_LIB: NATIVE_LIB }, { ...none, HEAPPROF_NATIVE_LIB: NATIVE_LIB }],
    ] as const) {
      await t.test(what, async (t) => {
        const base = join(tmpDir(), 'env');
        const r = run([join(REPO, 'bin/hp-record.js'), '-q', '--native', '--python', py.exe, '-o', base, '--', SCRIPT], extra);
        t.equal(r.code, 0, r.stderr);
        const shown = JSON.parse(r.stdout) as Record<string, unknown>;
        t.same(shown.program, seen, 'the program\'s os.environ');
        t.same(shown.child, seen, 'a subprocess\'s environment');
        t.equal(nativeBlocks(base), 1, 'the native malloc is recorded (the hook was loaded)');
      });
    }
  });
}
