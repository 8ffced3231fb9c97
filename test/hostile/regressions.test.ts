// Regression tests for issue 20 items 1, 9 and 10, each of which failed on commit edd4dd1:
// a time jump in hp-history (NDJSON rss at t=1e9; a block time of 2^63 µs), NDJSON validation
// (op toString/__proto__, t 1e308, start_time_us 1e300, 100,000-deep nesting, a 40 MB line),
// and control characters reaching the terminal (hp-collapse, hp-diff --table).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx.js';
import { crc32 } from '../../lib/format/bytes.js';
import { escapeControls } from '../../lib/escape.js';
import { blockOffsets, tmpDir } from '../helpers/profiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const META = '{"type":"meta","schema":1,"format_version":2,"start_time_us":0,"sampling":{"kind":"table","bounds":[1024],"probs":[0.5]}}';
const TRACE = '{"type":"trace","id":1,"frames":[{"function":"f","file":"a.py","line":1}]}';

function run(cmd: string, args: string[], input?: string): { out: string; err: string; code: number | null; seconds: number; signal: string | null } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--max-old-space-size=512', join(ROOT, 'bin', `${cmd}.js`), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', TZ: 'UTC' },
    timeout: 60_000,
    maxBuffer: 1 << 28,
    ...(input !== undefined ? { input } : {}),
  });
  return { out: r.stdout ?? '', err: r.stderr ?? '', code: r.status, seconds: (Date.now() - t0) / 1000, signal: r.signal };
}

t.test('hp-history: a time jump costs neither time nor memory', async (t) => {
  const input = [META, TRACE, '{"type":"event","t":0.1,"op":"alloc","trace":1,"size":100}', '{"type":"event","t":1e9,"op":"rss","size":1000}'].join('\n') + '\n';
  const r = run('hp-history', ['-'], input);
  t.equal(r.code, 0, `exit 0 within 60 s and 512 MB heap (${r.seconds} s, signal ${r.signal}): ${r.err.slice(0, 300)}`);
  t.ok(r.out.trim().split('\n').length <= 200, 'a few buckets');

  // A valid block whose time is 2^63 µs (checksum recomputed): refused or warned, quickly.
  const base = join(tmpDir('hp-jump-'), 'p');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [1024], probs: [0.5] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events: [
      { op: 'alloc', timeUs: 100, trace: 1, size: 100 },
      { op: 'alloc', timeUs: 200, trace: 1, size: 100 },
    ],
    eventsPerBlock: 1,
  });
  const hpd = readFileSync(`${base}.hpd`);
  const offs = blockOffsets(hpd);
  const at = offs[1]!;
  hpd.writeUInt32LE(0, at + 12);
  hpd.writeUInt32LE(0x80000000, at + 16);
  const len = hpd.readUInt32LE(at + 4);
  hpd.writeUInt32LE(crc32(hpd.subarray(at + 24, at + 24 + len), crc32(hpd.subarray(at + 4, at + 20))), at + 20);
  writeFileSync(`${base}.hpd`, hpd);
  const b = run('hp-history', [base]);
  t.ok(b.signal === null && (b.code === 0 || b.code === 1), `ends cleanly (${b.seconds} s, exit ${b.code}): ${b.err.slice(0, 300)}`);
  t.notMatch(b.err, /internal error|heap out of memory/);
});

