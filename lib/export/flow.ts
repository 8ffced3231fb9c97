// The flow graph of the original heapprof, as Graphviz dot: a node per line of code, an edge per
// call (caller -> callee), each node with the bytes allocated at that line (local) and at or
// below it (cumulative), for one or several moments side by side. Small nodes are dropped below a
// share threshold and chains of lines that allocate nothing themselves collapse into one box.

import { formatBytes } from '../cli.js';
import { escapeControls } from '../escape.js';
import type { Frame } from '../format/types.js';
import { NO_STACK_LABEL } from '../model/sites.js';
import type { StackSet } from './stacks.js';

export interface FlowNode {
  key: string;
  /** The line of code (function may be null for heapprof 1.0.x; file '' for pseudo nodes). */
  frame: Frame;
  /** Per set: bytes allocated at this line itself. */
  local: number[];
  /** Per set: bytes allocated at this line or anything it called (recursion counted once). */
  cum: number[];
}

export interface FlowEdge {
  from: string;
  to: string;
  /** Per set: bytes allocated below this call. */
  bytes: number[];
}

export interface FlowGraph {
  labels: string[];
  /** Per set: total estimated bytes (the 100% of every percentage). */
  totals: number[];
  nodes: Map<string, FlowNode>;
  edges: Map<string, FlowEdge>;
}

const DROPPED_LABEL = '[outer frames not recorded]';

function frameKey(f: Frame): string {
  return `${f.file}\0${f.line}\0${f.function ?? ''}`;
}

/** Sum every set's stacks into one graph; value arrays are indexed by set. */
export function buildFlowGraph(sets: StackSet[]): FlowGraph {
  const k = sets.length;
  const nodes = new Map<string, FlowNode>();
  const edges = new Map<string, FlowEdge>();
  const node = (f: Frame): FlowNode => {
    const key = frameKey(f);
    let n = nodes.get(key);
    if (!n) {
      n = { key, frame: f, local: new Array<number>(k).fill(0), cum: new Array<number>(k).fill(0) };
      nodes.set(key, n);
    }
    return n;
  };
  const totals = sets.map((s) => s.stacks.reduce((a, st) => a + Math.max(0, st.est.bytes), 0));
  sets.forEach((set, i) => {
    for (const st of set.stacks) {
      const bytes = st.est.bytes;
      if (!(bytes > 0)) continue;
      let frames: Frame[] = st.frames.length === 0 ? [{ function: NO_STACK_LABEL, file: '', line: 0 }] : st.frames;
      if (st.dropped > 0) frames = [...frames, { function: DROPPED_LABEL, file: '', line: 0 }];
      node(frames[0]!).local[i]! += bytes;
      const seenNodes = new Set<string>();
      const seenEdges = new Set<string>();
      for (let j = 0; j < frames.length; j++) {
        const n = node(frames[j]!);
        if (!seenNodes.has(n.key)) {
          seenNodes.add(n.key);
          n.cum[i]! += bytes;
        }
        if (j + 1 < frames.length) {
          const parent = frameKey(frames[j + 1]!);
          if (parent === n.key) continue; // direct recursion on one line: no self-loop
          const ek = `${parent}\u0001${n.key}`;
          if (seenEdges.has(ek)) continue;
          seenEdges.add(ek);
          let e = edges.get(ek);
          if (!e) {
            e = { from: parent, to: n.key, bytes: new Array<number>(k).fill(0) };
            edges.set(ek, e);
          }
          e.bytes[i]! += bytes;
        }
      }
    }
  });
  return { labels: sets.map((s) => s.label), totals, nodes, edges };
}

/** The largest share of its set's total that `values` reaches in any set. */
function maxShare(values: number[], totals: number[]): number {
  let m = 0;
  values.forEach((v, i) => {
    const t = totals[i]!;
    if (t > 0) m = Math.max(m, v / t);
  });
  return m;
}

export interface DotOptions {
  /** Drop nodes and edges whose cumulative share is below this in every set (0..1). */
  threshold: number;
  /** Graph title (first line of the graph label). */
  title?: string;
  /** Collapse chains of non-allocating lines (default true). */
  collapse?: boolean;
}

/** A box of the drawn graph: one line of code, or a collapsed chain of them (top first). */
interface Box {
  id: string;
  members: FlowNode[];
}

