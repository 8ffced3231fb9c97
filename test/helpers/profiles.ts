// Test helpers: a seeded PRNG, random profiles, and reading a whole profile back into plain
// arrays (tests only: real commands stream).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openProfile } from '../../lib/format/profile.js';
import { OP_NAMES, type ReadOptions } from '../../lib/format/source.js';
import type { ReadIssue, Trace } from '../../lib/format/types.js';
import type { ProfileSpec } from '../../lib/format/hpx.js';

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
