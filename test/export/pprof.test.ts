// hp-pprof: the output is a gzipped profile.proto whose raw structure (read here by a minimal
// protobuf walker written for this test, independent of the encoder) carries real names, files
// and lines, and whose totals equal hp-snapshot's for the same moment and an independent
// weighting of the events for an allocation window.

import t from 'tap';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Profile } from 'pprof-format';
import { sampleProbability } from '../../lib/format/weights.js';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { readAll, tmpDir } from '../helpers/profiles.js';
import { FIXTURES, run } from '../fixtures/export/support.js';

const APP = join(FIXTURES, 'app');

// ---- a minimal protobuf reader: varints, length-delimited fields, packed repeated varints ----
type Field = { no: number; wire: number; value: bigint | Buffer };
function varint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}
function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = varint(buf, pos);
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, p2] = varint(buf, p1);
      out.push({ no, wire, value: v });
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = varint(buf, p1);
      const end = p2 + Number(len);
      if (end > buf.length) throw new Error('truncated field');
      out.push({ no, wire, value: buf.subarray(p2, end) });
      pos = end;
    } else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(p1, p1 + 8) });
      pos = p1 + 8;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(p1, p1 + 4) });
      pos = p1 + 4;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  if (pos !== buf.length) throw new Error('trailing bytes');
  return out;
}
/** Repeated int field: packed (wire 2) or not (wire 0). */
function ints(fs: Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fs) {
    if (f.no !== no) continue;
    if (f.wire === 0) out.push(Number(f.value as bigint));
    else {
      const b = f.value as Buffer;
      let pos = 0;
      while (pos < b.length) {
        const [v, p] = varint(b, pos);
        out.push(Number(v));
        pos = p;
      }
    }
  }
  return out;
}
const int = (fs: Field[], no: number): number => ints(fs, no)[0] ?? 0;

interface Walked {
  strings: string[];
  sampleTypes: Array<[string, string]>;
  /** Per sample: stack of "function|file|line" leaf first, and values. */
  samples: Array<{ stack: string[]; values: number[] }>;
  defaultSampleType: string;
}
function walk(gz: Buffer): Walked {
  if (gz[0] !== 0x1f || gz[1] !== 0x8b) throw new Error('not gzip');
  const top = fields(gunzipSync(gz));
  const strings = top.filter((f) => f.no === 6).map((f) => (f.value as Buffer).toString('utf8'));
  if (strings[0] !== '') throw new Error('string_table[0] must be empty');
  const functions = new Map<number, { name: string; file: string }>();
  for (const f of top.filter((x) => x.no === 5)) {
    const fs = fields(f.value as Buffer);
    functions.set(int(fs, 1), { name: strings[int(fs, 2)]!, file: strings[int(fs, 4)]! });
  }
  const locations = new Map<number, string>();
  for (const f of top.filter((x) => x.no === 4)) {
    const fs = fields(f.value as Buffer);
    const lines = fs.filter((x) => x.no === 4).map((x) => fields(x.value as Buffer));
    const line = lines[0]!;
    const fn = functions.get(int(line, 1))!;
    locations.set(int(fs, 1), `${fn.name}|${fn.file}|${int(line, 2)}`);
  }
  const sampleTypes = top.filter((f) => f.no === 1).map((f) => {
    const fs = fields(f.value as Buffer);
    return [strings[int(fs, 1)]!, strings[int(fs, 2)]!] as [string, string];
  });
  const samples = top.filter((f) => f.no === 2).map((f) => {
    const fs = fields(f.value as Buffer);
    return { stack: ints(fs, 1).map((id) => locations.get(id)!), values: ints(fs, 2) };
  });
  return { strings, sampleTypes, samples, defaultSampleType: strings[int(top, 14)]! };
}

const frameKey = (f: { function: string | null; file: string; line: number }): string => `${f.function ?? `${f.file}:${f.line}`}|${f.file}|${f.line}`;

function snapshotSites(ndjson: string): Array<{ stack: string[]; bytes: number; count: number }> {
  const lines = ndjson.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return lines
    .filter((l) => l.type === 'site')
    .map((l) => {
      const frames = l.frames as Array<{ function: string | null; file: string; line: number }>;
      const stack = frames.length === 0 ? ['[no Python stack]||0'] : frames.map(frameKey);
      if (typeof l.dropped === 'number') stack.push(`[${l.dropped} frames not recorded]||0`);
      return { stack, bytes: l.bytes as number, count: l.count as number };
    });
}

