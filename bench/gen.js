// Fast synthetic hpx v2 profile generator for the reading benchmarks: writes a .hpd of a
// chosen size (a gigabyte in seconds) with events encoded straight into block buffers, and the
// matching .hpm through HpxWriter. The event mix looks like a default-table recording: a few
// thousand traces of skewed popularity, sizes mostly 128 B..64 KiB, about as many frees as
// allocations, a slowly growing live set with one spike in the middle, RSS once a second.

import { openSync, writeSync, closeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { createHash } from 'node:crypto';

/** The codec (HpxWriter, encodeBlock, ...): the built one by default; tests pass lib/format/hpx.ts. */
let codec = null;

const BLOCK_BYTES = 256 * 1024;

/** xorshift32 state in a closure: small and fast enough for hundreds of millions of draws. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * Write BASE.hpm + BASE.hpd. Returns { events, hpdBytes, hpmBytes, lastUs, traces }.
 * `targetBytes` is the .hpd size to reach (to within one block). `uniform`: allocate from every
 * trace in turn instead of a few hot ones (a profile with `traces` distinct traces in use).
 * `shape: 'stdlib'`: a CPython regression-test run recorded with every allocation sampled
 * (`--sample '{}'`), see stdlibTraces and writeEvents.
 */
export async function generateProfile(base, { targetBytes, traces = 3000, seed = 1, complete = true, hpx = null, uniform = false, shape = 'default' } = {}) {
  const stdlib = shape === 'stdlib';
  codec = hpx ?? codec ?? (await import('../dist/format/hpx.js'));
  const { HpxWriter, encodeFileHeader, HPD_MAGIC } = codec;
  // The same arguments give the same profile, id included (the id seeds the split of the
  // draws for --at peak, so a regenerated profile's peak is the same too).
  const profileId = createHash('sha256').update(JSON.stringify(['heapprof-bench', targetBytes, traces, seed, complete, uniform, shape])).digest().subarray(0, 16);
  const R = rng(seed);
  // .hpm: header and every trace up front (the recorder writes them before first use; up front is also valid).
  const hpmChunks = [];
  const w = new HpxWriter({
    header: {
      startTimeUs: Date.now() * 1000,
      pid: 4242,
      ppid: 1,
      pythonVersion: '3.12.1 (synthetic)',
      argv: ['bench-synthetic.py'],
      sampling: stdlib ? { kind: 'table', bounds: [], probs: [] } : { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] },
    },
    writeHpm: (c) => void hpmChunks.push(Buffer.from(c)),
    writeHpd: () => {},
    profileId,
  });
  const files = ['app/main.py', 'app/models.py', 'lib/json/decoder.py', 'lib/re/_parser.py', 'app/views.py', 'app/cache.py'];
  if (stdlib) for (const t of stdlibTraces(traces, R)) w.defineTrace(t);
  else for (let id = 1; id <= traces; id++) {
    const depth = 3 + (R() % 12);
    const frames = [];
    for (let i = 0; i < depth; i++) {
      const f = (id * 7 + i * 13) % 97;
      frames.push({ function: `func_${f}`, file: files[f % files.length], line: 10 + ((id + i * 31) % 900) });
    }
    w.defineTrace({ id, frames, dropped: 0 });
  }
  if (complete) await w.end();
  else await w.close();
  const hpm = Buffer.concat(hpmChunks);
  const hpmFd = openSync(`${base}.hpm`, 'w', 0o644);
  writeSync(hpmFd, hpm);
  closeSync(hpmFd);

  const fd = openSync(`${base}.hpd`, 'w', 0o644);
  let written = 0;
  const head = encodeFileHeader(HPD_MAGIC, profileId, Buffer.alloc(0));
  writeSync(fd, head);
  written += head.length;
  const r = writeEvents(fd, targetBytes - written, traces, seed, complete, uniform, stdlib);
  closeSync(fd);
  const events = r.events;
  const t = r.lastUs;
  written += r.bytes;
  return { events, hpdBytes: written, hpmBytes: hpm.length, lastUs: t, traces };
}

/** Fill in the block header of block[0..end) (man/hpx.5 BLOCKS) and write it; returns its size. */
function frameAndWrite(fd, block, end, count, timeUs) {
  block.writeUInt32LE(end - 24, 4);
  block.writeUInt32LE(count, 8);
  block.writeUInt32LE(timeUs % 4294967296, 12);
  block.writeUInt32LE(Math.floor(timeUs / 4294967296), 16);
  block.writeUInt32LE(crc32(block.subarray(24, end), crc32(block.subarray(4, 20))), 20);
  writeSync(fd, block, 0, end);
  return end;
}

