// The layers (doc/internals.md): lib/format (bytes) -> lib/model (estimates) -> lib/export ->
// lib/cmd, each importing only from the layers before it; lib/*.ts is the shared ground. Read
// mechanically from the sources: every static import, export-from, dynamic import() and import
// type, found by TypeScript's own pre-processor, resolved to a file and checked, directly and
// through the shared files (a format file importing lib/x.ts that imports lib/model is caught).

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib');
const ORDER = ['format', 'model', 'export', 'cmd'];

/** The layer of a lib-relative path: 'format' ... 'cmd', 'shared' for lib/*.ts, null outside lib. */
function layerOf(rel: string): string | null {
  if (rel.startsWith('..')) return null;
  const parts = rel.split(sep);
  return parts.length === 1 ? 'shared' : (parts[0] ?? null);
}

/** Relative specifiers a source imports in any way (resolved lib-relative .ts paths), and bare ones. */
function importsOf(rel: string, source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  const out: string[] = [];
  for (const f of info.importedFiles) {
    if (!f.fileName.startsWith('.')) continue;
    out.push(relative(LIB, resolve(LIB, dirname(rel), f.fileName)).replace(/\.js$/, '.ts'));
  }
  return out;
}

/** Every rule broken in a set of sources (lib-relative path -> text), as "FROM imports TO (via ...)". */
export function violations(sources: Map<string, string>): string[] {
  const graph = new Map<string, string[]>();
  for (const [rel, text] of sources) graph.set(rel, importsOf(rel, text));
  const found: string[] = [];
  for (const [rel] of sources) {
    const from = layerOf(rel);
    if (from === null || from === 'shared' || !ORDER.includes(from)) continue;
    // Walk the imports, going on through shared files only: a layer's own imports are checked from that layer.
    const seen = new Set<string>([rel]);
    const stack: Array<[string, string[]]> = (graph.get(rel) ?? []).map((to) => [to, []]);
    while (stack.length > 0) {
      const [to, via] = stack.pop()!;
      if (seen.has(to)) continue;
      seen.add(to);
      const layer = layerOf(to);
      if (layer === null) continue;
      if (ORDER.includes(layer) && ORDER.indexOf(layer) > ORDER.indexOf(from)) {
        found.push(`${rel} imports ${to}${via.length > 0 ? ` (via ${via.join(' -> ')})` : ''}`);
      } else if (layer === 'shared') {
        for (const next of graph.get(to) ?? []) stack.push([next, [...via, to]]);
      }
    }
  }
  return found.sort();
}

function libSources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.set(relative(LIB, p), readFileSync(p, 'utf8'));
    }
  };
  walk(LIB);
  return out;
}

t.test('the checker catches each kind of import across the layers', async (t) => {
  const fake = new Map<string, string>([
    ['format/a.ts', "import { x } from '../model/live.js';\n"],
    ['format/b.ts', "export { y } from '../export/report.js';\n"],
    ['format/c.ts', "const m = await import('../cmd/stats.js');\n"],
    ['format/d.ts', "import type { Z } from '../shared.js';\n"],
    ['shared.ts', "import { w } from './model/sites.js';\n"],
    ['model/e.ts', "import { v } from '../cmd/common.js';\nimport { u } from '../format/types.js';\n"],
    ['export/f.ts', "import { s } from '../cmd/human.js';\nimport { r } from '../model/sites.js';\n"],
    ['cmd/g.ts', "import { q } from '../export/report.js';\nimport { p } from '../format/types.js';\n"],
    ['model/h.ts', "// import { nothing } from '../cmd/x.js' is only a comment\nconst s = 'not an import';\n"],
  ]);
  t.same(violations(fake), [
    'export/f.ts imports cmd/human.ts',
    'format/a.ts imports model/live.ts',
    'format/b.ts imports export/report.ts',
    'format/c.ts imports cmd/stats.ts',
    'format/d.ts imports model/sites.ts (via shared.ts)',
    'model/e.ts imports cmd/common.ts',
  ]);
});

t.test('lib/format imports no model, export or cmd; lib/model no export or cmd; lib/export no cmd', async (t) => {
  const sources = libSources();
  for (const layer of ORDER) {
    const files = [...sources.keys()].filter((k) => layerOf(k) === layer);
    t.ok(files.length > 0, `lib/${layer} has sources`);
    t.ok(files.some((f) => importsOf(f, sources.get(f)!).length > 0), `lib/${layer}'s imports were read`);
  }
  t.same(violations(sources), []);
});
