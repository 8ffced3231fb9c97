#!/usr/bin/env node
// npm run demo: record the bundled example (examples/spike.py: ~30 MB of buffers held, a
// 50 MB spike, then ~15 MB of small strings) with hp-record, then show its memory over time
// (hp-history) and the largest sites at the peak (hp-snapshot), as the terminal views show them.

const { spawnSync } = require('node:child_process');
const { existsSync, mkdtempSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const root = join(__dirname, '..');
const node = process.execPath;
// Each command as its own shell line starts it (doc/internals.md): the flag keeps Node 20 from a rare deadlock as it exits.
const bin = (name) => ['--no-concurrent-recompilation', join(root, 'bin', `hp-${name}.js`)];

function fail(message) {
  process.stderr.write(`hp-demo: ${message}\n`);
  process.exit(1);
}

if (!existsSync(join(root, 'dist', 'cmd', 'history.js'))) fail('dist/ is missing: run `npm run build` (or `npm ci`) first');

const base = join(mkdtempSync(join(tmpdir(), 'heapprof-demo-')), 'spike');
const script = join(root, 'examples', 'spike.py');
const say = (text) => process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`.replace(/\x1b\[[0-9;]*m/g, process.stdout.isTTY ? '$&' : ''));

say(`$ hp-record -o ${base} examples/spike.py`);
const rec = spawnSync(node, [...bin('record'), '-o', base, script], { stdio: 'inherit' });
if (rec.error) fail(`could not run hp-record: ${rec.error.message}`);
if (rec.status !== 0) fail(`hp-record exited with status ${rec.status}`);

say(`$ hp-history ${base}`);
const hist = spawnSync(node, [...bin('history'), base, '--no-json', '-q'], { stdio: 'inherit' });
if (hist.status !== 0) fail('hp-history failed');

say(`$ hp-snapshot ${base} --top 5`);
const snap = spawnSync(node, [...bin('snapshot'), base, '--top', '5', '--no-json', '-q'], { stdio: 'inherit' });
if (snap.status !== 0) fail('hp-snapshot failed');

process.stdout.write(`
Next:
  hp-snapshot ${base} --at peak | hp-collapse > flame.txt   # flamegraph.pl / speedscope
  hp-diff ${base} --at 1 --at peak --group-by line --significant
  hp-report ${base} -o report.html
  hp-stats ${base} --suggest
`);
