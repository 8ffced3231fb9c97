// Several --native profiles read as one (a --follow-fork run recorded with --native): each
// trace keeps its domain and thread through the merge, so --domain, hp-history's per-domain
// fields and --group-by thread give the sums of what each profile gives alone. The merge kept
// only frames, so every native and mmap allocation of a multi-process run counted as python.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeProfile } from '../../lib/format/hpx-writer.js';
import type { Trace } from '../../lib/format/types.js';
import { tmpDir } from '../helpers/profiles.js';

const BIN = new URL('../../bin/', import.meta.url).pathname;
const app = { function: '<module>', file: 'app.py', line: 7 };
const nativeFrame = { function: 'PyDataMem_UserNEW', file: '/x/_multiarray_umath.so', line: 0, native: true };

/** One process's profile: python, native and mmap allocations at the same line, by its main thread. */
async function write(base: string, pid: number, startTimeUs: number, scale: number): Promise<void> {
  const main = { id: 1, tid: pid, name: 'python3' };
  const traces: Trace[] = [
    { id: 1, frames: [app], dropped: 0, domain: 'python', thread: main },
    { id: 2, frames: [nativeFrame, app], dropped: 0, domain: 'native', thread: main },
    { id: 3, frames: [nativeFrame, app], dropped: 0, domain: 'mmap', thread: main },
  ];
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, native: true, pid, startTimeUs },
    traces,
    events: [
      { op: 'alloc', timeUs: 10, trace: 1, size: 1000 * scale },
      { op: 'alloc', timeUs: 20, trace: 2, size: 100_000 * scale },
      { op: 'alloc', timeUs: 30, trace: 3, size: 4_000_000 * scale },
    ],
  });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
}

function cli(name: string, args: string[]): Array<Record<string, unknown>> {
  const r = spawnSync(process.execPath, [join(BIN, `hp-${name}.js`), ...args, '-q'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A parent (pid 200) and its child (pid 201, twice the parent's sizes), started 5 µs apart. */
async function twoProcesses(): Promise<[string, string]> {
  const dir = tmpDir();
  const parent = join(dir, 'run');
  const child = join(dir, 'run.201');
  const start = 1_800_000_000_000_000;
  await write(parent, 200, start, 1);
  await write(child, 201, start + 5, 2);
  return [parent, child];
}

t.test('several --native profiles read as one keep each trace\'s domain and thread', async (t) => {
  const [parent, child] = await twoProcesses();
  const bytes = (inputs: string[], domain: string): number => cli('snapshot', [...inputs, '--at', 'end', '--domain', domain])[0]!.bytes as number;
  for (const domain of ['all', 'python', 'native', 'mmap']) {
    t.equal(bytes([parent, child], domain), bytes([parent], domain) + bytes([child], domain), `--domain ${domain}: the two profiles' sum`);
  }
  t.equal(bytes([parent, child], 'mmap'), 12_000_000);
  t.equal(bytes([parent, child], 'python'), 3000);

  const buckets = cli('history', [parent, child, '--json', '--top', '0', '--granularity', '0.0001']);
  const last = buckets[buckets.length - 1]!;
  t.same([last.python_bytes, last.native_bytes, last.mmap_bytes], [3000, 12_303_000 - 3000, 12_000_000], "hp-history's per-domain fields");

  const events = cli('events', [parent, child]).filter((l) => l.type === 'trace');
  t.same(events.map((l) => l.domain).sort(), ['mmap', 'mmap', 'native', 'native', 'python', 'python'], 'hp-events writes each trace with its domain');

  const byThread = cli('snapshot', [parent, child, '--at', 'end', '--group-by', 'thread']).filter((l) => l.type === 'site');
  t.same(
    byThread.map((s) => [String(s.site).replace(/^thread \d+ /, 'thread N '), s.bytes]),
    [['thread N "python3" (tid 201)', 8_202_000], ['thread N "python3" (tid 200)', 4_101_000]],
    'one site per thread: the two processes\' main threads stay apart',
  );
  t.equal(cli('snapshot', [parent, child, '--at', 'end', '--thread', '201'])[0]!.bytes, 8_202_000, '--thread by OS id');
});

t.test("hp-history --by pid: each process's line has its per-domain fields", async (t) => {
  const [parent, child] = await twoProcesses();
  const lines = cli('history', [parent, child, '--by', 'pid', '--json', '--top', '0', '--granularity', '0.0001']);
  for (const [pid, scale] of [[200, 1], [201, 2]] as const) {
    const last = lines.filter((l) => l.pid === pid).at(-1)!;
    t.same(
      [last.python_bytes, last.native_bytes, last.mmap_bytes],
      [1000 * scale, 4_100_000 * scale, 4_000_000 * scale],
      `pid ${pid}: python_bytes, native_bytes and mmap_bytes, as for the profile alone`,
    );
  }
});

t.test('a --native profile read with an earlier one recorded without --native keeps its domains', async (t) => {
  // The merged header was the earliest profile's: without --native there, hp-history wrote no
  // per-domain fields and hp-report no domain bands, while hp-snapshot --domain native found
  // the later profile's C allocations.
  const dir = tmpDir();
  const plain = join(dir, 'plain');
  const native = join(dir, 'native');
  const start = 1_800_000_000_000_000;
  const { hpm, hpd } = await encodeProfile({
    header: { sampling: { kind: 'table', bounds: [], probs: [] }, pid: 300, startTimeUs: start },
    traces: [{ id: 1, frames: [app], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 10, trace: 1, size: 500 }],
  });
  writeFileSync(`${plain}.hpm`, hpm);
  writeFileSync(`${plain}.hpd`, hpd);
  await write(native, 301, start + 5, 1);
  t.equal(cli('snapshot', [plain, native, '--at', 'end', '--domain', 'native'])[0]!.bytes, 4_100_000, 'hp-snapshot --domain native');
  const buckets = cli('history', [plain, native, '--json', '--top', '0', '--granularity', '0.0001']);
  const last = buckets[buckets.length - 1]!;
  t.same([last.python_bytes, last.native_bytes, last.mmap_bytes], [1500, 4_100_000, 4_000_000], "hp-history's per-domain fields");
});