/**
 * A share in a box: whole from 10%, one decimal below; a share the digits would write as 0 or as
 * the whole without being either is <0.1% or >99% (a line beside others is not 100% of the heap).
 */
function percent(part: number, total: number): string {
  if (!(total > 0)) return '0%';
  const p = (100 * Math.max(0, part)) / total;
  if (p > 0 && p < 0.05) return '<0.1%';
  const text = p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1);
  return text === '100' && p < 100 ? '>99%' : `${text}%`;
}

/** dot escString body: control characters written out (\x1b), backslashes and quotes escaped; lines left-justified with \l. */
function dotText(lines: string[]): string {
  return lines.map((l) => `${escapeControls(l).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}\\l`).join('');
}

function plainDot(s: string): string {
  return escapeControls(s, true).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** White (nothing) through yellow to red (everything), as Graphviz "H S V" with hue 0.17 .. 0. */
function shareColor(share: number): string {
  const s = Math.min(1, Math.max(0, share));
  const hue = 0.17 * (1 - s);
  const sat = 0.08 + 0.72 * Math.sqrt(s);
  return `${hue.toFixed(3)} ${sat.toFixed(3)} 1.000`;
}

/** Edges: grey-brown for small shares through to red, dark enough to see on white. */
function edgeColor(share: number): string {
  const s = Math.min(1, Math.max(0, share));
  return `${(0.1 * (1 - s)).toFixed(3)} ${(0.25 + 0.75 * s).toFixed(3)} ${(0.55 + 0.3 * s).toFixed(3)}`;
}

function frameLines(f: Frame): string[] {
  if (f.file === '') return [f.function ?? '?'];
  const where = f.line > 0 ? `${f.file}:${f.line}` : f.file;
  return f.function ? [f.function, where] : [where];
}

/**
 * Render the graph as dot. Node and edge order is deterministic (sorted by file, line and
 * function), so the output of one input is always byte-identical.
 */
export function renderDot(g: FlowGraph, opts: DotOptions): string {
  const { totals, labels } = g;
  const k = totals.length;
  const threshold = Math.max(0, opts.threshold);
  const kept = [...g.nodes.values()].filter((n) => maxShare(n.cum, totals) >= threshold && n.cum.some((v) => v > 0));
  const keptKeys = new Set(kept.map((n) => n.key));
  const edges = [...g.edges.values()].filter((e) => keptKeys.has(e.from) && keptKeys.has(e.to) && maxShare(e.bytes, totals) >= threshold);
  const outEdges = new Map<string, FlowEdge[]>();
  const inEdges = new Map<string, FlowEdge[]>();
  for (const e of edges) {
    (outEdges.get(e.from) ?? outEdges.set(e.from, []).get(e.from)!).push(e);
    (inEdges.get(e.to) ?? inEdges.set(e.to, []).get(e.to)!).push(e);
  }
  const sortNodes = (a: FlowNode, b: FlowNode): number => {
    const fa = a.frame;
    const fb = b.frame;
    if (fa.file !== fb.file) return fa.file < fb.file ? -1 : 1;
    if (fa.line !== fb.line) return fa.line - fb.line;
    const x = fa.function ?? '';
    const y = fb.function ?? '';
    return x < y ? -1 : x > y ? 1 : 0;
  };
  kept.sort(sortNodes);

  // Chains: a non-allocating node with exactly one drawn callee that has no other drawn caller
  // absorbs that callee while the callee is non-allocating too, and while everything under the
  // callee came through that call: a line that is also the outermost frame of other stacks (an
  // import started from C, whose _find_and_load is reached again from a nested import) holds
  // more than its one caller passes it, and the box's single cum would understate it.
  const passthrough = (n: FlowNode): boolean => n.local.every((v) => v <= 0);
  const soleChild = (n: FlowNode): FlowNode | null => {
    const out = outEdges.get(n.key) ?? [];
    if (out.length !== 1) return null;
    const child = g.nodes.get(out[0]!.to)!;
    if ((inEdges.get(child.key) ?? []).length !== 1) return null;
    const through = out[0]!.bytes;
    if (child.cum.some((v, i) => Math.abs(v - through[i]!) > 1e-9 * Math.max(1, Math.abs(v)))) return null;
    return child;
  };
  const boxOf = new Map<string, Box>();
  const boxes: Box[] = [];
  for (const n of kept) {
    if (boxOf.has(n.key)) continue;
    // Start chains only at their top: a node whose sole caller would absorb it is skipped here.
    const ins = inEdges.get(n.key) ?? [];
    if (opts.collapse !== false && passthrough(n) && ins.length === 1) {
      const parent = g.nodes.get(ins[0]!.from)!;
      if (passthrough(parent) && soleChild(parent) === n && parent.key !== n.key) continue;
    }
    const members = [n];
    if (opts.collapse !== false && passthrough(n)) {
      let cur = n;
      for (;;) {
        const child = soleChild(cur);
        if (!child || !passthrough(child) || members.includes(child)) break;
        members.push(child);
        cur = child;
      }
    }
    const box: Box = { id: '', members };
    boxes.push(box);
    for (const m of members) boxOf.set(m.key, box);
  }
  // A chain whose top was skipped because it is part of a cycle gets its own box.
  for (const n of kept) {
    if (!boxOf.has(n.key)) {
      const box: Box = { id: '', members: [n] };
      boxes.push(box);
      boxOf.set(n.key, box);
    }
  }
  boxes.forEach((b, i) => (b.id = `n${i + 1}`));

  const out: string[] = [];
  const title = [opts.title ?? 'heapprof flow graph'];
  for (let i = 0; i < k; i++) title.push(`${labels[i]}: ${formatBytes(totals[i]!)} live`);
  if (threshold > 0) title.push(`nodes below ${percent(threshold, 1)} of the total are not shown`);
  out.push('digraph heapprof {');
  out.push(`  graph [label="${dotText(title)}", labelloc=t, labeljust=l];`);
  out.push('  node [shape=box, style=filled, fontsize=10];');
  out.push('  edge [fontsize=9];');
  for (const box of boxes) {
    const top = box.members[0]!;
    const lines: string[] = [];
    if (box.members.length === 1) lines.push(...frameLines(top.frame));
    else {
      const shown = box.members.length <= 6 ? box.members : [...box.members.slice(0, 3), null, ...box.members.slice(-2)];
      for (const m of shown) {
        if (m === null) lines.push(`  ... ${box.members.length - 5} more lines`);
        else lines.push(frameLines(m.frame).join(' '));
      }
    }
    const leafMost = box.members[box.members.length - 1]!;
    for (let i = 0; i < k; i++) {
      const prefix = k > 1 ? `${labels[i]}: ` : '';
      const local = leafMost.local[i]!;
      const localText = box.members.length === 1 ? `local ${formatBytes(local)} (${percent(local, totals[i]!)}), ` : '';
      lines.push(`${prefix}${localText}cum ${formatBytes(top.cum[i]!)} (${percent(top.cum[i]!, totals[i]!)})`);
    }
    const share = maxShare(top.cum, totals);
    const localShare = box.members.length === 1 ? maxShare(top.local, totals) : 0;
    const fontsize = (10 + 8 * localShare).toFixed(1);
    const peripheries = box.members.length > 1 ? ', peripheries=2' : '';
    out.push(`  ${box.id} [label="${dotText(lines)}", fillcolor="${shareColor(share)}", fontsize=${fontsize}${peripheries}];`);
  }
  const drawn = new Map<string, number[]>();
  const edgeOrder: string[] = [];
  for (const e of edges) {
    const a = boxOf.get(e.from)!;
    const b = boxOf.get(e.to)!;
    if (a === b) continue; // inside a collapsed chain
    const key = `${a.id} -> ${b.id}`;
    const cur = drawn.get(key);
    if (cur) e.bytes.forEach((v, i) => (cur[i]! += v));
    else {
      drawn.set(key, [...e.bytes]);
      edgeOrder.push(key);
    }
  }
  const num = (id: string): number => Number(id.slice(1));
  edgeOrder.sort((x, y) => {
    const [a1, b1] = x.split(' -> ') as [string, string];
    const [a2, b2] = y.split(' -> ') as [string, string];
    return num(a1) - num(a2) || num(b1) - num(b2);
  });
  for (const key of edgeOrder) {
    const bytes = drawn.get(key)!;
    const share = maxShare(bytes, totals);
    const label = bytes.map((v) => formatBytes(v)).join(' / ');
    const penwidth = (1 + 4 * share).toFixed(2);
    out.push(`  ${key} [label="${plainDot(label)}", penwidth=${penwidth}, color="${edgeColor(share)}"];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