t.test('NDJSON validation', async (t) => {
  for (const op of ['toString', '__proto__', 'constructor']) {
    const r = run('hp-stats', ['-'], [META, TRACE, `{"type":"event","t":0.1,"op":"${op}","trace":1,"size":100}`].join('\n') + '\n');
    t.equal(r.code, 1, `op ${op} refused`);
    t.match(r.err, /line 3: event: 'op' must be one of/);
  }
  const big = run('hp-stats', ['-'], [META, TRACE, '{"type":"event","t":1e308,"op":"alloc","trace":1,"size":100}'].join('\n') + '\n');
  t.equal(big.code, 1, 't 1e308 refused');
  t.match(big.err, /line 3: event: 't' .* limit/);
  const start = run('hp-stats', ['-'], [META.replace('"start_time_us":0', '"start_time_us":1e300'), TRACE].join('\n') + '\n');
  t.equal(start.code, 1, 'start_time_us 1e300 refused');
  t.match(start.err, /start_time_us/);
  t.notMatch(start.err, /internal error/);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const nest = run('hp-stats', ['-'], [META, deep, TRACE].join('\n') + '\n');
  t.equal(nest.code, 1, '100,000-deep nesting refused (hpx(5) LIMITS: 256 levels)');
  t.match(nest.err, /line 2: nested deeper than 256 levels/);
  t.notMatch(nest.err, /internal error|Maximum call stack/);
  // One 40 MB line is split in linear time (split2 re-split the pending line per chunk: 46 s).
  const frames = new Array(60_000).fill('{"function":"f","file":"a.py","line":1}').join(',');
  const line = `{"type":"trace","id":1,"frames":[${frames}],"pad":"${'x'.repeat(40_000_000)}"}`;
  const long = run('hp-stats', ['-'], [META, line, '{"type":"event","t":0.1,"op":"alloc","trace":1,"size":100}'].join('\n') + '\n');
  t.equal(long.code, 0, `a ${Math.round(line.length / 1e6)} MB line reads (${long.seconds} s): ${long.err.slice(0, 200)}`);
  t.ok(long.seconds < 30, `in ${long.seconds} s`);
});

t.test('control characters never reach the terminal', async (t) => {
  const dir = tmpDir('hp-esc-');
  const evil = 'f\u001b]0;pwned\u0007\u2028x';
  const mk = async (base: string, size: number): Promise<void> =>
    writeProfile(base, {
      header: { sampling: { kind: 'table', bounds: [], probs: [] } },
      traces: [{ id: 1, frames: [{ function: evil, file: 'a.py', line: 1 }], dropped: 0 }],
      events: [{ op: 'alloc', timeUs: 100, trace: 1, size }],
    });
  await mk(join(dir, 'a'), 100);
  await mk(join(dir, 'b'), 5000);
  const bad = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;
  const collapse = run('hp-collapse', [join(dir, 'a')]);
  t.equal(collapse.code, 0, collapse.err);
  t.notMatch(collapse.out, bad, 'hp-collapse escapes ESC, BEL and U+2028');
  t.match(collapse.out, /\\x1b/);
  const diff = run('hp-diff', [join(dir, 'a'), join(dir, 'b'), '--table']);
  t.equal(diff.code, 0, diff.err);
  t.notMatch(diff.out, bad, 'hp-diff --table escapes the OSC title sequence');
  t.notMatch(diff.err, bad);
});

t.test('every terminal view escapes what a profile says: frames, files, marks, one label of two stacks', async (t) => {
  const dir = tmpDir('hp-esc-views-');
  const evil = 'f\u001b]0;pwned\u0007\u2028\u009b31m';
  const base = join(dir, 'p');
  // Two stacks with the same (evil) innermost frame, so the tables also show a caller below it.
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [
      { id: 1, frames: [{ function: evil, file: `${evil}.py`, line: 1 }, { function: `caller${evil}`, file: 'a.py', line: 2 }], dropped: 0 },
      { id: 2, frames: [{ function: evil, file: `${evil}.py`, line: 1 }, { function: 'other', file: `b${evil}.py`, line: 3 }], dropped: 0 },
    ],
    events: [
      { op: 'alloc', timeUs: 100, trace: 1, size: 100 },
      { op: 'mark', timeUs: 150, size: 0, label: `mark${evil}` },
      { op: 'alloc', timeUs: 200, trace: 2, size: 5000 },
      { op: 'rss', timeUs: 300, size: 1 << 20 },
    ],
  });
  const bad = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;
  const views: [string, string[]][] = [
    ['hp-snapshot', [base, '--no-json', '--at', 'end']],
    ['hp-snapshot', [base, '--no-json', '--at', 'end', '--group-by', 'line']],
    ['hp-snapshot', [base, '--no-json', '--at', 'end', '--group-by', 'file']],
    ['hp-events', [base, '--no-json']],
    ['hp-history', [base, '--no-json']],
    ['hp-stats', [base, '--no-json']],
    ['hp-diff', [base, '--at', '0.00012', '--at', 'end', '--no-json']],
    ['hp-diff', [base, '--at', `mark:mark${evil}`, '--at', 'end', '--no-json']],
  ];
  for (const [cmd, args] of views) {
    const r = run(cmd, args);
    const what = escapeControls(`${cmd} ${args.slice(1).join(' ')}`); // (a raw ESC or U+2028 would break the TAP stream)
    t.equal(r.code, 0, `${what}: ${escapeControls(r.err)}`);
    t.notMatch(r.out, bad, `${what}: stdout`);
    t.notMatch(r.err, bad, `${what}: stderr`);
  }
  const snap = run('hp-snapshot', [base, '--no-json', '--at', 'end']);
  t.match(snap.out, /via callerf\\x1b\]0;pwned/, 'the caller line is escaped too');
  // Graphviz input and the HTML report are read by people too (and DOT often lands on a terminal).
  const flow = run('hp-flow', [base]);
  t.equal(flow.code, 0, escapeControls(flow.err));
  t.notMatch(flow.out, bad, 'hp-flow: DOT labels');
  t.match(flow.out, /callerf\\\\x1b\]0;pwned/, 'written out, then escaped for DOT');
  const html = join(dir, 'r.html');
  const report = run('hp-report', [base, '-o', html]);
  t.equal(report.code, 0, escapeControls(report.err));
  t.notMatch(readFileSync(html, 'utf8'), /[\u0000-\u0008\u000b-\u001f\u007f]/, 'hp-report: the page (marks, frames, program line)');
});

