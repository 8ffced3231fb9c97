// How bin/hp-* start, in CommonJS so that nothing goes through Node's ES-module loader unless it
// must: the command's bundle, dist/bundle/hp-X.cjs (scripts/bundle.mjs), when it is there and
// newer than every module of dist/ it was made from; else the command's module, dist/cmd/X.js.
// The bundle is compiled with the V8 code cache made beside it at build time (hp-X.v8cache), which
// V8 itself refuses when it was made by another V8 version or with other flags (then it compiles
// the source as usual). HP_NO_BUNDLE=1 always takes the modules (tests compare both ways).

import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

interface Command {
  main(argv: string[]): void;
}

/** The bundle of command `name` (hp-X) and its build time, if it is up to date with dist/; else null. */
export function freshBundle(name: string, dist: string = __dirname, env: NodeJS.ProcessEnv = process.env): { path: string; mtimeMs: number } | null {
  if (env.HP_NO_BUNDLE === '1') return null;
  const path = join(dist, 'bundle', `${name}.cjs`);
  let built: number;
  let inputs: unknown;
  try {
    built = statSync(path).mtimeMs;
    inputs = JSON.parse(readFileSync(join(dist, 'bundle', `${name}.inputs.json`), 'utf8'));
  } catch {
    return null;
  }
  if (!Array.isArray(inputs) || inputs.length === 0) return null;
  // A module rewritten since (tsc run again without the bundler) or gone: the bundle is stale.
  for (const rel of inputs) {
    const st = typeof rel === 'string' ? statSync(join(dist, rel), { throwIfNoEntry: false }) : undefined;
    if (st === undefined || st.mtimeMs > built) return null;
  }
  return { path, mtimeMs: built };
}

/** The code cache made for a bundle (`<bundle minus .cjs>.v8cache`), if made after it. */
function codeCacheFor(bundle: { path: string; mtimeMs: number }): Buffer | undefined {
  const path = bundle.path.replace(/\.cjs$/, '.v8cache');
  try {
    // V8 checks its version, its flags and the source's length; the time keeps an older cache off a rebuilt bundle.
    if (statSync(path).mtimeMs < bundle.mtimeMs) return undefined;
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Load a bundle as require() would (module wrapper, its own require, module, __filename,
 * __dirname), compiled with `cachedData` when given. Returns its exports and the compiled script
 * (whose createCachedData() scripts/bundle.mjs saves).
 */
export function loadBundle(path: string, cachedData?: Buffer): { exports: unknown; script: Script } {
  // The wrapper Node's CommonJS loader puts around a module (Module.wrap).
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(path, 'utf8')}\n});`;
  const script = new Script(source, { filename: path, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} as unknown, filename: path, id: path };
  (script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(path), module, path, dirname(path));
  return { exports: module.exports, script };
}

/** Run command `name` (hp-X) with `argv`, from its bundle when fresh. */
export function start(name: string, argv: string[]): void {
  const bundle = freshBundle(name);
  if (bundle !== null) {
    (loadBundle(bundle.path, codeCacheFor(bundle)).exports as Command).main(argv);
    return;
  }
  void import(pathToFileURL(join(__dirname, 'cmd', `${name.replace(/^hp-/, '')}.js`)).href).then((command: Command) => command.main(argv));
}
