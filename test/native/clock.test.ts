// The event clock (native/hook.c, "the event clock"): where the TSC times events, their times
// follow CLOCK_MONOTONIC as closely as a clock_gettime per event did. Bursts of sampled
// allocations separated by sleeps: each burst's events fall between the monotonic times read
// around it (up to the recording's head start and a margin), times never decrease, and the
// hook's own check (prediction against the clock at each reading) stays within its 0.2 ms bound.
// The same with HEAPPROF_NO_TSC, where every event reads the clock.

import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, readRecording, runPython, supportedPythons } from '../helpers/python.js';

const pythons = supportedPythons();
if (pythons.length === 0) t.plan(0, 'no CPython 3.9-3.13 found');

for (const py of pythons) {
  for (const noTsc of [false, true]) {
    t.test(`CPython ${py.version}${noTsc ? ', HEAPPROF_NO_TSC' : ''}: event times follow the monotonic clock`, async (t) => {
      const base = join(tmpDir(), 'clock');
      const r = runPython(py, [join(NATIVE_FIXTURES, 'clock.py'), base], { env: noTsc ? { HEAPPROF_NO_TSC: '1' } : {} });
      t.equal(r.code, 0, r.stderr);
      const bursts = [...r.stdout.matchAll(/^burst (\d+) (\d+) (\d+)$/gm)].map((m) => ({ a: Number(m[2]), b: Number(m[3]) }));
      t.equal(bursts.length, 8);
      const [used, mult, maxDev, readings] = /^clock (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(r.stdout)!.slice(1).map(Number);
      if (noTsc) t.equal(used, 0, 'the TSC is not used');
      else if (used) {
        t.ok(mult! > 0 && readings! >= 3, `a rate (${(mult! / 2 ** 32).toFixed(4)} ns a tick) from ${readings} readings`);
        t.ok(maxDev! <= 200_000, `prediction within 0.2 ms of the clock at every reading (largest ${maxDev} ns)`);
      } else t.comment('no invariant TSC here: events read the clock');
      const rec = await readRecording(base);
      t.same(rec.issues, []);
      const ours = rec.events.filter((e) => e.op === 'alloc' && e.size === 183);
      t.equal(ours.length, 8 * 2000, 'every burst allocation sampled');
      let back = 0;
      for (let i = 1; i < rec.events.length; i++) if (rec.events[i]!.timeUs < rec.events[i - 1]!.timeUs) back++;
      t.equal(back, 0, 'times never decrease');
      // The profile's zero is taken inside heapprof.start, the script's t0 just after it: event
      // time = script time + head, 0 <= head. The head is the same for every burst, so each
      // burst's events must lie within [a, b] shifted by one common head, to within 1 ms.
      const heads: Array<[number, number]> = [];
      for (let k = 0; k < 8; k++) {
        const ev = ours.slice(k * 2000, (k + 1) * 2000);
        const first = ev[0]!.timeUs;
        const last = ev[ev.length - 1]!.timeUs;
        heads.push([first - bursts[k]!.a, last - bursts[k]!.b]);
        t.ok(last - first <= bursts[k]!.b - bursts[k]!.a + 1000, `burst ${k}: spans ${last - first} µs of ${bursts[k]!.b - bursts[k]!.a}`);
      }
      const lo = Math.max(...heads.map((h) => h[1])) - 1000; // head >= last - b for every burst
      const hi = Math.min(...heads.map((h) => h[0])) + 1000; // head <= first - a for every burst
      t.ok(lo <= hi, `one head start fits every burst (${lo}..${hi} µs)`);
    });
  }
}
