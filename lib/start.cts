// How bin/hp-* start, in CommonJS so that nothing goes through Node's ES-module loader unless it
// must: the command's bundle, dist/bundle/hp-X.cjs (scripts/bundle.mjs), when it is there and
// newer than every module of dist/ it was made from; else the command's module, dist/cmd/X.js.
// HP_NO_BUNDLE=1 always takes the modules (tests compare both ways).

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Command {
  main(argv: string[]): void;
}

/** The bundle of command `name` (hp-X), if it is up to date with dist/; else null. */
export function freshBundle(name: string, dist: string = __dirname, env: NodeJS.ProcessEnv = process.env): string | null {
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
  return path;
}

/** Run command `name` (hp-X) with `argv`, from its bundle when fresh. */
export function start(name: string, argv: string[]): void {
  const bundle = freshBundle(name);
  if (bundle !== null) {
    (require(bundle) as Command).main(argv);
    return;
  }
  void import(pathToFileURL(join(__dirname, 'cmd', `${name.replace(/^hp-/, '')}.js`)).href).then((command: Command) => command.main(argv));
}
