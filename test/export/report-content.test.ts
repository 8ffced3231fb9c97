// hp-report's page data, without a browser: what the page shows (every point's flame graph
// nodes as frame paths with their values, top sites, per-thread trees and sites, domains, marks)
// against committed expected content, and the page embeds only the frames its points use.
// Regenerate the expected content on purpose only:
//   HP_UPDATE_GOLDEN=1 npx tap test/export/report-content.test.ts

import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeProfile } from '../../lib/format/hpx.js';
import type { Frame, Trace } from '../../lib/format/types.js';
import { SITE_STRIDE, TREE_STRIDE, type ReportData } from '../../lib/export/report.js';
import { FIXTURES, run, writeNativeReportProfile } from '../fixtures/export/support.js';

const update = process.env.HP_UPDATE_GOLDEN === '1';

/** The page's embedded data. */
function pageData(html: string): ReportData {
  const m = /<script id="hp-data" type="application\/json">(.*?)<\/script>/s.exec(html);
  if (!m) throw new Error('no hp-data script in the page');
  return JSON.parse(m[1]!) as ReportData;
}

/** What a user sees, with frames as text instead of the page's internal numbering. */
function shownContent(data: ReportData): { points: unknown[]; [field: string]: unknown } {
  const frameText = (f: number): string => {
    if (f === -1) return '[all]';
    if (f <= -2) return `[thread ${-2 - f}]`;
    const [fn, file, line] = data.frames[f]!;
    return `${fn ?? ''} ${file}:${line}`;
  };
  const pathOf = (node: number): string => {
    const parts: string[] = [];
    for (let n = node; n >= 0; n = data.nodes[n]![0]) parts.unshift(frameText(data.nodes[n]![1]));
    return parts.join(';');
  };
  const sites = (list: number[]): unknown[] => {
    const out: unknown[] = [];
    for (let i = 0; i < list.length; i += SITE_STRIDE) out.push([list[i]! < 0 ? '[no Python stack]' : frameText(list[i]!), ...list.slice(i + 1, i + SITE_STRIDE)]);
    return out;
  };
  return {
    title: data.title,
    meta: data.meta,
    threads: data.threads,
    domains: data.domains,
    peakIndex: data.peakIndex,
    selectedIndex: data.selectedIndex,
    marks: data.marks,
    nodes: data.nodes.length,
    points: data.points.map((p) => {
      const tree: unknown[] = [];
      for (let i = 0; i < p.tree.length; i += TREE_STRIDE) tree.push([pathOf(p.tree[i]!), ...p.tree.slice(i + 1, i + TREE_STRIDE)]);
      return { ...p, tree, sites: sites(p.sites), ...(p.threadSites ? { threadSites: p.threadSites.map(sites) } : {}) };
    }),
  };
}

async function report(t: Test, dir: string, args: string[]): Promise<{ html: string; data: ReportData }> {
  const html = join(dir, 'report.html');
  const res = await run('hp-report', [...args, '-o', html, '-q']);
  t.equal(res.code, 0, res.stderr);
  const text = readFileSync(html, 'utf8');
  return { html: text, data: pageData(text) };
}

/** Compared as text: the fields, then one line per point. */
function golden(t: Test, name: string, value: { points: unknown[] }): void {
  const path = join(FIXTURES, 'expected', name);
  const { points, ...rest } = value;
  const got = `${JSON.stringify(rest, null, 1)}\n${points.map((p) => JSON.stringify(p)).join('\n')}\n`;
  if (update) writeFileSync(path, got);
  else if (!existsSync(path)) t.fail(`${name} missing: run with HP_UPDATE_GOLDEN=1`);
  t.equal(got, readFileSync(path, 'utf8'), `matches expected/${name}`);
}

/** Every frame index the page's nodes and sites use. */
function usedFrameIndexes(data: ReportData): Set<number> {
  const used = new Set<number>();
  for (const [, f] of data.nodes) if (f >= 0) used.add(f);
  for (const p of data.points) {
    for (const list of [p.sites, ...(p.threadSites ?? [])]) for (let i = 0; i < list.length; i += SITE_STRIDE) if (list[i]! >= 0) used.add(list[i]!);
  }
  return used;
}

t.test('the fixture profile: the same content as before, frame for frame', async (t) => {
  const { data } = await report(t, t.testdir(), [join(FIXTURES, 'app'), '--title', 'app']);
  golden(t, 'report-content-app.json', shownContent(data));
  t.equal(usedFrameIndexes(data).size, data.frames.length, 'every embedded frame is used');
});

