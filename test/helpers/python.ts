// Test helpers for the native recorder: the CPythons to test on (every 3.9-3.13 found), running a
// workload with the heapprof package on PYTHONPATH, and reading its profile back with the hpx reader.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openProfile } from '../../lib/format/profile.js';
import { OP_NAMES } from '../../lib/format/source.js';
import type { Header, HistogramBucket, ReadIssue, Trace } from '../../lib/format/types.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const PYTHON_DIR = join(REPO, 'python');
export const NATIVE_FIXTURES = join(REPO, 'test', 'fixtures', 'native');
export const NATIVE_LIB = join(REPO, 'build', 'Release', 'heapprof_hook.so');

export interface PythonInfo {
  exe: string;
  /** "3.12" */
  version: string;
  minor: number;
}

function probe(exe: string): PythonInfo | null {
  const r = spawnSync(exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
  const m = r.status === 0 ? /^3\.(\d+)$/.exec(r.stdout.trim()) : null;
  return m ? { exe, version: `3.${m[1]}`, minor: Number(m[1]) } : null;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** The newest pyenv build of 3.MINOR, else python3.MINOR on PATH. */
function findMinor(minor: number): PythonInfo | null {
  const root = process.env.PYENV_ROOT || join(homedir(), '.pyenv');
  const versions = join(root, 'versions');
  if (existsSync(versions)) {
    const patch = (v: string): number => Number(v.split('.')[2]);
    const found = readdirSync(versions)
      .filter((v) => new RegExp(`^3\\.${minor}\\.\\d+$`).test(v))
      .sort((a, b) => patch(b) - patch(a));
    for (const v of found) {
      const info = probe(join(versions, v, 'bin', `python3.${minor}`));
      if (info?.minor === minor) return info;
    }
  }
  const exe = onPath(`python3.${minor}`);
  const info = exe ? probe(exe) : null;
  return info?.minor === minor ? info : null;
}

/**
 * Every CPython the recorder supports that is installed here; HEAPPROF_TEST_PYTHONS (a PATH-style
 * list of executables) overrides the search.
 */
export function supportedPythons(): PythonInfo[] {
  const listed = process.env.HEAPPROF_TEST_PYTHONS;
  if (listed) return listed.split(delimiter).filter(Boolean).map((exe) => probe(exe)).filter((p): p is PythonInfo => p !== null);
  return [9, 10, 11, 12, 13].map(findMinor).filter((p): p is PythonInfo => p !== null);
}

/**
 * A supported CPython built the way distributions build /usr/bin/python3: libpython linked into
 * a non-PIE executable (ELF type EXEC, no libpython.so mapped), which calls malloc through
 * "canonical" PLT entries. Null when there is none here.
 */
export function linkedInPython(): PythonInfo | null {
  const candidates = [9, 10, 11, 12, 13].map((m) => `/usr/bin/python3.${m}`).filter((p) => existsSync(p));
  for (const exe of candidates) {
    const info = probe(exe);
    if (!info) continue;
    const header = Buffer.alloc(18);
    const fd = openSync(exe, 'r');
    try {
      readSync(fd, header, 0, 18, 0);
    } finally {
      closeSync(fd);
    }
    const nonPie = header.readUInt32BE(0) === 0x7f454c46 && header.readUInt16LE(16) === 2;
    // Distributions also ship libpython.so (sysconfig then says Py_ENABLE_SHARED=1), but their
    // executable does not load it: ask the running interpreter.
    const mapped = spawnSync(exe, ['-c', 'print(any("libpython" in l for l in open("/proc/self/maps")))'], { encoding: 'utf8' }).stdout.trim();
    if (nonPie && mapped === 'False') return info;
  }
  return null;
}

/** A CPython the recorder refuses (3.8), if one is installed. */
export function unsupportedPython(): PythonInfo | null {
  return findMinor(8);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: PYTHON_DIR, PYTHONDONTWRITEBYTECODE: '1' };
  delete env.HEAPPROF_NATIVE_LIB; // the checkout's build, unless a test names another
  return { ...env, ...extra };
}

/** Runs `python args...` to completion. */
export function runPython(py: PythonInfo, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): RunResult {
  const r = spawnSync(py.exe, args, { env: pythonEnv(opts.env), cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `python args...`, resolves once a stdout line equals `readyLine`; returns the child. */
export function startPython(py: PythonInfo, args: string[], readyLine: string) {
  const child = spawn(py.exe, args, { env: pythonEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.split('\n').includes(readyLine)) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`exited early (${code ?? signal}): ${stderr}`)));
  });
  const exited = new Promise<RunResult>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, ready, exited };
}

export interface Recording {
  header: Header;
  events: Array<{ op: string; timeUs: number; trace: number; size: number }>;
  traces: Map<number, Trace>;
  histogram: HistogramBucket[] | null;
  complete: boolean;
  issues: ReadIssue[];
}

export async function readRecording(base: string): Promise<Recording> {
  const issues: ReadIssue[] = [];
  const p = await openProfile(base, { onIssue: (i) => issues.push(i) });
  try {
    const events: Recording['events'] = [];
    for await (const b of p.batches()) {
      for (let i = 0; i < b.length; i++) {
        events.push({ op: OP_NAMES[b.op[i]!]!, timeUs: b.timeUs[i]!, trace: b.trace[i]!, size: b.size[i]! });
      }
    }
    const traces = new Map<number, Trace>();
    for (const t of p.traces()) traces.set(t.id, t);
    return { header: p.header, events, traces, histogram: p.histogram, complete: p.complete, issues };
  } finally {
    await p.close();
  }
}

/**
 * Frees that do not close a live sampled allocation of the same trace and size. A correct
 * recorder has none: every free repeats its allocation's trace and size.
 */
export function unmatchedFrees(events: Recording['events']): number {
  const live = new Map<string, number>();
  let bad = 0;
  for (const e of events) {
    const key = `${e.trace}:${e.size}`;
    if (e.op === 'alloc') live.set(key, (live.get(key) ?? 0) + 1);
    else if (e.op === 'free') {
      const n = live.get(key) ?? 0;
      if (n === 0) bad++;
      else live.set(key, n - 1);
    }
  }
  return bad;
}

/** Frames of a trace as [function, file, line], leaf first. */
export function frameTuples(trace: Trace | undefined): Array<[string | null, string, number]> {
  return (trace?.frames ?? []).map((f) => [f.function, f.file, f.line]);
}
