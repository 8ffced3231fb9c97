// Native recording in the format (man/hpx.5: header tag 13, THREAD and TRACE_INFO records):
// traces keep their domain, thread and native frames through hpx, events NDJSON and the
// readers; --domain/--thread filters and thread grouping add up; old readers' view (no
// TRACE_INFO) stays python.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeProfile } from '../../lib/format/hpx-writer.js';
import type { Trace } from '../../lib/format/types.js';
import { readAll, tmpDir } from '../helpers/profiles.js';
import { nativeEnvironment, nativeHint } from '../../lib/cmd/record.js';
import { foldedStack } from '../../lib/model/folded.js';
import { siteOf } from '../../lib/model/sites.js';

const BIN = new URL('../../bin/', import.meta.url).pathname;
const main = { id: 1, tid: 4242, name: 'python' };
const worker = { id: 2, tid: 4243, name: 'blas-worker' };
const nativeFrame = { function: 'PyDataMem_UserNEW', file: '/x/_multiarray_umath.so', line: 0, native: true };
const app = { function: '<module>', file: 'app.py', line: 7 };
const traces: Trace[] = [
  { id: 1, frames: [app], dropped: 0, domain: 'python', thread: main },
  { id: 2, frames: [nativeFrame, app], dropped: 0, domain: 'native', thread: main },
  { id: 3, frames: [{ function: '0x1234', file: '/x/libopenblas.so', line: 0, native: true }], dropped: 0, domain: 'mmap', thread: worker },
  { id: 4, frames: [{ function: 'f', file: 'old.py', line: 3 }], dropped: 0 },
];

async function write(dir: string): Promise<string> {
  const base = join(dir, 'd');
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, native: true },
    traces,
    events: [
      { op: 'alloc', timeUs: 10, trace: 1, size: 1000 },
      { op: 'alloc', timeUs: 20, trace: 2, size: 100_000 },
      { op: 'alloc', timeUs: 30, trace: 3, size: 8_000_000 },
      { op: 'alloc', timeUs: 40, trace: 4, size: 50 },
      { op: 'free', timeUs: 50, trace: 2, size: 100_000 },
      { op: 'alloc', timeUs: 60, trace: 2, size: 300_000 },
    ],
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  return base;
}

