// Unit tests of the exporters' pure parts: flow graph sums, thresholds and chain collapsing; diff
// intervals and order; the report's top-N selection; pprof building from a known stack set.

import { upperVariance } from '../../lib/model/estimate.js';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import type { Frame } from '../../lib/format/types.js';
import { Z95 } from '../../lib/format/weights.js';
import { LiveHeap } from '../../lib/model/live.js';
import { OP_ALLOC } from '../../lib/format/source.js';
import { buildFlowGraph, renderDot } from '../../lib/export/flow.js';
import { diffStackSets, rowRecord } from '../../lib/export/diff.js';
import { buildPprof } from '../../lib/export/pprof.js';
import { CallTree, niceGranularityUs, topIndices } from '../../lib/export/report.js';
import { scriptSafeJson } from '../../lib/export/report-page.js';
import { type StackSet, type WeightedStack } from '../../lib/export/stacks.js';
import { parseAt } from '../../lib/cmd/common.js';
import { ensureTool } from '../fixtures/export/support.js';

const f = (fn: string, file: string, line: number): Frame => ({ function: fn, file, line });
const stack = (frames: Frame[], bytes: number, bytesVar = 0, dropped = 0): WeightedStack => ({
  frames,
  dropped,
  est: { bytes, bytesVar, count: bytes / 100, countVar: 0, sampled: 1 },
});
const set = (label: string, stacks: WeightedStack[]): StackSet => {
  const total = { bytes: 0, bytesVar: 0, count: 0, countVar: 0, sampled: 0 };
  for (const s of stacks) {
    total.bytes += s.est.bytes;
    total.bytesVar += s.est.bytesVar;
    total.count += s.est.count;
    total.sampled += 1;
  }
  return { label, kind: 'inuse', atUs: 0, toUs: null, header: null, stacks, total };
};

const root = f('<module>', 'm.py', 1);
const a = f('a', 'm.py', 10);
const b = f('b', 'm.py', 20);
const c = f('c', 'm.py', 30);
const leaf1 = f('alloc1', 'x.py', 5);
const leaf2 = f('alloc2', 'x.py', 6);
const tiny = f('tiny', 't.py', 1);

t.test('flow: local, cumulative and edges; recursion counted once', (t) => {
  const rec = f('rec', 'r.py', 3);
  const g = buildFlowGraph([
    set('s', [
      stack([leaf1, c, b, a, root], 600),
      stack([leaf2, c, b, a, root], 300),
      stack([rec, rec, rec, root], 100),
    ]),
  ]);
  const node = (fr: Frame) => [...g.nodes.values()].find((n) => n.frame === fr || (n.frame.function === fr.function && n.frame.line === fr.line))!;
  t.same(node(root).cum, [1000]);
  t.same(node(root).local, [0]);
  t.same(node(c).cum, [900]);
  t.same(node(leaf1).local, [600]);
  t.same(node(rec).cum, [100], 'a recursive line is counted once per stack');
  t.same(node(rec).local, [100]);
  const edges = [...g.edges.values()].map((e) => `${e.from.split('\0')[2]}->${e.to.split('\0')[2]}:${e.bytes[0]}`).sort();
  t.same(edges, ['<module>->a:900', '<module>->rec:100', 'a->b:900', 'b->c:900', 'c->alloc1:600', 'c->alloc2:300'], 'no self-loop for recursion');
  t.end();
});

t.test('flow: a chain of non-allocating lines is one box; small nodes go below the threshold', (t) => {
  const sets = [set('s', [stack([leaf1, c, b, a, root], 600), stack([leaf2, c, b, a, root], 390), stack([tiny, root], 10)])];
  const dot = renderDot(buildFlowGraph(sets), { threshold: 0.02 });
  t.notMatch(dot, /tiny/, 'a 1% node is dropped at a 2% threshold');
  // <module> has one drawn child once tiny is gone, so <module>, a, b and c form one chain.
  const chain = dot.split('\n').filter((l) => /peripheries=2/.test(l));
  t.equal(chain.length, 1, 'one collapsed box');
  t.match(chain[0], /<module> m\.py:1\\la m\.py:10\\lb m\.py:20\\lc m\.py:30\\l/);
  t.equal((dot.match(/ -> /g) ?? []).length, 2, 'edges: chain -> alloc1, chain -> alloc2');
  const full = renderDot(buildFlowGraph(sets), { threshold: 0, collapse: false });
  t.match(full, /tiny/);
  t.equal((full.match(/ -> /g) ?? []).length, 6);
  t.equal(renderDot(buildFlowGraph(sets), { threshold: 0.02 }), dot, 'deterministic');
  t.end();
});

