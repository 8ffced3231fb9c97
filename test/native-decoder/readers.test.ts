// Every reader gives the same output, warnings and exit status whether it reads through the
// addon's kernels (the default when the addon is built) or in TypeScript only
// (HEAPPROF_NATIVE_READ=0): on whole and damaged profiles, with both samplers, on one thread and
// with the decoding worker. The seek index too, whose build splits the draws for the peak.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx.js';
import { nativeDecoder, nativeDecoderStatus } from '../../lib/native.js';
import { run } from '../fixtures/export/support.js';
import { blockOffsets, prng, randomSpec, tmpDir } from '../helpers/profiles.js';

async function runWith(env: Record<string, string>, cmd: string, args: string[]): Promise<string> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const r = await run(cmd, args);
    return `exit ${r.code}\n${r.stderr}\n${r.stdout.toString('utf8')}`;
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
}

if (!nativeDecoder()) {
  t.plan(0, nativeDecoderStatus());
} else {
  t.test('readers: the same output with and without the addon', async (t) => {
    const dir = tmpDir('hp-readers-');
    const bases: string[] = [];
    for (let seed = 11; seed <= 14; seed++) {
      const base = join(dir, `p${seed}`);
      const spec = randomSpec(seed, 20_000);
      spec.sampling = seed % 2 === 0 ? { kind: 'poisson', meanBytes: 4096 } : { kind: 'table', bounds: [64, 1000], probs: [0.01, 0.3] };
      await writeProfile(base, spec);
      bases.push(base);
    }
    // A damaged copy: flipped bytes in two blocks' payloads and a cut tail.
    const damaged = join(dir, 'damaged');
    await writeProfile(damaged, randomSpec(15, 20_000));
    const hpd = Buffer.from(readFileSync(`${damaged}.hpd`));
    const rnd = prng(5);
    const offsets = blockOffsets(hpd);
    for (let k = 0; k < 2; k++) hpd[offsets[1 + Math.floor(rnd() * (offsets.length - 2))]! + 30] ^= 0x41;
    writeFileSync(`${damaged}.hpd`, hpd.subarray(0, hpd.length - 11));
    bases.push(damaged);

    for (const base of bases) {
      const name = base.slice(dir.length + 1);
      for (const [cmd, args] of [
        ['hp-history', [base, '--json']],
        ['hp-history', [base, '--granularity', '0.01', '--top', '3']],
        ['hp-snapshot', [base, '--at', 'peak']],
        ['hp-stats', [base]],
        ['hp-events', [base]],
      ] as Array<[string, string[]]>) {
        for (const worker of ['0', '1']) {
          const native = await runWith({ HEAPPROF_READ_WORKER: worker }, cmd, args);
          const ts = await runWith({ HEAPPROF_READ_WORKER: worker, HEAPPROF_NATIVE_READ: '0' }, cmd, args);
          t.ok(native.startsWith('exit 0'), `${cmd} ${name}: ran (${native.split('\n')[0]})`);
          if (native !== ts) t.equal(native, ts, `${cmd} ${args.slice(1).join(' ')} on ${name}, worker ${worker}: same output`);
          else t.pass(`${cmd} ${args.slice(1).join(' ')} on ${name}, worker ${worker}: same output`);
        }
      }
    }
  });

  t.test('the seek index: built byte for byte the same with and without the addon (its split of the draws)', async (t) => {
    const dir = tmpDir('hp-readers-index-');
    for (let seed = 21; seed <= 23; seed++) {
      const base = join(dir, `p${seed}`);
      const spec = randomSpec(seed, 40_000);
      spec.sampling = { kind: 'table', bounds: [64, 1000], probs: [0.02, 0.4] };
      await writeProfile(base, spec);
      const index = (env: Record<string, string>): Promise<[string, Buffer]> =>
        runWith({ HEAPPROF_INDEX_MIN_BYTES: '0', ...env }, 'hp-snapshot', [base, '--at', 'peak']).then((out) => {
          const bytes = readFileSync(`${base}.hpi`);
          rmSync(`${base}.hpi`);
          return [out, bytes];
        });
      const [nativeOut, nativeIndex] = await index({});
      const [tsOut, tsIndex] = await index({ HEAPPROF_NATIVE_READ: '0' });
      t.ok(nativeOut.startsWith('exit 0'), `p${seed}: ran (${nativeOut.split('\n')[0]})`);
      t.equal(nativeOut, tsOut, `p${seed}: the same snapshot at the peak`);
      t.ok(nativeIndex.length > 0 && nativeIndex.equals(tsIndex), `p${seed}: the same ${nativeIndex.length}-byte index`);
    }
  });
}
