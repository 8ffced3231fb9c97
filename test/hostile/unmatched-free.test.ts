// Frees of blocks never allocated (a damaged or hostile profile) are ignored with one warning
// giving their count and the first one's time, and are an error under --strict: they never
// make a sampled count, a live estimate or a site negative (issue 20 item 8). LOST events are
// warned about (how many, the first when) in .hpd and NDJSON alike.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx.js';
import { tmpDir } from '../helpers/profiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(cmd: string, args: string[]): { out: string; err: string; code: number | null } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', `${cmd}.js`), ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', TZ: 'UTC' } });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

t.test('frees of never-allocated blocks', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'format', 'hpx.js'))) {
    t.skip('dist/ not built (npm run build)');
    return;
  }
  const base = join(tmpDir('hp-unmatched-'), 'p');
  const f = (name: string, line: number) => ({ function: name, file: 'app.py', line });
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [
      { id: 1, frames: [f('a', 1)], dropped: 0 },
      { id: 2, frames: [f('b', 2)], dropped: 0 },
    ],
    events: [
      { op: 'alloc', timeUs: 1000, trace: 1, size: 100 },
      { op: 'free', timeUs: 2000, trace: 2, size: 50 },
      { op: 'free', timeUs: 3000, trace: 2, size: 50 },
      { op: 'free', timeUs: 4000, trace: 1, size: 100 },
      { op: 'free', timeUs: 5000, trace: 1, size: 100 },
      { op: 'lost', timeUs: 5500, size: 7 },
      { op: 'alloc', timeUs: 6000, trace: 1, size: 300 },
    ],
  });
  const snap = run('hp-snapshot', [base]);
  t.equal(snap.code, 0, snap.err);
  const sites = snap.out.trim().split('\n').map((l) => JSON.parse(l));
  const json = JSON.stringify(sites);
  t.notMatch(json, /:-\d/, 'no negative number in the snapshot');
  const warnings = snap.err.split('\n').filter((l) => /never allocated/.test(l));
  t.equal(warnings.length, 1, `one warning: ${snap.err}`);
  t.match(warnings[0], /3 frees of blocks never allocated \(the first at 0\.002 s, trace 2\)/);
  const hist = run('hp-history', [base, '--granularity', '0.001']);
  t.equal(hist.code, 0, hist.err);
  const buckets = hist.out.trim().split('\n').map((l) => JSON.parse(l));
  for (const r of buckets) t.ok(r.live_bytes >= 0 && r.live_count >= 0, `bucket ${r.t}: bytes ${r.live_bytes}, count ${r.live_count} not negative`);
  t.same(
    buckets.map((r) => r.live_bytes),
    [100, 100, 100, 0, 0, 300],
    'the unmatched frees change nothing; the matched one frees its block',
  );
  t.match(snap.err, /the recorder lost 7 events \(the first at 0\.0055 s\)/, 'LOST reported from the .hpd');
  // The same profile as events NDJSON: the same warnings, the same result.
  const events = run('hp-events', [base]);
  t.equal(events.code, 0, events.err);
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'hp-snapshot.js'), '-'], { input: events.out, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout, snap.out, 'NDJSON gives the same snapshot');
  t.match(r.stderr, /3 frees of blocks never allocated \(the first at 0\.002 s, trace 2\)/, 'NDJSON: unmatched frees reported');
  t.match(r.stderr, /the recorder lost 7 events \(the first at 0\.0055 s\)/, 'NDJSON: LOST reported');
  const rs = spawnSync(process.execPath, [join(ROOT, 'bin', 'hp-snapshot.js'), '-', '--strict'], { input: events.out, encoding: 'utf8' });
  t.equal(rs.status, 1, 'NDJSON: an error under --strict');
  const strict = run('hp-snapshot', [base, '--strict']);
  t.equal(strict.code, 1, 'an error under --strict');
  t.match(strict.err, /never allocated/);
});

t.test('a free of a size its trace never had, taking the trace back to nothing live: the total stays the sum of the sites', async (t) => {
  // A stream cut by a window (hp-events --from T) has frees of blocks allocated before T. When
  // such a free took its trace back to nothing live, the site was reset to 0 but the total lost
  // the free's own size: `hp-events churn --from 1 | hp-snapshot -` said 0 bytes in sites that
  // held 11 KiB.
  if (!existsSync(join(ROOT, 'dist', 'format', 'hpx.js'))) {
    t.skip('dist/ not built (npm run build)');
    return;
  }
  const base = join(tmpDir('hp-unmatched-size-'), 'p');
  const f = (name: string, line: number) => ({ function: name, file: 'app.py', line });
  // Below 1000 bytes drawn at p = 0.5 (weight 2), so that what is moved is a weighted estimate.
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [1000], probs: [0.5] } },
    traces: [
      { id: 1, frames: [f('a', 1)], dropped: 0 },
      { id: 2, frames: [f('b', 2)], dropped: 0 },
      { id: 3, frames: [f('c', 3)], dropped: 0 },
    ],
    events: [
      { op: 'alloc', timeUs: 1000, trace: 1, size: 10 },
      { op: 'alloc', timeUs: 2000, trace: 2, size: 500 },
      { op: 'alloc', timeUs: 2500, trace: 3, size: 40 },
      { op: 'alloc', timeUs: 2600, trace: 3, size: 60 },
      { op: 'free', timeUs: 3000, trace: 1, size: 999 }, // trace 1 back to nothing live
      { op: 'free', timeUs: 3500, trace: 3, size: 7 }, // trace 3 down to one block
      { op: 'alloc', timeUs: 4000, trace: 2, size: 20 },
    ],
  });
  for (const read of ['the addon', 'TypeScript']) {
    const env = { ...process.env, NO_COLOR: '1', TZ: 'UTC', ...(read === 'TypeScript' ? { HEAPPROF_NATIVE_READ: '0' } : {}) };
    const snap = spawnSync(process.execPath, [join(ROOT, 'bin', 'hp-snapshot.js'), base, '--at', 'end'], { encoding: 'utf8', env });
    t.equal(snap.status, 0, snap.stderr);
    const [head, ...sites] = snap.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const sum = (k: string): number => sites.reduce((a, s) => a + s[k], 0);
    t.equal(head.bytes, sum('bytes'), `${read}: the total's bytes are the sites' sum`);
    t.equal(head.count, sum('count'), `${read}: and so is its count`);
    t.equal(head.bytes, 2 * (500 + 20) + 2 * (40 + 60 - 7), `${read}: trace 1 holds nothing, trace 3 what its sizes say`);
    const hist = spawnSync(process.execPath, [join(ROOT, 'bin', 'hp-history.js'), base, '--granularity', '0.001', '--top', '0'], { encoding: 'utf8', env });
    t.equal(hist.status, 0, hist.stderr);
    const last = JSON.parse(hist.stdout.trim().split('\n').pop()!);
    t.equal(last.live_bytes, head.bytes, `${read}: hp-history's last bucket agrees`);
  }
});
