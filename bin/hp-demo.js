#!/usr/bin/env node
// npm run demo: record the bundled example (examples/spike.py: ~30 MB of buffers held, a
// 50 MB spike, then ~15 MB of small strings) with hp-record, then show its memory over time
// (hp-history --chart) and the largest sites at the peak (hp-snapshot --at peak).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const node = process.execPath;
const bin = (name) => join(root, 'bin', `hp-${name}.js`);

function fail(message) {
  process.stderr.write(`hp-demo: ${message}\n`);
  process.exit(1);
}

if (!existsSync(join(root, 'dist', 'cmd', 'history.js'))) fail('dist/ is missing: run `npm run build` (or `npm ci`) first');

const base = join(mkdtempSync(join(tmpdir(), 'heapprof-demo-')), 'spike');
const script = join(root, 'examples', 'spike.py');
const say = (text) => process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`.replace(/\x1b\[[0-9;]*m/g, process.stdout.isTTY ? '$&' : ''));

say(`$ hp-record -o ${base} -- examples/spike.py`);
const rec = spawnSync(node, [bin('record'), '-o', base, '--', script], { stdio: 'inherit' });
if (rec.error) fail(`could not run hp-record: ${rec.error.message}`);
if (rec.status !== 0) fail(`hp-record exited with status ${rec.status}`);

say(`$ hp-history ${base} --chart`);
const hist = spawnSync(node, [bin('history'), base, '--chart', '-q'], { stdio: 'inherit' });
if (hist.status !== 0) fail('hp-history failed');

say(`$ hp-snapshot ${base} --at peak --top 5`);
const snap = spawnSync(node, [bin('snapshot'), base, '--at', 'peak', '--top', '5', '-q'], { encoding: 'utf8' });
if (snap.status !== 0) fail(`hp-snapshot failed: ${snap.stderr}`);
const mib = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
// The 95% half-width; exact sites (recorded at p = 1) have none.
const pm = (o) => (o.bytes_hi !== undefined ? ` ±${mib((o.bytes_hi - o.bytes_lo) / 2)}` : '');
for (const line of snap.stdout.trim().split('\n')) {
  const o = JSON.parse(line);
  if (o.type === 'snapshot') process.stdout.write(`peak at ${o.at} s: ${mib(o.bytes)}${pm(o)} live (95% interval)\n`);
  else process.stdout.write(`  ${String(o.rank).padStart(2)}. ${mib(o.bytes).padStart(10)}${pm(o).padEnd(14)} ${o.site}\n`);
}

process.stdout.write(`
Next:
  hp-snapshot ${base} --at peak | hp-collapse > flame.txt   # flamegraph.pl / speedscope
  hp-history ${base} --granularity 0.5 --sites spike.py:25 | hp-chart --field sites.spike.py:25.bytes
  hp-stats ${base} --suggest
`);
