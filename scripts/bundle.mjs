// The start-up build (`npm run build` runs it after tsc): each command's module graph in dist/
// (dist/cmd/X.js and all it imports, its dynamic imports included) as one CommonJS file,
// dist/bundle/hp-X.cjs, with the list of modules it was made from beside it. A command starts
// noticeably faster from one CommonJS file than from thirty ES modules (doc/benchmarks.md,
// Start-up); lib/start.cts runs the bundle only while it is newer than every module it was made
// from, and the modules themselves otherwise, so a later `tsc` alone never leaves a stale one.
//
// The bundle is a packaging of dist/, nothing more: no minifying or renaming beyond esbuild's
// scope hoisting, and each module's `import.meta.url` is still that module's own URL in dist/
// (the bootstrap, the native decoder, package.json and the decoding worker are found from it).
// yargs, cli-table3 and asciichart stay out: the sources load them with createRequire on first use.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const OUT = join(DIST, 'bundle');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  // A checkout without its devDependencies: the commands still run, from dist/'s modules.
  process.stderr.write(`bundle: esbuild not installed (${err.code ?? err.message}); the commands will start from dist/'s modules, more slowly\n`);
  rmSync(OUT, { recursive: true, force: true });
  process.exit(0);
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const commands = Object.keys(pkg.bin).map((name) => ({ name, entry: join(DIST, 'cmd', `${name.replace(/^hp-/, '')}.js`) }));

/** Each dist module's `import.meta.url`, as its own URL, computed from the bundle's location at run time. */
const moduleUrls = {
  name: 'module-urls',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(`${DIST}/`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      const rel = relative(OUT, args.path);
      const out = text.replaceAll('import.meta.url', `__hpModuleUrl(${JSON.stringify(rel)})`);
      if (/\bimport\.meta\b/.test(out)) throw new Error(`${relative(ROOT, args.path)}: import.meta other than import.meta.url: the bundle cannot reproduce it`);
      return { contents: out, loader: 'js' };
    });
  },
};

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
for (const { name, entry } of commands) {
  const outfile = join(OUT, `${name}.cjs`);
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    absWorkingDir: ROOT,
    metafile: true,
    logLevel: 'warning',
    plugins: [moduleUrls],
    banner: {
      js: [
        `// ${name}: dist/cmd/${relative(join(DIST, 'cmd'), entry)} and the modules it imports, bundled by scripts/bundle.mjs. Do not edit.`,
        'const __hpModuleUrl = (rel) => require("node:url").pathToFileURL(require("node:path").join(__dirname, rel)).href;',
      ].join('\n'),
    },
  });
  // The modules in dist/ it holds (paths relative to dist/), for lib/start.cts' freshness check.
  const inputs = Object.keys(result.metafile.inputs)
    .map((p) => resolve(ROOT, p))
    .filter((p) => p.startsWith(`${DIST}/`))
    .map((p) => relative(DIST, p))
    .sort();
  writeFileSync(join(OUT, `${name}.inputs.json`), `${JSON.stringify(inputs)}\n`);
}
