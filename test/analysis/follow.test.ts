// A profile still being written: every command reads what has been flushed so far (and
// says the profile is incomplete), and `hp-history --follow` keeps reading as the recorder
// appends, until its end marker.

import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { HpxWriter } from '../../lib/format/hpx.js';
import { root } from '../fixtures/analysis/run.js';

const childEnv: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', NO_COLOR: '1' };
delete childEnv.NODE_OPTIONS;
for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k];

t.test('hp-history --follow reads a growing profile to its end marker', async (t) => {
  const base = join(t.testdir(), 'live');
  writeFileSync(`${base}.hpm`, '');
  writeFileSync(`${base}.hpd`, '');
  const w = new HpxWriter({
    header: { startTimeUs: 1_700_000_000_000_000, sampling: { kind: 'table', bounds: [], probs: [] } },
    writeHpm: (c) => appendFileSync(`${base}.hpm`, c),
    writeHpd: (c) => appendFileSync(`${base}.hpd`, c),
  });
  const trace = { id: 1, frames: [{ function: 'grow', file: 'app.py', line: 3 }], dropped: 0 };
  w.defineTrace(trace);
  // First second: 10 allocations of 1000 bytes, flushed, no end marker yet.
  for (let i = 0; i < 10; i++) w.event('alloc', i * 100_000, 1, 1000);
  await w.close();

  const now = spawnSync(process.execPath, [join(root, 'bin', 'hp-snapshot.js'), base], { env: childEnv, encoding: 'utf8' });
  t.equal(now.status, 0);
  t.match(now.stdout, /"bytes":10000,/, 'what was flushed so far');
  t.match(now.stderr, /incomplete profile/, 'and it says the profile is incomplete');

  const child = spawn(process.execPath, [join(root, 'bin', 'hp-history.js'), base, '--follow', '--granularity', '0.5', '--top', '1', '-q'], { env: childEnv });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  await sleep(1500);
  // Seconds 1-3: 20 more allocations, then 5 frees; then the end marker.
  for (let i = 0; i < 20; i++) w.event('alloc', 1_050_000 + i * 100_000, 1, 1000);
  await w.close();
  await sleep(1000);
  for (let i = 0; i < 5; i++) w.event('free', 3_000_000 + i * 10_000, 1, 1000);
  await w.end(3_200_000);

  // An unref'd timer: it must not keep the test process alive once the child has exited.
  const code = await Promise.race([exited, sleep(120_000, undefined, { ref: false }).then(() => 'timeout' as const)]);
  if (code === 'timeout') child.kill();
  t.equal(code, 0, `exits by itself after the end marker (stderr: ${err})`);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { t: number; live_bytes: number });
  const last = lines[lines.length - 1]!;
  t.equal(last.live_bytes, 25_000, 'the last bucket has everything (30 allocated, 5 freed)');
  t.ok(last.t >= 3.2, `the last bucket covers the end (t = ${last.t})`);
  t.same(
    lines.map((l) => l.t),
    lines.map((_, i) => (i + 1) * 0.5),
    'consecutive half-second buckets',
  );
  t.equal(lines.find((l) => l.t === 1)!.live_bytes, 10_000, 'the first second, read before the rest was written');
});
