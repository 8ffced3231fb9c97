// The start-up build (scripts/build.mjs, lib/start.ts): every reader has a bundle after `npm run
// build`; a command answers the same from its bundle as from dist/'s modules (HP_NO_BUNDLE=1); a
// bundle older than any module it was made from is not used, nor one Node was started for
// without --no-concurrent-recompilation (`node bin/hp-X.js`).

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freshBundle } from '../../lib/start.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist');
const COMMANDS = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin);
const ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C', HP_DEBUG: '', HP_CHECK_ARGS: '', HP_NO_BUNDLE: '' };
delete ENV.NODE_OPTIONS;
const FLAG = ['--no-concurrent-recompilation'];

const built = existsSync(join(DIST, 'start.js'));
const hasEsbuild = existsSync(join(ROOT, 'node_modules', 'esbuild'));
const skip = !built ? 'dist/ is not built: run `npm run build`' : !hasEsbuild ? 'esbuild is not installed (npm ci installs it)' : false;

/** The command as its bin/ file runs it (Node with the flag), in a scratch directory. */
function run(name: string, args: string[], env: NodeJS.ProcessEnv, root = ROOT): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...FLAG, join(root, 'bin', `${name}.js`), ...args], { env, encoding: 'utf8', input: '', cwd: tmpdir() });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('npm run build leaves a fresh bundle for every reader, and the commands run it', { skip }, async (t) => {
  // hp-record has none: it loads few modules on its usual path (scripts/build.mjs).
  t.equal(freshBundle('hp-record', DIST, {}, FLAG), null, 'hp-record: no bundle, its modules');
  for (const name of COMMANDS.filter((n) => n !== 'hp-record')) {
    const bundle = freshBundle(name, DIST, {}, FLAG);
    t.equal(bundle, join(DIST, 'bundle', `${name}.cjs`), `${name}: bundle present and newer than its modules`);
    if (!bundle) continue;
    const source = readFileSync(bundle, 'utf8');
    t.match(source, /require\("\.\.\/where\.cjs"\)/, `${name}: finds the package from dist/where.cjs, outside the bundle`);
    t.notMatch(source, /__dirname|__filename/, `${name}: nothing else depends on where the file is`);
    const inputs = Object.keys(JSON.parse(readFileSync(join(DIST, 'bundle', `${name}.inputs.json`), 'utf8')) as Record<string, number>);
    t.ok(inputs.includes(`cmd/${name.replace(/^hp-/, '')}.js`) && inputs.includes('where.cjs') && inputs.includes('cli.js'), `${name}: its inputs listed (${inputs.length})`);
  }
  // Which file a command ran, seen from inside: a trace of the modules Node loaded.
  const loaded = (env: NodeJS.ProcessEnv, flags: string[]): string => {
    const r = spawnSync(process.execPath, [...flags, '-r', join(ROOT, 'test', 'fixtures', 'cli', 'loaded-at-exit.cjs'), join(ROOT, 'bin', 'hp-stats.js'), '--version'], { env, encoding: 'utf8' });
    return r.stderr;
  };
  t.match(loaded(ENV, FLAG), /bundle\/hp-stats\.cjs/, 'run with the flag: the bundle');
  t.notMatch(loaded(ENV, FLAG), /dist\/cmd\/stats\.js/, 'run with the flag: not the modules');
  // Without the flag (node bin/hp-X.js), a reader runs itself again with it (lib/start.ts), from the bundle.
  t.match(loaded(ENV, []), /bundle\/hp-stats\.cjs/, 'node bin/hp-stats.js without the flag: run again with it, from the bundle');
  t.match(loaded({ ...ENV, HP_RUN_AGAIN: '0' }, []), /dist\/cmd\/stats\.js/, 'HP_RUN_AGAIN=0 without the flag: the modules');
  t.notMatch(loaded({ ...ENV, HP_RUN_AGAIN: '0' }, []), /bundle\/hp-stats\.cjs/, 'HP_RUN_AGAIN=0 without the flag: not the bundle');
  t.match(loaded({ ...ENV, HP_NO_BUNDLE: '1' }, FLAG), /dist\/cmd\/stats\.js/, 'HP_NO_BUNDLE=1: the modules');
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
  // Paths found from dist/where.cjs: package.json (--version).
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  t.equal(run('hp-snapshot', ['--version'], ENV).stdout.trim(), version);
});