t.test('flow: names with quotes, backslashes and non-ASCII render in dot without warnings', (t) => {
  const odd = f('wéird "name" \\ {x|y} <z>', 'C:\\src\\数据.py', 7);
  const dot = renderDot(buildFlowGraph([set('t=1s', [stack([odd, root], 100), stack([], 50), stack([leaf1], 25, 0, 4)])]), { threshold: 0 });
  t.match(dot, /\[no Python stack\]/);
  t.match(dot, /\[outer frames not recorded\]/);
  const missing = ensureTool('dot', 'graphviz');
  if (missing) {
    t.skip(`Graphviz: ${missing}`);
    t.end();
    return;
  }
  const r = spawnSync('dot', ['-Tsvg'], { input: dot, encoding: 'utf8' });
  t.equal(r.status, 0);
  t.equal(r.stderr, '', 'no warnings');
  t.match(r.stdout, /wéird &quot;name&quot; \\ \{x\|y\} &lt;z&gt;/, 'the label survives escaping');
  t.end();
});

t.test('diff: variances add, order is significant growth, significant shrink, then noise', (t) => {
  const s1 = f('one', 'd.py', 1);
  const s2 = f('two', 'd.py', 2);
  const s3 = f('three', 'd.py', 3);
  const s4 = f('four', 'd.py', 4);
  const before = set('before', [stack([s1], 1000, 100), stack([s2], 5000, 0), stack([s3], 100, 400), stack([s4], 10, 0)]);
  const after = set('after', [stack([s1], 3000, 300), stack([s2], 2000, 0), stack([s3], 110, 400), stack([s4], 20, 0)]);
  const { rows, total } = diffStackSets(before, after, 'line');
  t.same(rows.map((r) => r.site.label), ['one (d.py:1)', 'four (d.py:4)', 'two (d.py:2)', 'three (d.py:3)'], 'one grew 2000, four grew 10 (exact), two shrank, three is noise');
  const one = rows[0]!;
  t.equal(one.change, 2000);
  // Each side adds the variance its own (gamma) interval implies upwards (man/hp-estimates.7):
  // at least its plain variance, so the change's interval is never narrower than varA + varB's.
  // (From each side's interval as printed, rounded outwards to whole bytes: within a byte.)
  const expected = Z95 * Math.sqrt(upperVariance(1000, 100) + upperVariance(3000, 300));
  t.ok(Math.abs(one.hi - one.change - expected) < 1, 'half-width from both sides\' upper variances');
  t.ok(one.hi - one.change >= Z95 * Math.sqrt(400), 'never narrower than varA + varB');
  t.equal(one.direction, 1);
  const three = rows.find((r) => r.site.label.startsWith('three'))!;
  t.equal(three.direction, 0, '10 bytes with a ±55 interval is not significant');
  t.equal(rows.find((r) => r.site.label.startsWith('two'))!.direction, -1);
  t.equal(total.change, after.total.bytes - before.total.bytes);
  const byStack = diffStackSets(set('b', [stack([s1, s2], 10), stack([s1, s3], 10)]), set('a', [stack([s1, s2], 30)]), 'stack');
  t.equal(byStack.rows.length, 2, 'whole stacks are distinct sites');
  const byLine = diffStackSets(set('b', [stack([s1, s2], 10), stack([s1, s3], 10)]), set('a', [stack([s1, s2], 30)]), 'line');
  t.equal(byLine.rows.length, 1, 'same innermost line is one site');
  t.equal(byLine.rows[0]!.change, 10);
  t.end();
});

