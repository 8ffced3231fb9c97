// Bad input of every kind reaching the decoder: each gives one exact, located message, never
// a crash or a hang, and recoverable damage keeps everything that can be kept.

import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { HpError } from '../../lib/cli.js';
import { ByteSink } from '../../lib/format/bytes.js';
import { encodeBlock, encodeProfile, writeProfile, type ProfileSpec } from '../../lib/format/hpx.js';
import { blockOffsets, readAll, tmpDir } from '../helpers/profiles.js';

const trace = (id: number) => ({ id, frames: [{ function: `f${id}`, file: 'app.py', line: id }], dropped: 0 });

function spec(nEvents: number, eventsPerBlock = 10): ProfileSpec {
  const events: ProfileSpec['events'] = [];
  for (let i = 0; i < nEvents; i++) events.push({ op: 'alloc', timeUs: i * 1000, trace: 1 + (i % 3), size: 100 + i });
  return { header: { sampling: { kind: 'table', bounds: [], probs: [] } }, traces: [trace(1), trace(2), trace(3)], events, eventsPerBlock };
}

async function errorOf(base: string, strict = false): Promise<string> {
  try {
    await readAll(base, { strict });
  } catch (e) {
    if (e instanceof HpError) return e.message;
    throw e;
  }
  return '(no error)';
}

t.test('missing files', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  t.equal(await errorOf(base), `${base}.hpm: no such file (a profile is BASE.hpm + BASE.hpd)`);
  await writeProfile(base, spec(5));
  const { unlinkSync } = await import('node:fs');
  unlinkSync(`${base}.hpd`);
  const { writeFileSync: write } = await import('node:fs');
  write(join(dir, 'notes.txt'), 'hello\n');
  t.equal(await errorOf(join(dir, 'notes.txt')), `${join(dir, 'notes.txt')}: not a heapprof profile or events NDJSON (name a profile by its base: BASE for BASE.hpm + BASE.hpd)`);
  t.equal(await errorOf(`${base}.hpm`), `${base}.hpd: no such file (the .hpm has no matching .hpd)`);
});

t.test('empty, foreign, swapped and future-version files', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  await writeProfile(base, spec(5));
  const good = { hpm: readFileSync(`${base}.hpm`), hpd: readFileSync(`${base}.hpd`) };

  writeFileSync(`${base}.hpm`, '');
  t.equal(await errorOf(base), `${base}.hpm: empty file (no header)`);

  writeFileSync(`${base}.hpm`, good.hpm);
  writeFileSync(`${base}.hpd`, '');
  t.equal(await errorOf(base), `${base}.hpd: empty file (no header)`);

  writeFileSync(`${base}.hpd`, '{"type":"event"}\n');
  t.equal(await errorOf(base), `${base}.hpd: not a heapprof profile (bad magic at byte 0)`);

  writeFileSync(`${base}.hpd`, good.hpm);
  t.equal(await errorOf(base), `${base}.hpd: this is a .hpm file, not a .hpd`);

  const v3 = Buffer.from(good.hpd);
  v3.writeUInt16LE(3, 4);
  writeFileSync(`${base}.hpd`, v3);
  t.equal(await errorOf(base), `${base}.hpd: unsupported format version 3 at byte 4 (this heapprof reads 1 and 2)`);

  writeFileSync(`${base}.hpd`, good.hpd.subarray(0, 20));
  t.equal(await errorOf(base), `${base}.hpd: truncated header (20 of 32 bytes)`);

  const badHeader = Buffer.from(good.hpm);
  badHeader[40] = badHeader[40]! ^ 0xff;
  writeFileSync(`${base}.hpm`, badHeader);
  writeFileSync(`${base}.hpd`, good.hpd);
  t.equal(await errorOf(base), `${base}.hpm: header checksum mismatch at byte 28`);

  const absurd = Buffer.from(good.hpm);
  absurd.writeUInt32LE(0xfffffff0, 24);
  writeFileSync(`${base}.hpm`, absurd);
  t.equal(await errorOf(base), `${base}.hpm: header body length 4294967280 at byte 24 is absurd`);
});

t.test('files from two different profiles', async (t) => {
  const dir = tmpDir();
  await writeProfile(join(dir, 'a'), spec(5));
  await writeProfile(join(dir, 'b'), spec(5));
  copyFileSync(join(dir, 'b.hpd'), join(dir, 'a.hpd'));
  t.equal(await errorOf(join(dir, 'a')), `${join(dir, 'a.hpd')}: belongs to a different profile than ${join(dir, 'a.hpm')} (profile ids differ at byte 8)`);
});

t.test('truncated last block: everything before it, one warning with the offset', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  await writeProfile(base, spec(100, 10));
  const hpd = readFileSync(`${base}.hpd`);
  const offsets = blockOffsets(hpd);
  const last = offsets[offsets.length - 2]!; // the block holding events 90..99 (the last holds END)
  truncateSync(`${base}.hpd`, last + 30);
  const back = await readAll(base);
  t.equal(back.events.length, 90);
  t.equal(back.complete, false);
  t.same(
    back.issues.map((i) => `${i.file}: ${i.message}`),
    [`${base}.hpd: byte ${last}: truncated last block (recorder still running or crashed); read everything before it`],
  );
  t.equal(await errorOf(base, true), `${base}.hpd at byte ${last}: truncated last block (recorder still running or crashed); read everything before it`);
});

