// The seek index (lib/format/index.ts, lib/model/checkpoints.ts): a snapshot or history through the index equals the one
// from a full decode, exactly (same slots, same floating-point sums), for every kind of moment;
// the index file is reused when valid and rebuilt when stale or corrupt.

import { appendFileSync, copyFileSync, existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { decodeIndex, encodeIndex, indexPath, type IndexOptions } from '../../lib/format/index.js';
import { buildIndex, liveHeapAtIndexed, loadIndex, openSeeked } from '../../lib/model/checkpoints.js';
import { openProfile } from '../../lib/format/profile.js';
import type { ReadIssue } from '../../lib/format/types.js';
import { HistoryBuilder } from '../../lib/model/history.js';
import type { LiveHeap } from '../../lib/model/live.js';
import { liveHeapAt, type SnapshotAt } from '../../lib/model/snapshot.js';
import { prng, randomSpec, tmpDir } from '../helpers/profiles.js';

/** Every live slot as trace -> exact column values, plus the totals. */
function heapState(h: LiveHeap): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (let s = 0; s < h.slots; s++) {
    if (h.sampled[s] === 0 && h.bytes[s] === 0) continue;
    out[`trace ${h.traceOfSlot[s]}`] = [h.bytes[s]!, h.bytesVar[s]!, h.count[s]!, h.countVar[s]!, h.sampled[s]!];
  }
  out.total = [h.totalBytes, h.totalBytesVar, h.totalCount, h.totalCountVar, h.totalSampled];
  return out;
}

async function full(base: string, at: SnapshotAt): Promise<{ state: Record<string, number[]>; atUs: number; lastUs: number; readToEnd: boolean; complete: boolean; issues: ReadIssue[] }> {
  const issues: ReadIssue[] = [];
  const src = await openProfile(base, { onIssue: (i) => issues.push(i) });
  try {
    const s = await liveHeapAt(src, at);
    return { state: heapState(s.heap), atUs: s.atUs, lastUs: s.lastUs, readToEnd: s.readToEnd, complete: src.complete, issues };
  } finally {
    await src.close();
  }
}

async function indexed(base: string, at: SnapshotAt, iopts: IndexOptions = {}) {
  const issues: ReadIssue[] = [];
  const r = await liveHeapAtIndexed(base, at, { onIssue: (i) => issues.push(i) }, { checkpointBytes: 3000, minBytes: 0, ...iopts });
  if (!r) throw new Error('not indexable');
  try {
    const s = r.snapshot;
    if (r.source.complete !== r.complete) throw new Error('source.complete disagrees');
    return { state: heapState(s.heap), atUs: s.atUs, lastUs: s.lastUs, readToEnd: s.readToEnd, complete: r.complete, issues, origin: r.indexOrigin };
  } finally {
    await r.source.close();
  }
}

/** Moments worth checking: before anything, every event time region, exact event times, past the end. */
function moments(spec: ProfileSpec, rnd: () => number): SnapshotAt[] {
  const times = spec.events.map((e) => e.timeUs);
  const last = times[times.length - 1] ?? 0;
  const out: SnapshotAt[] = [{ kind: 'end' }, { kind: 'peak' }, { kind: 'time', us: 0 }, { kind: 'time', us: last + 1e9 }];
  for (let i = 0; i < 12; i++) out.push({ kind: 'time', us: times[Math.floor(rnd() * times.length)]! });
  for (let i = 0; i < 12; i++) out.push({ kind: 'time', us: Math.floor(rnd() * (last + 10)) });
  return out;
}

async function sameAsFull(t: Tap.Test, base: string, at: SnapshotAt, label: string, iopts: IndexOptions = {}) {
  const a = await full(base, at);
  const b = await indexed(base, at, iopts);
  const tag = `${label} at ${at.kind === 'time' ? at.us : at.kind}`;
  t.same(b.state, a.state, `${tag}: same heap`);
  t.same([b.atUs, b.lastUs, b.readToEnd], [a.atUs, a.lastUs, a.readToEnd], `${tag}: same moment`);
  if (a.readToEnd) t.equal(b.complete, a.complete, `${tag}: same completeness`);
  // Damage found in the file (every such problem has its byte offset) is the same either way. The
  // whole-read checks without an offset (frees of blocks never allocated, lost events) are made
  // only by a read from the start (hpx(5) LIMITS): a seek skips the allocations they count.
  const located = (issues: Array<{ offset?: number }>) => new Set(issues.filter((i) => i.offset !== undefined).map((i) => i.offset));
  t.same(located(b.issues), located(a.issues), `${tag}: same problems reported`);
  return b;
}

