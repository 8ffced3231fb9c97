// How bin/hp-* start: the command's bundle, dist/bundle/hp-X.cjs (scripts/build.mjs), when it is
// there, newer than every module of dist/ it was made from, and Node runs without concurrent
// recompilation; else the command's module, dist/cmd/X.js. HP_NO_BUNDLE=1 always takes the
// modules (the tests compare both ways).
//
// Why the flag: Node 20 can deadlock at exit while a TurboFan job runs on a worker thread
// (nodejs/node#54918), and one large script gives it more such jobs: with the bundle, readers hung
// at exit in three of about six full test runs, before the flag was on bin/'s shell line. `node
// bin/hp-X.js`, which does not read that line, runs the modules.

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
  if (!Array.isArray(inputs) || inputs.length === 0) return null;
  // A module rewritten since (tsc run again without the bundler) or gone: the bundle is stale.
  for (const rel of inputs) {
    const st = typeof rel === 'string' ? statSync(join(dist, rel), { throwIfNoEntry: false }) : undefined;
    if (st === undefined || st.mtimeMs > built) return null;
  }
  return path;
}

/** Run command `name` (hp-X) with `argv`, from its bundle when fresh. */
export function start(name: string, argv: string[]): void {
  const path = freshBundle(name) ?? join(CODE_DIR, 'cmd', `${name.replace(/^hp-/, '')}.js`);
  (load(path) as Command).main(argv);
}
