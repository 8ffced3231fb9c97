// Child process of the benchmark for seeking: `node bench/seek.js build BASE` builds (or
// validates) the index; `node bench/seek.js at BASE T|peak|end` answers a snapshot through it,
// as hp-snapshot --at does, and prints one JSON line (what it found, how much it decoded).

import { liveHeapAtIndexed, loadIndex } from '../dist/model/checkpoints.js';
import { openProfile } from '../dist/format/profile.js';
import { groupLiveHeap } from '../dist/model/sites.js';

const [cmd, base, when] = process.argv.slice(2);
const t0 = performance.now();
if (cmd === 'build') {
  const p = await openProfile(base);
  const header = p.header;
  await p.close();
  const r = await loadIndex(base, header, {});
  const idx = r.index;
  process.stdout.write(
    `${JSON.stringify({ origin: r.origin, blocks: idx.blockOffset.length, checkpoints: idx.checkpoints.length, events: idx.events, peakUs: idx.peakUs, lastUs: idx.lastUs, ms: performance.now() - t0 })}\n`,
  );
} else if (cmd === 'at') {
  const at = when === 'peak' || when === 'end' ? { kind: when } : { kind: 'time', us: Math.round(Number(when) * 1e6) };
  const r = await liveHeapAtIndexed(base, at, {}, { write: false, minBytes: 0 });
  if (!r) throw new Error('not indexable');
  const sites = groupLiveHeap(r.snapshot.heap, (id) => r.source.trace(id), 'trace');
  await r.source.close();
  const total = r.snapshot.heap.total();
  process.stdout.write(`${JSON.stringify({ at: r.snapshot.atUs / 1e6, bytes: Math.round(total.bytes), sites: sites.length, origin: r.indexOrigin, ms: performance.now() - t0 })}\n`);
} else {
  process.stderr.write('usage: node bench/seek.js build BASE | at BASE SECONDS|peak|end\n');
  process.exitCode = 2;
}
