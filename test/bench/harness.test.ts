// Smoke test of the benchmark harness on a small generated profile: it runs end to end, writes
// its JSON, and what it measures is right — the hp-snapshot answers it times equal the answers
// read through the seek index (bench/seek.js; a 12 MB profile is below the size hp-snapshot
// indexes, so there hp-snapshot decodes in full). (The benchmark itself is `npm run bench`,
// not part of npm test.)

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

t.test('bench --only read,seek on a 12 MB profile', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'format', 'index.js'))) {
    t.skip('dist/ not built (npm run build)');
    return;
  }
  const out = tmpDir('hp-bench-');
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'run.js'), '--no-build', '--only', 'read,seek', '--read-mb', '12', '--out', out], { encoding: 'utf8', timeout: 600_000 });
  t.equal(r.status, 0, `exit 0 (${r.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  t.match(r.stdout, /Reading a 12 MB \.hpd/);
  t.match(r.stdout, /hp-snapshot --at T once indexed/);
  const json = readdirSync(out).find((f) => /^bench-.*\.json$/.test(f));
  t.ok(json, 'JSON written');
  const res = JSON.parse(readFileSync(join(out, json!), 'utf8'));
  t.ok(res.read.tsDecode.events === res.read.events, 'TS decoder read every generated event');
  if (res.read.c) t.equal(res.read.c.events, res.read.events, 'C decoder too');
  t.ok(res.read.history.maxRssMb > 0 && res.read.history.mbPerS > 0);
  t.equal(res.seek.at.length, 7);
  t.notOk(existsSync(join(out, 'big.hpd')), 'generated profile deleted');

  // The seek figures are for correct answers: regenerate the same profile and compare.
  const base = join(out, 'again');
  const gen = spawnSync(process.execPath, ['--input-type=module', '-e', `import { generateProfile } from ${JSON.stringify(join(ROOT, 'bench', 'gen.js'))}; await generateProfile(${JSON.stringify(base)}, { targetBytes: 12e6 });`], { encoding: 'utf8' });
  t.equal(gen.status, 0, gen.stderr);
  for (const a of res.seek.at) {
    const seek = spawnSync(process.execPath, [join(ROOT, 'bench', 'seek.js'), 'at', base, a.at], { encoding: 'utf8' });
    t.equal(seek.status, 0, seek.stderr);
    t.equal(JSON.parse(seek.stdout).bytes, a.liveBytes, `--at ${a.at}: same live bytes through the index as in full`);
  }
});