// An audit's findings: a cut .hpm left 458 traces undefined and printed a line for each, and
// hp-report (which reads a profile twice) said every warning twice.
t.test('a damaged profile is described in a few lines, each said once per command', async (t) => {
  const dir = tmpDir('hp-warn-once-');
  const base = join(dir, 'p');
  const traces = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, frames: [{ function: `f${i}`, file: 'a.py', line: i + 1 }], dropped: 0 }));
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, startTimeUs: 0, argv: ['a.py'] },
    traces,
    events: traces.map((tr, i) => ({ op: 'alloc' as const, timeUs: 1000 * (i + 1), trace: tr.id, size: 1000 })),
  });
  // The .hpm cut right after its header block: no trace is defined any more.
  const hpm = readFileSync(`${base}.hpm`);
  writeFileSync(`${base}.hpm`, hpm.subarray(0, blockOffsets(hpm)[0]!));
  const snap = run('hp-snapshot', [base, '--at', 'end', '--json']);
  t.equal(snap.code, 0, snap.err);
  const lines = snap.err.trim().split('\n');
  t.equal(lines.filter((l) => /undefined trace/.test(l)).length, 1, `one line names an undefined trace:\n${snap.err}`);
  t.match(snap.err, /events use 60 traces that \S+p\.hpm does not define/, 'and one counts them');
  t.ok(lines.length <= 4, `${lines.length} lines in all`);
  // A cut .hpd: hp-report reads it twice and says so once.
  const hpd = readFileSync(`${base}.hpd`);
  writeFileSync(`${base}.hpd`, hpd.subarray(0, hpd.length - 10));
  const report = run('hp-report', [base, '-o', join(dir, 'r.html')]);
  t.equal(report.err.split('\n').filter((l) => /truncated last block/.test(l)).length, 1, `hp-report says it once:\n${report.err}`);
});

// An audit's findings: output errors named our temporary file (`-o /nonexistent/x` said
// "/nonexistent/x.tmp-16923: no such file") or nothing at all (`> /dev/full`), and hp-report
// printed its success line before the failure.
t.test('an output that cannot be written is named as the user gave it', { skip: existsSync('/dev/full') ? false : 'no /dev/full' }, async (t) => {
  const dir = tmpDir('hp-out-');
  const base = join(dir, 'p');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, startTimeUs: 0, argv: ['a.py'] },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 1000, trace: 1, size: 1000 }],
  });
  const missing = join(dir, 'no-such-dir', 'x.pb.gz');
  const pprof = run('hp-pprof', [base, '-o', missing]);
  t.equal(pprof.code, 1);
  t.equal(pprof.err, `hp-pprof: -o ${missing}: no such directory: ${join(dir, 'no-such-dir')}\n`);
  const full = run('hp-report', [base, '-o', '/dev/full']);
  t.equal(full.code, 1);
  t.equal(full.err, 'hp-report: -o /dev/full: cannot write: no space left on device\n', 'the failure, and no success line before it');
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${join(ROOT, 'bin', 'hp-snapshot.js')}" "${base}" --json > /dev/full`], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.equal(r.stderr, 'hp-snapshot: stdout: no space left on device\n');
});
