// npm run build: compiles lib/ into dist/ as CommonJS, marks dist/ as CommonJS for Node (the
// package itself is "type": "module", for the tests and scripts that load lib/*.ts), then packs
// each command's modules into one file, dist/bundle/hp-X.cjs (esbuild).
//
// CommonJS because a command's start is mostly module loading, and Node loads a CommonJS file
// ~0.45 ms faster than the same code as an ES module, an entry ~7 ms faster; one file because
// resolving, stating and reading each of a command's ~28 modules costs ~19 ms more again
// (doc/benchmarks.md, Start-up). lib/start.ts runs a bundle only while it is newer than every
// module it was made from (in a checkout) and every module has the size it had, so a later bare
// `tsc` never leaves a stale one running.
//
// The bundle is a packaging of dist/, nothing more: no minifying or renaming beyond esbuild's
// scope hoisting. dist/where.cjs stays outside it (`../where.cjs` from dist/bundle/), so that
// the package's root is still found from dist/; yargs, cli-table3, asciichart and the native
// decoder stay outside too (loaded on first use through where.cjs' require).

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
mkdirSync(dist, { recursive: true });
writeFileSync(join(dist, 'package.json'), '{ "type": "commonjs" }\n');
rmSync(out, { recursive: true, force: true });
if (r.status !== 0) process.exit(r.status ?? 1);

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  // A checkout without its devDependencies: the commands still run, from dist/'s modules.
  process.stderr.write(`build: esbuild is not installed (${err.code ?? err.message}); the commands will start from dist/'s modules, ~20 ms more slowly\n`);
  process.exit(0);
}

/** dist/where.cjs, from wherever in dist/ it is imported: one copy, outside the bundle. */
const whereOutside = {
  name: 'where-outside',
  setup(build) {
    build.onResolve({ filter: /(^|\/)where\.cjs$/ }, () => ({ path: '../where.cjs', external: true }));
  },
};

// hp-record is left out: on its usual path it loads 7 modules of dist/ (the readers it calls
// for its summary, gdb's attach and the rest load on first use), and its bundle, which holds those
// too, started no faster (200 against 199 ms on an empty script, 31 interleaved runs).
const UNBUNDLED = new Set(['hp-record']);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
mkdirSync(out, { recursive: true });
for (const name of Object.keys(pkg.bin).filter((n) => !UNBUNDLED.has(n))) {
  const entry = join(dist, 'cmd', `${name.replace(/^hp-/, '')}.js`);
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile: join(out, `${name}.cjs`),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    absWorkingDir: root,
    metafile: true,
    logLevel: 'warning',
    plugins: [whereOutside],
    banner: { js: `// ${name}: dist/cmd/${relative(join(dist, 'cmd'), entry)} and the modules it requires, packed by scripts/build.mjs. Do not edit.` },
  });
  // The modules of dist/ it holds and their sizes, for lib/start.ts' freshness check (where.cjs
  // included: it is part of what the command runs, though outside the file).
  const inputs = Object.keys(result.metafile.inputs)
    .map((p) => resolve(root, p))
    .filter((p) => p.startsWith(`${dist}/`))
    .map((p) => relative(dist, p));
  const sizes = Object.fromEntries([...new Set([...inputs, 'where.cjs'])].sort().map((rel) => [rel, statSync(join(dist, rel)).size]));
  writeFileSync(join(out, `${name}.inputs.json`), `${JSON.stringify(sizes)}\n`);
}