function cli(name: string, args: string[], input?: string): Array<Record<string, unknown>> {
  const r = spawnSync(process.execPath, [join(BIN, `hp-${name}.js`), ...args], { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('domain, thread and native frames survive hpx and NDJSON', async (t) => {
  const base = await write(tmpDir());
  const back = await readAll(base);
  t.equal(back.header.native, true, 'header tag 13');
  t.same(back.traces.get(2), traces[1], 'native trace with its thread and native frame');
  t.same(back.traces.get(3), traces[2], 'mmap trace of another thread, native frames only');
  t.same(back.traces.get(4), traces[3], 'a trace without TRACE_INFO stays plain');
  const ndjson = cli('events', [base]);
  const t2 = ndjson.find((l) => l.type === 'trace' && l.id === 2)!;
  t.same(t2, { type: 'trace', id: 2, frames: [{ ...nativeFrame }, app], dropped: 0, domain: 'native', thread: 1, thread_tid: 4242, thread_name: 'python' });
  t.equal(ndjson[0]!.native, true, 'meta says native');
  const text = ndjson.map((l) => JSON.stringify(l)).join('\n');
  for (const domain of ['python', 'native', 'mmap', 'all']) {
    const direct = cli('snapshot', [base, '--domain', domain]);
    const piped = cli('snapshot', ['-', '--domain', domain], text);
    t.same(piped, direct, `--domain ${domain}: NDJSON input gives the profile's answer`);
  }
});

t.test('filters and groupings add up', async (t) => {
  const base = await write(tmpDir());
  const bytes = (domain: string, extra: string[] = []): number => cli('snapshot', [base, '--domain', domain, ...extra])[0]!.bytes as number;
  t.equal(bytes('python'), 1050);
  t.equal(bytes('native'), 8_300_000, 'native includes mmap');
  t.equal(bytes('mmap'), 8_000_000);
  t.equal(bytes('all'), 8_301_050);
  t.equal(bytes('all', ['--thread', '2']), 8_000_000, '--thread by id');
  t.equal(bytes('all', ['--thread', 'python']), 301_000, '--thread by name');
  t.equal(bytes('all', ['--thread', '4243']), 8_000_000, '--thread by OS id');
  const byThread = cli('snapshot', [base, '--group-by', 'thread']).filter((l) => l.type === 'site');
  t.same(byThread.map((s) => [s.site, s.bytes]), [
    ['thread 2 "blas-worker" (tid 4243)', 8_000_000],
    ['thread 1 "python" (tid 4242)', 301_000],
    ['[thread not recorded]', 50],
  ]);
  const byLine = cli('snapshot', [base, '--group-by', 'line']).filter((l) => l.type === 'site');
  const appLines = byLine.filter((s) => String(s.site).startsWith('<module> (app.py:7)'));
  t.same(appLines.map((s) => [s.domain ?? 'python', s.bytes]).sort(), [['native', 300_000], ['python', 1000]], 'one line, two domains, two sites');
  const byTrace = cli('snapshot', [base]).filter((l) => l.type === 'site');
  const native = byTrace.find((s) => s.trace === 2)!;
  t.equal(native.native_caller, 'PyDataMem_UserNEW (_multiarray_umath.so)');
  t.equal(native.site, '<module> (app.py:7) [native: PyDataMem_UserNEW (_multiarray_umath.so)]');
  const history = cli('history', [base, '--granularity', '0.0001', '--top', '0']);
  const last = history[history.length - 1]!;
  t.same([last.python_bytes, last.native_bytes, last.mmap_bytes], [1050, 8_300_000, 8_000_000], 'history splits by domain as --domain does: native includes mmap');
});

t.test('folded stacks and site labels', async (t) => {
  t.equal(foldedStack(traces[1]!.frames), '<module> (app.py:7);PyDataMem_UserNEW (/x/_multiarray_umath.so) [native]');
  t.equal(foldedStack(traces[2]!.frames), '[no Python stack];0x1234 (/x/libopenblas.so) [native]');
  t.equal(siteOf(traces[2]!, 'trace').label, '[no Python stack] [mmap: 0x1234 (libopenblas.so)]');
  t.equal(siteOf(traces[3]!, 'trace').domain, 'python', 'no domain means python');
});

t.test('hp-record --native plumbing', async (t) => {
  t.same(nativeEnvironment('/h/heapprof_hook.so', { LD_PRELOAD: '/j/libjemalloc.so /h/heapprof_hook.so' }), {
    LD_PRELOAD: '/h/heapprof_hook.so:/j/libjemalloc.so',
    HEAPPROF_NATIVE_LIB: '/h/heapprof_hook.so',
  }, 'the hook goes first, once, ahead of another malloc');
  const MiB = 1 << 20;
  t.match(nativeHint({ native: false, peak_rss: 336 * MiB, peak_heap_estimate: 8 * MiB }), /--native records it/);
  t.equal(nativeHint({ native: false, peak_rss: 60 * MiB, peak_heap_estimate: 8 * MiB }), null, 'RSS near the heap: no hint');
  t.equal(nativeHint({ native: true, peak_rss: 336 * MiB, peak_heap_estimate: 8 * MiB }), null, 'not when native was recorded');
  t.equal(nativeHint({}), null, 'not without figures');
});

t.test("hp-history's per-domain fields are hp-snapshot --domain's totals, intervals included", async (t) => {
  // Sampled below 128 bytes (intervals and the unseen allowance), drawn whole above (exact parts).
  const base = join(tmpDir(), 's');
  const events: Array<{ op: 'alloc'; timeUs: number; trace: number; size: number }> = [];
  for (let i = 0; i < 40; i++) events.push({ op: 'alloc', timeUs: 10 + i, trace: 1 + (i % 3), size: 64 + i });
  events.push({ op: 'alloc', timeUs: 100, trace: 2, size: 300_000 }, { op: 'alloc', timeUs: 110, trace: 3, size: 8_000_000 });
  const { hpm, hpd } = await encodeProfile({ header: { sampling: { kind: 'table', bounds: [128], probs: [0.5] }, native: true }, traces, events });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  const buckets = cli('history', [base, '--json', '--top', '0', '--granularity', '0.001']);
  const last = buckets[buckets.length - 1]!;
  for (const domain of ['python', 'native', 'mmap']) {
    const snap = cli('snapshot', [base, '--at', 'end', '--domain', domain])[0]!;
    t.same(
      [last[`${domain}_bytes`], last[`${domain}_bytes_lo`], last[`${domain}_bytes_hi`]],
      [snap.bytes, snap.bytes_lo, snap.bytes_hi],
      `${domain}_bytes and its interval equal hp-snapshot --domain ${domain}`,
    );
  }
  t.equal((last.python_bytes as number) + (last.native_bytes as number), last.live_bytes, 'python and native (mmap included) make the total');
});

t.test('--thread naming no thread of the profile is a usage error that lists its threads', async (t) => {
  const base = await write(tmpDir());
  const run = (args: string[]) => spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), ...args], { encoding: 'utf8' });
  const unknown = run([base, '--thread', 'w0']);
  t.equal(unknown.status, 2, 'exit status 2, not an empty heap');
  t.equal(unknown.stdout, '', 'no snapshot');
  t.equal(unknown.stderr, `hp-snapshot: --thread w0: no such thread in ${base}; it has thread 1 "python" (tid 4242), thread 2 "blas-worker" (tid 4243)\n`, 'one line naming the value and the threads');
  t.equal(run([base, '--thread', '3']).status, 2, 'an id no thread has');
  // A profile recorded without --native has no thread contexts at all.
  const dir = tmpDir();
  const plain = join(dir, 'plain');
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [{ id: 1, frames: [app], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 10, trace: 1, size: 66_000_000 }],
  });
  writeFileSync(`${plain}.hpm`, hpm);
  writeFileSync(`${plain}.hpd`, hpd);
  const none = run([plain, '--thread', '1']);
  t.equal(none.status, 2);
  t.equal(none.stderr, `hp-snapshot: --thread 1: ${plain} has no thread contexts (hp-record --native records which thread allocated)\n`);
  t.equal(run([plain]).status, 0, 'without --thread the same profile reads');
});

