// The hp-report page: one self-contained HTML file (no network: inline CSS, inline vanilla JS,
// SVG for the plot and a canvas for the flame graph) around the JSON built by report.ts.

import { escapeControls } from '../escape.js';
import type { ReportData } from './report.js';

/** JSON that is safe inside <script>: no "</script>", no HTML comment openers, no U+2028/9. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Text for the page: markup characters as entities, control characters written out (\x1b). */
function escapeHtml(s: string): string {
  return escapeControls(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const CSS = `
:root { --fg: #1d2330; --muted: #5b6475; --line: #2060c0; --band: rgba(32, 96, 192, 0.18); --rss: #8a8f99; --sel: #d03030; --python: #2a9d4a; --native: #9040c0; --mmap: #e08020; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 24px 40px; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 6px; }
.meta { color: var(--muted); font-size: 12px; }
.meta span { margin-right: 16px; }
#plot { width: 100%; height: 280px; display: block; cursor: crosshair; user-select: none; }
#plot .axis text { font-size: 11px; fill: var(--muted); }
#plot .axis line, #plot .axis path { stroke: #c8ccd4; }
#plot .pt { fill: var(--line); cursor: pointer; }
#plot .pt.peak { fill: var(--sel); }
#plot .pt.chosen { fill: #f0a020; }
#plot .pt.selected { stroke: #000; stroke-width: 2px; }
.legend { font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin: 0 4px 0 10px; }
.legend i:first-child { margin-left: 0; }
#flame-wrap { position: relative; }
#flame { width: 100%; display: block; cursor: pointer; }
#tip { position: absolute; pointer-events: none; background: rgba(20, 24, 32, 0.92); color: #fff; padding: 6px 8px; border-radius: 4px; font-size: 12px; max-width: 560px; display: none; white-space: pre-wrap; z-index: 2; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eceef2; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.site { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.bar { display: inline-block; height: 8px; background: #e07040; vertical-align: middle; }
button { font: inherit; font-size: 12px; padding: 2px 8px; }
.controls { display: flex; gap: 16px; align-items: center; font-size: 12px; color: var(--muted); margin: 4px 0 6px; }
#search { font: inherit; font-size: 12px; padding: 2px 6px; width: 260px; }
#plot .brush { fill: rgba(240, 160, 32, 0.18); stroke: #f0a020; }
#thread { font: inherit; font-size: 12px; }
`;

/*
 * The client. Plain ES5-style JS in a string: no template literals in it, so that this file's
 * own template literal never interpolates by accident.
 */
const CLIENT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('hp-data').textContent);
  var frames = data.frames, nodes = data.nodes, points = data.points;
  var threads = data.threads || [], domains = data.domains || [];
  var STRIDE = 7; // per tree node: node, bytes, how far its 95% interval reaches below and above, count, the same
  var SITE_STRIDE = 4; // per site: frame, bytes, how far its 95% interval reaches below and above
  var selected = data.selectedIndex;
  var zoomPath = null; // frame-index path (root first) of the zoomed flame node, null = whole heap

  function fmtBytes(n) {
    var sign = n < 0 ? '-' : '';
    var v = Math.abs(n), u = 0, units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    // Step up while the value as printed would reach 1024 of its unit (1.0 MiB, not 1024.0 KiB).
    while (u < units.length - 1 && (u === 0 ? Math.round(v) : Number(v.toFixed(1))) >= 1024) { v /= 1024; u++; }
    return sign + (u === 0 ? Math.round(v) + ' B' : v.toFixed(1) + ' ' + units[u]);
  }
  function fmtSec(t) {
    if (t >= 3600) return (t / 3600).toFixed(t >= 36000 ? 0 : 1) + ' h';
    if (t >= 60) return (t / 60).toFixed(t >= 600 ? 0 : 1) + ' min';
    return (Math.round(t * 1000) / 1000) + ' s';
  }
  // A moment as the terminal views write it (seconds to the microsecond), so that the chosen
  // time reads as the --at it came from; past a minute also in h/min/s.
  function fmtTime(t) {
    var text = (+t.toFixed(6)) + ' s';
    if (t < 60) return text;
    var whole = Math.round(t), h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), sec = whole % 60;
    return text + ' (' + (h > 0 ? h + ' h ' : '') + m + ' min ' + sec + ' s)';
  }
  // As the terminal tables: a share too small for one decimal is <0.1%, not 0.0%, and one short
  // of the whole that one decimal would round up is >99.9%, not 100.0%.
  function pct(part, whole) {
    if (!(whole > 0)) return '0%';
    var v = 100 * part / whole;
    if (v > 0 && v < 0.05) return '<0.1%';
    return v < 100 && v.toFixed(1) === '100.0' ? '>99.9%' : v.toFixed(1) + '%';
  }
  function fmtCount(n) { return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function threadName(k) { var th = threads[k]; return (th.name || 'thread ' + th.id) + ' (tid ' + th.tid + ')'; }
  function frameName(i) {
    var f = frames[i];
    if (f[1] === '') return f[0] || '?';
    var where = f[2] > 0 ? f[1] + ':' + f[2] : f[1];
    return f[0] ? f[0] + ' (' + where + ')' : where;
  }
  function shortName(i) { var f = frames[i]; return f[0] || (f[2] > 0 ? f[1] + ':' + f[2] : f[1]); }
  function el(tag, attrs, parent) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // ---- memory over time ----
  var svg = document.getElementById('plot');
  var M = { l: 72, r: 16, t: 10, b: 28 };
  var tMax = 0, yMax = 0;
  points.forEach(function (p) {
    tMax = Math.max(tMax, p.t);
    yMax = Math.max(yMax, p.hi, p.bytes, p.rss || 0);
  });
  if (tMax <= 0) tMax = 1;
  if (yMax <= 0) yMax = 1;
  yMax *= 1.05;
  var W = 800, H = 280;
  function X(t) { return M.l + (W - M.l - M.r) * t / tMax; }
  function Y(b) { return H - M.b - (H - M.t - M.b) * b / yMax; }
  function niceStep(range, n) {
    var raw = range / n, mag = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10)), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  }
  function niceByteStep(range, n) {
    var raw = range / n, p = 1;
    while (p * 1024 <= raw) p *= 1024;
    return niceStep(raw / p * n, n) * p;
  }
  function drawPlot() {
    W = Math.max(320, svg.clientWidth || 800);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var axis = el('g', { 'class': 'axis' }, svg);
    var ys = niceByteStep(yMax, 5);
    for (var y = 0; y <= yMax; y += ys) {
      el('line', { x1: M.l, x2: W - M.r, y1: Y(y), y2: Y(y) }, axis);
      var ty = el('text', { x: M.l - 6, y: Y(y) + 4, 'text-anchor': 'end' }, axis);
      ty.textContent = fmtBytes(y);
    }
    var xs = niceStep(tMax, Math.max(2, Math.floor(W / 110)));
    for (var x = 0; x <= tMax + 1e-9; x += xs) {
      el('line', { x1: X(x), x2: X(x), y1: H - M.b, y2: H - M.b + 4 }, axis);
      var tx = el('text', { x: X(x), y: H - 8, 'text-anchor': 'middle' }, axis);
      tx.textContent = fmtSec(x);
    }
    var band = '', line = '', rss = '';
    points.forEach(function (p, i) { band += (i ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(p.hi).toFixed(1); });
    for (var i = points.length - 1; i >= 0; i--) band += 'L' + X(points[i].t).toFixed(1) + ',' + Y(points[i].lo).toFixed(1);
    points.forEach(function (p, i) { line += (i ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(p.bytes).toFixed(1); });
    var rssStarted = false;
    points.forEach(function (p) {
      if (p.rss === null || p.rss === undefined) return;
      rss += (rssStarted ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(p.rss).toFixed(1);
      rssStarted = true;
    });
    // Native recordings: the live heap of each domain that has any, stacked (python at the
    // bottom, then native, then mmap), so that the top of the stack is the estimated live heap.
    var below = points.map(function () { return 0; });
    domainSeries().forEach(function (d) {
      var upper = points.map(function (p, i) { return below[i] + (p.domains ? p.domains[d.index] : 0); });
      var path = '';
      points.forEach(function (p, i) { path += (i ? 'L' : 'M') + X(p.t).toFixed(1) + ',' + Y(upper[i]).toFixed(1); });
      for (var j = points.length - 1; j >= 0; j--) path += 'L' + X(points[j].t).toFixed(1) + ',' + Y(below[j]).toFixed(1);
      el('path', { id: 'series-' + d.name, 'class': 'series', d: path + 'Z', fill: 'var(--' + d.name + ')', 'fill-opacity': 0.3, stroke: 'var(--' + d.name + ')', 'stroke-width': 1 }, svg);
      below = upper;
    });
    el('path', { id: 'band', d: band + 'Z', fill: 'var(--band)', stroke: 'none' }, svg);
    if (rss) el('path', { id: 'rss', d: rss, fill: 'none', stroke: 'var(--rss)', 'stroke-dasharray': '4 3' }, svg);
    el('path', { id: 'live', d: line, fill: 'none', stroke: 'var(--line)', 'stroke-width': 2 }, svg);
    (data.marks || []).forEach(function (m) {
      var g = el('g', { 'class': 'mark' }, svg);
      el('line', { x1: X(m.t), x2: X(m.t), y1: M.t, y2: H - M.b, stroke: 'var(--muted)', 'stroke-dasharray': '1 3' }, g);
      el('title', {}, g).textContent = 'mark ' + m.label + ' at ' + fmtTime(m.t);
    });
    var sp = points[selected];
    if (range) el('rect', { id: 'brush', 'class': 'brush', x: X(range[0]), y: M.t, width: Math.max(1, X(range[1]) - X(range[0])), height: H - M.t - M.b }, svg);
    el('line', { id: 'cursor', x1: X(sp.t), x2: X(sp.t), y1: M.t, y2: H - M.b, stroke: 'var(--sel)', 'stroke-dasharray': '3 3' }, svg);
    points.forEach(function (p, i) {
      var c = el('circle', { cx: X(p.t), cy: Y(p.bytes), r: p.peak || p.chosen ? 5 : 3, 'class': 'pt' + (p.peak ? ' peak' : '') + (p.chosen ? ' chosen' : '') + (i === selected ? ' selected' : ''), 'data-index': i }, svg);
      var title = el('title', {}, c);
      title.textContent = (p.peak ? 'peak, ' : p.chosen ? 'chosen, ' : '') + fmtTime(p.t) + ': ' + fmtBytes(p.bytes) + ' live' + (p.hi > p.lo ? ' (95%: ' + fmtBytes(p.lo) + ' .. ' + fmtBytes(p.hi) + ')' : '');
    });
  }
  function domainSeries() {
    var out = [];
    domains.forEach(function (name, index) {
      if (points.some(function (p) { return p.domains && p.domains[index] > 0; })) out.push({ name: name, index: index });
    });
    return out;
  }
  // The legend lists only the series drawn.
  (function legend() {
    var box = document.getElementById('plot-legend');
    function item(color, text, extra) {
      var i = document.createElement('i');
      i.style.background = color;
      if (extra) for (var k in extra) i.style[k] = extra[k];
      box.appendChild(i);
      box.appendChild(document.createTextNode(text + ' '));
    }
    item('var(--line)', 'estimated live heap');
    item('var(--band)', 'its 95% interval', { height: '8px' });
    var labels = { python: "Python's allocator", native: 'native (malloc family)', mmap: 'anonymous mmap' };
    domainSeries().forEach(function (d) { item('var(--' + d.name + ')', labels[d.name] || d.name); });
    if (points.some(function (p) { return p.rss !== null && p.rss !== undefined; })) item('var(--rss)', 'process RSS');
    item('var(--sel)', 'peak', { width: '8px', height: '8px', borderRadius: '4px' });
    box.appendChild(document.createTextNode('\u2014 click the plot (or use \u2190 \u2192) to choose a time, drag across it to choose a range'));
    box.setAttribute('data-series', ['live'].concat(domainSeries().map(function (d) { return d.name; })).concat(points.some(function (p) { return p.rss != null; }) ? ['rss'] : []).join(' '));
  })();

  // A drag on the plot selects a time range (the table then shows each site's high-water mark
  // over it); a click without a drag selects one time.
  var range = null, dragFrom = null, dragged = false;
  function plotX(ev) { var r = svg.getBoundingClientRect(); return (ev.clientX - r.left) * W / r.width; }
  function tAt(x) { return Math.max(0, Math.min(tMax, (x - M.l) * tMax / (W - M.l - M.r))); }
  svg.addEventListener('mousedown', function (ev) { dragFrom = plotX(ev); dragged = false; });
  svg.addEventListener('mousemove', function (ev) {
    if (dragFrom === null) return;
    var x = plotX(ev);
    if (Math.abs(x - dragFrom) < 6) return;
    dragged = true;
    var a = tAt(Math.min(x, dragFrom)), b = tAt(Math.max(x, dragFrom));
    range = [a, b];
    drawBrush();
  });
  window.addEventListener('mouseup', function () {
    if (dragFrom === null) return;
    dragFrom = null;
    if (dragged) drawTable();
  });
  function drawBrush() {
    var old = document.getElementById('brush');
    if (old) old.parentNode.removeChild(old);
    if (!range) return;
    el('rect', { id: 'brush', 'class': 'brush', x: X(range[0]), y: M.t, width: Math.max(1, X(range[1]) - X(range[0])), height: H - M.t - M.b }, svg);
  }
  svg.addEventListener('click', function (ev) {
    if (dragged) { dragged = false; return; }
    var r = svg.getBoundingClientRect();
    var x = (ev.clientX - r.left) * W / r.width;
    var best = 0, bestD = Infinity;
    points.forEach(function (p, i) {
      var d = Math.abs(X(p.t) - x);
      if (d < bestD || (d === bestD && (p.peak || p.chosen))) { best = i; bestD = d; }
    });
    range = null;
    select(best);
  });

  // ---- thread filter (native recordings with threads) ----
  var threadSel = document.getElementById('thread');
  var thread = -1; // -1: all threads
  if (threads.length > 0) {
    threads.forEach(function (th, k) {
      var o = document.createElement('option');
      o.value = String(k);
      o.textContent = threadName(k);
      threadSel.appendChild(o);
    });
    document.getElementById('thread-control').hidden = false;
    threadSel.addEventListener('change', function () {
      thread = Number(threadSel.value);
      zoomPath = null;
      drawFlame();
      drawTable();
    });
  }

  // ---- flame graph (icicle: root on top) ----
  var canvas = document.getElementById('flame');
  var ctx = canvas.getContext('2d');
  var tip = document.getElementById('tip');
  var ROW = 18;
  var rects = [];
  function resolve(p) { return p.ref !== undefined ? points[p.ref] : p; }
  // The tree of the whole heap (root frame -1), or of thread k (root frame -2 - k).
  function buildTree(p) {
    var src = resolve(p);
    var rootFrame = thread < 0 ? -1 : -2 - thread;
    var byNode = {}, root = null;
    for (var i = 0; i < src.tree.length; i += STRIDE) {
      var id = src.tree[i], nd = nodes[id];
      if (nd[0] < 0 && nd[1] !== rootFrame) continue;
      if (nd[0] >= 0 && !byNode[nd[0]]) continue;
      var n = { id: id, frame: nd[1] < 0 ? -1 : nd[1], name: nd[1] < 0 ? (thread < 0 ? 'all' : threadName(thread)) : frameName(nd[1]), value: src.tree[i + 1], below: src.tree[i + 2], above: src.tree[i + 3], count: src.tree[i + 4], countBelow: src.tree[i + 5], countAbove: src.tree[i + 6], children: {}, order: [] };
      byNode[id] = n;
      if (nd[0] < 0) root = n;
      else { byNode[nd[0]].children['n' + id] = n; byNode[nd[0]].order.push(n); }
    }
    return root || { id: 0, frame: -1, name: thread < 0 ? 'all' : threadName(thread), value: thread < 0 ? p.bytes : 0, below: 0, above: 0, count: 0, countBelow: 0, countAbove: 0, children: {}, order: [] };
  }
  function findZoom(root) {
    if (!zoomPath) return root;
    var node = root;
    for (var i = 0; i < zoomPath.length; i++) {
      var next = node.children[zoomPath[i]];
      if (!next) return root;
      node = next;
    }
    return node;
  }
  var searchBox = document.getElementById('search');
  var hideImport = document.getElementById('hide-import');
  // Frames of the import system (importlib._bootstrap and friends): noise in most heaps.
  function isImportMachinery(f) {
    var file = frames[f][1];
    return /importlib[._\/]_bootstrap|^<frozen importlib|^<frozen zipimport/.test(file);
  }
  function hidden(n) { return hideImport.checked && n.frame >= 0 && isImportMachinery(n.frame); }
  searchBox.addEventListener('input', function () { drawFlame(); });
  hideImport.addEventListener('change', function () { drawFlame(); });
  function color(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return 'hsl(' + (10 + h % 45) + ',' + (70 + (h >>> 8) % 25) + '%,' + (58 + (h >>> 16) % 14) + '%)';
  }
  function drawFlame() {
    var p = points[selected];
    var root = buildTree(p);
    var focus = findZoom(root);
    var depth = 0;
    (function measure(n, d) { depth = Math.max(depth, d); n.order.forEach(function (c) { measure(c, hidden(c) ? d : d + 1); }); })(focus, 0);
    var query = searchBox.value.trim().toLowerCase();
    var matches = 0, matchedBytes = 0;
    var width = Math.max(320, canvas.parentNode.clientWidth || 800);
    var ratio = window.devicePixelRatio || 1;
    var height = (depth + 1) * ROW + 2;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = height + 'px';
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
    ctx.textBaseline = 'middle';
    rects = [];
    tipRoot = root.value;
    function draw(n, x, w, d, path, inMatch) {
      if (w < 0.4) return;
      if (hidden(n) && n !== focus) {
        // Drawn through: its callees take its place, one level up.
        var hx = x;
        n.order.slice().sort(function (a, b) { return b.value - a.value; }).forEach(function (c) {
          var hw2 = w * c.value / (n.value > 0 ? n.value : 1);
          draw(c, hx, hw2, d, path.concat(['n' + c.id]), inMatch);
          hx += hw2;
        });
        return;
      }
      var y = d * ROW;
      var isMatch = query !== '' && n.frame >= 0 && n.name.toLowerCase().indexOf(query) >= 0;
      if (isMatch) { matches++; if (!inMatch) matchedBytes += n.value; }
      ctx.fillStyle = isMatch ? '#d040c0' : query !== '' ? '#e4e6ea' : n.frame === -1 ? '#c9ced8' : frames[n.frame][1] === '' ? '#d8d8d8' : color(n.name);
      ctx.fillRect(x, y, Math.max(0.5, w - 0.5), ROW - 1);
      rects.push({ x: x, y: y, w: w, node: n, path: path, match: isMatch });
      if (w > 28) {
        ctx.fillStyle = '#111';
        var label = n.frame === -1 ? n.name + ': ' + fmtBytes(n.value) + ' live at ' + fmtTime(p.t) : n.name;
        var maxChars = Math.floor((w - 6) / 6.6);
        if (label.length > maxChars) label = label.slice(0, Math.max(1, maxChars - 1)) + '\u2026';
        ctx.fillText(label, x + 3, y + ROW / 2);
      }
      var cx = x;
      n.order.slice().sort(function (a, b) { return b.value - a.value; }).forEach(function (c) {
        var cw = w * c.value / (n.value > 0 ? n.value : 1);
        draw(c, cx, cw, d + 1, path.concat(['n' + c.id]), inMatch || isMatch);
        cx += cw;
      });
    }
    draw(focus, 0, width, 0, zoomPath ? zoomPath.slice() : [], false);
    canvas.setAttribute('data-point', String(selected));
    canvas.setAttribute('data-root-bytes', String(root.value));
    canvas.setAttribute('data-matches', String(matches));
    canvas.setAttribute('data-frames', String(rects.length));
    document.getElementById('search-info').textContent = query === '' ? '' : matches + ' frame' + (matches === 1 ? '' : 's') + ' match, ' + fmtBytes(matchedBytes) + ' (' + pct(matchedBytes, focus.value) + ')';
    document.getElementById('flame-title').textContent = (p.peak ? 'Peak: ' : p.chosen ? 'Chosen: ' : '') + 'live heap at ' + fmtTime(p.t) + ': ' + fmtBytes(p.bytes) +
      (p.hi > p.lo ? ' (95% interval ' + fmtBytes(p.lo) + ' .. ' + fmtBytes(p.hi) + ')' : '') +
      (thread >= 0 ? '; thread ' + threadName(thread) + ': ' + fmtBytes(root.value) : '') +
      (focus !== root ? ', zoomed to ' + focus.name + ' (' + pct(focus.value, root.value) + ')' : '');
  }
  var tipRoot = 0; // bytes of the shown tree's root (the thread's heap when one is chosen)
  function hit(ev) {
    var r = canvas.getBoundingClientRect();
    var x = ev.clientX - r.left, y = ev.clientY - r.top;
    for (var i = rects.length - 1; i >= 0; i--) {
      var q = rects[i];
      if (x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + ROW) return q;
    }
    return null;
  }
  canvas.addEventListener('mousemove', function (ev) {
    var q = hit(ev);
    if (!q) { tip.style.display = 'none'; return; }
    var p = points[selected], n = q.node;
    var whole = thread < 0 ? p.bytes : tipRoot;
    tip.textContent = (n.frame === -1 ? (thread < 0 ? 'all live bytes' : 'all live bytes of ' + n.name) : n.name) + '\n' + fmtBytes(n.value) + ' live, ' + pct(n.value, whole) + ' of the ' + (thread < 0 ? 'heap' : "thread's heap") + ' at ' + fmtTime(p.t) +
      '\n95% interval: ' + (n.below + n.above > 0 ? fmtBytes(n.value - n.below) + ' .. ' + fmtBytes(n.value + n.above) : 'exact (sampled at p = 1)') +
      '\nallocations live: ' + (n.countBelow + n.countAbove > 0 ? 'about ' + fmtCount(n.count) + ' (95%: ' + fmtCount(n.count - n.countBelow) + ' .. ' + fmtCount(n.count + n.countAbove) + ')' : fmtCount(n.count) + ' (exact)');
    tip.style.display = 'block';
    var wrap = canvas.parentNode.getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - wrap.left + 12, wrap.width - 300) + 'px';
    tip.style.top = (ev.clientY - wrap.top + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  canvas.addEventListener('click', function (ev) {
    var q = hit(ev);
    if (!q) return;
    zoomPath = q.node.frame === -1 ? null : q.path;
    drawFlame();
  });
  document.getElementById('unzoom').addEventListener('click', function () { zoomPath = null; drawFlame(); });

  // ---- top sites (innermost line) at the selected point ----
  // Per site, the highest live bytes over the points in the range (memray's temporal view).
  // The sites of a point, and the total they are a share of: the whole heap's or the thread's.
  function sitesOf(p) {
    var src = resolve(p);
    if (thread < 0) return { list: src.sites, total: p.bytes };
    var total = 0;
    for (var i = 0; i < src.tree.length; i += STRIDE) if (nodes[src.tree[i]][1] === -2 - thread) total = src.tree[i + 1];
    return { list: (src.threadSites && src.threadSites[thread]) || [], total: total };
  }
  function highWater(a, b) {
    var best = {}, order = [];
    points.forEach(function (p) {
      if (p.t < a || p.t > b) return;
      var s = sitesOf(p), list = s.list;
      for (var i = 0; i < list.length; i += SITE_STRIDE) {
        var k = 'f' + list[i], cur = best[k];
        if (!cur) { cur = best[k] = { frame: list[i], bytes: -1, below: 0, above: 0, t: 0, total: 1 }; order.push(cur); }
        if (list[i + 1] > cur.bytes) { cur.bytes = list[i + 1]; cur.below = list[i + 2]; cur.above = list[i + 3]; cur.t = p.t; cur.total = s.total; }
      }
    });
    order.sort(function (x, y) { return y.bytes - x.bytes; });
    var flat = [];
    order.forEach(function (r) { flat.push(r.frame, r.bytes, r.below, r.above, r.t, r.total); });
    return flat;
  }
  function drawTable() {
    var p = points[selected], here = sitesOf(p), list = here.list;
    var body = document.getElementById('sites-body');
    while (body.firstChild) body.removeChild(body.firstChild);
    var rows = [];
    if (range) rows = highWater(range[0], range[1]);
    else for (var k = 0; k < list.length; k += SITE_STRIDE) rows.push(list[k], list[k + 1], list[k + 2], list[k + 3], p.t, here.total);
    var maxRows = resolve(p).sites.length / SITE_STRIDE || 30;
    for (var i = 0; i < rows.length && i < 6 * maxRows; i += 6) {
      var frame = rows[i], bytes = rows[i + 1], below = rows[i + 2], above = rows[i + 3], whole = rows[i + 5];
      var tr = document.createElement('tr');
      var cells = [frame < 0 ? '[no Python stack]' : frameName(frame) + (range ? ' \u2014 at ' + fmtTime(rows[i + 4]) : ''), fmtBytes(bytes), below + above > 0 ? fmtBytes(bytes - below) + ' .. ' + fmtBytes(bytes + above) : 'exact', pct(bytes, whole)];
      cells.forEach(function (text, j) {
        var td = document.createElement('td');
        td.className = j === 0 ? 'site' : 'num';
        if (j === 3) {
          var bar = document.createElement('span');
          bar.className = 'bar';
          bar.style.width = Math.round(60 * bytes / (whole || 1)) + 'px';
          td.appendChild(bar);
          td.appendChild(document.createTextNode(' ' + text));
        } else td.textContent = text;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    document.getElementById('sites-title').textContent = (range ? 'High-water mark per site from ' + fmtSec(range[0]) + ' to ' + fmtSec(range[1]) + ' (drag on the plot; click it to choose one time)' : 'Top sites at ' + fmtTime(p.t)) + (thread >= 0 ? ', thread ' + threadName(thread) : '');
  }

  function select(i) {
    if (i < 0 || i >= points.length) return;
    selected = i;
    zoomPath = null;
    drawPlot();
    drawFlame();
    drawTable();
  }
  window.addEventListener('resize', function () { drawPlot(); drawFlame(); });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'ArrowLeft') select(selected - 1);
    else if (ev.key === 'ArrowRight') select(selected + 1);
  });
  select(selected);
})();
`;

/** Marks (heapprof.mark) under the plot, where the plot draws them as dotted lines. */
function marksList(marks: ReportData['marks']): string {
  if (marks.length === 0) return '';
  const shown = marks.slice(0, 200).map((m) => `<span><code>${escapeHtml(m.label)}</code> ${+m.t.toFixed(6)} s</span>`);
  const more = marks.length > shown.length ? ` <span>and ${marks.length - shown.length} more</span>` : '';
  return `<div class="legend marks">marks (dotted lines): ${shown.join(', ')}${more}</div>`;
}

/** The whole page. */
export function renderReportHtml(data: ReportData): string {
  const m = data.meta;
  const facts = [
    m.argv.length ? `<span>program: <code>${escapeHtml(m.argv.join(' '))}</code></span>` : '',
    m.python ? `<span>Python ${escapeHtml(m.python.split(' ')[0] ?? m.python)}</span>` : '',
    m.pid !== null ? `<span>pid ${m.pid}</span>` : '',
    m.hostname ? `<span>host ${escapeHtml(m.hostname)}</span>` : '',
    `<span>started ${escapeHtml(new Date(m.startTimeUs / 1000).toISOString())}</span>`,
    `<span>sampling: ${escapeHtml(m.sampling)}</span>`,
    m.complete ? '' : '<span>incomplete profile (recorder still running, crashed, or stopped early on a failed write)</span>',
    ...(m.attached ?? []).map((a) => `<span>${escapeHtml(a)}</span>`),
  ]
    .filter(Boolean)
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>${escapeHtml(data.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(data.title)}</h1>
<div class="meta">
${facts}
</div>
<h2>Memory over time</h2>
<div class="legend" id="plot-legend"></div>
<svg id="plot" role="img" aria-label="estimated live heap over time"></svg>
${marksList(data.marks)}
<h2 id="flame-title">Live heap</h2>
<div class="legend">width = share of live bytes; root on top, callees below; space under a frame = allocated by that line itself or by callees too small to draw; click a frame to zoom <button id="unzoom" type="button">whole heap</button></div>
<div class="controls"><input id="search" type="search" placeholder="search frames: function or file" aria-label="search frames"><span id="search-info"></span><label><input id="hide-import" type="checkbox" checked> hide import machinery (importlib._bootstrap)</label><label id="thread-control" hidden>thread <select id="thread" aria-label="thread"><option value="-1">all threads</option></select></label></div>
<div id="flame-wrap"><canvas id="flame" role="img" aria-label="flame graph of the live heap"></canvas><div id="tip"></div></div>
<h2 id="sites-title">Top sites</h2>
<table id="sites"><thead><tr><th>site (innermost line)</th><th class="num">live bytes</th><th class="num">95% interval</th><th class="num">share</th></tr></thead><tbody id="sites-body"></tbody></table>
<script id="hp-data" type="application/json">${scriptSafeJson(data)}</script>
<script>${CLIENT}</script>
</body>
</html>
`;
}
