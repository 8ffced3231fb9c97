#!/usr/bin/env node
// npm run torture: CPython's own regression tests run under hp-record, on every CPython 3.9-3.13 found
// under ~/.pyenv, with the default sampling table, with every allocation recorded ('{}') and with native
// recording (--native: C allocations too, default table). Each run must
// end as it ends without the recorder (a failure is re-run without it to tell the two apart), print no
// recorder error, and leave a profile that hp-events --strict reads to its END marker.
//
//   node scripts/torture.mjs [--python 3.12,3.13] [--modules test_gc,test_signal] [--samples default,all,native]
//                            [--jobs N] [--timeout SECONDS] [--markdown FILE]
//
// Prints one line per run and a summary table (Markdown) on stdout; --markdown also writes it to FILE.
// Exit status 0 when every run passed, 1 otherwise. Slow: the full set takes hours on two cores.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));

/** The modules issue 18 names, and the neighbours that stress the same machinery. */
export const MODULES = [
  'test_gc', 'test_threading', 'test_threading_local', 'test_signal', 'test_subprocess', 'test_asyncio',
  'test_multiprocessing_main_handling', 'test_tracemalloc', 'test_capi', 'test_weakref', 'test_sys',
  'test_os', 'test_mmap', 'test_faulthandler', 'test_atexit', 'test_fork1', 'test_queue', 'test_dict',
  'test_generators', 'test_coroutines', 'test_exceptions', 'test_ctypes',
  // Subinterpreters, under their 3.13 and 3.12 names (a version without the module skips it).
  'test__interpreters', 'test__xxsubinterpreters',
];
/** Recorder configurations: the default table, every allocation, and native recording (C allocations too). */
export const SAMPLES = { default: [], all: ['--sample', '{}'], native: ['--native'] };

/** Newest pyenv patch release of each 3.9-3.13 that has its test package. */
export function torturePythons(root = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv')) {
  let names = [];
  try {
    names = readdirSync(join(root, 'versions'));
  } catch {
    return [];
  }
  const found = [];
  for (const minor of [9, 10, 11, 12, 13]) {
    const name = names.filter((n) => new RegExp(`^3\\.${minor}\\.\\d+$`).test(n)).sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]))[0];
    if (!name) continue;
    const exe = join(root, 'versions', name, 'bin', 'python3');
    if (existsSync(exe) && existsSync(join(root, 'versions', name, 'lib', `python3.${minor}`, 'test', 'regrtest.py'))) {
      found.push({ version: `3.${minor}`, exe, testDir: join(root, 'versions', name, 'lib', `python3.${minor}`, 'test') });
    }
  }
  return found;
}

function run(command, args, { cwd, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const started = Date.now();
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout = (stdout + d).slice(-20000)));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-20000)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** Whether this CPython has the test module. */
export function hasModule(py, module) {
  return !py.testDir || existsSync(join(py.testDir, `${module}.py`)) || existsSync(join(py.testDir, module));
}

/** Run one module under hp-record and check it. Returns a result row. */
export async function tortureOne({ py, module, sample, timeoutSeconds = 1800 }) {
  const dir = mkdtempSync(join(tmpdir(), 'hp-torture-'));
  const base = join(dir, 'run');
  // -m test runs the module in this one process (no -j), so that the recorder sees all of it.
  const args = [join(REPO, 'bin', 'hp-record.js'), '--python', py.exe, '-o', base, ...SAMPLES[sample], '-m', 'test', module];
  const row = { python: py.version, module, sample, ok: false, why: '', seconds: 0, events: null };
  try {
    const r = await run(process.execPath, args, { cwd: dir, timeoutMs: timeoutSeconds * 1000 });
    row.seconds = r.seconds;
    // The summary line ("BASE.hpm, BASE.hpd: N events, ..."), not the first hp-record line.
    row.events = /^hp-record: .*?([\d,]+) events,/m.exec(r.stderr)?.[1] ?? null;
    if (r.timedOut) {
      row.why = `timed out after ${timeoutSeconds} s`;
      return row;
    }
    const recorderError = /heapprof: recording stopped|recorder error|Error in sitecustomize|Fatal Python error|AddressSanitizer/.exec(r.stderr);
    if (recorderError) {
      row.why = `recorder message: ${recorderError[0]}`;
      return row;
    }
    if (r.code !== 0) {
      const plain = await run(py.exe, ['-m', 'test', module], { cwd: dir, timeoutMs: timeoutSeconds * 1000 });
      if (plain.code === r.code) {
        row.why = `exit ${r.code} (also ${plain.code} without the recorder)`;
        row.ok = true;
        row.plainFails = true;
      } else {
        row.why = `exit ${r.code ?? r.signal}, ${plain.code ?? plain.signal} without the recorder`;
        return row;
      }
    }
    const read = await run(process.execPath, [join(REPO, 'bin', 'hp-events.js'), '--strict', base], { cwd: dir, timeoutMs: timeoutSeconds * 1000 });
    const lines = read.stdout.length; // tail only; the exit status says whether the whole profile read
    if (read.code !== 0) {
      row.ok = false;
      row.why = `profile does not read: ${read.stderr.trim().split('\n').pop()}`;
      return row;
    }
    if (!/"type":"summary"/.test(read.stdout) || lines === 0) {
      row.ok = false;
      row.why = 'profile read without its summary line';
      return row;
    }
    row.ok = true;
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, limit) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

export function markdown(rows) {
  const lines = ['| Python | module | sampling | result | seconds | events |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const result = r.ok ? (r.plainFails ? `pass (${r.why})` : 'pass') : `**FAIL**: ${r.why}`;
    lines.push(`| ${r.python} | ${r.module} | ${r.sample === 'all' ? "'{}'" : r.sample === 'native' ? '--native' : 'default'} | ${result} | ${r.seconds.toFixed(0)} | ${r.events ?? ''} |`);
  }
  const failed = rows.filter((r) => !r.ok).length;
  lines.push('', `${rows.length} runs, ${rows.length - failed} passed, ${failed} failed.`);
  return lines.join('\n') + '\n';
}

async function main(argv) {
  const opt = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const versions = opt('--python')?.split(',');
  const modules = opt('--modules')?.split(',') ?? MODULES;
  const samples = opt('--samples')?.split(',') ?? Object.keys(SAMPLES);
  for (const s of samples) if (!(s in SAMPLES)) throw new Error(`--samples: ${s}: not one of ${Object.keys(SAMPLES).join(', ')}`);
  const jobs = Number(opt('--jobs') ?? 1);
  const timeoutSeconds = Number(opt('--timeout') ?? 1800);
  const pys = torturePythons().filter((p) => !versions || versions.includes(p.version));
  if (pys.length === 0) throw new Error('no CPython 3.9-3.13 with its test package under ~/.pyenv');
  const work = [];
  for (const py of pys) {
    for (const module of modules) {
      if (!hasModule(py, module)) continue;
      for (const sample of samples) work.push({ py, module, sample, timeoutSeconds });
    }
  }
  const rows = await mapLimit(work, jobs, async (w) => {
    const row = await tortureOne(w);
    process.stderr.write(`${row.ok ? 'ok  ' : 'FAIL'} ${row.python} ${row.module} ${row.sample} ${row.seconds.toFixed(0)} s ${row.why}\n`);
    return row;
  });
  const table = markdown(rows);
  process.stdout.write(table);
  const out = opt('--markdown');
  if (out) writeFileSync(out, table);
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`torture: ${err.message}\n`);
    process.exitCode = 2;
  });
}
