// Deflated .hpm blocks (man/hpx.5, BLOCKS: .hpm header flag 1): the same header, traces, marks
// and histogram as plain blocks, in fewer bytes; a block that is not valid deflate, or inflates
// past the 64 MiB block limit, is a corrupt block (reported, skipped), never a crash or a
// 4 GB buffer.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import t from 'tap';
import { ByteSink } from '../../lib/format/bytes.js';
import { encodeBlock, REC, writeProfile } from '../../lib/format/hpx.js';
import { openProfile } from '../../lib/format/profile.js';
import { blockOffsets, randomSpec, readAll, tmpDir } from '../helpers/profiles.js';

t.test('deflated and plain .hpm read the same', async (t) => {
  const dir = tmpDir('hp-deflate-');
  for (const seed of [2, 11, 40]) {
    const spec = randomSpec(seed, 3000);
    spec.histogram = [{ count: 5, bytes: 9, sampled: 1 }];
    spec.profileId = Buffer.alloc(16, seed);
    const plain = join(dir, `p${seed}`);
    const packed = join(dir, `d${seed}`);
    await writeProfile(plain, { ...spec, eventsPerBlock: 400 });
    await writeProfile(packed, { ...spec, eventsPerBlock: 400, deflateHpm: true });
    t.equal(readFileSync(`${packed}.hpm`).readUInt16LE(6), 1, `seed ${seed}: the .hpm says its blocks are deflated`);
    const a = await readAll(plain, { strict: true });
    const b = await readAll(packed, { strict: true });
    t.same(b.header, a.header, `seed ${seed}: same header`);
    t.same([...b.traces.values()], [...a.traces.values()], `seed ${seed}: same ${a.traces.size} traces`);
    t.same(b.events, a.events, `seed ${seed}: same events`);
    const p = await openProfile(packed, {});
    t.same(p.histogram, [{ count: 5, bytes: 9, sampled: 1 }], `seed ${seed}: the histogram record`);
    await p.close();
    const sa = statSync(`${plain}.hpm`).size;
    const sb = statSync(`${packed}.hpm`).size;
    t.ok(sb < sa * 0.8, `seed ${seed}: .hpm ${sb} bytes against ${sa}`);
  }
});

t.test('a deflated block that is damaged inside a valid checksum is skipped with a located issue', async (t) => {
  const dir = tmpDir('hp-deflate-');
  const base = join(dir, 'x');
  const spec = randomSpec(5, 500);
  await writeProfile(base, { ...spec, deflateHpm: true });
  const good = readFileSync(`${base}.hpm`);
  const first = blockOffsets(good)[0]!;
  const traces = (await readAll(base, { strict: true })).traces.size;
  // Records appended as one more block: a STRING record, deflated, for the valid case.
  const rec = (type: number, body: Buffer): Buffer => {
    const s = new ByteSink(body.length + 8);
    s.varint(type);
    s.varint(body.length);
    s.bytes(body);
    return Buffer.from(s.view());
  };
  const cases: Array<[string, Buffer, RegExp | null]> = [
    ['not deflate at all', Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), /deflated records/],
    ['deflate cut short', deflateRawSync(Buffer.alloc(5000, 7)).subarray(0, 10), /deflated records/],
    // 80 MiB of zeros deflate to ~80 KB: inflating must stop at the 64 MiB limit.
    ['a bomb past 64 MiB', deflateRawSync(Buffer.alloc(80 * 1024 * 1024)), /deflated records: inflates past the 64 MiB limit/],
    ['a valid extra block', deflateRawSync(rec(REC.STRING, Buffer.from('\u0063hello'))), null],
  ];
  for (const [what, payload, error] of cases) {
    writeFileSync(`${base}.hpm`, Buffer.concat([good, encodeBlock(payload, 1, 5)]));
    const r = await readAll(base);
    const issues = r.issues.filter((i) => i.file.endsWith('.hpm'));
    if (error) {
      t.equal(issues.length, 1, `${what}: one issue`);
      t.match(issues[0]?.message ?? '', error, `${what}: ${issues[0]?.message}`);
      t.equal(issues[0]?.offset, good.length + 24, `${what}: located at the block's payload`);
    } else t.same(issues, [], `${what}: no issue`);
    t.equal(r.traces.size, traces, `${what}: every trace of the good blocks`);
  }
  t.ok(first > 32, 'the .hpm had a header body');
});
