// A followed child still running when the program exits (a daemon) is listed in hp-record's summary as
// still running, not as ended and killed; its profile is closed when it ends.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readAll } from '../helpers/profiles.js';
import { FIXTURES, hookLibrary, hpRecord, missingBuild, pythons, scratch } from '../fixtures/record/harness.js';

const SCRIPTS = join(FIXTURES, 'scripts');
const skip =
  missingBuild() ?? (pythons().length === 0 ? 'no CPython 3.9-3.13 under ~/.pyenv' : null) ?? (hookLibrary() ? null : 'the native hook is not built (npx node-gyp rebuild)');
const installed = skip ? [] : pythons();
const newest = installed[installed.length - 1] ?? { version: '3.x', exe: 'python3' };

t.test(`CPython ${newest.version}: a child that outlives the program is said to be running`, { skip: skip ?? false }, async (t) => {
  const dir = scratch();
  const base = join(dir, 'daemon');
  const go = join(dir, 'go');
  t.teardown(() => writeFileSync(go, ''));
  const r = await hpRecord(['--python', newest.exe, '--follow-fork', '-o', base, '--', 'outlive.py', go], { cwd: SCRIPTS, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  t.equal(r.code, 0, r.stderr);
  const pid = r.stdout.trim();
  const line = new RegExp(`^hp-record: child ${pid}: .*$`, 'm').exec(r.stderr)?.[0] ?? '';
  t.match(line, /: (no events yet|[\d,]+ events so far): still running \(it outlived the program; its profile grows until it ends\)$/, line || r.stderr);
  t.notMatch(line, /ended/);
  writeFileSync(go, '');
  let profile = await readAll(`${base}.${pid}`);
  for (let i = 0; i < 100 && !profile.complete; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    profile = await readAll(`${base}.${pid}`);
  }
  t.equal(profile.complete, true, 'closed when the child ended');
  t.equal(profile.events.filter((e: { op: string; size: number }) => e.op === 'alloc' && e.size === 50001).length, 100, 'its 100 blocks (bytearray adds a byte)');
});
