// Flipped bits in profile headers (issue 18: "38 header bit flips read without any warning").
// hpx v2: every bit of both 32-byte file headers and of the .hpm header body is checked (magic,
// version, flags, the CRC over the rest), so every single flip is refused. heapprof 1.0.x has
// no checksum: its header fields are range-checked, which catches every flip in the high bits
// of the start time, the nanoseconds, the range count and the bounds' order; no flip may give
// an internal error.

import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { HpError } from '../../lib/cli.js';
import { writeProfile } from '../../lib/format/hpx.js';
import { openProfile } from '../../lib/format/profile.js';
import { tmpDir } from '../helpers/profiles.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/format/', import.meta.url));

/** 'error' (a clean HpError), 'warned' (read with issues), or 'silent'. */
async function outcome(base: string): Promise<string> {
  let issues = 0;
  try {
    const p = await openProfile(base, { onIssue: () => void issues++ });
    for await (const _ of p.batches()) void _;
    await p.close();
  } catch (e) {
    if (e instanceof HpError) return 'error';
    throw e;
  }
  return issues > 0 ? 'warned' : 'silent';
}

t.test('hpx v2: every bit flip in either file header is detected', async (t) => {
  const dir = tmpDir('hp-flip2-');
  const base = join(dir, 'p');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [1024], probs: [0.5] }, argv: ['x.py'], pythonVersion: '3.12' },
    traces: [{ id: 1, frames: [{ function: 'f', file: 'x.py', line: 1 }], dropped: 0 }],
    events: [{ op: 'alloc', timeUs: 10, trace: 1, size: 100 }],
  });
  const hpm = readFileSync(`${base}.hpm`);
  const hpd = readFileSync(`${base}.hpd`);
  const bodyLength = hpm.readUInt32LE(24);
  const silent: string[] = [];
  for (const [ext, buf, bytes] of [['hpm', hpm, 32 + bodyLength], ['hpd', hpd, 32]] as const) {
    for (let byte = 0; byte < bytes; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const m = Buffer.from(buf);
        m[byte]! ^= 1 << bit;
        const b = join(dir, 'm');
        writeFileSync(`${b}.${ext}`, m);
        writeFileSync(`${b}.${ext === 'hpm' ? 'hpd' : 'hpm'}`, ext === 'hpm' ? hpd : hpm);
        if ((await outcome(b)) === 'silent') silent.push(`${ext} byte ${byte} bit ${bit}`);
      }
    }
  }
  t.same(silent, [], `no flip in ${32 + bodyLength} + 32 header bytes reads silently`);
});

t.test('heapprof 1.0.x: header fields are range-checked', async (t) => {
  const dir = tmpDir('hp-flip1-');
  const hpm = readFileSync(join(FIXTURES, 'v1.hpm'));
  copyFileSync(join(FIXTURES, 'v1.hpd'), join(dir, 'm.hpd'));
  const n = hpm[20]!;
  t.ok(n > 1 && n < 64, `fixture has ${n} ranges`);
  const headerBytes = 21 + 12 * n;
  const silent = new Set<string>();
  let detected = 0;
  for (let byte = 4; byte < headerBytes; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const m = Buffer.from(hpm);
      m[byte]! ^= 1 << bit;
      writeFileSync(join(dir, 'm.hpm'), m);
      const o = await outcome(join(dir, 'm'));
      if (o === 'silent') silent.add(`${byte}:${bit}`);
      else detected++;
    }
  }
  // Must be caught: start seconds bits 33..63 (bytes 4..6 and bits 1..7 of byte 7), every
  // nanosecond bit from 30 up (bytes 12..15 and bits 6, 7 of byte 16), the range count's high
  // bits, and the high 16 bits of every bound.
  const must: string[] = [];
  for (let byte = 4; byte < 7; byte++) for (let bit = 0; bit < 8; bit++) must.push(`${byte}:${bit}`);
  must.push('7:1', '7:2', '7:3', '7:4', '7:5', '7:6', '7:7');
  for (let byte = 12; byte < 16; byte++) for (let bit = 0; bit < 8; bit++) must.push(`${byte}:${bit}`);
  must.push('16:6', '16:7', '20:6');
  for (let i = 0; i < n; i++) for (let byte = 21 + 12 * i; byte < 23 + 12 * i; byte++) for (let bit = 0; bit < 8; bit++) must.push(`${byte}:${bit}`);
  t.same(must.filter((k) => silent.has(k)), [], 'every flip of a checked bit is detected');
  t.ok(detected >= must.length, `${detected} of ${(headerBytes - 4) * 8} flips detected`);
});