t.test('snapshots through the index equal full decodes', async (t) => {
  const dir = tmpDir('hp-index-');
  const rnd = prng(11);
  for (let seed = 1; seed <= 8; seed++) {
    const base = join(dir, `p${seed}`);
    const spec = randomSpec(seed, 3000 + 500 * seed);
    spec.complete = seed % 3 !== 0;
    await writeProfile(base, spec);
    const probe = await openProfile(base);
    const loaded = await loadIndex(base, probe.header, { checkpointBytes: 3000 });
    await probe.close();
    t.ok(loaded && loaded.index.checkpoints.length >= 3, `seed ${seed}: several checkpoints (${loaded?.index.checkpoints.length})`);
    for (const at of moments(spec, rnd)) await sameAsFull(t, base, at, `seed ${seed}`);
  }
});

t.test('the index file is reused, and rebuilt when stale or corrupt', async (t) => {
  const dir = tmpDir('hp-index-');
  const base = join(dir, 'run');
  const spec = randomSpec(21, 5000);
  await writeProfile(base, spec);
  const at: SnapshotAt = { kind: 'time', us: spec.events[3000]!.timeUs };
  const notes: string[] = [];
  const onNote = (m: string) => notes.push(m);

  t.equal((await sameAsFull(t, base, at, 'first use', { onNote })).origin, 'built');
  t.ok(existsSync(indexPath(base)), 'BASE.hpi written');
  t.equal((await sameAsFull(t, base, at, 'second use', { onNote })).origin, 'file', 'valid index reused');
  t.same(notes, []);

  // Corrupt index: a flipped byte in the body, then a truncated file, then foreign bytes.
  const good = readFileSync(indexPath(base));
  const flipped = Buffer.from(good);
  flipped[good.length - 20] ^= 0x40;
  for (const [what, bytes] of [
    ['flipped', flipped],
    ['truncated', good.subarray(0, 100)],
    ['foreign', Buffer.from('hello, not an index')],
  ] as const) {
    writeFileSync(indexPath(base), bytes);
    notes.length = 0;
    t.equal((await sameAsFull(t, base, at, `${what} index`, { onNote })).origin, 'built', `${what} index rebuilt`);
    t.match(notes[0], /corrupt/, `${what}: said why`);
    t.equal((await indexed(base, at, { onNote })).origin, 'file', `${what}: the rebuilt index is written`);
  }

  // The profile grew (a live recorder appended blocks): stale by size.
  const longer = randomSpec(21, 5000);
  longer.complete = false;
  const hpdBefore = readFileSync(`${base}.hpd`);
  appendFileSync(`${base}.hpd`, hpdBefore.subarray(32 + hpdBefore.readUInt32LE(24), 32 + hpdBefore.readUInt32LE(24) + 200));
  notes.length = 0;
  t.equal((await sameAsFull(t, base, at, 'grown profile', { onNote })).origin, 'built');
  t.match(notes[0], /stale \(profile was \d+ bytes, is \d+\)/);

  // Same size, different content: a byte of the last block changed (its checksum now fails).
  writeFileSync(`${base}.hpd`, hpdBefore);
  await indexed(base, at); // index of the original
  const changed = Buffer.from(hpdBefore);
  changed[changed.length - 5] ^= 0x01;
  writeFileSync(`${base}.hpd`, changed);
  notes.length = 0;
  t.equal((await sameAsFull(t, base, { kind: 'end' }, 'rewritten profile', { onNote })).origin, 'built');
  t.match(notes[0], /stale \(profile changed\)/);

  // A different profile written over the same base: another profile id.
  await writeProfile(base, randomSpec(22, 4000));
  notes.length = 0;
  t.equal((await sameAsFull(t, base, { kind: 'peak' }, 'replaced profile', { onNote })).origin, 'built');
  t.match(notes[0], /belongs to another profile/);

  // Unwritable location: still works, in memory.
  notes.length = 0;
  const r = await indexed(base, at, { write: false, onNote });
  t.equal(r.origin, 'file');
});

