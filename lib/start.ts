// How bin/hp-* start: the command's bundle, dist/bundle/hp-X.cjs (scripts/build.mjs), when it is
// there, every module of dist/ it was made from has the size it had then and (outside
// node_modules) is not newer than it, and Node runs without concurrent recompilation; else the
// command's module, dist/cmd/X.js. HP_NO_BUNDLE=1 always takes the
// modules (the tests compare both ways).
//
// Why the flag: Node 20 can deadlock at exit while a TurboFan job runs on a worker thread
// (nodejs/node#54918), and one large script gives it more such jobs: with the bundle, readers hung
// at exit in three of about six full test runs, before the flag was on bin/'s shell line. `node
// bin/hp-X.js`, which does not read that line, runs the modules.

import { readFileSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { CODE_DIR, load } from './where.cjs';

interface Command {
  main(argv: string[]): void;
}

/** The bundle of command `name` (hp-X), if it is up to date with dist/ and safe to run; else null. */
export function freshBundle(name: string, dist: string = CODE_DIR, env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string | null {
  if (env.HP_NO_BUNDLE === '1' || !execArgv.includes('--no-concurrent-recompilation')) return null;
  const path = join(dist, 'bundle', `${name}.cjs`);
  let built: number;
  let inputs: unknown;
  try {
    built = statSync(path).mtimeMs;
    inputs = JSON.parse(readFileSync(join(dist, 'bundle', `${name}.inputs.json`), 'utf8'));
  } catch {
    return null;
  }
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs) || Object.keys(inputs).length === 0) return null;
  // An installed copy: npm unpacks a package giving each file the time it writes it, in the
  // tarball's order (dist/bundle/ before most modules), so there times say nothing; sizes do.
  const installed = dist.split(sep).includes('node_modules');
  // A module rewritten since (tsc run again without the bundler, a patch applied in place) or
  // gone: the bundle is stale.
  for (const [rel, size] of Object.entries(inputs as Record<string, unknown>)) {
    const st = statSync(join(dist, rel), { throwIfNoEntry: false });
    if (st === undefined || st.size !== size || (!installed && st.mtimeMs > built)) return null;
  }
  return path;
}

/** Run command `name` (hp-X) with `argv`, from its bundle when fresh. */
export function start(name: string, argv: string[]): void {
  const path = freshBundle(name) ?? join(CODE_DIR, 'cmd', `${name.replace(/^hp-/, '')}.js`);
  (load(path) as Command).main(argv);
}
