// Golden tests: hp-flow and hp-diff on the committed fixtures (test/fixtures/export/generate.mjs)
// against committed expected output, byte for byte. Regenerate on purpose only:
//   HP_UPDATE_GOLDEN=1 npx tap test/export/golden.test.ts
// Every dot output is also rendered by Graphviz, which must not warn.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ensureTool, run } from '../fixtures/export/support.js';

const APP = 'test/fixtures/export/app';
const APP2 = 'test/fixtures/export/app2';
const update = process.env.HP_UPDATE_GOLDEN === '1';

const cases: Array<{ name: string; cmd: string; args: string[] }> = [
  { name: 'flow-peak.dot', cmd: 'hp-flow', args: [APP, '--at', 'peak'] },
  { name: 'flow-two-times.dot', cmd: 'hp-flow', args: [APP, '--at', '4', '--at', '9', '--threshold', '0.005'] },
  { name: 'flow-no-collapse.dot', cmd: 'hp-flow', args: [APP, '--at', '9', '--threshold', '0', '--no-collapse'] },
  { name: 'diff-times.ndjson', cmd: 'hp-diff', args: [APP, '--at', '4', '--at', '9', '--group-by', 'line'] },
  { name: 'diff-profiles.ndjson', cmd: 'hp-diff', args: [APP, APP2, '--at', '9', '--group-by', 'line'] },
  { name: 'diff-stack-significant.ndjson', cmd: 'hp-diff', args: [APP, '--at', '2', '--at', 'peak', '--group-by', 'stack', '--significant'] },
  { name: 'diff-profiles-table.txt', cmd: 'hp-diff', args: [APP, APP2, '--at', '9', '--no-json', '--group-by', 'line'] },
];

const dotMissing = ensureTool('dot', 'graphviz');

for (const c of cases) {
  t.test(`${c.cmd} ${c.args.join(' ')}`, async (t) => {
    const res = await run(c.cmd, [...c.args, '-q']);
    t.equal(res.code, 0, res.stderr);
    t.equal(res.stderr, '', 'nothing on stderr with -q');
    const expectedPath = join(FIXTURES, 'expected', c.name);
    const got = res.stdout.toString();
    if (update || !existsSync(expectedPath)) {
      if (!update) t.fail(`${c.name} missing: run with HP_UPDATE_GOLDEN=1`);
      else writeFileSync(expectedPath, got);
    }
    t.equal(got, readFileSync(expectedPath, 'utf8'), `matches expected/${c.name}`);
    if (c.name.endsWith('.dot')) {
      if (dotMissing) {
        t.skip(`Graphviz: ${dotMissing}`);
      } else {
        const r = spawnSync('dot', ['-Tsvg'], { input: got, encoding: 'utf8' });
        t.equal(r.status, 0, 'dot renders it');
        t.equal(r.stderr, '', 'without warnings');
        t.match(r.stdout, /<svg/);
      }
    }
  });
}
