// A --mode stats profile holds allocation counts by size and no events: hp-snapshot, hp-history,
// hp-diff, hp-collapse, hp-flow, hp-pprof and hp-report say so and point to hp-stats instead of
// reporting an empty heap ("peak at 0 s: 0 B").

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeProfile } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';

const BIN = new URL('../../bin/', import.meta.url).pathname;

t.test('hp-snapshot refuses a --mode stats profile, naming it and hp-stats', async (t) => {
  const base = join(tmpDir(), 'ms');
  const { hpm, hpd } = await encodeProfile({ header: { mode: 'stats', sampling: { kind: 'table', bounds: [], probs: [] } }, traces: [], events: [] });
  writeFileSync(`${base}.hpm`, hpm);
  writeFileSync(`${base}.hpd`, hpd);
  const message = ': a --mode stats profile has no events, only allocation counts by size: read it with hp-stats\n';
  for (const args of [[base], [base, '--no-json'], [base, '--at', 'end']]) {
    const r = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), ...args], { encoding: 'utf8' });
    t.equal(r.status, 2, `${args.join(' ')}: exit status 2`);
    t.equal(r.stdout, '', 'no empty snapshot');
    t.equal(r.stderr, `hp-snapshot: ${base}${message}`);
  }
  // Through events NDJSON too.
  const events = spawnSync(process.execPath, [join(BIN, 'hp-events.js'), base], { encoding: 'utf8' });
  t.equal(events.status, 0, 'hp-events still writes what the profile has');
  const piped = spawnSync(process.execPath, [join(BIN, 'hp-snapshot.js'), '-'], { encoding: 'utf8', input: events.stdout });
  t.equal(piped.status, 2);
  t.equal(piped.stderr, `hp-snapshot: stdin${message}`);
  // hp-history and hp-diff read events too: the same refusal, not a chart or a diff of nothing.
  for (const [cmd, args] of [['hp-history', [base, '--json']], ['hp-diff', [base, base]]] as Array<[string, string[]]>) {
    const r = spawnSync(process.execPath, [join(BIN, `${cmd}.js`), ...args], { encoding: 'utf8' });
    t.equal(r.status, 2, `${cmd}: exit status 2`);
    t.equal(r.stderr, `${cmd}: ${base}${message}`);
  }
  // And every other command that shows a heap: not an empty flame graph, profile or report.
  const out = join(tmpDir(), 'out');
  for (const [cmd, args] of [
    ['hp-collapse', [base]],
    ['hp-flow', [base]],
    ['hp-pprof', [base]],
    ['hp-pprof', [base, '--alloc']],
    ['hp-report', [base, '-o', out]],
  ] as Array<[string, string[]]>) {
    const r = spawnSync(process.execPath, [join(BIN, `${cmd}.js`), ...args], { encoding: 'utf8' });
    t.equal(r.status, 2, `${cmd} ${args.slice(1).join(' ')}: exit status 2`);
    t.equal(r.stderr, `${cmd}: ${base}${message}`);
    t.equal(r.stdout, '', 'nothing written');
  }
  t.notOk(existsSync(out), 'no report file');
  const stats = spawnSync(process.execPath, [join(BIN, 'hp-stats.js'), base, '--json'], { encoding: 'utf8' });
  t.equal(stats.status, 0, 'hp-stats reads it');
});
