// A profile that is still being written: readable up to its last flushed block, incomplete
// until the END marker; with follow, the reader waits for new blocks (and new traces in the
// .hpm) until the recorder ends.

import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { HpxWriter } from '../../lib/format/hpx.js';
import { openProfile } from '../../lib/format/profile.js';
import { readAll, tmpDir } from '../helpers/profiles.js';

const trace = (id: number) => ({ id, frames: [{ function: `f${id}`, file: 'live.py', line: id }], dropped: 0 });

t.test('reads what was flushed, then follows to the end marker', async (t) => {
  const dir = tmpDir();
  const base = join(dir, 'live');
  const hpm = await open(`${base}.hpm`, 'w');
  const hpd = await open(`${base}.hpd`, 'w');
  const w = new HpxWriter({
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    writeHpm: async (c) => void (await hpm.write(c)),
    writeHpd: async (c) => void (await hpd.write(c)),
  });
  w.defineTrace(trace(1));
  for (let i = 0; i < 10; i++) w.event('alloc', i * 100, 1, 64);
  await w.close();

  const partial = await readAll(base);
  t.equal(partial.events.length, 10);
  t.equal(partial.complete, false);
  t.same(partial.issues, []);

  const p = await openProfile(base, { follow: true });
  const seen: number[] = [];
  const reading = (async () => {
    for await (const b of p.batches()) for (let i = 0; i < b.length; i++) seen.push(b.trace[i]!);
  })();
  // The recorder goes on: a new trace, defined in the .hpm before the block that uses it.
  await new Promise((r) => setTimeout(r, 300));
  w.defineTrace(trace(2));
  for (let i = 0; i < 5; i++) w.event('alloc', 2000 + i, 2, 128);
  await w.close();
  await new Promise((r) => setTimeout(r, 300));
  await w.end(5000);
  await reading;
  await hpm.close();
  await hpd.close();
  t.equal(p.complete, true);
  t.same(seen, [...Array(10).fill(1), ...Array(5).fill(2), 0]);
  t.same(p.trace(2)?.frames[0], { function: 'f2', file: 'live.py', line: 2 });
  await p.close();
});
