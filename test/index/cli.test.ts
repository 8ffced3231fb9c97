// hp-snapshot and hp-history read large profiles through the seek index: their output is
// byte-identical to a full read. HEAPPROF_INDEX_MIN_BYTES=0 makes every profile "large".

import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import * as hpx from '../../lib/format/hpx.js';
import { decodeIndex, indexPath } from '../../lib/format/index.js';
import { tmpDir } from '../helpers/profiles.js';
// @ts-ignore: a plain JS module of the benchmark harness (no types)
import { generateProfile } from '../../bench/gen.js';
import { readFileSync } from 'node:fs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(cmd: string, args: string[], minBytes: string): { out: string; err: string; code: number | null } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', `${cmd}.js`), ...args], {
    encoding: 'utf8',
    env: { ...process.env, HEAPPROF_INDEX_MIN_BYTES: minBytes, TZ: 'UTC', NO_COLOR: '1' },
  });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

t.test('indexed and full reads print the same', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'format', 'index.js'))) {
    t.skip('dist/ not built (npm run build)');
    return;
  }
  const dir = tmpDir('hp-index-cli-');
  const base = join(dir, 'run');
  // 20 MB: a few 8 MiB checkpoint intervals, so seeks really start from checkpoints.
  const gen = await generateProfile(base, { targetBytes: 20e6, traces: 800, seed: 3, hpx });
  const last = gen.lastUs / 1e6;
  const never = String(Number.MAX_SAFE_INTEGER);

  for (const at of ['end', 'peak', (last * 0.1).toFixed(6), (last * 0.5).toFixed(6), (last * 0.93).toFixed(6)]) {
    rmSync(indexPath(base), { force: true });
    const full = run('hp-snapshot', [base, '--at', at], never);
    t.equal(full.code, 0, full.err);
    t.notOk(existsSync(indexPath(base)), 'no index below the size threshold');
    const viaIndex = run('hp-snapshot', [base, '--at', at], '0');
    t.equal(viaIndex.code, 0, viaIndex.err);
    t.ok(existsSync(indexPath(base)), 'index written on first use');
    t.ok(decodeIndex(readFileSync(indexPath(base))).index.checkpoints.length >= 2, 'with checkpoints');
    t.equal(viaIndex.out, full.out, `hp-snapshot --at ${at}: same output`);
    t.equal(viaIndex.err, full.err, `hp-snapshot --at ${at}: same messages`);
    rmSync(indexPath(base));
    const again = run('hp-snapshot', [base, '--at', at, '--group-by', 'function'], '0');
    t.equal(again.out, run('hp-snapshot', [base, '--at', at, '--group-by', 'function'], never).out, `--group-by function too`);
  }

  for (const from of [(last * 0.3).toFixed(3), (last * 0.8).toFixed(3)]) {
    for (const extra of [[], ['--granularity', '2']]) {
      const args = [base, '--from', from, ...extra];
      const full = run('hp-history', args, never);
      t.equal(full.code, 0, full.err);
      const viaIndex = run('hp-history', args, '0');
      t.equal(viaIndex.code, 0, viaIndex.err);
      t.ok(full.out.length > 0);
      t.equal(viaIndex.out, full.out, `hp-history ${args.slice(1).join(' ')}: same output`);
    }
  }
});
