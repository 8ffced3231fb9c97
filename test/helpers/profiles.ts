// Test helpers: a seeded PRNG, random profiles, and reading a whole profile back into plain
// arrays (tests only: real commands stream).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openProfile } from '../../lib/format/profile.js';
import { OP_NAMES, type ReadOptions } from '../../lib/format/source.js';
import type { ReadIssue, Trace } from '../../lib/format/types.js';
import type { ProfileSpec } from '../../lib/format/hpx.js';
import { ByteSink } from '../../lib/format/bytes.js';

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const temporaryDirs: string[] = [];
process.on('exit', () => {
  if (process.env.HEAPPROF_KEEP_TMP) return;
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A temporary directory, removed when the test process exits (each test file runs in a
 * process of its own). HEAPPROF_KEEP_TMP=1 keeps them, to look at what a failing test wrote.
 */
export function tmpDir(prefix = 'hp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirs.push(dir);
  return dir;
}

const NAMES = ['main', 'load', 'parse_rows', 'Büffer.grow', '数据', 'λ', '<module>', 'a'.repeat(300)];
const FILES = ['/srv/app/main.py', 'lib/ünïcode/файл.py', '<frozen importlib._bootstrap>', 'x.py'];

/** A random but valid profile: traces with long stacks and non-ASCII names, huge sizes, frees of live blocks. */
export function randomSpec(seed: number, nEvents: number): ProfileSpec {
  const rnd = prng(seed);
  const nTraces = 1 + Math.floor(rnd() * 50);
  const traces: Trace[] = [];
  for (let id = 1; id <= nTraces; id++) {
    const depth = rnd() < 0.1 ? 100 + Math.floor(rnd() * 100) : Math.floor(rnd() * 8);
    const frames = [];
    for (let i = 0; i < depth; i++) {
      frames.push({
        function: NAMES[Math.floor(rnd() * NAMES.length)]!,
        file: FILES[Math.floor(rnd() * FILES.length)]!,
        line: Math.floor(rnd() * 5000),
      });
    }
    traces.push({ id, frames, dropped: rnd() < 0.05 ? Math.floor(rnd() * 1000) : 0 });
  }
  const events: ProfileSpec['events'] = [];
  const live: Array<{ trace: number; size: number }> = [];
  let t = Math.floor(rnd() * 1000);
  for (let i = 0; i < nEvents; i++) {
    t += rnd() < 0.01 ? Math.floor(rnd() * 5e6) : Math.floor(rnd() * 100);
    const r = rnd();
    if (r < 0.02) {
      events.push({ op: 'rss', timeUs: t, size: Math.floor(rnd() * 2 ** 40) });
    } else if (r < 0.5 && live.length > 0) {
      const k = Math.floor(rnd() * live.length);
      const [x] = live.splice(k, 1);
      events.push({ op: 'free', timeUs: t, trace: x!.trace, size: x!.size });
    } else {
      const size = rnd() < 0.01 ? 2 ** 32 + Math.floor(rnd() * 2 ** 40) : Math.floor(rnd() * 20000);
      const trace = rnd() < 0.05 ? 0 : 1 + Math.floor(rnd() * nTraces);
      live.push({ trace, size });
      events.push({ op: 'alloc', timeUs: t, trace, size });
    }
  }
  return {
    header: {
      startTimeUs: 1_700_000_000_000_000 + seed,
      pid: 1000 + seed,
      ppid: 1,
      pythonVersion: '3.12.1 (main) [GCC 12.2.0]',
      argv: ['app.py', '--flag', 'ünïcode'],
      sampling: rnd() < 0.5 ? { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] } : { kind: 'poisson', meanBytes: 524288 },
    },
    traces,
    events,
    eventsPerBlock: 1 + Math.floor(rnd() * 500),
  };
}

export interface ReadBack {
  header: Awaited<ReturnType<typeof openProfile>>['header'];
  events: Array<{ op: string; timeUs: number; trace: number; size: number }>;
  traces: Map<number, Trace>;
  complete: boolean;
  issues: ReadIssue[];
}

export async function readAll(base: string, opts: ReadOptions = {}): Promise<ReadBack> {
  const issues: ReadIssue[] = [];
  const p = await openProfile(base, { onIssue: (i) => issues.push(i), ...opts });
  const events: ReadBack['events'] = [];
  try {
    for await (const b of p.batches()) {
      for (let i = 0; i < b.length; i++) {
        events.push({ op: OP_NAMES[b.op[i]!]!, timeUs: b.timeUs[i]!, trace: b.trace[i]!, size: b.size[i]! });
      }
    }
    const traces = new Map<number, Trace>();
    for (const t of p.traces()) traces.set(t.id, t);
    return { header: p.header, events, traces, complete: p.complete, issues };
  } finally {
    await p.close();
  }
}

/** Offsets of every block in an .hpd/.hpm buffer (after the file header). */
export function blockOffsets(buf: Buffer): number[] {
  const out: number[] = [];
  let off = 32 + buf.readUInt32LE(24);
  while (off + 24 <= buf.length) {
    out.push(off);
    off += 24 + buf.readUInt32LE(off + 4);
  }
  return out;
}

/**
 * A random .hpd block payload and the event count its header should claim, biased toward what
 * breaks decoders: one-byte varints of each kind, long varints, 0x80 runs, REPEATs of filled and
 * empty slots, EXT events with short and long bodies; half the blocks well formed, half noisy.
 * Trace ids are 0 or 1 (an .hpm can define them) unless `wide`, which also spreads ids, times
 * and sizes across every varint length from one to five bytes (the decoders' fast paths stop at
 * three).
 */
export function randomPayload(rnd: () => number, wide = false): { payload: Buffer; count: number } {
  const payload = new ByteSink(64);
  const nEvents = 1 + Math.floor(rnd() * (wide ? 60 : 12));
  const noisy = rnd() < 0.5;
  const spread = (): number => Math.floor(2 ** (rnd() * 30) * rnd());
  let full = 0; // ALLOC/FREE written in full so far: the REPEAT slots filled
  for (let i = 0; i < nEvents; i++) {
    const r = rnd();
    if (full > 0 && rnd() < 0.25) {
      // A REPEAT (man/hpx.5): of a filled slot, or (noisy) of any slot up to 19.
      const slot = noisy ? Math.floor(rnd() * 20) : Math.floor(rnd() * Math.min(full, 16));
      payload.varint((slot * 2 + (rnd() < 0.5 ? 1 : 0)) * 4 + 2);
      payload.varint(wide ? spread() : Math.floor(rnd() * 300));
    } else if (!noisy || r < 0.5) {
      // Plausible ALLOC/FREE/EXT with small ids (trace 0 or 1 so the .hpm defines it).
      const kind = [0, 1, 3, 2][Math.floor(rnd() * (noisy && rnd() < 0.1 ? 4 : 3))]!;
      const id = kind === 3 ? Math.floor(rnd() * 4) : wide ? spread() : Math.floor(rnd() * 2);
      if (kind <= 1) full++;
      payload.varint(id * 4 + kind);
      payload.varint(wide ? spread() : Math.floor(rnd() * 300));
      if (kind === 3) {
        const body = Math.floor(rnd() * 4);
        payload.varint(!noisy || rnd() < 0.9 ? body : body + 5);
        for (let j = 0; j < body; j++) payload.u8(Math.floor(rnd() * 256));
      } else payload.varint(rnd() < 0.1 ? 2 ** 40 + Math.floor(rnd() * 2 ** 40) : wide ? spread() : Math.floor(rnd() * 5000));
    } else {
      // Raw bytes, often with continuation bits.
      const len = 1 + Math.floor(rnd() * 12);
      for (let j = 0; j < len; j++) payload.u8(rnd() < 0.5 ? 0x80 | Math.floor(rnd() * 128) : Math.floor(rnd() * 256));
    }
  }
  const count = noisy ? Math.max(0, nEvents + Math.floor(rnd() * 3) - 1) : nEvents;
  return { payload: Buffer.from(payload.view()), count };
}