const sortByStack = <T extends { stack: string[] }>(a: T[]): T[] => [...a].sort((x, y) => (x.stack.join(';') < y.stack.join(';') ? -1 : 1));

for (const at of ['peak', '4', '9', 'end']) {
  t.test(`--at ${at}: same stacks and totals as hp-snapshot`, async (t) => {
    const snap = await run('hp-snapshot', [APP, '--at', at, '--group-by', 'trace']);
    t.equal(snap.code, 0, snap.stderr);
    const sites = snapshotSites(snap.stdout.toString());
    t.ok(sites.length >= 3, 'snapshot has sites');

    const res = await run('hp-pprof', [APP, '--at', at]);
    t.equal(res.code, 0, res.stderr);
    const w = walk(res.stdout);
    t.same(w.sampleTypes, [
      ['inuse_objects', 'count'],
      ['inuse_space', 'bytes'],
    ]);
    t.equal(w.defaultSampleType, 'inuse_space');
    const fromPprof = sortByStack(w.samples.map((s) => ({ stack: s.stack, bytes: s.values[1]!, count: s.values[0]! })));
    t.same(fromPprof, sortByStack(sites), 'one sample per trace with its frames, bytes and count');
    const sum = (a: Array<{ bytes: number }>): number => a.reduce((x, y) => x + y.bytes, 0);
    t.equal(sum(fromPprof), sum(sites), 'total bytes equal hp-snapshot');
    const header = JSON.parse(snap.stdout.toString().split('\n')[0]!) as { bytes: number };
    t.ok(Math.abs(sum(fromPprof) - header.bytes) <= sites.length, 'and its header total, up to rounding per site');

    // The same from hp-snapshot's NDJSON on stdin.
    const piped = await run('hp-pprof', [], snap.stdout);
    t.equal(piped.code, 0, piped.stderr);
    const wp = walk(piped.stdout);
    t.same(sortByStack(wp.samples.map((s) => ({ stack: s.stack, bytes: s.values[1]!, count: s.values[0]! }))), sortByStack(sites), 'stdin snapshot gives the same samples');

    // pprof-format reads it too (a second, independent reader of the same bytes).
    const p = Profile.decode(gunzipSync(res.stdout));
    t.equal(p.sample.length, w.samples.length);
  });
}

t.test("piped snapshot NDJSON: the comment's total and interval are the profile's", async (t) => {
  const comment = (buf: Buffer): string => {
    const p = Profile.decode(gunzipSync(buf));
    return p.comment.map((i) => p.stringTable.strings[Number(i)]!).find((c) => c.startsWith('heapprof live heap'))!;
  };
  const direct = await run('hp-pprof', [APP, '--at', '4', '-q']);
  const snap = await run('hp-snapshot', [APP, '--at', '4', '-q']);
  const piped = await run('hp-pprof', ['-q'], snap.stdout);
  t.equal(piped.code, 0, piped.stderr);
  t.match(comment(direct.stdout), /95% interval \d+\.\.\d+/);
  t.equal(comment(piped.stdout), comment(direct.stdout));
});

t.test('real names, files and lines are in the profile', async (t) => {
  const res = await run('hp-pprof', [APP, '--at', '9']);
  const w = walk(res.stdout);
  const leaves = new Set(w.samples.map((s) => s.stack[0]));
  t.ok(leaves.has('parse|loader.py|22'));
  t.ok(leaves.has('make_strings|util.py|20'));
  const strings = w.strings.join('\n');
  for (const s of ['<module>', 'app.py', 'read_rows', 'loader.py', 'helper2']) t.match(strings, s);
  const stringsStack = w.samples.find((s) => s.stack[0] === 'make_strings|util.py|20')!.stack;
  t.same(stringsStack, ['make_strings|util.py|20', 'helper3|util.py|14', 'helper2|util.py|9', 'helper1|util.py|5', 'main|app.py|32', '<module>|app.py|50'], 'leaf first, as pprof expects');
});

