// Native recording when the program brings its own malloc (issue 13, "jemalloc preloaded by the
// program"): test/fixtures/native/othermalloc.c, built here, replaces the malloc family the way
// jemalloc, tcmalloc or mimalloc do when preloaded (no such allocator is installed on the test
// machines). hp-record --native puts the hook ahead of it: the program runs as usual, its
// allocator serves it, and the C allocations are counted once, at their lines. Through the Python
// API, with the other allocator preloaded ahead of the hook, the recording says why it cannot see
// C allocations and records the Python domains.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, NATIVE_LIB, PYTHON_DIR, REPO, supportedPythons } from '../helpers/python.js';

const BIN = join(REPO, 'bin');
const FIXTURE = join(NATIVE_FIXTURES, 'cext.py');
const source = readFileSync(FIXTURE, 'utf8').split('\n');
const at = (name: string): number => source.findIndex((l) => l.includes(`# AT:${name}`)) + 1;

const pythons = supportedPythons();
const cc = spawnSync('cc', ['--version']).status === 0;
if (!existsSync(NATIVE_LIB)) t.plan(0, `native hook not built (${NATIVE_LIB})`);
else if (pythons.length === 0) t.plan(0, 'no CPython 3.9-3.13 installed');
else if (!cc) t.plan(0, 'no C compiler (cc) to build the test allocator');

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...extra };
  delete e.HEAPPROF_NATIVE_LIB;
  if (!extra.PYTHONPATH) delete e.PYTHONPATH;
  return e;
}

function build(dir: string): string {
  const lib = join(dir, 'libothermalloc.so');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', lib, join(NATIVE_FIXTURES, 'othermalloc.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc: ${r.stderr}`);
  return lib;
}

function served(countFile: string, pid: number): number {
  const f = `${countFile}.${pid}`;
  return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : 0;
}

interface Site {
  bytes: number;
  domain?: string;
  frames: Array<{ function: string | null; file: string; line: number; native?: boolean }>;
}

t.test('the program preloads its own malloc: hp-record --native records through it, counting once', async (t) => {
  const dir = tmpDir();
  const lib = build(dir);
  const countFile = join(dir, 'served');
  for (const py of [pythons[0]!, pythons[pythons.length - 1]!].filter((p, i, a) => a.indexOf(p) === i)) {
    await t.test(`CPython ${py.version}`, async (t) => {
      const extra = { LD_PRELOAD: lib, OTHERMALLOC_COUNT_FILE: countFile };
      const plain = spawnSync(py.exe, [FIXTURE, 'ctypes'], { env: env(extra), encoding: 'utf8', timeout: 120_000 });
      t.equal(plain.status, 0, plain.stderr);
      const base = join(dir, `r${py.minor}`);
      const r = spawnSync(process.execPath, [join(BIN, 'hp-record.js'), '--python', py.exe, '-o', base, '-q', '--native', '--sample-bytes', '64K', '--', FIXTURE, 'ctypes'], { env: env(extra), encoding: 'utf8', timeout: 120_000 });
      t.equal(r.status, 0, r.stderr);
      t.equal(r.stdout, plain.stdout, 'the program ran as without the profiler');
      t.notMatch(r.stderr, /native allocations not recorded/, 'no complaint: the hook is ahead of the other malloc');
      const lines = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), base, '--at', 'peak'], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const head = lines[0]!;
      t.ok(served(countFile, head.pid as number) > 1000, `the program's own allocator served the Python process (${served(countFile, head.pid as number)} blocks)`);
      const sites = lines.filter((l) => l.type === 'site') as unknown as Site[];
      const atLine = (name: string): number =>
        sites.filter((s) => s.frames.some((f) => !f.native && f.file === FIXTURE && f.line === at(name))).reduce((a, s) => a + s.bytes, 0);
      // Sizes far above the 64 KiB mean are sampled with probability near 1 (3 MB: 1 - e^-46):
      // each of the two blocks is one event, not two.
      const events = spawnSync(process.execPath, [join(BIN, 'hp-events.js'), base], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { op?: string; size?: number });
      for (const size of [3_000_000, 5_000_000]) t.equal(events.filter((e) => e.op === 'alloc' && e.size === size).length, 1, `one ${size}-byte allocation recorded`);
      // ctypes releases the GIL around the call: its stack is known from 3.11 (man/hp-record.1).
      if (py.minor >= 11) {
        t.equal(atLine('malloc_3m'), 3_000_000, '3 MB at its line');
        t.equal(atLine('malloc_5m'), 5_000_000, '5 MB at its line');
      }
      t.notOk(sites.some((s) => s.domain === 'mmap' && s.bytes >= 64 << 20), "the allocator's own arena mappings are not counted again");
    });
  }
});

t.test('the other malloc preloaded ahead of the hook: the Python API says why and records Python', async (t) => {
  const py = pythons[pythons.length - 1]!;
  const dir = tmpDir();
  const lib = build(dir);
  const base = join(dir, 'inproc');
  const code = `import heapprof\nheapprof.start(${JSON.stringify(base)}, native=True)\nx = [bytearray(1000) for _ in range(1000)]\nheapprof.stop()\nprint(len(x))\n`;
  const r = spawnSync(py.exe, ['-c', code], { env: env({ LD_PRELOAD: `${lib}:${NATIVE_LIB}`, PYTHONPATH: PYTHON_DIR }), encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '1000\n');
  t.match(r.stderr, /^heapprof: native allocations not recorded: malloc is provided by \S*libothermalloc\.so ahead of heapprof_hook\.so \(preload heapprof first\)\n$/, 'one line that names the other allocator');
  const events = spawnSync(process.execPath, [join(BIN, 'hp-events.js'), base], { encoding: 'utf8' });
  t.equal(events.status, 0, events.stderr);
  const meta = JSON.parse(events.stdout.split('\n')[0]!) as { notes?: string[]; native?: boolean };
  t.match(meta.notes, [/native allocations not recorded/], 'a note in the profile');
  t.notOk(meta.native, 'no claim of native recording');
  t.ok(events.stdout.includes('"op":"alloc"'), 'Python allocations recorded');
});
