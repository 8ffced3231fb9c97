// The seek index trusted only when it matches its .hpd (issue 20, items 3, 4, 7): a byte changed
// anywhere in the profile, a hostile .hpi with valid checksums, a symlink where the index goes,
// all end in a rebuild (never an internal error, never a write through the link), and the
// index gets the profile's permissions.

import { chmodSync, lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx.js';
import { decodeIndex, encodeIndex, indexPath } from '../../lib/format/index.js';
import { liveHeapAtIndexed, loadIndex } from '../../lib/model/checkpoints.js';
import { openProfile } from '../../lib/format/profile.js';
import type { ReadIssue } from '../../lib/format/types.js';
import { liveHeapAt } from '../../lib/model/snapshot.js';
import { blockOffsets, randomSpec, tmpDir } from '../helpers/profiles.js';

async function snapshotBytes(base: string, viaIndex: boolean): Promise<{ bytes: number; issues: ReadIssue[]; notes: string[] }> {
  const issues: ReadIssue[] = [];
  const notes: string[] = [];
  if (!viaIndex) {
    const src = await openProfile(base, { onIssue: (i) => issues.push(i) });
    try {
      return { bytes: (await liveHeapAt(src, { kind: 'end' })).heap.totalBytes, issues, notes };
    } finally {
      await src.close();
    }
  }
  const r = await liveHeapAtIndexed(base, { kind: 'end' }, { onIssue: (i) => issues.push(i) }, { checkpointBytes: 3000, minBytes: 0, onNote: (m) => notes.push(m) });
  if (!r) throw new Error('not indexable');
  await r.source.close();
  return { bytes: r.snapshot.heap.totalBytes, issues, notes };
}

t.test('a byte flipped in a middle block (same size, same head and tail) is not read through the old index', async (t) => {
  const dir = tmpDir('hp-index-hostile-');
  const base = join(dir, 'x');
  await writeProfile(base, { ...randomSpec(5, 60000), eventsPerBlock: 500 });
  const before = await snapshotBytes(base, true);
  t.equal(before.issues.length, 0);
  const hpd = readFileSync(`${base}.hpd`);
  const offsets = blockOffsets(hpd);
  t.ok(hpd.length > 2 * 65536 + 4096, 'the middle is outside the head and tail the old fingerprint covered');
  const mid = offsets.find((o) => o > 65536 && o < hpd.length - 2 * 65536)!;
  hpd[mid + 40] ^= 0x55;
  await sleep(30); // ctime has a clock-tick resolution on some file systems
  writeFileSync(`${base}.hpd`, hpd);
  const fresh = await snapshotBytes(base, false);
  const after = await snapshotBytes(base, true);
  t.ok(fresh.issues.some((i) => /bad checksum/.test(i.message)), 'a fresh read reports the bad block');
  t.ok(after.notes.some((n) => /stale|rebuilding/.test(n)), `the index is rebuilt (${after.notes.join('; ')})`);
  t.ok(after.issues.some((i) => /bad checksum/.test(i.message)), 'and the read through it reports the bad block too');
  t.equal(after.bytes, fresh.bytes, 'same totals as a fresh read');
});

t.test('hostile .hpi with valid checksums: rebuilt with a note, never an internal error', async (t) => {
  const dir = tmpDir('hp-index-hostile-');
  const base = join(dir, 'x');
  await writeProfile(base, randomSpec(6, 4000));
  const good = await snapshotBytes(base, true);
  const original = readFileSync(indexPath(base));
  const mutations: Array<[string, (idx: ReturnType<typeof decodeIndex>['index']) => void]> = [
    ['issues not a list', (i) => void ((i as { issues: unknown }).issues = { slice: () => ({ length: 1 }) })],
    ['issue null', (i) => void ((i as { issues: unknown[] }).issues = [null])],
    ['peak bytes NaN', (i) => void (i.peakBytes = NaN)],
    ['checkpoint offset past the end', (i) => void (i.checkpoints[0]!.offset = 1e12)],
    ['block offset past the end', (i) => void (i.blockOffset[1] = 1e12)],
    ['duplicate traces in a checkpoint', (i) => void i.checkpoints[0]!.traceOfSlot.fill(1)],
    ['a sum that is infinite', (i) => void (i.checkpoints[0]!.bytes[0] = Infinity)],
    ['block offsets not in order', (i) => void i.blockOffset.reverse()],
    ['events negative', (i) => void (i.events = -5)],
  ];
  for (const [what, mutate] of mutations) {
    const { index, fingerprint, blocksCrc } = decodeIndex(Buffer.from(original));
    t.ok(index.checkpoints.length > 0, 'the index has checkpoints to damage');
    mutate(index);
    writeFileSync(indexPath(base), encodeIndex(index, fingerprint, blocksCrc));
    const r = await snapshotBytes(base, true);
    t.equal(r.bytes, good.bytes, `${what}: same result`);
    t.ok(r.notes.some((n) => /rebuilding/.test(n)), `${what}: noted and rebuilt (${r.notes.join('; ')})`);
  }
});

t.test('hostile split peak and split state with valid checksums: rebuilt with a note', async (t) => {
  const dir = tmpDir('hp-index-hostile-');
  const base = join(dir, 'x');
  const spec = randomSpec(8, 6000);
  spec.header.sampling = { kind: 'table', bounds: [128, 8192], probs: [0.01, 0.1] };
  spec.complete = false; // a tail, with the split's state
  await writeProfile(base, spec);
  const good = await snapshotBytes(base, true);
  const original = readFileSync(indexPath(base));
  const first = decodeIndex(Buffer.from(original)).index;
  t.ok(first.peakHalf && first.tail?.half && first.tail.half.split.pairs.length >= 10, 'the index holds a split peak and a split state to damage');
  const mutations: Array<[string, (idx: ReturnType<typeof decodeIndex>['index']) => void]> = [
    ['split peak with a sum that is not a number', (i) => void (i.peakHalf!.bytes[0] = NaN)],
    ['split peak past the end of the profile', (i) => void (i.peakHalf!.offset = 1e12)],
    ['split peak repeating a trace', (i) => void i.peakHalf!.traceOfSlot.fill(2)],
    ['split state without a split peak', (i) => void (i.peakHalf = null)],
    ['split pairs out of order', (i) => void i.tail!.half!.split.pairs.copyWithin(0, 5, 10)],
    ['a negative count', (i) => void (i.tail!.half!.split.pairs[2] = -1)],
    ['a pair with no live draw', (i) => void i.tail!.half!.split.pairs.fill(0, 2, 5)],
    ['a fractional size', (i) => void (i.tail!.half!.split.pairs[1] = 0.5)],
    ['an ordinal that is not a count', (i) => void (i.tail!.half!.split.ordinal = Infinity)],
    ["half B's heap past the end", (i) => void (i.tail!.half!.heap.offset = 1e12)],
  ];
  for (const [what, mutate] of mutations) {
    const { index, fingerprint, blocksCrc } = decodeIndex(Buffer.from(original));
    mutate(index);
    writeFileSync(indexPath(base), encodeIndex(index, fingerprint, blocksCrc));
    const r = await snapshotBytes(base, true);
    t.equal(r.bytes, good.bytes, `${what}: same result`);
    t.ok(r.notes.some((n) => /rebuilding/.test(n)), `${what}: noted and rebuilt (${r.notes.join('; ')})`);
  }
});

t.test('the index is written exclusively, never through a symlink, with the profile mode', async (t) => {
  const dir = tmpDir('hp-index-hostile-');
  const base = join(dir, 'x');
  await writeProfile(base, randomSpec(7, 3000));
  chmodSync(`${base}.hpd`, 0o600);
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, indexPath(base));
  const r = await snapshotBytes(base, true);
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the file the symlink pointed to is untouched');
  t.ok(r.notes.some((n) => /symbolic link|rebuilding/.test(n)), `the link is not read as an index (${r.notes.join('; ')})`);
  t.ok(lstatSync(indexPath(base)).isFile(), 'BASE.hpi is now a regular file');
  t.equal(statSync(indexPath(base)).mode & 0o777, 0o600, 'with the profile mode');
  // A second read trusts it.
  const header = (await openProfile(base)).header;
  const loaded = await loadIndex(base, header, { minBytes: 0 });
  t.equal(loaded?.origin, 'file');
});