t.test('--alloc window: alloc_space equals the weighted allocations in [from, to)', async (t) => {
  const back = await readAll(APP);
  let bytes = 0;
  let count = 0;
  for (const e of back.events) {
    if (e.op !== 'alloc' || e.timeUs < 1e6 || e.timeUs >= 7e6) continue;
    const p = sampleProbability(back.header.sampling, e.size);
    bytes += e.size / p;
    count += 1 / p;
  }
  const res = await run('hp-pprof', [APP, '--from', '1', '--to', '7']);
  t.equal(res.code, 0, res.stderr);
  const w = walk(res.stdout);
  t.same(w.sampleTypes.map((s) => s[0]), ['alloc_objects', 'alloc_space']);
  const got = w.samples.reduce((a, s) => a + s.values[1]!, 0);
  const gotCount = w.samples.reduce((a, s) => a + s.values[0]!, 0);
  t.ok(Math.abs(got - bytes) <= w.samples.length, `alloc_space ${got} = ${bytes}`);
  t.ok(Math.abs(gotCount - count) <= w.samples.length, `alloc_objects ${gotCount} = ${count}`);
  t.ok(got > 50e6, 'the window includes the 50 MB spike even though it was freed');
});

t.test('usage and data errors are one line with the right exit status', async (t) => {
  const bad = await run('hp-pprof', [APP, '--at', 'soon']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^hp-pprof: --at 'soon': expected/);
  const both = await run('hp-pprof', [APP, '--at', '3', '--from', '1']);
  t.equal(both.code, 2);
  const missing = await run('hp-pprof', [join(FIXTURES, 'nope'), '--at', '3']);
  t.equal(missing.code, 1);
  t.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  const notSnapshot = await run('hp-pprof', [], '{"type":"meta"}\n{"type":"event"}\n');
  t.equal(notSnapshot.code, 1);
  t.match(notSnapshot.stderr, /hp-snapshot/);
});

t.test('-o writes the file, and nothing to stdout', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'heap.pb.gz');
  const res = await run('hp-pprof', [APP, '--at', 'peak', '-o', out, '-q']);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout.length, 0);
  t.equal(res.stderr, '');
  const { readFileSync } = await import('node:fs');
  t.ok(walk(readFileSync(out)).samples.length > 0);
});

t.test('snapshot NDJSON: a malformed site line is an error naming its line; foreign lines are counted', async (t) => {
  const bad = await run('hp-pprof', [], '{"type":"snapshot","schema":1,"at":1}\n{"type":"site","bytes":10,"frames":[{"function":"f"}]}\n');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^hp-pprof: stdin: line 2: each frame needs a "file"/);
  const notJson = await run('hp-pprof', [], '{"type":"snapshot","schema":1,"at":1}\nnot json\n');
  t.equal(notJson.code, 1);
  t.match(notJson.stderr, /line 2: not valid JSON/);
  const mixed = await run('hp-pprof', [], '{"type":"snapshot","at":1}\n{"type":"site","bytes":10,"count":1,"frames":[{"function":"f","file":"a.py","line":3}]}\n{"type":"note"}\n');
  t.equal(mixed.code, 0, mixed.stderr);
  t.match(mixed.stderr, /ignored 1 lines that are not snapshot sites/);
  const w = walk(mixed.stdout);
  t.same(w.samples, [{ stack: ['f|a.py|3'], values: [1, 10] }]);
});

t.test('heapprof 1.0.x profiles: frames without function names are named file:line', async (t) => {
  const res = await run('hp-pprof', [join(FIXTURES, '..', 'format', 'v1'), '--at', 'end']);
  t.equal(res.code, 0, res.stderr);
  const w = walk(res.stdout);
  const stacks = w.samples.map((s) => s.stack.join(';')).sort();
  t.ok(stacks.includes('/app/cache.py:120|/app/cache.py|120;/app/worker.py:55|/app/worker.py|55;/app/main.py:7|/app/main.py|7'), stacks.join('\n'));
  t.ok(stacks.includes('[no Python stack]||0'));
});