t.test('a bundle older than one of its modules, or missing one, is not used', { skip: built ? false : 'dist/ is not built' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-bundle-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dist = join(dir, 'dist');
  mkdirSync(join(dist, 'bundle'), { recursive: true });
  writeFileSync(join(dist, 'a.js'), '');
  writeFileSync(join(dist, 'b.js'), '');
  writeFileSync(join(dist, 'bundle', 'hp-x.cjs'), '');
  writeFileSync(join(dist, 'bundle', 'hp-x.inputs.json'), JSON.stringify({ 'a.js': 0, 'b.js': 0 }));
  const at = (rel: string, seconds: number): void => utimesSync(join(dist, rel), seconds, seconds);
  at('a.js', 1000);
  at('b.js', 1000);
  at('bundle/hp-x.cjs', 2000);
  t.equal(freshBundle('hp-x', dist, {}, FLAG), join(dist, 'bundle', 'hp-x.cjs'), 'fresh: used');
  t.equal(freshBundle('hp-x', dist, { HP_NO_BUNDLE: '1' }, FLAG), null, 'HP_NO_BUNDLE=1: not used');
  t.equal(freshBundle('hp-x', dist, {}, []), null, 'Node without --no-concurrent-recompilation: not used');
  at('b.js', 3000);
  t.equal(freshBundle('hp-x', dist, {}, FLAG), null, 'a module rewritten after the bundle: not used');
  at('b.js', 1000);
  writeFileSync(join(dist, 'b.js'), 'x');
  at('b.js', 1000);
  t.equal(freshBundle('hp-x', dist, {}, FLAG), null, 'a module of another size than it was bundled from: not used');
  writeFileSync(join(dist, 'b.js'), '');
  at('b.js', 1000);
  t.equal(freshBundle('hp-x', dist, {}, FLAG), join(dist, 'bundle', 'hp-x.cjs'), 'back as it was: used');
  rmSync(join(dist, 'a.js'));
  t.equal(freshBundle('hp-x', dist, {}, FLAG), null, 'a module gone: not used');
  t.equal(freshBundle('hp-y', dist, {}, FLAG), null, 'no bundle: not used');
  writeFileSync(join(dist, 'bundle', 'hp-x.inputs.json'), '[');
  t.equal(freshBundle('hp-x', dist, {}, FLAG), null, 'an unreadable list of inputs: not used');
  // A whole copy of the package with fresh times (cp without -p): it still runs, from whichever.
  const copy = join(dir, 'copy');
  for (const part of ['bin', 'dist', 'python', 'package.json']) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
  const r = run('hp-stats', ['--version'], ENV, copy);
  t.equal(r.status, 0, `a copied tree still runs: ${r.stderr}`);
});

// npm (pacote) unpacks a package without the tarball's times: each file gets the time it was
// written, in the tarball's order, which puts dist/bundle/ before most of the modules. Times say
// nothing there, so an installed copy ran its modules, never a bundle; sizes still say whether a
// module was changed since (patch-package edits dist/ in place).
t.test('an installed copy (under node_modules) runs its bundle whatever the times, not after a module changed', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-bundle-installed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pkg = join(dir, 'node_modules', 'heapprof');
  for (const part of ['bin', 'dist', 'python', 'package.json']) cpSync(join(ROOT, part), join(pkg, part), { recursive: true });
  const dist = join(pkg, 'dist');
  // As unpacked: the bundle first, its modules a little later.
  const modules = Object.keys(JSON.parse(readFileSync(join(dist, 'bundle', 'hp-stats.inputs.json'), 'utf8')) as Record<string, number>);
  utimesSync(join(dist, 'bundle', 'hp-stats.cjs'), 1000, 1000);
  for (const rel of modules) utimesSync(join(dist, rel), 1000.5, 1000.5);
  t.equal(freshBundle('hp-stats', dist, {}, FLAG), join(dist, 'bundle', 'hp-stats.cjs'), 'unpacked: the bundle');
  const r = spawnSync(process.execPath, [...FLAG, '-r', join(ROOT, 'test', 'fixtures', 'cli', 'loaded-at-exit.cjs'), join(pkg, 'bin', 'hp-stats.js'), '--version'], { env: ENV, encoding: 'utf8' });
  t.match(r.stderr, /bundle\/hp-stats\.cjs/, 'bin/hp-stats.js of the installed copy runs it');
  // A module edited in place (its size changed): the modules.
  const edited = join(dist, 'cmd', 'stats.js');
  writeFileSync(edited, `${readFileSync(edited, 'utf8')}\n// patched\n`);
  t.equal(freshBundle('hp-stats', dist, {}, FLAG), null, 'a module changed since: its modules');
  // Outside node_modules (a checkout), times still decide.
  const checkout = join(dir, 'checkout');
  cpSync(join(ROOT, 'dist'), join(checkout, 'dist'), { recursive: true });
  utimesSync(join(checkout, 'dist', 'bundle', 'hp-stats.cjs'), 1000, 1000);
  for (const rel of modules) utimesSync(join(checkout, 'dist', rel), 1000.5, 1000.5);
  t.equal(freshBundle('hp-stats', join(checkout, 'dist'), {}, FLAG), null, 'a checkout with a module newer than its bundle: its modules');
});