t.test('diff of native recordings: a C allocation belongs to its Python line, its domain beside it, as in hp-snapshot', (t) => {
  const line = f('load', 'n.py', 7);
  const mallocCaller: Frame = { function: 'default_malloc', file: '/v/numpy/_umath.so', line: 0, native: true };
  const mmapCaller: Frame = { function: 'alloc_mmap', file: '/v/libblas.so', line: 0, native: true };
  const native = (caller: Frame, bytes: number, domain: 'native' | 'mmap'): WeightedStack => ({ ...stack([caller, line], bytes), domain });
  const before = set('b', [stack([line], 100), native(mallocCaller, 1000, 'native')]);
  const after = set('a', [stack([line], 300), native(mallocCaller, 5000, 'native'), native(mmapCaller, 8000, 'mmap')]);
  const byLine = diffStackSets(before, after, 'line');
  t.same(byLine.rows.map((r) => [r.site.label, r.change]), [['load (n.py:7) [mmap]', 8000], ['load (n.py:7) [native]', 4000], ['load (n.py:7)', 200]], 'one site per domain, named by the Python line');
  t.same(rowRecord(byLine.rows[1]!, 'site'), { ...rowRecord(byLine.rows[1]!, 'site'), function: 'load', file: 'n.py', line: 7, domain: 'native' });
  t.notOk('domain' in rowRecord(byLine.rows[2]!, 'site'), 'Python sites as before');
  const byStack = diffStackSets(before, after, 'stack');
  t.same(byStack.rows.map((r) => r.site.label), ['load (n.py:7) [mmap: alloc_mmap (libblas.so)]', 'load (n.py:7) [native: default_malloc (_umath.so)]', 'load (n.py:7)']);
  t.same(rowRecord(byStack.rows[1]!, 'site').frames, [{ function: 'default_malloc', file: '/v/numpy/_umath.so', line: 0, native: true }, { function: 'load', file: 'n.py', line: 7 }]);
  // No Python frame: told apart by the C caller, as hp-snapshot does.
  const blasThread: Frame = { function: 'blas_thread_server', file: '/v/libblas.so', line: 0, native: true };
  const noPython = diffStackSets(
    set('b', [{ ...stack([mallocCaller], 32), domain: 'native' }]),
    set('a', [{ ...stack([mallocCaller], 64), domain: 'native' }, { ...stack([blasThread], 4096), domain: 'native' }, { ...stack([blasThread], 4096), domain: 'native' }]),
    'function',
  );
  t.same(noPython.rows.map((r) => [r.site.label, r.change]), [
    ['[no Python stack] [native: blas_thread_server (libblas.so)]', 8192],
    ['[no Python stack] [native: default_malloc (_umath.so)]', 32],
  ]);
  t.end();
});

t.test('report: top-k selection equals a full sort, ties to the lower index', (t) => {
  const values = [5, 9, 1, 9, 7, 3, 9, 2, 8, 6, 4];
  const full = [...values.keys()].sort((x, y) => values[y]! - values[x]! || x - y);
  for (const k of [0, 1, 3, 4, 11, 50]) t.same(topIndices(values, values.length, k), full.slice(0, k), `top ${k}`);
  t.same(topIndices(values, values.length, 3, (i) => i % 2 === 0), [6, 8, 4], 'with a filter');
  t.equal(niceGranularityUs(1), 1);
  t.equal(niceGranularityUs(3), 5);
  t.equal(niceGranularityUs(120_001), 200_000);
  t.end();
});

t.test('report: the call tree shares prefixes, parents before children, sites are leaves', (t) => {
  const traces = new Map([
    [1, { id: 1, frames: [leaf1, c, a, root], dropped: 0 }],
    [2, { id: 2, frames: [leaf2, c, a, root], dropped: 0 }],
    [3, { id: 3, frames: [b, root], dropped: 2 }],
  ]);
  const tree = new CallTree();
  tree.source = { trace: (id) => traces.get(id) };
  const l1 = tree.leaf(1);
  const l2 = tree.leaf(2);
  const l3 = tree.leaf(3);
  const l0 = tree.leaf(0);
  const path = (n: number): string[] => {
    const out: string[] = [];
    for (let x = n; x > 0; x = tree.parent[x]!) out.unshift(tree.frameText(tree.frameOf[x]!).function ?? '?');
    return out;
  };
  t.same(path(l1), ['<module>', 'a', 'c', 'alloc1']);
  t.same(path(l2), ['<module>', 'a', 'c', 'alloc2']);
  t.same(path(l3), ['[2 outer frames not recorded]', '<module>', 'b']);
  t.same(path(l0), ['[no Python stack]']);
  t.equal(tree.parent[l1], tree.parent[l2], 'shared prefix');
  for (let n = 1; n < tree.size; n++) t.ok(tree.parent[n]! < n, 'parent id below child id');
  t.equal(tree.frameText(tree.site(2)).function, 'alloc2');
  t.equal(tree.site(0), -1);
  t.equal(tree.size, 1 + 4 + 1 + 3 + 1, 'one node per distinct prefix');
  t.end();
});