t.test('a growing profile: the index is extended, to exactly what a fresh build gives', async (t) => {
  const dir = tmpDir('hp-index-');
  for (const [seed, complete] of [[71, true], [72, false]] as const) {
    const base = join(dir, `grow${seed}`);
    const spec = randomSpec(seed, 9000);
    spec.complete = complete;
    await writeProfile(base, spec);
    const full = readFileSync(`${base}.hpd`);
    const offs: number[] = [];
    for (let off = 32; off + 24 <= full.length; off += 24 + full.readUInt32LE(off + 4)) offs.push(off);
    const probe = await openProfile(base);
    const header = probe.header;
    await probe.close();
    const opts = { checkpointBytes: 3000, minBytes: 0 };
    // Stages as a recorder leaves them: whole blocks, then half of the next one.
    const cuts = [0.3, 0.55, 0.8].map((f) => offs[Math.floor(offs.length * f)]! + 30);
    let first = true;
    for (const cut of [...cuts, full.length]) {
      writeFileSync(`${base}.hpd`, full.subarray(0, cut));
      const notes: string[] = [];
      const r = await loadIndex(base, header, { ...opts, onNote: (m) => notes.push(m) });
      t.equal(r?.origin, first ? 'built' : 'extended', `cut at ${cut}: ${first ? 'built' : 'extended'} (${notes.join('; ')})`);
      first = false;
      const fresh = await buildIndex(base, header, opts);
      const { fingerprint } = decodeIndex(readFileSync(indexPath(base)));
      t.ok(encodeIndex(r!.index, fingerprint).equals(encodeIndex(fresh, fingerprint)), `cut at ${cut}: identical to a fresh build`);
      if (cut === full.length) t.equal(r!.index.tail === null, complete, 'a complete profile leaves no tail');
    }
    for (const at of [{ kind: 'end' }, { kind: 'peak' }, { kind: 'time', us: spec.events[4000]!.timeUs }] as SnapshotAt[]) {
      await sameAsFull(t, base, at, `grown ${seed}`);
    }
    // A profile rewritten below the old end is not "grown": rebuilt.
    const changed = Buffer.from(full);
    changed[cuts[0]! - 40] ^= 0x01;
    writeFileSync(`${base}.hpd`, changed.subarray(0, cuts[0]!));
    await loadIndex(base, header, opts);
    writeFileSync(`${base}.hpd`, full);
    const notes: string[] = [];
    t.equal((await loadIndex(base, header, { ...opts, onNote: (m) => notes.push(m) }))?.origin, 'built', 'changed prefix: rebuilt');
  }
});

t.test('damaged profiles: same blocks skipped, same problems reported', async (t) => {
  const dir = tmpDir('hp-index-');
  const rnd = prng(5);
  for (let trial = 0; trial < 6; trial++) {
    const base = join(dir, `d${trial}`);
    const spec = randomSpec(100 + trial, 4000);
    await writeProfile(base, spec);
    const hpd = readFileSync(`${base}.hpd`);
    for (let k = 0; k < 3; k++) {
      const at = 32 + Math.floor(rnd() * (hpd.length - 32));
      hpd[at] ^= 0x10;
    }
    if (trial % 2 === 1) writeFileSync(`${base}.hpd`, hpd.subarray(0, hpd.length - 37));
    else writeFileSync(`${base}.hpd`, hpd);
    for (const at of moments(spec, rnd).slice(0, 10)) await sameAsFull(t, base, at, `trial ${trial}`);
  }
});

t.test('strict mode: damage is an error through the index too', async (t) => {
  const dir = tmpDir('hp-index-');
  const base = join(dir, 's');
  await writeProfile(base, randomSpec(61, 6000));
  const hpd = readFileSync(`${base}.hpd`);
  hpd[Math.floor(hpd.length * 0.3)] ^= 0x20; // a block before most checkpoints
  writeFileSync(`${base}.hpd`, hpd);
  const errorOf = async (f: () => Promise<unknown>): Promise<string> => {
    try {
      await f();
    } catch (e) {
      return (e as Error).message;
    }
    return '(no error)';
  };
  const fullError = await errorOf(async () => {
    const src = await openProfile(base, { strict: true });
    try {
      await liveHeapAt(src, { kind: 'end' });
    } finally {
      await src.close();
    }
  });
  t.match(fullError, /at byte \d+: /);
  t.notMatch(fullError, /block \d+:/, 'blocks are named by offset, not by a count of blocks read');
  const idxError = await errorOf(async () => {
    const r = await liveHeapAtIndexed(base, { kind: 'end' }, { strict: true }, { checkpointBytes: 3000, minBytes: 0 });
    await r?.source.close();
  });
  t.equal(idxError, fullError, 'the same message');
});

