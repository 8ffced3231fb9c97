// The start-up build (scripts/bundle.mjs, lib/start.cts): every command has a bundle after
// `npm run build`; a command answers the same from its bundle as from dist/'s modules
// (HP_NO_BUNDLE=1); a bundle older than any module it was made from is not used.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist');
const COMMANDS = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin);
const ENV = { ...process.env, LC_ALL: 'C', LANG: 'C', HP_DEBUG: '', HP_CHECK_ARGS: '' };

interface Start {
  freshBundle(name: string, dist?: string, env?: NodeJS.ProcessEnv): string | null;
}

const built = existsSync(join(DIST, 'start.cjs')) && existsSync(join(DIST, 'bundle'));
const hasEsbuild = existsSync(join(ROOT, 'node_modules', 'esbuild'));
const skip = !built ? 'dist/bundle is not built: run `npm run build`' : false;

function run(name: string, args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', `${name}.js`), ...args], { env, encoding: 'utf8', input: '', cwd: tmpdir() });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('npm run build leaves a fresh bundle for every command', { skip: skip || (!hasEsbuild && 'esbuild is not installed') }, async (t) => {
  const start = createRequire(import.meta.url)(join(DIST, 'start.cjs')) as Start;
  for (const name of COMMANDS) {
    const bundle = start.freshBundle(name, DIST, {});
    t.ok(bundle, `${name}: bundle present and newer than its modules`);
    if (!bundle) continue;
    const source = readFileSync(bundle, 'utf8');
    t.match(source, /main: \(\) => main/, `${name}: exports its main`);
    t.notMatch(source, /import\.meta/, `${name}: no import.meta left (CommonJS)`);
  }
});

t.test('each command answers the same from its bundle and from the modules', { skip }, async (t) => {
  for (const name of COMMANDS) {
    const cases = [['--help'], ['--version'], ['--no-such-option'], name === 'hp-record' ? ['--python', '/nonexistent/python', 'x.py'] : ['no-such-profile']];
    for (const args of cases) {
      const bundled = run(name, args, ENV);
      const modules = run(name, args, { ...ENV, HP_NO_BUNDLE: '1' });
      t.same(bundled, modules, `${name} ${args.join(' ')}`);
    }
  }
  // Paths found from each module's own import.meta.url: package.json (--version) and hp-record's bootstrap.
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  t.equal(run('hp-snapshot', ['--version'], ENV).stdout.trim(), version);
});

t.test('a bundle older than one of its modules, or missing one, is not used', { skip }, async (t) => {
  const start = createRequire(import.meta.url)(join(DIST, 'start.cjs')) as Start;
  const dir = mkdtempSync(join(tmpdir(), 'hp-bundle-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dist = join(dir, 'dist');
  mkdirSync(join(dist, 'bundle'), { recursive: true });
  writeFileSync(join(dist, 'a.js'), '');
  writeFileSync(join(dist, 'b.js'), '');
  writeFileSync(join(dist, 'bundle', 'hp-x.cjs'), '');
  writeFileSync(join(dist, 'bundle', 'hp-x.inputs.json'), JSON.stringify(['a.js', 'b.js']));
  const at = (rel: string, seconds: number): void => utimesSync(join(dist, rel), seconds, seconds);
  at('a.js', 1000);
  at('b.js', 1000);
  at('bundle/hp-x.cjs', 2000);
  t.equal(start.freshBundle('hp-x', dist, {}), join(dist, 'bundle', 'hp-x.cjs'), 'fresh: used');
  t.equal(start.freshBundle('hp-x', dist, { HP_NO_BUNDLE: '1' }), null, 'HP_NO_BUNDLE=1: not used');
  at('b.js', 3000);
  t.equal(start.freshBundle('hp-x', dist, {}), null, 'a module rewritten after the bundle: not used');
  at('b.js', 1000);
  rmSync(join(dist, 'a.js'));
  t.equal(start.freshBundle('hp-x', dist, {}), null, 'a module gone: not used');
  t.equal(start.freshBundle('hp-y', dist, {}), null, 'no bundle: not used');
  // A whole copy of dist/ with fresh times (cp without -p): the modules answer, correctly.
  const copy = join(dir, 'copy');
  for (const part of ['bin', 'dist', 'python', 'package.json']) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
  const r = spawnSync(process.execPath, [join(copy, 'bin', 'hp-stats.js'), '--version'], { env: ENV, encoding: 'utf8' });
  t.equal(r.status, 0, 'a copied tree still runs');
});