t.test('--domain native or mmap on a profile recorded without --native says that nothing native was recorded', async (t) => {
  // It printed "0 B (95%: 0 B .. N MiB)", an estimate of C allocations the recorder never saw.
  const dir = tmpDir();
  const plain = join(dir, 'plain');
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [128], probs: [0.01] } },
    traces: [{ id: 1, frames: [app], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 10, trace: 1, size: 100 }],
  });
  writeFileSync(`${plain}.hpm`, hpm);
  writeFileSync(`${plain}.hpd`, hpd);
  const run = (args: string[]) => spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), ...args, '--json'], { encoding: 'utf8' });
  for (const domain of ['native', 'mmap']) {
    const r = run([plain, '--domain', domain, '--at', 'end']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, `hp-snapshot: ${plain}: recorded without --native: its C allocations (malloc, mmap) were not recorded, so --domain ${domain} finds none\n`, domain);
  }
  t.notMatch(run([plain, '--domain', 'python', '--at', 'end']).stderr, /without --native/, 'python: no warning');
  const native = await write(tmpDir());
  t.notMatch(run([native, '--domain', 'native', '--at', 'end']).stderr, /without --native/, 'a --native profile: no warning');
});

t.test('rows that only their threads tell apart name the thread on the line below', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'threads');
  const line = { function: '<listcomp>', file: 't1.py', line: 4 };
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, native: true },
    traces: [
      { id: 1, frames: [line], dropped: 0, domain: 'python', thread: main },
      { id: 2, frames: [line], dropped: 0, domain: 'python', thread: worker },
      { id: 3, frames: [app], dropped: 0, domain: 'python', thread: worker },
    ],
    events: [
      { op: 'alloc', timeUs: 10, trace: 1, size: 2_000_000 },
      { op: 'alloc', timeUs: 20, trace: 2, size: 1_000_000 },
      { op: 'alloc', timeUs: 30, trace: 3, size: 500_000 },
    ],
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  const r = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), base, '--no-json'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100' } });
  t.equal(r.status, 0);
  const lines = r.stdout.split('\n');
  const first = lines.findIndex((l) => /│ +1 │/.test(l));
  t.match(lines[first], /<listcomp> \(t1\.py:4\)/);
  t.match(lines[first + 1], /^│[ │]+│   thread 1 +│$/, 'the first row, thread 1');
  t.match(lines[first + 2], /│ +2 │.*<listcomp> \(t1\.py:4\)/);
  t.match(lines[first + 3], /^│[ │]+│   thread 2 +│$/, 'the second, thread 2');
  t.match(lines[first + 4], /│ +3 │.*<module> \(app\.py:7\) +│$/, 'a row of its own label has no second line');
});