t.test('history from a checkpoint equals history from the start', async (t) => {
  const dir = tmpDir('hp-index-');
  const base = join(dir, 'h');
  const spec = randomSpec(31, 8000);
  await writeProfile(base, spec);
  const last = spec.events[spec.events.length - 1]!.timeUs;
  for (const granularityUs of [200_000, null]) {
    for (const frac of [0.2, 0.5, 0.9]) {
      const fromUs = Math.floor(last * frac);
      const opts = { granularityUs, top: 3, groupBy: 'trace' as const, sites: [], fromUs };
      const src = await openProfile(base);
      const a = new HistoryBuilder(src.header.sampling, (id) => src.trace(id), opts);
      let fullEvents = 0;
      for await (const b of src.batches()) {
        fullEvents += b.length;
        a.consume(b);
      }
      a.finish();
      await src.close();

      const seeked = await openSeeked(base, fromUs, {}, { checkpointBytes: 3000, minBytes: 0 });
      if (!seeked) throw new Error('not indexable');
      t.ok(seeked.checkpoint, 'a checkpoint was used');
      const b = new HistoryBuilder(seeked.source.header.sampling, (id) => seeked.source.trace(id), opts);
      seeked.restore(b.heap);
      if (seeked.prelude) b.consume(seeked.prelude);
      let seekEvents = 0;
      for await (const batch of seeked.source.batches()) {
        seekEvents += batch.length;
        b.consume(batch);
      }
      b.finish();
      await seeked.source.close();
      t.ok(seekEvents < fullEvents, `granularity ${granularityUs}, from ${frac}: decoded ${seekEvents} of ${fullEvents} events`);
      t.ok(a.ready.length > 0);
      t.same(b.ready, a.ready, `granularity ${granularityUs}, from ${frac}: same buckets`);
    }
  }
});

t.test('heapprof 1.0.x profiles are not indexed', async (t) => {
  const dir = tmpDir('hp-index-');
  const fixture = fileURLToPath(new URL('../fixtures/format/v1', import.meta.url));
  copyFileSync(`${fixture}.hpm`, join(dir, 'v1.hpm'));
  copyFileSync(`${fixture}.hpd`, join(dir, 'v1.hpd'));
  t.equal(await liveHeapAtIndexed(join(dir, 'v1'), { kind: 'end' }, {}, { minBytes: 0 }), null);
  t.notOk(existsSync(join(dir, 'v1.hpi')));
});

t.test('small profiles are read directly, without an index file', async (t) => {
  const dir = tmpDir('hp-index-');
  const base = join(dir, 'small');
  await writeProfile(base, randomSpec(51, 500));
  t.equal(await liveHeapAtIndexed(base, { kind: 'end' }), null, 'below INDEX_MIN_BYTES');
  t.equal(await openSeeked(base, 0), null);
  t.notOk(existsSync(indexPath(base)), 'nothing written');
  t.equal(await liveHeapAtIndexed(join(dir, 'missing'), { kind: 'end' }, {}, { minBytes: 0 }), null, 'missing profile: the caller reports it');
});

t.test('index layout round-trips and rejects inconsistency', async (t) => {
  const dir = tmpDir('hp-index-');
  const base = join(dir, 'x');
  await writeProfile(base, randomSpec(41, 3000));
  await indexed(base, { kind: 'end' });
  const buf = readFileSync(indexPath(base));
  const { index } = decodeIndex(buf);
  t.ok(index.blockOffset.length > 1);
  t.ok(index.complete);
  t.ok(index.monotone);
  for (let i = 1; i < index.blockOffset.length; i++) if (!(index.blockOffset[i]! > index.blockOffset[i - 1]!)) t.fail('block offsets increase');
  t.throws(() => decodeIndex(buf.subarray(0, buf.length - 8)), /does not match the file/);
  truncateSync(indexPath(base), 10);
  t.throws(() => decodeIndex(readFileSync(indexPath(base))), /truncated index header/);
});

t.test('through the index too, a profile whose .hpm ends in a cut block is not complete and says so', async (t) => {
  const base = join(tmpDir(), 'cut');
  const events: ProfileSpec['events'] = Array.from({ length: 300 }, (_, i) => ({ op: 'alloc' as const, timeUs: i * 1000, trace: 1, size: 64 + i }));
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 1 }], dropped: 0 }],
    events,
    eventsPerBlock: 20,
    histogram: [{ count: 300, bytes: 64 * 300 + 44850, sampled: 300 }],
  });
  const hpm = readFileSync(`${base}.hpm`);
  let last = 32 + hpm.readUInt32LE(24);
  while (last + 24 + hpm.readUInt32LE(last + 4) < hpm.length) last += 24 + hpm.readUInt32LE(last + 4);
  truncateSync(`${base}.hpm`, last + 24);
  for (const at of [{ kind: 'end' }, { kind: 'peak' }, { kind: 'time', us: 150_000 }] as SnapshotAt[]) {
    const issues: string[] = [];
    const r = await liveHeapAtIndexed(base, at, { onIssue: (i) => issues.push(`${i.file}: ${i.message}`) }, { minBytes: 0, checkpointBytes: 500 });
    t.ok(r, at.kind);
    t.equal(r?.complete, false, `${at.kind}: not complete`);
    t.equal(r?.source.complete, false, `${at.kind}: its source says so too`);
    t.same(issues, [`${base}.hpm: byte ${last}: truncated last block (recorder still running or crashed); read everything before it`]);
    await r?.source.close();
  }
});