t.test('the fixture profile at a chosen time with a tighter tree', async (t) => {
  const { data } = await report(t, t.testdir(), [join(FIXTURES, 'app'), '--title', 'app', '--at', '4', '--min-share', '0.01', '--points', '40', '--top', '5']);
  golden(t, 'report-content-app-at4.json', shownContent(data));
});

t.test('a --native profile with threads and domains: the same content as before', async (t) => {
  const dir = t.testdir();
  const base = join(dir, 'native');
  await writeNativeReportProfile(base, true);
  const { data } = await report(t, dir, [base, '--title', 'native']);
  golden(t, 'report-content-native.json', shownContent(data));
});

t.test('the page embeds only the frames its points use, not the whole trace table', async (t) => {
  // One trace holds nearly all the heap; 2,000 more, each with its own frames, are defined in the
  // trace table: half never allocate, half allocate a few bytes (live, but far below --min-share
  // and below the top sites). Their frames must not reach the page.
  const dir = t.testdir();
  const base = join(dir, 'unused');
  const main: Frame = { function: 'main', file: 'app.py', line: 1 };
  const traces: Trace[] = [{ id: 1, frames: [{ function: 'big_alloc', file: 'app.py', line: 7 }, main], dropped: 0 }];
  for (let k = 0; k < 2000; k++) {
    traces.push({ id: 2 + k, frames: [{ function: `unused_leaf_${k}`, file: `unused_${k}.py`, line: 3 }, { function: `unused_caller_${k}`, file: `unused_${k}.py`, line: 9 }, main], dropped: 0 });
  }
  const events = [
    ...Array.from({ length: 200 }, (_, i) => ({ op: 'alloc' as const, timeUs: 1000 + i * 10_000, trace: 1, size: 1_000_000 })),
    ...Array.from({ length: 1000 }, (_, k) => ({ op: 'alloc' as const, timeUs: 2_500_000 + k, trace: 2 + 2 * k, size: 16 })),
  ];
  await writeProfile(base, { header: { startTimeUs: 1_764_000_000_000_000, argv: ['app.py'], sampling: { kind: 'table', bounds: [], probs: [] } }, traces, events, eventsPerBlock: 4096 });
  const { html, data } = await report(t, dir, [base, '--top', '1']);
  t.notMatch(html, /unused_(leaf|caller)_/, 'no frame of the small or unused traces is in the page');
  t.ok(data.frames.length <= 3, `only the frames drawn or listed (${data.frames.length})`);
  t.same(new Set(data.frames.map((f) => f[0])), new Set(['main', 'big_alloc']), 'main and big_alloc');
  t.equal(usedFrameIndexes(data).size, data.frames.length, 'every embedded frame is used');
  const peak = data.points[data.peakIndex]!;
  t.equal(peak.bytes, 200_000_000 + 1000 * 16, 'the small allocations still count in the total');
});

