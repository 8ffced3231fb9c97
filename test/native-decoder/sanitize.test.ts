// The C reference decoder under AddressSanitizer + UBSan (and valgrind when installed):
// native/decoder/check.sh builds its stress driver and decodes random checksummed blocks and
// damaged files; any out-of-bounds read, undefined behaviour or leak fails it.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const script = fileURLToPath(new URL('../../native/decoder/check.sh', import.meta.url));
const cc = spawnSync(process.env.CC ?? 'cc', ['--version'], { encoding: 'utf8' });
if (cc.status !== 0) {
  t.plan(0, 'no C compiler (cc) to build the sanitizer driver');
} else {
  t.test('decoder is clean under ASan/UBSan and valgrind', async (t) => {
    const r = spawnSync('sh', [script, '8000'], { encoding: 'utf8', timeout: 300_000 });
    t.equal(r.status, 0, r.stderr.split('\n').slice(0, 20).join('\n'));
    t.match(r.stdout, /fuzz: 8000 rounds: \d+ blocks decoded, \d+ rejected, 0 failures/);
  });
}
