// Several profiles read as one, stopped early (a window's end, an --at moment): the command
// exits once its output is written. Each profile's decoder thread (used for large files;
// forced here) was left running when the merged read stopped, and kept the process alive.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { generateProfile } from '../../bench/gen.js';
import { tmpDir } from '../helpers/profiles.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const env: NodeJS.ProcessEnv = { ...process.env, HEAPPROF_READ_WORKER: '1', NO_COLOR: '1' };
delete env.NODE_OPTIONS;

t.test('a merged read that stops early ends the decoder threads', async (t) => {
  const dir = tmpDir('hp-merged-exit-');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  await generateProfile(a, { targetBytes: 3e6, seed: 1 });
  await generateProfile(b, { targetBytes: 3e6, seed: 2 });
  const run = (cmd: string, args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', `hp-${cmd}.js`), ...args], { env, encoding: 'utf8', timeout: 30_000, maxBuffer: 1 << 30 });
  const full = run('events', [a, b]);
  t.equal(full.status, 0, `hp-events a b reads both (${full.stderr.trim()})`);
  const last = JSON.parse(full.stdout.trim().split('\n').at(-1)!);
  const events = full.stdout.split('\n').filter((l) => l.startsWith('{"type":"event"'));
  const mid = JSON.parse(events[Math.floor(events.length / 10)]!).t as number;
  t.equal(last.type, 'summary');
  for (const [cmd, args] of [
    ['events', [a, b, '--to', String(mid)]],
    ['snapshot', [a, b, '--at', String(mid)]],
    ['history', [a, b, '--to', String(mid)]],
  ] as const) {
    const r = run(cmd, [...args]);
    t.equal(r.signal, null, `hp-${cmd} ${args.slice(2).join(' ')}: exits by itself (not killed after 30 s)`);
    t.equal(r.status, 0, `hp-${cmd}: status 0 (${r.stderr.trim().split('\n').at(-1)})`);
  }
});