t.test("the page's 95% band is the snapshot's interval to the byte (rounded outwards, as NDJSON)", async (t) => {
  const { sh } = await import('../fixtures/analysis/run.js');
  const dir = mkdtempSync(join(tmpdir(), 'band-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'r.html');
  const made = sh(`hp-report app --points 20 -o ${out}`);
  t.equal(made.status, 0, made.stderr);
  const data = pageData(readFileSync(out, 'utf8'));
  const peak = data.points[data.peakIndex]!;
  const checked = [...data.points.filter((p) => Number.isInteger(p.t) && p.t <= 5), peak];
  for (const p of checked) {
    // The peak point is the peak as hp-snapshot gives it (a sampled profile's: half B's estimate at half A's highest).
    const snap = JSON.parse(sh(`hp-snapshot app --at ${p === peak ? 'peak' : p.t} --json`).stdout.split('\n')[0]!) as Record<string, number>;
    if (p === peak) t.equal(snap.at, p.t, "the peak point is at hp-snapshot's peak");
    t.same([p.bytes, p.lo, p.hi], [snap.bytes, snap.bytes_lo, snap.bytes_hi], `t = ${p.t} s`);
  }
});

t.test("the flame graph's root is the heap's total: the snapshot's bytes and count intervals, and the peak has its RSS", async (t) => {
  const { sh } = await import('../fixtures/analysis/run.js');
  const dir = t.testdir();
  const out = join(dir, 'r.html');
  const made = sh(`hp-report app --points 20 -o ${out}`);
  t.equal(made.status, 0, made.stderr);
  const data = pageData(readFileSync(out, 'utf8'));
  const peak = data.points[data.peakIndex]!;
  for (const p of [...data.points.filter((q) => Number.isInteger(q.t) && q.t <= 5 && q.ref === undefined), peak]) {
    const snap = JSON.parse(sh(`hp-snapshot app --at ${p === peak ? 'peak' : p.t} --json`).stdout.split('\n')[0]!) as Record<string, number>;
    const [node, bytes, below, above, count, countBelow, countAbove] = p.tree.slice(0, TREE_STRIDE);
    t.equal(data.nodes[node!]![1], -1, 'the first node is the root');
    t.same([bytes! - below!, bytes, bytes! + above!], [snap.bytes_lo, snap.bytes, snap.bytes_hi], `t = ${p.t} s: the root's bytes as the snapshot's total`);
    t.same([count! - countBelow!, count, count! + countAbove!], [snap.count_lo, snap.count, snap.count_hi], `t = ${p.t} s: the root's count as the snapshot's total`);
  }
  // The RSS sample nearest to the peak (hp-events), as every other point has it and as hp-history
  // takes it: the last at or before it, or the next if strictly nearer (and within 2 s at least).
  const samples = sh(`hp-events app | jq -c 'select(.op == "rss") | [.t, .size]'`).stdout.trim().split('\n').map((l) => JSON.parse(l) as [number, number]);
  const before = samples.filter(([ts]) => ts <= peak.t).at(-1);
  const after = samples.find(([ts]) => ts > peak.t);
  t.ok(before && after, 'RSS samples on both sides of the peak');
  const nearest = after && after[0] - peak.t <= 2 && (!before || after[0] - peak.t < peak.t - before[0]) ? after : before;
  t.equal(peak.rss, nearest![1], "the peak's RSS");
  // And the points at whole seconds as hp-history has them at that granularity.
  const g = data.points[1]!.t - data.points[0]!.t;
  const history = sh(`hp-history app --granularity ${g} --json -q`).stdout.trim().split('\n').map((l) => JSON.parse(l) as { t: number; rss?: number });
  let compared = 0;
  for (const p of data.points.filter((q) => !q.peak && !q.chosen)) {
    const h = history.find((r) => Math.abs(r.t - p.t) < 1e-9);
    if (!h) continue;
    t.equal(p.rss, h.rss ?? null, `t = ${p.t} s: hp-history's RSS`);
    compared++;
  }
  t.ok(compared >= 10, `${compared} points compared with hp-history`);
});

t.test("a thread's root is that thread's total, as hp-snapshot --thread gives it", async (t) => {
  const dir = t.testdir();
  const base = join(dir, 'native');
  await writeNativeReportProfile(base, true);
  const { data } = await report(t, dir, [base, '--at', 'end']);
  const p = data.points[data.selectedIndex]!;
  for (let i = 0; i < p.tree.length; i += TREE_STRIDE) {
    const frame = data.nodes[p.tree[i]!]![1];
    if (frame > -2) continue;
    const name = data.threads[-2 - frame]!;
    const snap = JSON.parse((await run('hp-snapshot', [base, '--at', 'end', '--thread', String(name.id), '--json', '-q'])).stdout.toString().split('\n')[0]!) as Record<string, number>;
    const [, bytes, below, above, count, countBelow, countAbove] = p.tree.slice(i, i + TREE_STRIDE);
    t.same([bytes! - below!, bytes, bytes! + above!], [snap.bytes_lo ?? snap.bytes, snap.bytes, snap.bytes_hi ?? snap.bytes], `thread ${name.id}: bytes`);
    t.same([count! - countBelow!, count, count! + countAbove!], [snap.count_lo ?? snap.count, snap.count, snap.count_hi ?? snap.count], `thread ${name.id}: count`);
  }
});

t.test('--at end is shown at the time of the last event, as the snapshot at the end has it', async (t) => {
  const { sh } = await import('../fixtures/analysis/run.js');
  const out = join(t.testdir(), 'r.html');
  const made = sh(`hp-report app --points 20 --at end -o ${out}`);
  t.equal(made.status, 0, made.stderr);
  const data = pageData(readFileSync(out, 'utf8'));
  const p = data.points[data.selectedIndex]!;
  const snap = JSON.parse(sh('hp-snapshot app --at end --json').stdout.split('\n')[0]!) as Record<string, number>;
  t.same([p.t, p.bytes, p.lo, p.hi], [snap.at, snap.bytes, snap.bytes_lo, snap.bytes_hi], 'the moment and the total of hp-snapshot --at end');
  t.equal(p.chosen, true, 'marked as the chosen moment');
});