t.test('several profiles (one per process) in one pprof, samples labelled by profile and pid', async (t) => {
  const APP2 = join(FIXTURES, 'app2');
  const res = await run('hp-pprof', [APP, APP2, '--at', 'end', '-q']);
  t.equal(res.code, 0, res.stderr);
  // Labels are field 3 of a sample: {key 1, str 2, num 3}; read them with the walker's primitives.
  const top = fields(gunzipSync(res.stdout));
  const strings = top.filter((f) => f.no === 6).map((f) => (f.value as Buffer).toString('utf8'));
  const byProfile = new Map<string, number>();
  for (const f of top.filter((x) => x.no === 2)) {
    const fs = fields(f.value as Buffer);
    const labels = fs.filter((x) => x.no === 3).map((x) => fields(x.value as Buffer));
    const profile = labels.find((l) => strings[int(l, 1)] === 'profile');
    const pid = labels.find((l) => strings[int(l, 1)] === 'pid');
    t.ok(profile && pid, 'each sample has a profile and a pid label');
    t.equal(int(pid!, 3), 4242);
    const name = strings[int(profile!, 2)]!;
    byProfile.set(name, (byProfile.get(name) ?? 0) + ints(fs, 2)[1]!);
  }
  for (const base of [APP, APP2]) {
    const snap = await run('hp-snapshot', [base, '--at', 'end', '--group-by', 'trace', '-q']);
    const sum = snapshotSites(snap.stdout.toString()).reduce((a, s) => a + s.bytes, 0);
    t.equal(byProfile.get(base), sum, `${base}: its samples total its snapshot`);
  }
  const one = await run('hp-pprof', [APP, '--at', 'end', '-q']);
  const single = fields(gunzipSync(one.stdout)).filter((x) => x.no === 2);
  t.notOk(single.some((f) => fields(f.value as Buffer).some((x) => x.no === 3)), 'a single profile has no labels');
});

t.test('a quoted glob names several profiles, and a mark:LABEL is looked up in each', async (t) => {
  const dir = tmpDir();
  const trace = { id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 };
  const profile = (name: string, pid: number, events: Parameters<typeof writeProfile>[1]['events']) =>
    writeProfile(join(dir, name), { header: { sampling: { kind: 'table', bounds: [], probs: [] }, pid }, traces: [trace], events });
  // 'loaded' falls after the first allocation in run.1, after both in run.2.
  await profile('run.1', 1, [
    { op: 'alloc', timeUs: 10, trace: 1, size: 1000 },
    { op: 'mark', timeUs: 20, size: 0, label: 'loaded' },
    { op: 'alloc', timeUs: 30, trace: 1, size: 500 },
  ]);
  await profile('run.2', 2, [
    { op: 'alloc', timeUs: 10, trace: 1, size: 1000 },
    { op: 'alloc', timeUs: 30, trace: 1, size: 500 },
    { op: 'mark', timeUs: 40, size: 0, label: 'loaded' },
  ]);
  await profile('other', 3, [{ op: 'alloc', timeUs: 10, trace: 1, size: 1000 }]);
  const res = await run('hp-pprof', [join(dir, 'run.*'), '--at', 'mark:loaded', '-q']);
  t.equal(res.code, 0, res.stderr.toString());
  const p = Profile.decode(gunzipSync(res.stdout));
  const str = (i: number | bigint): string => p.stringTable.strings[Number(i)]!;
  const byProfile: Record<string, number> = {};
  for (const s of p.sample) {
    const label = s.label.find((l) => str(l.key) === 'profile');
    const name = label ? str(label.str) : '?';
    byProfile[name] = (byProfile[name] ?? 0) + Number(s.value[1]);
  }
  t.same(byProfile, { [join(dir, 'run.1')]: 1000, [join(dir, 'run.2')]: 1500 }, 'both profiles, each at its own mark');
  const missing = await run('hp-pprof', [join(dir, 'run.1'), join(dir, 'other'), '--at', 'mark:loaded']);
  t.equal(missing.code, 2);
  t.match(missing.stderr.toString(), /^hp-pprof: --at: no mark 'loaded' in .*other \(it has no marks\)\n$/);
  const none = await run('hp-pprof', [join(dir, 'nothing.*'), '--at', 'end']);
  t.equal(none.code, 2);
  t.match(none.stderr.toString(), /^hp-pprof: .*nothing\.\*: matches no profile\n$/);
});
