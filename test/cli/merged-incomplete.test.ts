// Several profiles read as one (a --follow-fork run's glob): what is said about a profile's end
// names that profile, not the set. A killed parent's profile lacks its end marker while its
// children's are whole; the message said "r (+2 more): incomplete profile", as if all were.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { smallProfile } from '../fixtures/format/killed.js';
import { root } from '../fixtures/analysis/run.js';

const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

t.test('an incomplete profile among several is named alone', async (t) => {
  const dir = t.testdir();
  await smallProfile(join(dir, 'r'), false, 100);
  await smallProfile(join(dir, 'r.101'), true, 101);
  await smallProfile(join(dir, 'r.102'), true, 102);
  for (const cmd of ['hp-snapshot', 'hp-history', 'hp-stats']) {
    const r = spawnSync(process.execPath, [join(root, 'bin', `${cmd}.js`), '--json', join(dir, 'r'), join(dir, 'r.101'), join(dir, 'r.102')], { env: childEnv, encoding: 'utf8' });
    t.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    const warnings = r.stderr.split('\n').filter((l) => /incomplete profile/.test(l));
    t.same(warnings.length, 1, `${cmd}: one warning`);
    t.match(warnings[0], `${join(dir, 'r')}: incomplete profile`, `${cmd}: names the parent's profile alone`);
    t.notMatch(r.stderr, /more\): incomplete/, `${cmd}: not the set`);
  }
});