t.test('truncated last .hpm block: reported with its offset, the profile not complete; --strict fails', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  await writeProfile(base, { ...spec(30, 10), histogram: [{ count: 30, bytes: 3435, sampled: 30 }] });
  const offsets = blockOffsets(readFileSync(`${base}.hpm`));
  t.ok(offsets.length >= 2, 'the .hpm has a block after the traces');
  const last = offsets[offsets.length - 1]!;
  truncateSync(`${base}.hpm`, last + 25);
  const back = await readAll(base);
  t.equal(back.events.filter((e) => e.op === 'alloc').length, 30, 'every event is still read');
  t.equal(back.complete, false, 'an END in the .hpd does not make a cut .hpm whole');
  t.same(
    back.issues.map((i) => `${i.file}: ${i.message}`),
    [`${base}.hpm: byte ${last}: truncated last block (recorder still running or crashed); read everything before it`],
  );
  t.equal(await errorOf(base, true), `${base}.hpm at byte ${last}: truncated last block (recorder still running or crashed); read everything before it`);
});

t.test('corrupt block in the middle: skipped with a warning, the rest still read; --strict fails', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  await writeProfile(base, spec(100, 10));
  const hpd = Buffer.from(readFileSync(`${base}.hpd`));
  const offsets = blockOffsets(hpd);
  const victim = offsets[3]!;
  hpd[victim + 30] = hpd[victim + 30]! ^ 0x55; // payload byte: checksum no longer matches
  writeFileSync(`${base}.hpd`, hpd);
  const back = await readAll(base);
  t.equal(back.events.filter((e) => e.op === 'alloc').length, 90);
  t.equal(back.complete, true);
  t.same(back.issues.map((i) => i.message), [`byte ${victim}: bad checksum; skipped to byte ${offsets[4]}`]);
  t.equal(await errorOf(base, true), `${base}.hpd at byte ${victim}: bad checksum; skipped to byte ${offsets[4]}`);
  // The offset is the block's only name: a read starting elsewhere (a seek, an index checkpoint)
  // reports it in the same words, where a count of blocks read said "block 3" here, "block 1" there.
  const seeked = await readAll(base, { startOffset: offsets[2]! });
  t.same(seeked.issues.map((i) => i.message), back.issues.map((i) => i.message), 'the same words from a read starting at block 2');

  // A destroyed block header (magic and length) is found past too.
  const hpd2 = Buffer.from(readFileSync(`${base}.hpd`));
  hpd2.fill(0xee, offsets[5]!, offsets[5]! + 8);
  writeFileSync(`${base}.hpd`, hpd2);
  const back2 = await readAll(base);
  t.equal(back2.events.filter((e) => e.op === 'alloc').length, 80);
  t.equal(back2.issues[1]?.message, `byte ${offsets[5]}: bad block magic; skipped to byte ${offsets[6]}`);
});

t.test('absurd lengths and counts inside checksummed blocks never exhaust memory', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  const { hpm, hpd } = await encodeProfile(spec(10, 100));
  writeFileSync(`${base}.hpm`, hpm);
  // A block claiming 4 billion events in 3 bytes, with a valid checksum.
  const liar = encodeBlock(Buffer.from([0x04, 0x00, 0x01]), 0xffffffff, 0);
  // A block whose varint never ends.
  const runOn = encodeBlock(Buffer.alloc(12, 0xff), 1, 0);
  // A block using trace 77, never defined.
  const undef = new ByteSink();
  undef.varint(77 * 4);
  undef.varint(0);
  undef.varint(64);
  const undefinedTrace = encodeBlock(undef.view(), 1, 5);
  const headerEnd = 32;
  writeFileSync(`${base}.hpd`, Buffer.concat([hpd.subarray(0, headerEnd), liar, runOn, undefinedTrace, hpd.subarray(headerEnd)]));
  const back = await readAll(base);
  t.equal(back.events.filter((e) => e.op === 'alloc').length, 11);
  t.same(back.issues.map((i) => i.message), [
    'byte 40: block says 4294967295 events in 3 bytes (in the block at byte 32)',
    'byte 93: bad varint (in the block at byte 59)',
    `byte 95: event uses undefined trace 77 (${base}.hpm defines none such: cut short or damaged?); such events are shown as unknown sites`,
    // The injected blocks are at time 5, the original ones start at 0 (issue 20 item 8).
    'byte 123: time goes back from 5 to 0 µs (blocks duplicated or out of order)',
  ]);
  t.equal(back.traces.get(77)?.frames[0]?.function, '[undefined trace 77]');
  t.equal(await errorOf(base, true), `${base}.hpd at byte 40: block says 4294967295 events in 3 bytes (in the block at byte 32)`);

  // A block header claiming more than 64 MiB is corrupt, not an allocation request.
  const huge = Buffer.from(liar);
  huge.writeUInt32LE(0x7fffffff, 4);
  writeFileSync(`${base}.hpd`, Buffer.concat([hpd.subarray(0, headerEnd), huge, hpd.subarray(headerEnd)]));
  const back2 = await readAll(base);
  t.equal(back2.events.filter((e) => e.op === 'alloc').length, 10);
  t.match(back2.issues[0]?.message, /^byte 32: block length 2147483647 exceeds the 64 MiB limit; skipped to byte 59$/);
});

t.test('a trace record claiming millions of frames is rejected, not allocated', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'run');
  await writeProfile(base, spec(3));
  const hpm = readFileSync(`${base}.hpm`);
  const rec = new ByteSink();
  const body = new ByteSink();
  body.varint(9);
  body.varint(0);
  body.varint(50_000_000);
  rec.varint(3);
  rec.varint(body.length);
  rec.bytes(body.view());
  writeFileSync(`${base}.hpm`, Buffer.concat([hpm, encodeBlock(rec.view(), 1, 0)]));
  const back = await readAll(base);
  t.equal(back.events.length, 4);
  t.match(back.issues[0]?.message, /^byte \d+: trace 9 claims 50000000 frames in 0 bytes \(in the block at byte \d+\)$/);
});
