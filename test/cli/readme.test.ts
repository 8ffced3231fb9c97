// The README's examples run as written: every line of a fenced `sh` block that starts with an
// hp- command runs (through bash, hp-* on PATH) against the demo profile (examples/spike.py
// recorded as `run`, the program saved as app.py) and must exit 0. hp-record lines run in a
// fresh directory of their own, with a small pytest suite for the `-m pytest` example.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { root } from '../fixtures/analysis/run.js';

const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The lines of every ```sh block that start with an hp- command. */
export function readmeCommands(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    for (const line of m[1]!.split('\n')) if (/^hp-[a-z]+\b/.test(line)) out.push(line);
  }
  return out;
}

const hasPytest = spawnSync('python3', ['-c', 'import pytest'], { stdio: 'ignore' }).status === 0;
const built = spawnSync('test', ['-e', join(root, 'build', 'Release', 'heapprof_hook.so')]).status === 0;

t.test('the README is a short user document', async (t) => {
  t.ok(readme.split('\n').length <= 210, `at most ~200 lines (${readme.split('\n').length})`);
  for (const heading of ['## Install', '## Your first profile', '## The commands', '## From Python code', '## Limitations', '## FAQ']) t.match(readme, heading);
  t.match(readme, 'npm ci && npm run demo');
  t.match(readme, 'npm ci && npm test');
  const commands = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin as Record<string, string>);
  for (const cmd of commands) t.ok(readmeCommands(readme).some((l) => l.startsWith(`${cmd} `) || l.includes(`| ${cmd}`)), `${cmd} has an example`);
});

t.test('every README example runs against the demo profile', { skip: !built && 'native hook not built' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hp-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const cmd of Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin as Record<string, string>)) {
    writeFileSync(join(bin, cmd), `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'bin', `${cmd}.js`)}" "$@"\n`);
    chmodSync(join(bin, cmd), 0o755);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, SPIKE_PAUSE: '0.5', NO_COLOR: '1', COLUMNS: '100' };
  delete env.NODE_OPTIONS;
  const work = join(dir, 'work');
  mkdirSync(work);
  copyFileSync(join(root, 'examples', 'spike.py'), join(work, 'app.py'));
  const rec = spawnSync('bash', ['-c', 'hp-record -q -o run app.py'], { cwd: work, env, encoding: 'utf8' });
  t.equal(rec.status, 0, `the demo profile: ${rec.stderr}`);

  const lines = readmeCommands(readme);
  t.ok(lines.length >= 12, `${lines.length} examples`);
  for (const [i, line] of lines.entries()) {
    let cwd = work;
    if (line.startsWith('hp-record ')) {
      if (/-m pytest/.test(line) && !hasPytest) {
        t.comment(`skipped (no pytest for python3): ${line}`);
        continue;
      }
      cwd = join(dir, `record-${i}`);
      mkdirSync(join(cwd, 'tests'), { recursive: true });
      copyFileSync(join(root, 'examples', 'spike.py'), join(cwd, 'app.py'));
      writeFileSync(join(cwd, 'tests', 'test_a.py'), 'def test_a():\n    assert sum(range(10)) == 45\n');
    }
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', line], { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
    t.equal(r.status, 0, `${line}${r.status === 0 ? '' : `\n${r.stderr}`}`);
  }
});