t.test('report: the call tree is the same whether the source gives frame indexes or frame objects', (t) => {
  // A trace table as hpx keeps it: frames by index, traces as index lists; frame 4 repeats
  // frame 1's text under another index (the flame graph merges them, as before).
  const table: Frame[] = [root, a, c, leaf1, f('a', 'm.py', 10), leaf2, b];
  const indexed = new Map<number, { dropped: number; frames: number[] }>([
    [1, { dropped: 0, frames: [3, 2, 1, 0] }],
    [2, { dropped: 0, frames: [5, 2, 4, 0] }],
    [3, { dropped: 2, frames: [6, 0] }],
  ]);
  const asObjects = (id: number) => {
    const x = indexed.get(id);
    return x && { id, frames: x.frames.map((i) => table[i]!), dropped: x.dropped };
  };
  const byObjects = new CallTree();
  byObjects.source = { trace: asObjects };
  const byIndexes = new CallTree();
  let textReads = 0;
  byIndexes.source = {
    trace: asObjects,
    traceFrameIndexes: (id) => indexed.get(id),
    frameAt: (i) => {
      textReads++;
      return table[i]!;
    },
  };
  const shape = (tree: CallTree, ids: number[]) => ({
    leaves: ids.map((id) => tree.leaf(id)),
    sites: ids.map((id) => tree.site(id)),
    nodes: Array.from({ length: tree.size }, (_, n) => [tree.parent[n], tree.frameOf[n]! < 0 ? null : tree.frameText(tree.frameOf[n]!)]),
    frames: tree.frameCount,
  });
  const ids = [2, 0, 1, 3, 1];
  t.same(shape(byIndexes, ids), shape(byObjects, ids), 'same nodes, frames, leaves and sites');
  t.equal(byIndexes.frameCount, 1 + 1 + 6, 'frames merged by text: no-stack, dropped, six distinct');
  t.equal(byIndexes.parent[byIndexes.leaf(1)], byIndexes.parent[byIndexes.leaf(2)], 'traces 1 and 2 share the <module>;a;c prefix');
  textReads = 0;
  byIndexes.leaf(1);
  byIndexes.site(2);
  t.equal(textReads, 0, 'a known trace reads no frame text');
  t.end();
});

t.test('report: embedded JSON cannot close its script element', (t) => {
  const s = scriptSafeJson({ name: '</script><script>alert(1)</script> <!-- \u2028' });
  t.notMatch(s, /<\/script/i);
  t.notMatch(s, /<!--/);
  t.same(JSON.parse(s), { name: '</script><script>alert(1)</script> <!-- \u2028' });
  t.end();
});

t.test('pprof: values are the rounded estimates; no-stack and dropped frames get pseudo locations', (t) => {
  const p = buildPprof(set('t=1s', [stack([leaf1, root], 1234.6), stack([], 10.2), stack([leaf2], 99.5, 0, 3)]));
  const str = (i: number | bigint): string => p.stringTable.strings[Number(i)]!;
  t.same(p.sampleType.map((v) => str(v.type)), ['inuse_objects', 'inuse_space']);
  t.same(p.sample.map((s) => Number(s.value[1])), [1235, 10, 100]);
  const names = (s: (typeof p.sample)[number]): string[] =>
    s.locationId.map((id) => str(p.function.find((fn) => fn.id === p.location.find((l) => l.id === id)!.line[0]!.functionId)!.name));
  t.same(names(p.sample[0]!), ['alloc1', '<module>']);
  t.same(names(p.sample[1]!), ['[no Python stack]']);
  t.same(names(p.sample[2]!), ['alloc2', '[3 frames not recorded]']);
  t.equal(p.location.find((l) => l.id === p.sample[0]!.locationId[0])!.line[0]!.line, 5);
  t.end();
});

t.test('--at parsing', (t) => {
  t.same(parseAt('peak'), { kind: 'peak' });
  t.same(parseAt('end'), { kind: 'end' });
  t.same(parseAt('1.5'), { kind: 'time', us: 1_500_000 });
  t.throws(() => parseAt('-1'));
  t.throws(() => parseAt('soon'));
  t.end();
});

t.test("report page: a byte value that one decimal prints as 1024 of a unit is in the next unit", async (t) => {
  // The page's fmtBytes lives in the page's inline script: take it from the module's source.
  const { readFileSync } = await import('node:fs');
  const src = readFileSync(new URL('../../lib/export/report-page.ts', import.meta.url), 'utf8');
  const body = /function fmtBytes\(n\) \{[\s\S]*?\n  \}/.exec(src);
  t.ok(body, 'fmtBytes found in the page script');
  const fmtBytes = new Function(`${body![0]}; return fmtBytes;`)() as (n: number) => string;
  t.equal(fmtBytes(1536), '1.5 KiB');
  t.equal(fmtBytes(1048575), '1.0 MiB');
  t.equal(fmtBytes(1023.6), '1.0 KiB');
  t.equal(fmtBytes(1048524), '1023.9 KiB');
  t.equal(fmtBytes(-1048575), '-1.0 MiB');
});
