// The benchmark's fast profile generator writes valid hpx v2 profiles: every event it counts
// is read back by the TS reader (and by the C decoder, identically, when it is built), with no
// problem reported, in time order, with frees matching earlier allocations.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import * as hpx from '../../lib/format/hpx.js';
import { OP_ALLOC, OP_END, OP_FREE, OP_RSS } from '../../lib/format/source.js';
import { openProfile } from '../../lib/format/profile.js';
import { nativeDecoder } from '../../lib/native.js';
import type { ReadIssue } from '../../lib/format/types.js';
import { tmpDir } from '../helpers/profiles.js';
// @ts-ignore: a plain JS module of the benchmark harness (no types)
import { generateProfile } from '../../bench/gen.js';

t.test('generated profiles read back whole', async (t) => {
  const dir = tmpDir('hp-gen-');
  for (const [seed, complete] of [[1, true], [2, false]] as const) {
    const base = join(dir, `g${seed}`);
    const gen = await generateProfile(base, { targetBytes: 3_000_000, traces: 500, seed, complete, hpx });
    t.ok(gen.hpdBytes >= 3_000_000 && gen.hpdBytes < 3_400_000, `size near the target (${gen.hpdBytes})`);
    const issues: ReadIssue[] = [];
    const p = await openProfile(base, { onIssue: (i) => issues.push(i) });
    let n = 0;
    let prev = 0;
    let ordered = true;
    const live = new Map<string, number>();
    let unmatched = 0;
    const ops = [0, 0, 0, 0, 0];
    const times: number[] = [];
    for await (const b of p.batches()) {
      for (let i = 0; i < b.length; i++) {
        const tu = b.timeUs[i]!;
        if (tu < prev) ordered = false;
        prev = tu;
        const op = b.op[i]!;
        ops[op]!++;
        if (n < 2000) times.push(tu);
        if (op === OP_ALLOC || op === OP_FREE) {
          const key = `${b.trace[i]}:${b.size[i]}`;
          const c = live.get(key) ?? 0;
          if (op === OP_ALLOC) live.set(key, c + 1);
          else if (c === 0) unmatched++;
          else live.set(key, c - 1);
          if (!p.trace(b.trace[i]!)) t.fail(`trace ${b.trace[i]} undefined`);
        }
        n++;
      }
    }
    await p.close();
    t.equal(n, gen.events, 'every event read');
    t.same(issues, [], 'no problem reported');
    t.equal(p.complete, complete, 'END marker as asked');
    t.ok(ordered, 'times never decrease');
    t.equal(unmatched, 0, 'every free matches a live allocation');
    t.ok(ops[OP_FREE]! > 0.3 * ops[OP_ALLOC]! && ops[OP_RSS]! > 0, `a realistic mix (${ops.join('/')})`);
    t.equal(ops[OP_END], complete ? 1 : 0);
    const perEvent = (gen.hpdBytes + gen.hpmBytes) / gen.events;
    t.ok(perEvent > 3 && perEvent < 7, `${perEvent.toFixed(2)} bytes per event`);
    const dec = nativeDecoder();
    if (dec) {
      const c = dec.decodeHpd(readFileSync(`${base}.hpd`));
      t.equal(c.length, n, 'C decoder reads the same number of events');
      t.same(Array.from(c.timeUs.subarray(0, times.length)), times, 'and the same times');
    }
  }
});