/**
 * The hot loop, kept in a plain synchronous function with local state only (no closures over
 * mutated variables, integer arithmetic) so V8 optimizes it: ~30M events/s. Both shapes run
 * it; `stdlib` differs only in the time step, the live target, which block to free and the
 * trace and size drawn. The stdlib shape records everything: the run goes through the test
 * modules in order; 80% of allocations come from the current module's traces (skewed), 20%
 * from all traces (skewed: shared machinery), sizes mostly small (objects, strings, dicts: 70%
 * 16..111 B, 25% 112..1135 B, 5% 1 KiB..65 KiB); most objects die young (a free takes one of
 * the 64 newest live objects 90% of the time, any live one otherwise); the live set holds
 * steady around 400,000 objects with a rise in every module's second half (its fixtures), so
 * frees follow allocations closely: steady churn, every trace used, most of them live at some
 * point.
 */
function writeEvents(fd, targetBytes, traces, seed, complete, uniform, stdlib) {
  // Live sampled allocations (trace, size), swap-removed when freed.
  const CAP = 1 << 21;
  const liveTrace = new Int32Array(CAP);
  const liveSize = new Int32Array(CAP);
  let live = 0;
  // One block buffer, framed in place (header at 0..23, payload from 24): no copy per block.
  const block = Buffer.alloc(24 + BLOCK_BYTES + 64);
  block.write('HBLK', 0, 'latin1');
  const payload = block;
  const HEAD = 24;
  let x = seed >>> 0 || 1; // xorshift32
  let t = 0;
  let nextRssUs = 1e6;
  let events = 0;
  let written = 0;
  const totalEvents = targetBytes / 5.2; // about 5.2 bytes per event with the default mix
  let pos = HEAD;
  let count = 0;
  let blockTime = 0;
  // Popularity: trace = 1 + floor(traces * u^3) (a few hot sites, a long tail).
  const hot = new Uint32Array(4096);
  for (let i = 0; i < hot.length; i++) {
    const u = i / hot.length;
    hot[i] = 1 + Math.min(traces - 1, Math.floor(traces * u * u * u));
  }
  // stdlib: the test module running owns traces moduleBase .. moduleBase + perModule.
  const perModule = Math.max(1, Math.floor(traces / STDLIB_MODULES));
  let moduleBase = 0;
  let target = stdlib ? 400000 : 200000;
  while (written + pos < targetBytes) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = x & 0x7fffffff;
    // 0..63 µs: one varint byte; record-everything (stdlib): an event every few µs.
    let dt = stdlib ? r & 0x7 : r & 0x3f;
    t += dt;
    if (count === 0) {
      blockTime = t; // the first event of a block is at the block time
      dt = 0;
      if (stdlib) {
        // Modules one after the other, each holding more in its second half.
        const phase = Math.min(0.999999, written / targetBytes);
        const m = Math.floor(phase * STDLIB_MODULES);
        moduleBase = m * perModule;
        const inModule = phase * STDLIB_MODULES - m;
        target = 400000 + (inModule > 0.5 ? 200000 : 0);
      } else {
        // Target live size, per block: slow growth, a spike in the middle fifth.
        const phase = events / totalEvents;
        target = 200000 + Math.floor(600000 * phase) + (phase > 0.4 && phase < 0.6 ? 800000 : 0);
      }
    }
    let h;
    let v;
    let ext = false;
    if (t >= nextRssUs) {
      ext = true;
      h = 3; // EXT RSS (type 0)
      v = stdlib ? 80000000 + live * 120 : 50000000 + live * 900; // < 2^31
      nextRssUs += 1e6;
    } else {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const u = x & 0x7fffffff;
      const freeBias = stdlib ? (live > target ? 560 : 440) : live > target ? 600 : 400; // per mille
      if (live > 0 && ((r >>> 8) % 1000) < freeBias) {
        // stdlib: mostly one of the 64 newest (short-lived test objects), else any.
        const j = u & 63;
        const k = stdlib && ((r >>> 20) & 1023) < 922 ? (j < live ? live - 1 - j : live - 1) : u % live;
        h = liveTrace[k] * 4 + 1;
        v = liveSize[k];
        live--;
        liveTrace[k] = liveTrace[live];
        liveSize[k] = liveSize[live];
      } else {
        let tr;
        if (stdlib) {
          // Mostly the running module's traces, else the shared runner/stdlib ones.
          const f = (u & 0xffff) / 65536;
          tr = ((u >>> 16) & 15) < 13 ? 1 + Math.min(traces - 1, moduleBase + Math.floor(perModule * f * f)) : 1 + Math.floor(traces * f * f * f);
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          const w = x & 0x7fffffff;
          const bucket = w % 20;
          v = bucket < 14 ? 16 + ((w >>> 8) % 96) : bucket < 19 ? 112 + ((w >>> 8) % 1024) : 1024 + ((w >>> 8) % 64512);
        } else {
          // `uniform` (the many-traces shape): every trace in turn, so all of them are used and live.
          tr = uniform ? 1 + (events % traces) : hot[u & 4095];
          const bucket = (u >>> 12) & 15;
          // Sizes as the default table samples them: mostly 128..8191 (p = 0.1), some larger, a few tiny.
          v = bucket === 0 ? 16 + ((u >>> 16) & 63) : bucket < 12 ? 128 + ((u >>> 16) % 8064) : 8192 + ((u >>> 16) % 57344);
        }
        if (live < CAP) {
          liveTrace[live] = tr;
          liveSize[live] = v;
          live++;
        }
        h = tr * 4;
      }
    }
    while (h >= 0x80) {
      payload[pos++] = (h & 0x7f) | 0x80;
      h >>>= 7;
    }
    payload[pos++] = h;
    payload[pos++] = dt; // < 0x80
    if (ext) payload[pos++] = v < 2 ** 28 ? 4 : 5; // EXT: body length, then the body varint
    while (v >= 0x80) {
      payload[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    payload[pos++] = v;
    count++;
    events++;
    if (pos >= HEAD + BLOCK_BYTES) {
      written += frameAndWrite(fd, block, pos, count, blockTime);
      pos = HEAD;
      count = 0;
    }
  }
  if (complete) {
    if (count === 0) blockTime = t;
    payload[pos++] = 0x07; // EXT END, dt 0, empty body
    payload[pos++] = 0;
    payload[pos++] = 0;
    count++;
    events++;
  }
  if (count > 0) written += frameAndWrite(fd, block, pos, count, blockTime);
  return { events, bytes: written, lastUs: t };
}

/** Test modules of the stdlib shape: traces 1..N are split into this many contiguous groups, one per module. */
const STDLIB_MODULES = 400;

/**
 * Traces shaped like a regression-test run's: a regrtest/unittest runner prefix of 14 frames
 * shared by all, then the test module's own frames (test_NNN.py, 2-8), then stdlib frames
 * (8-40 deep, from ~3,000 functions in ~150 files), leaf first: 24-62 frames, ids grouped by
 * test module (module k owns a contiguous range of ids).
 */
function* stdlibTraces(traces, R) {
  const runner = [
    ['main', 'test/__main__.py', 2], ['main', 'test/libregrtest/main.py', 739], ['_main', 'test/libregrtest/main.py', 701],
    ['run_tests', 'test/libregrtest/main.py', 576], ['run_tests_sequentially', 'test/libregrtest/main.py', 353],
    ['run_single_test', 'test/libregrtest/single.py', 282], ['_runtest', 'test/libregrtest/single.py', 233],
    ['_runtest_env_changed_exc', 'test/libregrtest/single.py', 178], ['_load_run_test', 'test/libregrtest/single.py', 135],
    ['run', 'unittest/suite.py', 122], ['__call__', 'unittest/suite.py', 84], ['run', 'unittest/suite.py', 122],
    ['run', 'unittest/case.py', 634], ['_callTestMethod', 'unittest/case.py', 589],
  ].map(([f, file, line]) => ({ function: f, file: `/usr/lib/python3.12/${file}`, line }));
  const stdFiles = Array.from({ length: 150 }, (_, i) => `/usr/lib/python3.12/${['', 'json/', 'email/', 'asyncio/', 'collections/', 'importlib/', 're/', 'xml/etree/'][i % 8]}mod${i}.py`);
  const perModule = Math.max(1, Math.floor(traces / STDLIB_MODULES));
  for (let id = 1; id <= traces; id++) {
    const module = Math.min(STDLIB_MODULES - 1, Math.floor((id - 1) / perModule));
    const own = [];
    const nOwn = 2 + (R() % 7);
    for (let i = 0; i < nOwn; i++) own.push({ function: `test_case_${(id * 3 + i) % 60}`, file: `/usr/lib/python3.12/test/test_${module}.py`, line: 20 + ((id + i * 17) % 2000) });
    const nStd = 8 + (R() % 33);
    const std = [];
    let fn = R() % 3000;
    for (let i = 0; i < nStd; i++) {
      std.push({ function: `func_${fn}`, file: stdFiles[fn % stdFiles.length], line: 10 + ((fn * 7 + (R() % 40)) % 1500) });
      fn = (fn * 31 + 1 + (R() % 97)) % 3000;
    }
    // Leaf first: stdlib frames, then the test's, then the runner's (outermost last).
    yield { id, frames: [...std, ...own.reverse(), ...[...runner].reverse()], dropped: 0 };
  }
}

