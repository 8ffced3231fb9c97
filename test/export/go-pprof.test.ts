// hp-pprof output read by the real `go tool pprof` (skipped, with the reason printed, where Go
// is not installed): Python's <module>-style names survive -top, -traces and the graph behind
// -png, and a profile made from piped snapshot NDJSON keeps the profile's time and program.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, run } from '../fixtures/export/support.js';
import { tmpDir } from '../helpers/profiles.js';

const APP = join(FIXTURES, 'app');
const go = spawnSync('go', ['version'], { encoding: 'utf8' });
const skip = go.status === 0 ? false : `go is not installed here (${go.error?.message ?? go.stderr.trim()}): go tool pprof cannot be tested`;
if (skip) t.comment(skip);

const dir = tmpDir('hp-go-pprof-');
const pprof = (args: string[]): string => {
  const r = spawnSync('go', ['tool', 'pprof', ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC', PPROF_TMPDIR: dir, HOME: dir, GOFLAGS: '' }, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`go tool pprof ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

t.test('names with <...> survive, and piped NDJSON keeps time and program', { skip }, async (t) => {
  const snap = await run('hp-snapshot', [APP, '--at', 'end']);
  t.equal(snap.code, 0, snap.stderr);
  const piped = await run('hp-pprof', ['-'], snap.stdout);
  t.equal(piped.code, 0, piped.stderr);
  const file = join(dir, 'heap.pb.gz');
  writeFileSync(file, piped.stdout);

  const top = pprof(['-top', '-cum', file]);
  t.match(top, /\s<module>\n/, '-top shows <module> by name');
  t.notMatch(top, /\[app\.py\]/, 'not the mapping name in its place');
  t.match(top, /^File: app\.py$/m, 'program name from the profile');
  t.match(top, /^Time: Nov 24, 2025/m, 'time from the profile, not 1970');
  t.notMatch(top, /1970/);

  const traces = pprof(['-traces', file]);
  t.match(traces, /^\s+<module>$/m, '-traces shows <module>');

  // -png renders the dot graph; the graph is checked as text (no image decoding needed).
  const dot = pprof(['-dot', file]);
  t.match(dot, /label="&lt;module&gt;|label="<module>/, 'the graph behind -png names <module>');
});
