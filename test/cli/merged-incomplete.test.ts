// Several profiles read as one (a --follow-fork run's glob): what is said about a profile's end
// names that profile, not the set. A killed parent's profile lacks its end marker while its
// children's are whole; the message said "r (+2 more): incomplete profile", as if all were.
import { spawnSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { HpxWriter } from '../../lib/format/hpx.js';
import { root } from '../fixtures/analysis/run.js';

const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

async function profile(base: string, pid: number, ended: boolean): Promise<void> {
  writeFileSync(`${base}.hpm`, '');
  writeFileSync(`${base}.hpd`, '');
  const w = new HpxWriter({
    header: { startTimeUs: 1_700_000_000_000_000, pid, sampling: { kind: 'table', bounds: [], probs: [] } },
    writeHpm: (c) => appendFileSync(`${base}.hpm`, c),
    writeHpd: (c) => appendFileSync(`${base}.hpd`, c),
  });
  w.defineTrace({ id: 1, frames: [{ function: 'work', file: 'app.py', line: 3 }], dropped: 0 });
  for (let i = 0; i < 5; i++) w.event('alloc', i * 100_000, 1, 1000);
  if (ended) await w.end(600_000);
  else await w.close();
}

t.test('an incomplete profile among several is named alone', async (t) => {
  const dir = t.testdir();
  await profile(join(dir, 'r'), 100, false);
  await profile(join(dir, 'r.101'), 101, true);
  await profile(join(dir, 'r.102'), 102, true);
  for (const cmd of ['hp-snapshot', 'hp-history', 'hp-stats']) {
    const r = spawnSync(process.execPath, [join(root, 'bin', `${cmd}.js`), '--json', join(dir, 'r'), join(dir, 'r.101'), join(dir, 'r.102')], { env: childEnv, encoding: 'utf8' });
    t.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    const warnings = r.stderr.split('\n').filter((l) => /incomplete profile/.test(l));
    t.same(warnings.length, 1, `${cmd}: one warning`);
    t.match(warnings[0], `${join(dir, 'r')}: incomplete profile`, `${cmd}: names the parent's profile alone`);
    t.notMatch(r.stderr, /more\): incomplete/, `${cmd}: not the set`);
  }
});
